"""How many chapters a build executes at once, and how many threads each chapter's kernel gets.

Most of a chapter's time is one core busy in Python (plots, UMAP, Numba, small matrix
products), so a build runs several chapters at once, each in its own kernel. How many:

* no more than the cores this process may use, nor than there are pages;
* no more than the memory allows: the largest measured peaks (resident memory of a
  page's kernel, from the last build on this machine, :func:`record`) of that many pages
  must fit in what the machine has available, with a fifth kept free. A page not
  measured yet counts as :data:`UNMEASURED_PEAK`;
* ``$MNISTLAB_BUILD_JOBS``, where set, decides instead.

Each kernel then gets an equal share of the cores as its thread count (at least one),
through the environment it starts with (``OMP_NUM_THREADS`` and the BLAS and Numba
variables), unless the caller set those. Threads that wait for each other collapse when
more of them than cores are busy (the benchmark measures it: an MLP epoch with two
threads beside another busy process took four times as long as with one), so the shares
never add up to more than the cores.

>>> plan(cores=2, available=24 * GIB, peaks={}, pages=13)
Plan(jobs=2, threads=1)
>>> plan(cores=16, available=24 * GIB, peaks={"07_cnn": 5 * GIB}, pages=13)
Plan(jobs=5, threads=3)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
ENV_JOBS = "MNISTLAB_BUILD_JOBS"
# What a page not measured yet is taken to need: above the largest page measured on full
# MNIST (chapter 7's CNN, about 2.5 GiB), so a first build never runs more than fit.
UNMEASURED_PEAK = 3 * GIB
# The share of the available memory a build plans to use: the rest is the margin for
# what the measured peaks did not see (the build itself, the rest of the machine).
MEMORY_SHARE = 0.8
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class Plan:
    """How a build runs its pages: ``jobs`` at once, ``threads`` threads in each page's kernel."""

    jobs: int
    threads: int


def cores() -> int:
    """The cores this process may run on (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available for new work: Linux's MemAvailable, else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * GIB


def plan(cores: int, available: int, peaks: Mapping[str, int], pages: int, jobs: int | None = None) -> Plan:
    """The plan for ``pages`` pages on ``cores`` cores with ``available`` bytes (see the module docstring).

    Args:
        peaks: each page's measured peak resident memory in bytes (pages not in it count as
            :data:`UNMEASURED_PEAK`).
        jobs: how many at once, if the caller decided (``$MNISTLAB_BUILD_JOBS``).
    """
    cores, pages = max(1, cores), max(1, pages)
    if jobs is None:
        needs = sorted(list(peaks.values()) + [UNMEASURED_PEAK] * max(0, pages - len(peaks)), reverse=True)
        jobs, used = 0, 0
        for need in needs[: min(cores, pages)]:
            if jobs and used + need > MEMORY_SHARE * available:
                break
            jobs, used = jobs + 1, used + need
    return Plan(jobs=jobs, threads=max(1, cores // jobs))


def jobs_from_environment() -> int | None:
    """``$MNISTLAB_BUILD_JOBS`` as a number, None where unset; a clear error where it is not a whole number >= 1."""
    value = os.environ.get(ENV_JOBS, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${ENV_JOBS} must be a whole number >= 1, got {value!r}")
    return int(value)


def kernel_environment(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a page's kernel starts with: ``threads`` threads, unless the caller set them."""
    env = dict(os.environ if environ is None else environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(threads))
    return env


# --- the peaks measured by the last build -----------------------------------------------------


def _file() -> Path:
    from mnistlab.cache import cache_dir

    return cache_dir() / "page-runs.json"


def measured() -> dict[str, dict[str, float]]:
    """What the last build on this machine measured of each page: ``{page: {"seconds": s, "peak": bytes}}``."""
    try:
        runs = json.loads(_file().read_text())
        return {str(page): {k: float(v) for k, v in run.items()} for page, run in runs.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}  # no earlier build, or an unreadable file: nothing measured


def record(runs: Mapping[str, Mapping[str, float]]) -> None:
    """Keep what this build measured of its pages (merged over the earlier build's)."""
    merged = {**measured(), **{page: dict(run) for page, run in runs.items()}}
    try:
        _file().parent.mkdir(parents=True, exist_ok=True)
        _file().write_text(json.dumps(merged, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache: the next build plans from the defaults


def peak_of_children() -> int:
    """The peak resident memory, in bytes, of the largest child process this process has waited for."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def for_build(pages: int) -> Plan:
    """The plan for a build of ``pages`` pages on this machine, now."""
    peaks = {page: int(run["peak"]) for page, run in measured().items() if run.get("peak")}
    return plan(cores(), available_memory(), peaks, pages, jobs_from_environment())


def main(argv: list[str] | None = None) -> None:
    """``python -m mnistlab.build.parallel PAGES``: print the plan as shell variables (for .ci/sync-notebooks)."""
    args = sys.argv[1:] if argv is None else argv
    p = for_build(int(args[0]) if args else 13)
    print(f"MNISTLAB_PLAN_JOBS={p.jobs} MNISTLAB_PLAN_THREADS={p.threads}")


if __name__ == "__main__":
    main()
