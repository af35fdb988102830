"""Causal interventions: edit units at named hook points and see what the network does.

An :class:`Edit` says which units of a hook point to change and how: set them to a
value (zero, a dataset mean, a class mean, activations of other inputs) or scale
them. :func:`run_edited` runs inputs through the model with edits in place, in
batches, and removes every hook afterwards, also on error (it uses
:func:`mnistlab.hooks.hooks`).

The constructors name the usual interventions:

* :func:`zero_ablation`, :func:`mean_ablation`, :func:`class_mean_ablation`,
  :func:`resample_ablation` — remove what units carry, replacing it by 0, by its
  average, by its average over the input's own class, or by its value on other inputs;
* :func:`scaling` — multiply units by a factor;
* :func:`patching` — copy units' activations from another run.

Units are indices along dimension 1 of the activation: neurons of an (N, D) layer
or channels of an (N, C, H, W) layer (a channel is edited at all its positions).

Batched analyses are built on them: :func:`ablation_table` (every single unit of a
layer ablated in turn, with per-class accuracy, in a few vectorised passes), pruning
curves, random ablation and scaling sweeps. Patching every unit between pairs of images
is :mod:`mnistlab.patching`.

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig())
>>> x = torch.rand(4, 784)
>>> logits = run_edited(model, x, {"fc1_post": zero_ablation([0, 1])})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.checks import (
    N_CLASSES,
    check_finite,
    check_finite_number,
    check_images,
    check_indices,
    check_labels,
    check_positive_int,
)
from mnistlab.hooks import eval_mode, hooks, resolve_names, run_with_cache

ELEMENT_BUDGET = 1 << 24  # largest replicated activation in masked_ablation: 16M floats (64 MB)


@dataclass(frozen=True)
class Edit:
    """Change units of one hook point.

    Attributes:
        units: indices along dimension 1 (neurons or channels).
        value: replacement activations. With ``per_input=False`` one value for every
            input: shape (k, ...) for k units (a scalar broadcasts). With
            ``per_input=True`` one per input: (N, k, ...), aligned with the inputs
            given to :func:`run_edited`. ``None`` keeps the activations and scales them.
        scale: factor applied when ``value`` is None.
        per_input: whether ``value`` holds one row per input.
        source_shape: the per-input shape (D, ...) of the activations ``value`` was
            taken from, when it was taken from a layer's activations: the hook point
            the edit is applied at must have the same shape (the same layer), else the
            values would land on the wrong units.
    """

    units: torch.Tensor
    value: torch.Tensor | None = None
    scale: float = 1.0
    per_input: bool = False
    source_shape: tuple[int, ...] | None = None

    def apply(self, act: torch.Tensor, rows: slice) -> torch.Tensor:
        """The edited copy of ``act``, a batch holding the inputs ``rows``."""
        width = act.shape[1]
        if len(self.units) and (self.units.min() < 0 or self.units.max() >= width):
            raise IndexError(
                f"unit indices {self.units.tolist()} out of range: this hook point has units 0..{width - 1}"
            )
        if self.source_shape is not None and self.source_shape != tuple(act.shape[1:]):
            raise ValueError(
                f"the edit's values come from activations of shape {self.source_shape} per input, but this hook "
                f"point's activations are {tuple(act.shape[1:])}: take them from the layer being edited"
            )
        out = act.clone()
        if self.value is None:
            out[:, self.units] = act[:, self.units] * self.scale
            return out
        value = self.value[rows] if self.per_input else self.value
        value = value.to(act.device, act.dtype)
        if not self.per_input and value.ndim == 1 and act.ndim > 2:
            value = value.view(-1, *[1] * (act.ndim - 2))  # one value per channel, at every position
        if self.per_input and len(value) != len(act):
            raise ValueError(f"per-input values cover {len(value)} inputs, the batch has {len(act)}")
        out[:, self.units] = value
        return out


def _units(units: Sequence[int] | torch.Tensor | int) -> torch.Tensor:
    return check_indices(units, "unit indices")


def zero_ablation(units: Sequence[int] | torch.Tensor | int) -> Edit:
    """Set the units to 0."""
    return Edit(_units(units), value=torch.tensor(0.0))


def _reference(acts: torch.Tensor, units: torch.Tensor | None, what: str) -> torch.Tensor:
    """Check a layer's activations (N, D, ...) that an edit takes its values from (``units=None``: all of them)."""
    if not isinstance(acts, torch.Tensor) or acts.ndim < 2 or len(acts) == 0:
        shape = tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
        raise ValueError(f"{what} must be a layer's activations (N, D, ...) on at least one input, got {shape}")
    if units is not None and len(units) and (units.min() < 0 or units.max() >= acts.shape[1]):
        raise IndexError(f"unit indices {units.tolist()} out of range: {what} have units 0..{acts.shape[1] - 1}")
    return check_finite(acts, what)


