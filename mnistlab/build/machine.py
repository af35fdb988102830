"""What the benchmark needs to know about, and do to, the machine it runs on.

* :func:`describe` — the CPU, cores, memory and versions, for the README's table;
* :func:`matmul_gflops` — the float32 matmul rate, the yardstick of every FLOP floor;
* :func:`neighbour` — another CPU-bound process beside the measurement, as on a shared
  machine;
* :func:`tree_memory` — the memory of a process and its children (a book build's kernels).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


def describe() -> str:
    """This machine in one line: CPU model, cores, memory, Python and PyTorch versions."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB RAM"
    return (
        f"{model}, {os.cpu_count()} CPU(s){memory}, {platform.system()}, Python {platform.python_version()}, "
        f"PyTorch {torch.__version__}"
    )


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 throughput of an n × n matmul with ``threads`` threads, in GFLOP/s."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9


@contextmanager
def neighbour() -> Iterator[None]:
    """Another CPU-bound process (one busy core) for the duration of the block."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it take its core
        yield
    finally:
        proc.kill()
        proc.wait()


def tree_memory(pid: int) -> tuple[int, int]:
    """Memory of a process and all its descendants in bytes: (PSS, RSS) summed; 0s once gone.

    PSS (proportional set size) splits each shared page between the processes that
    map it, so the sum is the memory the tree really occupies. Summed RSS counts a page
    shared by n processes (PyTorch's libraries in every kernel) n times: an upper bound.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    pss = rss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            pss += info.pss
            rss += info.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return pss, rss
