"""Pure functions from tensors to results: no models, no printing, no I/O.

Everything takes whole-dataset tensors (logits ``(N, C)``, labels ``(N,)``) and
returns tensors or a small dataclass.

>>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
>>> labels = torch.tensor([0, 1, 1])
>>> confusion_matrix(logits.argmax(1), labels, n_classes=2)
tensor([[1, 0],
        [1, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

N_CLASSES = 10


def _check_labels(preds: torch.Tensor, labels: torch.Tensor, n_classes: int) -> None:
    if preds.shape != labels.shape or preds.ndim != 1:
        raise ValueError(
            f"predictions and labels must be 1-D of equal length, got {tuple(preds.shape)} and {tuple(labels.shape)}"
        )
    if len(labels) == 0:
        raise ValueError("need at least one example, got an empty selection")
    for name, t in (("predictions", preds), ("labels", labels)):
        if t.dtype.is_floating_point:
            raise TypeError(f"{name} must be integer class indices, got dtype {t.dtype}")
        if t.min() < 0 or t.max() >= n_classes:
            raise ValueError(f"{name} must lie in 0..{n_classes - 1}, got values from {t.min()} to {t.max()}")


def accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    if preds.shape != labels.shape or len(labels) == 0:
        raise ValueError(
            f"need non-empty predictions and labels of one shape, got {tuple(preds.shape)} and {tuple(labels.shape)}"
        )
    return (preds == labels).double().mean().item()


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Counts ``cm[t, p]`` of examples of true class ``t`` predicted as ``p``; shape (C, C)."""
    _check_labels(preds, labels, n_classes)
    flat = labels.long() * n_classes + preds.long()
    return torch.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


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
