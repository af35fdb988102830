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
import weakref

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


# Tensors that passed check_images, unchanged since (PyTorch bumps a tensor's _version on
# every in-place change): training scores and records the same test split after every
# epoch of every network, and need not scan its 8 million pixels again each time.
_PASSED: dict[int, tuple[weakref.ref, int]] = {}


def _passed_before(x: torch.Tensor) -> bool:
    entry = _PASSED.get(id(x))
    return entry is not None and entry[0]() is x and entry[1] == x._version


def _remember(x: torch.Tensor) -> None:
    key = id(x)
    _PASSED[key] = (weakref.ref(x, lambda _: _PASSED.pop(key, None)), x._version)


def check_images(x: torch.Tensor, what: str = "images") -> torch.Tensor:
    """A non-empty float32 batch of finite images in [0, 1], shaped (B, 784), (B, 28, 28) or (B, 1, 28, 28).

    Returns ``x`` unchanged. A tensor that passed before and has not changed since is
    not scanned again.
    """
    if isinstance(x, torch.Tensor) and _passed_before(x):
        return x
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
    _remember(x)
    return x


def check_labels(labels: torch.Tensor, n: int, what: str = "labels", n_classes: int = N_CLASSES) -> torch.Tensor:
    """``n`` integer class labels in 0 … n_classes - 1, as int64; the error names the offending values."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{what} must be integer class indices 0..{n_classes - 1}, got dtype {labels.dtype}")
    if tuple(labels.shape) != (n,):
        raise ValueError(f"expected {what} of shape ({n},), one per input, got {tuple(labels.shape)}")
    labels = labels.long()
    bad = labels[(labels < 0) | (labels >= n_classes)].unique()
    if len(bad):
        raise ValueError(f"{what} must lie in 0..{n_classes - 1}; got {bad.tolist()[:10]}")
    return labels


def check_class(c: int, what: str = "class", n_classes: int = N_CLASSES) -> int:
    """One class index: an int in 0 … n_classes - 1 (no negative indices from the end)."""
    if isinstance(c, bool) or not isinstance(c, int):
        raise TypeError(f"{what} must be an int class index 0..{n_classes - 1}, got {c!r}")
    if not 0 <= c < n_classes:
        raise ValueError(f"{what} must be a class index in 0..{n_classes - 1}, got {c}")
    return c


def check_positive_int(v: int, what: str) -> int:
    """A size or count: an int >= 1."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{what} must be an int >= 1, got {v!r}")
    return v


def check_finite_number(v: float, what: str) -> float:
    """A real, finite number (a scale factor, say)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    return float(v)


def check_activations(acts: torch.Tensor, what: str = "activations") -> torch.Tensor:
    """A layer's activations as rows: a non-empty, finite (N, D) floating tensor."""
    if not isinstance(acts, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor (N, D), got {type(acts).__name__}")
    if acts.ndim != 2 or 0 in acts.shape:
        raise ValueError(
            f"{what} must be a non-empty 2-D tensor (N, D), one row per input, got {tuple(acts.shape)}"
            + (" (flatten conv maps with .flatten(1))" if acts.ndim > 2 else "")
        )
    if not acts.is_floating_point():
        raise TypeError(f"{what} must be floating point, got dtype {acts.dtype}")
    return check_finite(acts, what)
