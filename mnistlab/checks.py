"""Checks of what a public function is given: one place, one message for each mistake.

Every public entry point of the library checks its inputs here before anything
reaches torch, so a mistake gets an error that names what was wrong and what is
valid, instead of a low-level one (or, worse, a quietly wrong result):

>>> check_images(torch.full((2, 784), 255.0))
Traceback (most recent call last):
...
ValueError: images must lie in [0, 1], got values from 255 to 255 (pixels in 0-255? divide by 255)
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

import torch

N_CLASSES = 10
IMAGE_SHAPES = ((784,), (28, 28), (1, 28, 28))


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite: a sum first, elementwise only if that is not.

    NaN and ±inf make a sum non-finite, so a finite sum proves every term finite, at a
    tenth of the cost of ``torch.isfinite(x).all()``; a non-finite sum (which may also
    be an overflow of finite terms) is settled elementwise.
    """
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_finite(x: torch.Tensor, what: str) -> torch.Tensor:
    """``x`` unchanged if all its values are finite; else a ``ValueError`` counting the bad ones."""
    if not all_finite(x):
        raise ValueError(f"{what} hold {int((~torch.isfinite(x)).sum())} NaN or infinite values; they must be finite")
    return x


def check_images(x: torch.Tensor, what: str = "images") -> torch.Tensor:
    """A non-empty float32 batch of finite images in [0, 1], shaped (B, 784), (B, 28, 28) or (B, 1, 28, 28).

    Returns ``x`` unchanged. Every call scans every value (2.6 ms for the 10,000 test
    images): a "checked before" shortcut keyed by the tensor's version counter would
    miss edits made through ``.numpy()`` or ``.data``, which do not bump it.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        hint = "call .float()" if x.is_floating_point() else "convert pixels with x.float() / 255"
        raise TypeError(f"{what} must be float32 in [0, 1], got dtype {x.dtype} ({hint})")
    if x.ndim < 2 or tuple(x.shape[1:]) not in IMAGE_SHAPES:
        raise ValueError(f"{what} must have shape (B, 784), (B, 28, 28) or (B, 1, 28, 28), got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what}: need at least one input, got an empty tensor")
    check_finite(x, what)
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi > 1:
        hint = " (pixels in 0-255? divide by 255)" if hi > 1.5 else ""
        raise ValueError(f"{what} must lie in [0, 1], got values from {lo:g} to {hi:g}{hint}")
    return x


def _is_integer(t: torch.Tensor) -> bool:
    """Whether ``t`` holds integers proper: not bools (masks), floats or complex numbers."""
    return not (t.dtype == torch.bool or t.is_floating_point() or t.is_complex())


def check_labels(labels: torch.Tensor, n: int, what: str = "labels", n_classes: int = N_CLASSES) -> torch.Tensor:
    """``n`` integer class labels in 0 … n_classes - 1, as int64; the error names the offending values."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if not _is_integer(labels):
        raise TypeError(f"{what} must be integer class indices 0..{n_classes - 1}, got dtype {labels.dtype}")
    if tuple(labels.shape) != (n,):
        raise ValueError(f"expected {what} of shape ({n},), one per input, got {tuple(labels.shape)}")
    labels = labels.long()
    bad = labels[(labels < 0) | (labels >= n_classes)].unique()
    if len(bad):
        raise ValueError(f"{what} must lie in 0..{n_classes - 1}; got {bad.tolist()[:10]}")
    return labels


