"""What every figure module shares: a new figure or the caller's axes, images as 28 × 28, digit ticks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style


def _new(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    style.apply()
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _as_images(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), 28, 28)


def _digit_ticks(ax: Axes, n: int = 10) -> None:
    ax.set_xticks(range(n))
    for t, label in enumerate(ax.get_xticklabels()):
        label.set_color(style.digit_color(t))
