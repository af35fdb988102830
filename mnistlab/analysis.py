"""Pure functions from tensors to results: no models, no printing, no I/O.

Everything takes whole-dataset tensors (logits ``(N, C)``, labels ``(N,)``, a
layer's activations ``(N, D)``) and returns tensors or a small dataclass: first the
network's outputs (accuracy, confusions, mistakes), then its units (firing, dead
units, class-conditional means, selectivity, drift over training).

>>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
>>> labels = torch.tensor([0, 1, 1])
>>> confusion_matrix(logits.argmax(1), labels, n_classes=2)
tensor([[1, 0],
        [1, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mnistlab.checks import N_CLASSES, as_units, check_predictions


def _check_labels(preds: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
    check_predictions(preds, labels)
    for name, t in (("predictions", preds), ("labels", labels)):
        if t.min() < 0 or t.max() >= n_classes:
            raise ValueError(f"{name} must lie in 0..{n_classes - 1}, got values from {t.min()} to {t.max()}")


def accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels (both (N,) integer class indices)."""
    check_predictions(preds, labels)
    return (preds == labels).double().mean().item()


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Counts ``cm[t, p]`` of examples of true class ``t`` predicted as ``p``; shape (C, C)."""
    _check_labels(preds, labels, n_classes)
    flat = labels.long() * n_classes + preds.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def mistakes_within(cm: torch.Tensor, group: Sequence[int]) -> tuple[int, int]:
    """How the mistakes on a group of classes fall: ``(within, made)``.

    ``made`` counts the mistakes whose true class is in ``group``; ``within`` those of
    them predicted as another class of the group. If each mistake picked one of the
    C - 1 wrong classes alike, ``within / made`` would be ``(len(group) - 1) / (C - 1)``:
    the null conditioned on the true class, so a group whose digits are simply misread
    more often than others does not look confused *with each other*. A sharper null also
    keeps how often each class is the *wrong answer*: :func:`expected_within`.

    >>> cm = torch.tensor([[5, 2, 1], [3, 5, 0], [0, 0, 9]])
    >>> mistakes_within(cm, [0, 1])  # true 0 read as 1 (2), true 1 read as 0 (3), of 2 + 1 + 3 mistakes
    (5, 6)
    """
    if not isinstance(cm, torch.Tensor) or cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square confusion matrix (C, C), got {getattr(cm, 'shape', type(cm).__name__)}")
    members = sorted({int(c) for c in group})
    if len(members) < 2 or len(members) != len(group) or members[0] < 0 or members[-1] >= len(cm):
        raise ValueError(f"group must be two or more distinct classes in 0..{len(cm) - 1}, got {list(group)}")
    index = torch.tensor(members)
    rows = cm[index]  # (k, C)
    made = int(rows.sum() - rows[torch.arange(len(index)), index].sum())
    within = int(rows[:, index].sum() - rows[torch.arange(len(index)), index].sum())
    return within, made


def expected_within(cm: torch.Tensor, group: Sequence[int]) -> float:
    """The share of the group's mistakes that would fall within it if mistakes ignored the group.

    Each mistake on a true class ``t`` of the group picks its wrong answer ``p`` with
    probability proportional to how often ``p`` is the wrong answer over all mistakes
    (the off-diagonal column totals), renormalised over ``p != t``; the result is the
    expected ``within / made`` of :func:`mistakes_within`. A class that is a common wrong
    answer for every digit (say 9) then raises the null, instead of making any group that
    holds it look confused.

    >>> cm = torch.tensor([[5, 1, 1], [1, 5, 1], [1, 1, 5]])  # mistakes spread evenly
    >>> round(expected_within(cm, [0, 1]), 12)
    0.5
    """
    within, made = mistakes_within(cm, group)
    if made == 0:
        raise ValueError("the group's classes have no mistakes, so no share of them is defined")
    off = cm.double() - torch.diag(cm.diagonal().double())
    q = off.sum(0) / off.sum()  # (C,) how often each class is the wrong answer
    members = sorted({int(c) for c in group})
    expected = 0.0
    for t in members:
        made_t = off[t].sum().item()
        others = [p for p in members if p != t]
        expected += made_t * (q[others].sum() / (1 - q[t])).item()
    return expected / made


def per_class_accuracy(preds: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Accuracy on the examples of each true class; shape (C,), float64.

    Raises:
        ValueError: a class has no examples (its accuracy would be undefined).
    """
    cm = confusion_matrix(preds, labels, n_classes)
    support = cm.sum(1)
    empty = (support == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"classes {empty} have no examples, so their accuracy is undefined")
    return cm.diagonal().double() / support.double()