def check_predictions(preds: torch.Tensor, labels: torch.Tensor, what: str = "predictions") -> None:
    """Predicted and true class indices: two non-empty (N,) integer tensors of one length.

    Floats (probabilities, or logits not yet reduced by ``argmax``) and bools (a
    "correct?" mask) are refused: compared with labels they give a number, but not an
    accuracy.
    """
    for name, t in ((what, preds), ("labels", labels)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of class indices, got {type(t).__name__}")
        if not _is_integer(t):
            hint = " (take .argmax(1) of the logits)" if t.is_floating_point() and t.ndim == 2 else ""
            raise TypeError(f"{name} must be integer class indices, got dtype {t.dtype}{hint}")
    if preds.shape != labels.shape or preds.ndim != 1 or len(preds) == 0:
        raise ValueError(
            f"{what} and labels must be non-empty (N,) tensors of one length, "
            f"got {tuple(preds.shape)} and {tuple(labels.shape)}"
        )


def check_indices(idx: Sequence[int] | torch.Tensor | int, what: str = "unit indices") -> torch.Tensor:
    """Distinct integer indices (an int, a sequence of ints or an integer tensor) as a flat int64 tensor.

    Fractional indices (``1.5``) and bools are refused rather than truncated or read as 0/1.
    """
    if isinstance(idx, torch.Tensor):
        t = idx
    else:
        items = [idx] if not isinstance(idx, Iterable) else list(idx)
        values = []
        for v in items:
            try:
                if isinstance(v, bool) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool):
                    raise TypeError
                values.append(operator.index(v))
            except TypeError:
                raise TypeError(f"{what} must be ints, got {v!r} in {items[:10]}") from None
        t = torch.tensor(values, dtype=torch.long)
    if not _is_integer(t):
        raise TypeError(f"{what} must be integers, got dtype {t.dtype}")
    t = t.long().flatten()
    if len(t) != len(set(t.tolist())):
        raise ValueError(f"{what} must be distinct, got {t.tolist()[:20]}")
    return t


def check_class(c: int, what: str = "class", n_classes: int = N_CLASSES) -> int:
    """One class index: an int in 0 … n_classes - 1 (no negative indices from the end)."""
    if not is_int(c):
        raise TypeError(f"{what} must be an int class index 0..{n_classes - 1}, got {c!r}")
    if not 0 <= c < n_classes:
        raise ValueError(f"{what} must be a class index in 0..{n_classes - 1}, got {c}")
    return c


def is_int(v) -> bool:
    """Whether ``v`` is a Python int proper: ``True`` is an int to Python, not a count to a config."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """Whether ``v`` is a real, finite int or float (not a bool, not NaN or infinite)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_positive_int(v: int, what: str) -> int:
    """A size or count: an int >= 1."""
    if not is_int(v) or v < 1:
        raise ValueError(f"{what} must be an int >= 1, got {v!r}")
    return v


def check_finite_number(v: float, what: str) -> float:
    """A real, finite number (a scale factor, say)."""
    if not is_number(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def as_units(acts: torch.Tensor, what: str = "activations", maps: bool = True) -> torch.Tensor:
    """A layer's activations as units (N, D), checked: a non-empty, finite floating tensor, one row per input.

    A unit is a neuron of a linear layer, or a channel of a convolutional layer, whose
    activation on an image is its mean over the H × W positions: with ``maps``,
    (N, C, H, W) maps become (N, C) by that rule, the one the whole library uses. Without
    it, only (N, D) rows are accepted (a probe or a dictionary reads rows as they are).

    >>> as_units(torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 3])
    """
    if not isinstance(acts, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (N, D), got {type(acts).__name__}")
    if not acts.is_floating_point():
        raise TypeError(f"{what} must be floating-point, got dtype {acts.dtype}")
    if maps and acts.ndim == 4:
        acts = acts.mean(dim=(2, 3))
    if acts.ndim != 2:
        shapes = "tensor (N, D) or (N, C, H, W): a linear layer's rows or a convolutional layer's maps" if maps else (
            "2-D tensor (N, D), one row per input")
        hint = "" if acts.ndim < 3 else " (flatten them with .flatten(1)" + (
            ", or reduce conv maps to channel means with maps=True)" if not maps and acts.ndim == 4 else ")")
        raise ValueError(f"{what} must be a {shapes}, got shape {tuple(acts.shape)}{hint}")
    if 0 in acts.shape:
        raise ValueError(f"{what} need at least one input and one unit, got shape {tuple(acts.shape)}")
    return check_finite(acts, what)