def mean_ablation(units: Sequence[int] | torch.Tensor | int, acts: torch.Tensor) -> Edit:
    """Set the units to their mean over a reference set ``acts`` (N, D, ...) of the same layer."""
    units = _units(units)
    _reference(acts, units, "mean-ablation activations")
    return Edit(units, value=acts[:, units].float().mean(0), source_shape=tuple(acts.shape[1:]))  # (k, ...)


def class_mean_ablation(
    units: Sequence[int] | torch.Tensor | int, acts: torch.Tensor, labels: torch.Tensor, input_labels: torch.Tensor
) -> Edit:
    """Set the units, on each input, to their mean over the reference inputs of that input's class.

    Args:
        acts, labels: the reference set (N_ref, D, ...) and its labels.
        input_labels: (N,) the class of each input the edit will be run on.
    """
    units = _units(units)
    _reference(acts, units, "class-mean activations")
    labels = check_labels(labels, len(acts), "reference labels")
    input_labels = check_labels(input_labels, len(input_labels), "input labels")
    sub = acts[:, units].float()  # (N_ref, k, ...)
    present = labels.unique().tolist()
    missing = sorted(set(input_labels.unique().tolist()) - set(present))
    if missing:
        raise ValueError(f"classes {missing} of the inputs have no reference activations")
    means = torch.stack([sub[labels == c].mean(0) if c in present else torch.zeros_like(sub[0])
                         for c in range(N_CLASSES)])  # (C, k, ...)
    return Edit(units, value=means[input_labels], per_input=True, source_shape=tuple(acts.shape[1:]))


def resample_ablation(units: Sequence[int] | torch.Tensor | int, acts: torch.Tensor, seed: int = 0) -> Edit:
    """Replace each input's units by their activations on another input (a random derangement).

    ``acts`` are the units' activations on the same inputs the edit will be run on.
    """
    units = _units(units)
    _reference(acts, units, "resample-ablation activations")
    n = len(acts)
    if n < 2:
        raise ValueError("resample ablation needs at least two inputs to take activations from")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    source = torch.empty(n, dtype=torch.long)
    source[order] = order.roll(-1)  # one cycle through a random order: nobody keeps its own activations
    return Edit(units, value=acts[source][:, units], per_input=True, source_shape=tuple(acts.shape[1:]))


def scaling(units: Sequence[int] | torch.Tensor | int, factor: float) -> Edit:
    """Multiply the units by ``factor`` (a finite number)."""
    return Edit(_units(units), scale=check_finite_number(factor, "the scaling factor"))


def patching(units: Sequence[int] | torch.Tensor | int | None, source: torch.Tensor) -> Edit:
    """Copy the units' activations from another run, ``source`` (N, D, ...), input by input.

    ``units=None`` patches the whole hook point.
    """
    units = None if units is None else _units(units)
    _reference(source, units, "patching source activations")
    units = torch.arange(source.shape[1]) if units is None else units
    return Edit(units, value=source[:, units], per_input=True, source_shape=tuple(source.shape[1:]))


