"""The same bits on every x86-64 machine: how mnistlab pins PyTorch's CPU arithmetic.

PyTorch chooses its CPU kernels by what the processor offers (AVX-512 on one machine,
AVX2 on another), Intel MKL chooses its matmul code path the same way, oneDNN sizes its
convolution blocks by the processor's caches, and a reduction is split by the number of
threads. Each choice adds float32 numbers in another order; after 20 epochs of SGD the
last-bit differences have grown into the third digit of an accuracy. The book's stored
outputs are compared by nbval with fresh ones on whatever machine runs the tests, so
``import mnistlab`` pins all four:

* ``ATEN_CPU_CAPABILITY=avx2`` — PyTorch's own vectorised kernels take their AVX2 path
  (read when the first operation runs, so importing torch before mnistlab is fine);
* ``MKL_CBWR=AVX2,STRICT`` — MKL's conditional numerical reproducibility for matmuls;
* ``torch.backends.mkldnn.enabled = False`` — convolutions go through im2col and MKL;
* ``torch.set_num_threads(2)`` — every machine splits work the same way;

and, for the libraries under PCA, t-SNE and UMAP, which read them when they load (so
they take effect in processes started after ``import mnistlab``, such as the kernels of
a book build):

* ``OPENBLAS_CORETYPE=Haswell``, ``OPENBLAS_NUM_THREADS=2`` — NumPy's and SciPy's OpenBLAS;
* ``NUMBA_CPU_NAME=haswell`` — the machine code Numba compiles for UMAP.

Where the processor has no AVX2 (or is not x86-64) nothing can be pinned this way, and
results may differ from the book's in the last digits. ``MNISTLAB_REPRODUCIBLE=0``
leaves PyTorch as it is (faster on machines with many cores).
"""

from __future__ import annotations

import os
import warnings

ENV_SWITCH = "MNISTLAB_REPRODUCIBLE"
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "2",
    "NUMBA_CPU_NAME": "haswell",
}
THREADS = 2


class ReproducibilityWarning(UserWarning):
    """PyTorch ran before mnistlab could pin its kernels: results may differ in the last bits."""


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") not in ("0", "false", "no")


def pin() -> None:
    """Pin kernels, matmul path, convolution backend and thread count (see the module docstring)."""
    if not enabled():
        return
    for key, value in PINNED_ENV.items():
        os.environ.setdefault(key, value)
    import torch

    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(THREADS)
    capability = torch.backends.cpu.get_cpu_capability()
    wanted = os.environ["ATEN_CPU_CAPABILITY"].upper()
    if capability != wanted:
        warnings.warn(
            f"PyTorch runs its {capability} kernels, not {wanted}: it did work before mnistlab was imported "
            "(or this CPU lacks AVX2), so results may differ from the book's in the last digits. "
            "Import mnistlab before using torch to pin them.",
            ReproducibilityWarning,
            stacklevel=2,
        )


def shell_exports() -> str:
    """``export`` lines for a shell script that starts kernels (see .ci/sync-notebooks)."""
    return "\n".join(f"export {key}='{os.environ.get(key, value)}'" for key, value in PINNED_ENV.items())


def signature() -> str:
    """The arithmetic in force, for cache keys: a model trained under other pins is another model."""
    import torch

    return "/".join(
        [
            torch.__version__,
            torch.backends.cpu.get_cpu_capability(),
            f"threads={torch.get_num_threads()}",
            f"mkldnn={torch.backends.mkldnn.enabled}",
            f"mkl_cbwr={os.environ.get('MKL_CBWR', '')}",
        ]
    )
