"""Sphinx extension: execute every chapter on every build, several at a time.

Sphinx re-reads only pages whose source changed since the last build, so a chapter
whose Markdown did not change would keep the figures of an older library. This
extension marks every page outdated, so each build runs every chapter against the
code as it is now.

Jupyter Book executes the pages it reads one after another, and most of a chapter's
time is one CPU core busy in Python (plots, UMAP, Numba compiling). So before Sphinx
reads the pages, this extension executes all of them, several at a time, each in its own
kernel, and puts the executed notebooks into myst-nb's execution cache
(``execute_notebooks: cache``), from which myst-nb then takes the outputs. That cache is
emptied first, on every build: it only ever holds what this build executed. A chapter
that fails here is left out of the cache, so myst-nb executes it again itself and
reports the error as usual.

How many pages run at once, and how many threads each kernel gets, follows from the
cores, the available memory and each page's peak memory as the last build on this
machine measured it (:mod:`mnistlab.build.parallel`; ``$MNISTLAB_BUILD_JOBS`` overrides),
and the build's log says what it chose. The paths a build is given relative to where it
was started (``$MNISTLAB_MNIST_DIR``, ``$MNISTLAB_CACHE``) are made absolute here,
because each kernel runs in ``book/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PATH_VARIABLES = ("MNISTLAB_MNIST_DIR", "MNISTLAB_CACHE")
# Pages that read what the chapters of the same build wrote (the claims appendix reads
# every chapter's verdicts): executed after all other pages are done.
AFTER_ALL = ("claims",)


def _every_page(app, env, added, changed, removed):
    return sorted(env.found_docs - added - changed - removed)


def _cache_path(app, config) -> None:
    # myst-nb's default is .jupyter_cache in the working directory; keep it in the build.
    if not config.nb_execution_cache_path:
        config.nb_execution_cache_path = str(Path(app.outdir).parent / ".jupyter_cache")


def _execute_all(app, env, docnames) -> None:
    """Execute the notebooks among ``docnames`` in parallel into a fresh execution cache."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import create_nb_reader
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    nb_config = env.mystnb_config
    if nb_config.execution_mode != "cache":
        return
    cache_path = Path(nb_config.execution_cache_path)
    shutil.rmtree(cache_path, ignore_errors=True)  # nothing from an earlier build is ever served
    cache = get_cache(str(cache_path))

    pages = []
    for docname in sorted(docnames):
        path = Path(env.doc2path(docname))
        text = path.read_text(encoding="utf8")
        # The same reader myst-nb uses, so the cache's hash of the code cells matches.
        reader = create_nb_reader(str(path), env.myst_config, nb_config, text)
        if reader is not None:
            pages.append((docname, path, reader.read(text), reader.read_fmt))
    if not pages:
        return

    from mnistlab.build import parallel

    plan = parallel.for_build(len(pages))
    env = parallel.kernel_environment(plan.threads)

    def run(page, tmp: Path):
        # Each page in its own process (kernel clients are not thread-safe); the
        # threads of this pool only wait for them.
        docname, path, notebook, _ = page
        source, executed = tmp / f"{docname}.in.ipynb", tmp / f"{docname}.out.ipynb"
        nbformat.write(notebook, source)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, str(source), str(executed), str(path.parent), str(nb_config.execution_timeout)],
            capture_output=True,
            text=True,
            env=env,
        )
        seconds = time.perf_counter() - started
        result = nbformat.read(executed, as_version=4) if proc.returncode == 0 else None
        slowest = json.loads(executed.with_suffix(".cells.json").read_text()) if result is not None else None
        return page, result, seconds, slowest, proc.stderr[-2000:]

    n = plan.jobs
    logger.info(
        f"[reexecute] executing {len(pages)} pages, {n} at a time, {plan.threads} thread(s) each "
        f"({parallel.cores()} cores, {parallel.available_memory() / parallel.GIB:.1f} GiB available)"
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=n) as pool:
        # Longest first, by the times of the last build (a hint for the order only:
        # nothing is taken from that build); pages not timed yet first of all.
        last = {page: run.get("seconds", 0.0) for page, run in parallel.measured().items()}
        ordered = sorted(reversed(pages), key=lambda page: -last.get(page[0], float("inf")))
        early = [page for page in ordered if page[0] not in AFTER_ALL]
        futures = [pool.submit(run, page, Path(tmp)) for page in early]
        for future in futures:
            future.result()  # the pages that read what the others wrote start when those are done
        futures += [pool.submit(run, page, Path(tmp)) for page in ordered if page[0] in AFTER_ALL]
        measured_now = {}
        for future in futures:
            (docname, path, _, read_fmt), executed, seconds, slowest, errors = future.result()
            if executed is None:
                logger.info(f"[reexecute] {docname} failed; myst-nb will execute it again and report:\n{errors}")
                continue
            record = cache.add_nb_to_project(str(path), read_data=read_fmt)
            cache.cache_notebook_bundle(
                CacheBundleIn(executed, record.uri, data={"execution_seconds": seconds}),
                check_validity=False,
                overwrite=True,
            )
            logger.info(
                f"[reexecute] {docname}: {seconds:.1f} s, peak {slowest['peak'] / parallel.GIB:.2f} GiB (slowest "
                f"cell: {slowest['seconds']:.1f} s, code cell {slowest['cell']} of {slowest['cells']}; the cell "
                f"timeout is {nb_config.execution_timeout} s)"
            )
            measured_now[docname] = {"seconds": seconds, "peak": slowest["peak"]}
    logger.info(f"[reexecute] all pages executed in {time.perf_counter() - start:.1f} s")
    parallel.record(measured_now)


def _execute_one(source: str, executed: str, cwd: str, timeout: str) -> None:
    """Execute the notebook ``source`` in a kernel started in ``cwd``; write it to ``executed``."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    started, seconds = {}, {}

    def on_start(cell, cell_index):
        started[cell_index] = time.perf_counter()

    def on_executed(cell, cell_index, execute_reply):
        seconds[cell_index] = time.perf_counter() - started[cell_index]

    client = NotebookClient(
        notebook,
        timeout=int(timeout),
        allow_errors=False,
        record_timing=False,  # timing metadata in the cells would change the cache's hash of the page
        resources={"metadata": {"path": cwd}},
        on_cell_start=on_start,
        on_cell_executed=on_executed,
    )
    client.execute()
    nbformat.write(notebook, executed)
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    slowest = max(code, key=lambda i: seconds.get(i, 0.0))
    from mnistlab.build.parallel import peak_of_children

    Path(executed).with_suffix(".cells.json").write_text(
        json.dumps(
            {
                "seconds": seconds.get(slowest, 0.0),
                "cell": code.index(slowest) + 1,
                "cells": len(code),
                "peak": peak_of_children(),  # the kernel's, once the client has shut it down
            }
        )
    )


def _absolute_paths() -> None:
    for name in PATH_VARIABLES:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().absolute())


def setup(app):
    _absolute_paths()  # the kernels (and myst-nb's own) inherit these, but start in book/
    app.connect("config-inited", _cache_path)
    app.connect("env-get-outdated", _every_page)
    app.connect("env-before-read-docs", _execute_all)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # a worker: python reexecute.py SOURCE EXECUTED CWD TIMEOUT
    _execute_one(*sys.argv[1:5])