@dataclass(frozen=True)
class ConfusedPairs:
    """The most frequent mistakes: true class, predicted class and count, most frequent first."""

    true: torch.Tensor  # (k,)
    predicted: torch.Tensor  # (k,)
    count: torch.Tensor  # (k,)


def most_confused(cm: torch.Tensor, k: int = 3) -> ConfusedPairs:
    """The ``k`` largest off-diagonal entries of a confusion matrix (ties: lower index first)."""
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {tuple(cm.shape)}")
    off = cm.clone()
    off.fill_diagonal_(-1)  # never pick a correct prediction
    k = min(k, cm.numel() - len(cm))
    # A stable descending sort keeps ties in row-major order, so results are reproducible.
    order = torch.sort(off.flatten(), descending=True, stable=True).indices[:k]
    n = cm.shape[1]
    return ConfusedPairs(true=order // n, predicted=order % n, count=off.flatten()[order])


@dataclass(frozen=True)
class Mistakes:
    """Misclassified examples, most confident first."""

    index: torch.Tensor  # (k,) positions in the evaluated set
    true: torch.Tensor  # (k,)
    predicted: torch.Tensor  # (k,)
    confidence: torch.Tensor  # (k,) softmax probability of the predicted class


def confident_mistakes(logits: torch.Tensor, labels: torch.Tensor, k: int = 12) -> Mistakes:
    """The ``k`` wrong predictions made with the highest softmax probability."""
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    probs = logits.softmax(1)
    confidence, predicted = probs.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    order = torch.sort(confidence[wrong], descending=True, stable=True).indices[:k]
    idx = wrong[order]
    return Mistakes(index=idx, true=labels[idx], predicted=predicted[idx], confidence=confidence[idx])


# ---------------------------------------------------------------------------
# Units. A layer's activations are (N, D): N inputs, D units. Convolutional
# activations (N, C, H, W) are first reduced to (N, C) by the one rule of
# mnistlab.checks.as_units (a channel's activation is its mean over positions).
# Matrices over units and classes are (D, C): one row per unit.
# ---------------------------------------------------------------------------


def _units(acts: torch.Tensor) -> torch.Tensor:
    """Activations as float32 units (N, D), checked by :func:`mnistlab.checks.as_units` (conv maps → channel means)."""
    return as_units(acts).float()


def _check_class_labels(acts: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
    if labels.ndim != 1 or len(labels) != len(acts):
        raise ValueError(f"expected labels (N,) = ({len(acts)},), got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got values from {labels.min()} to {labels.max()}")
    missing = sorted(set(range(n_classes)) - set(labels.unique().tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no inputs in this selection; every class needs at least one")


def firing_rate(acts: torch.Tensor) -> torch.Tensor:
    """Fraction of inputs on which each unit's activation is positive; shape (D,)."""
    return (_units(acts) > 0).float().mean(0)


def selectivity_at_firing(
    pre: torch.Tensor, labels: torch.Tensor, rate: float, n_classes: int = N_CLASSES
) -> torch.Tensor:
    """Each unit's selectivity index with its threshold moved so that it fires on a share ``rate`` of the inputs; (D,).

    A ReLU unit that fires less has a higher SI even when its response to the classes
    keeps its shape: lower its input by a constant, and the classes it responds to least
    fall below zero first, so its largest class mean grows against the rest. Units
    compared at one firing rate no longer differ by their thresholds; what still sets
    them apart is the shape of their response (how far apart the classes' inputs lie
    against their spread within a class). Each unit's input ``pre`` (what goes into the
    ReLU, (N, D): ``fc1_pre``) is shifted by its own (1 − ``rate``) quantile over the
    inputs, rectified, and its SI taken as in :func:`selectivity_index`. A unit whose
    input is never above zero (a dead unit) has no SI here either: NaN, so that both
    measures are taken over the same units.

    Two units with one tuning and different thresholds: their SIs differ, at one firing
    rate they agree.

    >>> pre = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0], [4.0, 3.0]])  # unit 1 is unit 0 lowered by 1
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> selectivity_index(class_means(pre.relu(), labels, 2))
    tensor([0.4000, 0.6667])
    >>> selectivity_at_firing(pre, labels, 0.5, 2)
    tensor([1., 1.])
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be a share of the inputs in (0, 1], got {rate}")
    pre = _units(pre)
    shift = torch.quantile(pre.double(), 1 - rate, dim=0).float()  # (D,)
    si = selectivity_index(class_means((pre - shift).relu(), labels, n_classes))
    return si.where(~dead_units(pre.relu()), torch.full_like(si, float("nan")))


def dead_units(acts: torch.Tensor) -> torch.Tensor:
    """Units that are never positive on any of the inputs (a dead ReLU); bool (D,)."""
    return ~(_units(acts) > 0).any(0)


def class_means(acts: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Mean activation of each unit over the inputs of each class; shape (D, C).

    Raises:
        ValueError: a class has no inputs (its mean would be undefined).
    """
    acts = _units(acts)
    _check_class_labels(acts, labels, n_classes)
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes).float()  # (N, C)
    return (acts.T @ onehot) / onehot.sum(0)  # (D, C)


def selectivity_index(means: torch.Tensor) -> torch.Tensor:
    """Class selectivity index of Morcos et al. (2018) for each unit; shape (D,).

    ``SI = (mu_max - mu_rest) / (mu_max + mu_rest)`` where ``mu_max`` is the unit's
    largest class mean and ``mu_rest`` the mean of its other class means. SI is 0 for
    a unit that responds equally to every class and 1 for one that responds to a
    single class only. It is defined for non-negative activations (after a ReLU).
    A unit whose class means are all zero (a dead unit) has no selectivity: its SI is
    NaN, never a division by zero; use :func:`dead_units` to count or exclude them.

    Args:
        means: class-conditional means (D, C), from :func:`class_means`.
    """
    if means.ndim != 2 or means.shape[1] < 2:
        raise ValueError(f"expected class means (D, C) with C >= 2, got shape {tuple(means.shape)}")
    if (means < 0).any():
        raise ValueError(
            "the selectivity index is defined for non-negative activations (e.g. after a ReLU); "
            f"got negative class means (min {means.min().item():.3g})"
        )
    mu_max, best = means.max(1)  # (D,)
    mu_rest = (means.sum(1) - mu_max) / (means.shape[1] - 1)
    total = mu_max + mu_rest
    si = (mu_max - mu_rest) / total.where(total > 0, torch.ones_like(total))
    return si.where(total > 0, torch.full_like(si, float("nan")))


def one_vs_rest_auc(acts: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """One-vs-rest score of every (unit, class) pair: the ROC AUC; shape (D, C).

    ``auc[u, c]`` is the probability that unit ``u`` is more active on a random image
    of class ``c`` than on a random image of another class (ties count one half).
    0.5 means the unit does not tell ``c`` from the rest, 1 that it separates them
    perfectly, below 0.5 that it is *less* active on ``c``. A dead unit is 0.5 for
    every class. Computed for all pairs at once from the ranks of the activations
    (the Mann–Whitney statistic), with tied values given their average rank.
    """
    acts = _units(acts)
    _check_class_labels(acts, labels, n_classes)
    x = acts.T.contiguous().double()  # (D, N)
    sorted_x = x.sort(dim=1).values
    # Average 1-based rank of each value among its unit's N values, ties averaged.
    lo = torch.searchsorted(sorted_x, x, right=False)
    hi = torch.searchsorted(sorted_x, x, right=True)
    ranks = (lo + hi + 1).double() / 2  # (D, N)
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes).double()  # (N, C)
    n_pos = onehot.sum(0)  # (C,)
    n_neg = len(labels) - n_pos
    rank_sums = ranks @ onehot  # (D, C)
    return ((rank_sums - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).float()


def driving_classes(means: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """How many classes drive each unit: class means >= ``fraction`` × its largest; (D,).

    1 means a monosemantic unit (one class), larger counts a polysemantic one; a
    dead unit (all class means zero) is driven by no class and counts 0.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    mu_max = means.max(1, keepdim=True).values  # (D, 1)
    count = (means >= fraction * mu_max).sum(1)
    return count.where(mu_max.squeeze(1) > 0, torch.zeros_like(count))


def preferred_class(means: torch.Tensor) -> torch.Tensor:
    """The class with the largest mean for each unit, or -1 for a dead unit; (D,)."""
    best = means.argmax(1)
    return best.where(means.max(1).values > 0, torch.full_like(best, -1))


def top_units(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-scoring units of each class; (C, k) unit indices, best first.

    Args:
        scores: (D, C), e.g. :func:`class_means` or :func:`one_vs_rest_auc`.
    """
    if not 1 <= k <= scores.shape[0]:
        raise ValueError(f"k must be between 1 and the number of units ({scores.shape[0]}), got {k}")
    return torch.sort(scores.T, dim=1, descending=True, stable=True).indices[:, :k]


def top_inputs(acts: torch.Tensor, unit: int, k: int) -> torch.Tensor:
    """Indices of the ``k`` inputs on which ``unit`` is most active, most active first."""
    acts = _units(acts)
    if not 0 <= unit < acts.shape[1]:
        raise IndexError(f"unit {unit} is out of range: this layer has units 0..{acts.shape[1] - 1}")
    if not 1 <= k <= len(acts):
        raise ValueError(f"k must be between 1 and the number of inputs ({len(acts)}), got {k}")
    return torch.sort(acts[:, unit], descending=True, stable=True).indices[:k]


def profile_correlation(means_a: torch.Tensor, means_b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each unit's class profile between two moments; (D,).

    1 means the unit prefers the classes in the same proportions at both moments (its
    overall scale may differ). A unit whose profile is constant at either moment
    (dead, or class-blind) has no defined correlation: NaN.
    """
    if means_a.shape != means_b.shape or means_a.ndim != 2:
        raise ValueError(
            f"expected two (D, C) matrices of one shape, got {tuple(means_a.shape)} and {tuple(means_b.shape)}"
        )
    a = means_a - means_a.mean(1, keepdim=True)
    b = means_b - means_b.mean(1, keepdim=True)
    denom = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(1) / denom.where(denom > 0, torch.ones_like(denom))
    return r.where(denom > 1e-12, torch.full_like(r, float("nan")))


@dataclass(frozen=True)
class Drift:
    """How a layer's units change over training, from snapshots (E, N, D).

    mean, std: (E, D) each unit's mean and standard deviation over the inputs.
    firing: (E, D) each unit's firing rate.
    means: (E, D, C) class-conditional means.
    preference_changed: (E - 1, D) the preferred class differs from the epoch before
        (False where the unit is dead at either epoch).
    profile_r: (E - 1, D) :func:`profile_correlation` with the epoch before.
    """

    mean: torch.Tensor
    std: torch.Tensor
    firing: torch.Tensor
    means: torch.Tensor
    preference_changed: torch.Tensor
    profile_r: torch.Tensor


def drift(snapshots: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> Drift:
    """Per-epoch statistics of one layer's snapshots (E, N, D) and their changes."""
    if snapshots.ndim < 3 or len(snapshots) < 2:
        raise ValueError(f"expected snapshots (E, N, D) with E >= 2 epochs, got shape {tuple(snapshots.shape)}")
    acts = [_units(s) for s in snapshots]
    means = torch.stack([class_means(a, labels, n_classes) for a in acts])  # (E, D, C)
    pref = torch.stack([preferred_class(m) for m in means])  # (E, D)
    alive = pref >= 0
    changed = (pref[1:] != pref[:-1]) & alive[1:] & alive[:-1]
    profile_r = torch.stack([profile_correlation(means[e - 1], means[e]) for e in range(1, len(means))])
    return Drift(
        mean=torch.stack([a.mean(0) for a in acts]),
        std=torch.stack([a.std(0) for a in acts]),
        firing=torch.stack([(a > 0).float().mean(0) for a in acts]),
        means=means,
        preference_changed=changed,
        profile_r=profile_r,
    )


@dataclass(frozen=True)
class UnitProfile:
    """Everything a neuron card shows about one unit of a layer.

    unit: its index; class_means: (C,); selectivity: its SI (NaN if dead);
    auc: (C,) one-vs-rest AUC per class; firing_rate: share of inputs it fires on;
    top_inputs: (k,) indices of the inputs it is most active on; top_values: (k,)
    its activation on them.
    """

    unit: int
    class_means: torch.Tensor
    selectivity: float
    auc: torch.Tensor
    firing_rate: float
    top_inputs: torch.Tensor
    top_values: torch.Tensor


def unit_profile(acts: torch.Tensor, labels: torch.Tensor, unit: int, k: int = 8) -> UnitProfile:
    """The profile of ``unit`` of a layer from its activations (N, D) on labelled inputs."""
    acts = _units(acts)
    if not 0 <= unit < acts.shape[1]:
        raise IndexError(f"unit {unit} is out of range: this layer has units 0..{acts.shape[1] - 1}")
    col = acts[:, unit : unit + 1]  # (N, 1): the statistics below are the layer's, for one unit
    means = class_means(col, labels)  # (1, C)
    top = top_inputs(col, 0, k)
    return UnitProfile(
        unit=unit,
        class_means=means[0],
        selectivity=selectivity_index(means)[0].item(),
        auc=one_vs_rest_auc(col, labels)[0],
        firing_rate=firing_rate(col)[0].item(),
        top_inputs=top,
        top_values=col[top, 0],
    )


def peak_location(maps: torch.Tensor) -> torch.Tensor:
    """Where each map is largest: (n, H, W) feature maps → (n, 2) (row, column), first maximum."""
    if maps.ndim != 3:
        raise ValueError(f"expected feature maps (n, H, W) of one channel, got shape {tuple(maps.shape)}")
    flat = maps.flatten(1).argmax(1)  # (n,)
    return torch.stack([flat // maps.shape[2], flat % maps.shape[2]], 1)
