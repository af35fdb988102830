"""The same bits on every x86-64 machine: how a build pins the CPU arithmetic.

PyTorch chooses its CPU kernels by what the processor offers (AVX-512 on one machine,
AVX2 on another), Intel MKL chooses its matmul code path the same way, oneDNN sizes its
convolution blocks by the processor's caches, NumPy dispatches its loops to the widest
vector unit it finds, and a reduction split over threads adds its parts in an order set
by the thread count. Each choice adds float32 numbers in another order; after 20 epochs
of SGD the last-bit differences have grown into the third digit of an accuracy, and a
UMAP map moves visibly. The book's stored outputs are compared by nbval with fresh ones
on whatever machine runs the tests, so a build calls :func:`pin` before anything else.
Importing ``mnistlab`` changes nothing; ``pin`` is one explicit call, made by the hidden
first cell of every chapter, the test configuration, the command line and the benchmark.

It fixes, for this process (and the processes it starts, through the environment):

* ``ATEN_CPU_CAPABILITY=avx2`` — PyTorch's own vectorised kernels take their AVX2 path
  (read when the first operation runs);
* ``MKL_CBWR=AVX2,STRICT`` — MKL's conditional numerical reproducibility for matmuls;
* ``torch.backends.mkldnn.enabled = False`` — no oneDNN: convolutions are matmuls
  (:mod:`mnistlab.conv`);
* one thread for PyTorch, MKL, OpenMP and OpenBLAS. Several of PyTorch's CPU kernels
  split a reduction by the thread count (MKL's small matmuls, LayerNorm's backward), so
  the count is part of the arithmetic. One thread wins on the machines this book is built
  on: two chapters run at once on two cores, and two threads per process that wait for
  each other slow a training epoch several-fold when another process shares the cores
  (the benchmark measures both);
* ``NPY_DISABLE_CPU_FEATURES`` — NumPy's loops stop at AVX2 (X86-64-v3), so UMAP's
  NumPy arithmetic is the same with or without AVX-512;
* ``OPENBLAS_CORETYPE=Haswell`` — the BLAS under NumPy and SciPy (PCA, t-SNE, UMAP);
* ``NUMBA_CPU_NAME=haswell`` with Haswell's feature list — the machine code Numba
  compiles for UMAP, whatever the host processor adds.

The environment variables act on libraries when they load: call ``pin()`` before
importing NumPy, PyTorch or umap-learn in a fresh process to pin this process too (a
chapter's first cell does). Where the processor has no AVX2 (or is not x86-64) nothing
can be pinned this way, and results may differ from the book's in the last digits.
``MNISTLAB_REPRODUCIBLE=0`` makes ``pin`` do nothing (faster on machines with many cores).
"""

from __future__ import annotations

import os
import warnings

ENV_SWITCH = "MNISTLAB_REPRODUCIBLE"
THREADS = 1
# Haswell's instruction set as LLVM names it: Numba otherwise adds the host's features
# (AVX-512 and more) to the CPU name it is given.
HASWELL_FEATURES = (
    "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,+invpcid,+lzcnt,+mmx,+movbe,"
    "+pclmul,+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+x87,+xsave,+xsaveopt"
)
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    # Numba's OpenMP layer shares PyTorch's OpenMP runtime: when umap-learn puts Numba's
    # thread count back after a seeded fit, it would set PyTorch's to Numba's default too.
    "NUMBA_NUM_THREADS": str(THREADS),
    "OPENBLAS_CORETYPE": "Haswell",
    # NumPy >= 2.4 names its dispatch targets above the X86-64-v2 baseline X86_V3 (AVX2,
    # FMA), X86_V4 (AVX-512) and the AVX-512 extensions after it.
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": HASWELL_FEATURES,
}


class ReproducibilityWarning(UserWarning):
    """PyTorch ran before :func:`pin` could pin its kernels: results may differ in the last bits."""


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") not in ("0", "false", "no")


def pin() -> None:
    """Pin kernels, matmul path, convolution backend and thread count (see the module docstring)."""
    if not enabled():
        return
    os.environ.update(PINNED_ENV)
    import torch

    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(THREADS)
    capability = torch.backends.cpu.get_cpu_capability()
    wanted = PINNED_ENV["ATEN_CPU_CAPABILITY"].upper()
    if capability != wanted:
        warnings.warn(
            f"PyTorch runs its {capability} kernels, not {wanted}: it did work before numerics.pin() "
            "(or this CPU lacks AVX2), so results may differ from the book's in the last digits. "
            "Call mnistlab.numerics.pin() before using torch to pin them.",
            ReproducibilityWarning,
            stacklevel=2,
        )


def signature() -> str:
    """PyTorch's arithmetic in force, for cache keys: a model trained under other pins is another model.

    Results computed with NumPy as well (UMAP, t-SNE) are keyed by :func:`numpy_dispatch` too.
    """
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


def numpy_dispatch() -> list[str]:
    """The SIMD targets NumPy's loops dispatch to in this process (fixed when NumPy loaded)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [feature for feature in __cpu_dispatch__ if __cpu_features__.get(feature)]