@torch.no_grad()
def run_edited(
    model: nn.Module, x: torch.Tensor, edits: Mapping[str, Edit | Sequence[Edit]], batch_size: int = 4096
) -> torch.Tensor:
    """Logits (N, 10) of ``model`` on ``x`` with the edits applied at their hook points.

    Runs in eval mode and in batches; every hook is removed on return or on error.
    """
    resolve_names(model, list(edits))
    check_images(x, "run_edited's inputs")
    check_positive_int(batch_size, "batch_size")
    as_lists = {name: [e] if isinstance(e, Edit) else list(e) for name, e in edits.items()}
    rows = slice(0, 0)

    def edit(act: torch.Tensor, name: str) -> torch.Tensor:
        for e in as_lists[name]:
            act = e.apply(act, rows)
        return act

    device = next(model.parameters()).device
    out = []
    with eval_mode(model), hooks(model, {name: edit for name in as_lists}):
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            out.append(model(x[rows].to(device)).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------
# Batched analyses
# ---------------------------------------------------------------------------


def _per_class_correct(preds: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(..., N) predictions → (..., C) number correct per class."""
    onehot = torch.nn.functional.one_hot(labels, n_classes).to(preds.device, torch.float64)  # (N, C)
    return (preds == labels.to(preds.device)).to(torch.float64) @ onehot


@dataclass(frozen=True)
class MaskedAccuracy:
    """Accuracy with sets of units ablated: one row per mask.

    per_class: (G, C) per-class accuracy; accuracy: (G,) overall accuracy;
    base: (C,) per-class accuracy of the intact model; base_accuracy: a float.
    """

    per_class: torch.Tensor
    accuracy: torch.Tensor
    base: torch.Tensor
    base_accuracy: float


@torch.no_grad()
def masked_ablation(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    layer: str,
    masks: torch.Tensor,
    values: torch.Tensor | None = None,
    max_rows: int = 65_536,
    n_classes: int = N_CLASSES,
) -> MaskedAccuracy:
    """Accuracy with the units of each mask ablated together, for many masks at once.

    Vectorised: a batch of B inputs runs up to ``layer`` once; there a single hook
    turns the layer's (B, D, ...) activation into G copies, replacing in copy ``g`` the
    units where ``masks[g]`` is True, and the rest of the network runs on all G × B
    rows at once (``max_rows`` bounds G × B). So the layers before ``layer`` run once
    per batch, not once per mask; the model must not assume, after ``layer``, that
    the batch keeps its size (the models of :mod:`mnistlab.models` do not).

    Args:
        masks: (G, D) bool, True = ablate this unit in this copy.
        values: replacement of each unit, (D, ...): zeros (default, zero ablation)
            or e.g. ``acts.mean(0)`` (mean ablation); or one replacement per input,
            (N, D, ...) aligned with ``x`` (resample ablation: each image gets the
            activations of another image).
    """
    resolve_names(model, layer)
    check_images(x, "masked_ablation's inputs")
    labels = check_labels(labels, len(x), n_classes=n_classes)
    check_positive_int(max_rows, "max_rows")
    support = torch.bincount(labels, minlength=n_classes).double()
    if (support == 0).any():
        raise ValueError(f"classes {(support == 0).nonzero().flatten().tolist()} have no inputs")
    base_logits, probe = run_with_cache(model, x, names=[layer])
    width, unit_shape = probe[layer].shape[1], probe[layer].shape[2:]
    # Bound memory by the largest tensor one row becomes: the B input rows become tensors
    # as large as the largest activation anywhere, but the G × B copies only exist from
    # ``layer`` on. In a CNN the conv maps are far larger than a hidden layer, so editing
    # fc1_post can replicate many more rows than editing conv1_post.
    _, sizes = run_with_cache(model, x[:1])
    per_row = [a[0].numel() for a in sizes.values()]  # in the order the forward pass meets them
    after = max(per_row[list(sizes).index(layer) :])
    max_rows = max(1, min(max_rows, ELEMENT_BUDGET // after))  # bounds G × B
    max_batch = max(1, min(len(x), max_rows, ELEMENT_BUDGET // max(x[0].numel(), *per_row)))  # bounds B
    values = torch.zeros(width, *unit_shape) if values is None else values
    per_input = values.shape == (len(x), width, *unit_shape)
    if values.shape != (width, *unit_shape) and not per_input:
        raise ValueError(
            f"values must have shape {(width, *unit_shape)} (one per unit) or {(len(x), width, *unit_shape)} "
            f"(one per input), got {tuple(values.shape)}"
        )
    check_finite(values, "ablation values")
    if masks.ndim != 2 or masks.shape[1] != width or masks.dtype != torch.bool:
        raise ValueError(f"masks must be bool (G, {width}) for this layer, got {masks.dtype} {tuple(masks.shape)}")
    device = next(model.parameters()).device
    group = max(1, min(len(masks), max_rows // max_batch))
    correct = torch.zeros(len(masks), n_classes, dtype=torch.float64)
    current = {"masks": masks[:0], "rows": slice(0, 0)}
    fill = values.to(device)

    def ablate_per_copy(act: torch.Tensor, name: str) -> torch.Tensor:
        m = current["masks"].to(device)  # (G, D)
        m = m.view(len(m), 1, width, *[1] * len(unit_shape))  # (G, 1, D, ...)
        value = fill[current["rows"]] if per_input else fill  # (B, D, ...) or (D, ...)
        copies = torch.where(m, value.to(act.dtype), act.unsqueeze(0))  # (G, B, D, ...)
        return copies.view(-1, *act.shape[1:])  # (G × B, D, ...): copy g holds rows g·B … g·B + B − 1

    with eval_mode(model), hooks(model, {layer: ablate_per_copy}):
        for g0 in range(0, len(masks), group):
            current["masks"] = masks[g0 : g0 + group]
            g = len(current["masks"])
            rows = max(1, min(max_batch, max_rows // g))
            for start in range(0, len(x), rows):
                current["rows"] = slice(start, start + rows)
                xb, yb = x[start : start + rows].to(device), labels[start : start + rows]
                preds = model(xb).argmax(1).view(g, -1)  # (G, B): the hook made G copies
                correct[g0 : g0 + g] += _per_class_correct(preds, yb, n_classes).cpu()
    base_correct = _per_class_correct(base_logits.argmax(1), labels, n_classes)
    return MaskedAccuracy(
        per_class=correct / support,
        accuracy=correct.sum(1) / len(labels),
        base=base_correct / support,
        base_accuracy=(base_correct.sum() / len(labels)).item(),
    )


@dataclass(frozen=True)
class AblationTable:
    """Per-class accuracy with each unit of a layer ablated on its own.

    base: (C,) per-class accuracy of the intact model.
    ablated: (D, C) per-class accuracy with unit ``u`` replaced.
    accuracy: (D,) overall accuracy with unit ``u`` replaced; base_accuracy: a float.
    """

    base: torch.Tensor
    ablated: torch.Tensor
    accuracy: torch.Tensor
    base_accuracy: float

    @property
    def delta(self) -> torch.Tensor:
        """(D, C) change in per-class accuracy (negative: the unit was needed)."""
        return self.ablated - self.base


def layer_shape(model: nn.Module, x: torch.Tensor, layer: str) -> tuple[int, ...]:
    """The per-input shape (D, ...) of ``layer``'s activations, from one input of ``x``."""
    return tuple(run_with_cache(model, x[:1], names=[layer])[1][layer].shape[1:])


def ablation_table(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    layer: str,
    values: torch.Tensor | None = None,
    max_rows: int = 65_536,
    n_classes: int = N_CLASSES,
) -> AblationTable:
    """Ablate every unit of ``layer`` on its own and measure per-class accuracy.

    One mask per unit, evaluated by :func:`masked_ablation` in a few batched passes.
    ``values``: (D, ...) replacements, zeros by default (zero ablation).
    """
    width = layer_shape(model, x, layer)[0]
    res = masked_ablation(model, x, labels, layer, torch.eye(width, dtype=torch.bool), values, max_rows, n_classes)
    return AblationTable(res.base, res.per_class, res.accuracy, res.base_accuracy)


def edit_table(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, layer: str, edits: Sequence[Edit],
    n_classes: int = N_CLASSES,
) -> AblationTable:
    """Per-class accuracy with each of ``edits`` applied at ``layer`` on its own: row ``i`` is edit ``i``.

    The table :func:`ablation_table` makes for single units, for any edits (units chosen
    per digit, or directions of a dictionary): one edited run each.
    """
    labels = check_labels(labels, len(x), "edit_table's labels", n_classes)
    counts = torch.bincount(labels, minlength=n_classes).to(torch.float64)  # (C,)
    base_preds = run_edited(model, x, {layer: []}).argmax(1)
    preds = torch.stack([run_edited(model, x, {layer: e}).argmax(1) for e in edits])  # (E, N)
    per_class = _per_class_correct(preds, labels, n_classes) / counts  # (E, C)
    return AblationTable(
        _per_class_correct(base_preds, labels, n_classes) / counts,
        per_class,
        (preds == labels).to(torch.float64).mean(1),
        (base_preds == labels).to(torch.float64).mean().item(),
    )


def pruning_curve(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, layer: str, order: torch.Tensor
) -> torch.Tensor:
    """Accuracy after zero-ablating the first n units of ``order``, for n = 0 … len(order); (len + 1,)."""
    width = layer_shape(model, x, layer)[0]
    order = _units(order)
    masks = torch.zeros(len(order) + 1, width, dtype=torch.bool)
    for n in range(1, len(order) + 1):
        masks[n, order[:n]] = True
    return masked_ablation(model, x, labels, layer, masks).accuracy


def random_ablation(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, layer: str, ks: Sequence[int], draws: int, seed: int = 0
) -> torch.Tensor:
    """Accuracy with k random units zero-ablated, ``draws`` draws for each k; (len(ks), draws)."""
    width = layer_shape(model, x, layer)[0]
    check_positive_int(draws, "draws")
    if any(not 0 <= k <= width for k in ks):
        raise ValueError(f"every k must be between 0 and the layer's {width} units, got {list(ks)}")
    gen = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(ks) * draws, width, dtype=torch.bool)
    for i, k in enumerate(ks):
        for d in range(draws):
            masks[i * draws + d, torch.randperm(width, generator=gen)[:k]] = True
    return masked_ablation(model, x, labels, layer, masks).accuracy.view(len(ks), draws)


@torch.no_grad()
def scaling_sweep(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, layer: str, units: Sequence[int] | int,
    factors: Sequence[float],
) -> torch.Tensor:
    """Per-class accuracy with ``units`` scaled by each factor; (len(factors), C)."""
    from mnistlab.analysis import per_class_accuracy

    return torch.stack([
        per_class_accuracy(run_edited(model, x, {layer: scaling(units, f)}).argmax(1), labels) for f in factors
    ])
