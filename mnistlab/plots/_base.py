"""What every figure module shares: a new figure or the caller's axes, images as 28 × 28, digit ticks.

Every figure function takes ``ax=None``. A one-panel figure draws into the axes given;
a figure of several panels takes as many axes as it has panels (an array of them, as
``plt.subplots`` returns, used in reading order), as pandas' ``DataFrame.plot(subplots=True,
ax=...)`` does. So a chapter can place any figure inside a larger one of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style

# Where a figure of several panels draws: one Axes per panel, in an array or a sequence.
Panels = Axes | Sequence[Axes] | np.ndarray


def _new(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """One panel: a new figure's, or the caller's axes."""
    style.apply()
    if ax is not None:
        if not isinstance(ax, Axes):
            raise ValueError(f"ax must be one matplotlib Axes for this one-panel figure, got {type(ax).__name__}")
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _panels(
    ax: Panels | None, rows: int, cols: int, figsize: tuple[float, float], **subplots
) -> tuple[Figure, np.ndarray]:
    """A (rows, cols) array of panels: a new figure's, or the ``rows * cols`` axes the caller passed.

    ``subplots`` (``sharey``, ``gridspec_kw``, ...) shape a new figure only; the caller's
    axes are used as they are.
    """
    style.apply()
    if ax is None:
        return plt.subplots(rows, cols, figsize=figsize, squeeze=False, **subplots)
    axes = np.asarray(ax, dtype=object).ravel()
    if len(axes) != rows * cols or not all(isinstance(a, Axes) for a in axes):
        got = ", ".join(sorted({type(a).__name__ for a in axes})) or "nothing"
        raise ValueError(f"this figure draws {rows} × {cols} panels: pass ax as {rows * cols} matplotlib Axes "
                         f"(got {len(axes)}: {got}), or ax=None for a new figure")
    if len({id(a.figure) for a in axes}) != 1:
        raise ValueError("the axes passed as ax belong to different figures: pass axes of one figure")
    return axes[0].figure, axes.reshape(rows, cols)


def _as_images(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), 28, 28)


def _digit_ticks(ax: Axes, n: int = 10) -> None:
    """Ticks 0 … n - 1 on the x axis, each label in its digit's colour."""
    ax.set_xticks(range(n))
    for t, label in enumerate(ax.get_xticklabels()):
        label.set_color(style.digit_color(t))
