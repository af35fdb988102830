"""Another machine's arithmetic, on this one: the levers by which processors add numbers differently.

Machines of the same kind differ in their processors (AMD and Intel, AVX2 and AVX-512 or
AMX, arm64), and each library chooses its code by what the processor offers: PyTorch's
vectorised kernels, MKL's matrix products, oneDNN's convolutions, NumPy's loops, the BLAS
under NumPy and SciPy, the machine code Numba compiles for UMAP, and how many threads
split a sum. Each choice adds float32 numbers in another order. The book must hold on any
of those machines, so the tests run chapters with every lever moved
(:data:`OTHER_MACHINE`, in the environment a kernel starts with) and check that the
comparison nbval makes still passes (``tests/test_reproducibility.py``).

These are the environment variables the libraries read when they load: they act on a
fresh process, not on one that has already imported NumPy or PyTorch.

PyTorch's own kernels could be moved too (``ATEN_CPU_CAPABILITY=default``), but measured
here that lever and MKL's cancel out: each alone trains chapter 2's network to weights 3%
away from this machine's default, both together to the default's within 1e-6. The
levers above, together, move it by the 3% that another machine's arithmetic does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

OTHER_MACHINE = {
    # MKL's matrix products on its oldest code path (SSE2), not the one this processor picks.
    "MKL_CBWR": "COMPATIBLE",
    # oneDNN's convolutions blocked for SSE4.1 registers, not AVX2's or AVX-512's.
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    # NumPy's loops at the x86-64-v2 baseline (no AVX2, FMA or AVX-512).
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    # The BLAS under NumPy and SciPy (PCA, t-SNE, UMAP) on an older core's kernels.
    "OPENBLAS_CORETYPE": "Sandybridge",
    # Numba's machine code for UMAP compiled for a generic x86-64 processor.
    "NUMBA_CPU_NAME": "generic",
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def other_machine(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process whose arithmetic differs from this machine's in every lever.

    ``threads``: the thread count to run with (choose another than the stored run's, so
    that sums split by thread count split differently too).
    """
    env = dict(os.environ if environ is None else environ)
    env.update(OTHER_MACHINE)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env
