"""Timing whole book builds: cold and warm, on either data set, alone or beside a neighbour.

A **cold** build starts from an empty build folder and an empty cache, so it trains
every model and computes every result; a **warm** rebuild starts from an empty build
folder with the cache of the cold build, as a rebuild after a change to a chapter's
prose does. Both execute every chapter (``book/_ext/reexecute.py``). The process tree's
peak memory is sampled every 0.2 s, and each page's slowest cell is read from the log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from mnistlab.build.machine import neighbour, tree_memory

ROOT = Path(__file__).resolve().parents[2]
PAGE_LINE = re.compile(
    r"\[reexecute\] (\S+): ([\d.]+) s(?:, peak ([\d.]+) GiB)? \(slowest\s+cell: ([\d.]+) s, code cell (\d+)"
)


def build(folder: Path, cache: Path, data: str, mnist_dir: Path | None = None, beside_neighbour: bool = False) -> dict:
    """One ``jupyter-book build book/`` into ``folder`` with the cache ``cache``.

    Returns wall seconds, peak PSS and summed RSS (GB), and each page's seconds and
    slowest cell. Raises ``RuntimeError`` with the log's tail if the build fails.
    """
    jb = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "MNISTLAB_CACHE": str(cache), "MNISTLAB_DATA": data, "MNISTLAB_PROGRESS": "0"}
    if mnist_dir is not None:
        env["MNISTLAB_MNIST_DIR"] = str(mnist_dir)
    log = folder.with_suffix(".log")
    with log.open("w") as out, neighbour() if beside_neighbour else nullcontext():
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(jb), "build", "book/", "--path-output", str(folder)], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        peak = peak_rss = 0
        while proc.poll() is None:
            pss, rss = tree_memory(proc.pid)
            peak, peak_rss = max(peak, pss), max(peak_rss, rss)
            time.sleep(0.2)
        seconds = time.perf_counter() - start
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"the book build into {folder} failed:\n{text[-3000:]}")
    pages = {
        m[1]: {"seconds": float(m[2]), "peak_gib": float(m[3] or 0), "slowest_cell": float(m[4])}
        for m in PAGE_LINE.finditer(text)
    }
    return {"seconds": seconds, "peak_gb": peak / 1e9, "peak_rss_gb": peak_rss / 1e9, "pages": pages}


def cold_and_warm(work: Path, data: str, mnist_dir: Path | None = None, beside_neighbour: bool = False) -> dict:
    """A cold build, then a warm rebuild with its cache; ``{"cold": …, "warm": …}``."""
    tag = f"{data}-{'neighbour' if beside_neighbour else 'idle'}"
    cache = work / f"cache-{tag}"
    return {run: build(work / f"{run}-{tag}", cache, data, mnist_dir, beside_neighbour) for run in ("cold", "warm")}


def slowest_cell(result: dict) -> tuple[str, float]:
    """The page holding the slowest cell of a build, and that cell's seconds."""
    page = max(result["pages"], key=lambda p: result["pages"][p]["slowest_cell"])
    return page, result["pages"][page]["slowest_cell"]
