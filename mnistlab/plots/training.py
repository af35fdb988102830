"""Figures of chapters 1 and 2: digits, training curves, accuracy and mistakes, the scalar engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from mnistlab import style
from mnistlab.plots._base import Panels, _as_images, _new, _panels
from mnistlab.scalar import Value, topological_order


def digit_grid(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    ax: Panels | None = None,
) -> Figure:
    """Digits in a grid, each titled in its digit's colour (``titles`` overrides the text)."""
    imgs = _as_images(images)
    labels = [int(v) for v in labels]
    nrows = int(np.ceil(len(imgs) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, 0.85 * style.WIDTH / ncols * nrows * 1.25))
    for i, panel in enumerate(axes.flat):
        panel.axis("off")
        if i < len(imgs):
            panel.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
            text = titles[i] if titles is not None else str(labels[i])
            panel.set_title(text, color=style.digit_color(labels[i]), fontsize=9)
    return fig


def training_curves(history: Mapping[str, Sequence[float]], ax: Panels | None = None) -> Figure:
    """Loss and accuracy per epoch, train and test, from a training history."""
    fig, ((ax_loss, ax_acc),) = _panels(ax, 1, 2, (style.WIDTH, style.WIDTH * 0.38))
    epochs = np.arange(len(history["test_loss"]))
    for split, color in (("train", style.TRAIN_COLOR), ("test", style.TEST_COLOR)):
        ax_loss.plot(epochs, history[f"{split}_loss"], color=color, label=split, marker=".")
        ax_acc.plot(epochs, 100 * np.asarray(history[f"{split}_acc"]), color=color, label=split, marker=".")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    ax_acc.legend(loc="lower right")
    return fig


def per_class_accuracy(
    acc: torch.Tensor, ax: Axes | None = None, low: torch.Tensor | None = None, high: torch.Tensor | None = None
) -> Figure:
    """One bar per digit, in the digit's colour, with the overall mean as a line (and intervals if given)."""
    fig, ax = _new(ax, (style.WIDTH, style.WIDTH * 0.35))
    values = 100 * np.asarray(acc, dtype=float)
    yerr = None
    if low is not None and high is not None:
        yerr = np.stack([values - 100 * np.asarray(low, dtype=float), 100 * np.asarray(high, dtype=float) - values])
    ax.bar(range(len(values)), values, color=style.DIGIT_COLORS[: len(values)], yerr=yerr, capsize=3)
    ax.axhline(values.mean(), color="k", lw=1, ls="--", label=f"mean of classes {values.mean():.1f}%")
    ax.set(xlabel="digit", ylabel="test accuracy (%)", xticks=range(len(values)))
    bottom = values.min() if yerr is None else (values - yerr[0]).min()
    ax.set_ylim(max(0.0, bottom - 10), 100)
    ax.legend(loc="lower right")
    return fig


def confusion_matrix(cm: torch.Tensor, ax: Axes | None = None) -> Figure:
    """Counts of (true, predicted) pairs; each row is shaded by its share of the true class."""
    fig, ax = _new(ax, (style.WIDTH * 0.62, style.WIDTH * 0.55))
    cm = np.asarray(cm)
    share = cm / cm.sum(1, keepdims=True).clip(min=1)
    im = ax.imshow(share, cmap=style.SEQUENTIAL, vmin=0, vmax=1)
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            if cm[t, p]:
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7,
                        color="black" if share[t, p] > 0.5 else "white")
    ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(cm.shape[1]), yticks=range(cm.shape[0]))
    fig.colorbar(im, ax=ax, label="share of the true digit's test images", shrink=0.8)
    return fig


def loss_curve(losses: Sequence[float], ax: Axes | None = None, ylabel: str = "loss") -> Figure:
    """A loss per training step."""
    fig, ax = _new(ax, (style.WIDTH * 0.5, style.WIDTH * 0.35))
    ax.plot(np.arange(len(losses)), losses, color=style.TRAIN_COLOR)
    ax.set(xlabel="step", ylabel=ylabel)
    return fig


def decision_boundary(
    xx: torch.Tensor, yy: torch.Tensor, scores: torch.Tensor, points: torch.Tensor, labels: torch.Tensor,
    ax: Axes | None = None,
) -> Figure:
    """Signed scores on a grid (diverging colours, the boundary at 0) with the labelled points."""
    fig, ax = _new(ax, (style.WIDTH * 0.5, style.WIDTH * 0.42))
    s = np.asarray(scores)
    lim = np.abs(s).max()
    ax.contourf(np.asarray(xx), np.asarray(yy), s, levels=21, cmap=style.DIVERGING, vmin=-lim, vmax=lim, alpha=0.6)
    ax.contour(np.asarray(xx), np.asarray(yy), s, levels=[0.0], colors="k", linewidths=1)
    pts, lab = np.asarray(points), np.asarray(labels)
    for value, marker, color in ((-1, "o", "#2166ac"), (1, "s", "#b2182b")):
        sel = lab == value
        ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, c=color, edgecolors="k", s=22, label=f"y = {value:+d}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def computation_graph(root: Value, ax: Axes | None = None) -> Figure:
    """A scalar computation graph, inputs on the left and ``root`` on the right.

    Each value is a box ``label | data | grad``; each operation a circle between the
    values it reads and the value it makes.
    """
    order = topological_order(root)
    # Column of a value: length of the longest path from a leaf; operations sit between.
    depth: dict[int, int] = {}
    for v in order:
        depth[id(v)] = 0 if not v.children else 1 + max(depth[id(c)] for c in v.children)
    columns: dict[int, list[Value]] = {}
    for v in order:
        columns.setdefault(depth[id(v)], []).append(v)
    n_cols, n_rows = max(columns) + 1, max(len(c) for c in columns.values())
    fig, ax = _new(ax, (style.WIDTH, max(2.2, 0.75 * n_rows + 0.6)))
    pos = {}
    for col, values in columns.items():
        for row, v in enumerate(values):
            pos[id(v)] = (2.0 * col, (len(values) - 1) / 2 - row)  # each column centred on y = 0
    box_w, box_h = 1.15, 0.5
    for v in order:
        x, y = pos[id(v)]
        if v.children:
            ox, oy = x - 0.75, y  # the operation's circle
            ax.add_patch(plt.Circle((ox, oy), 0.22, fc="#fde0c5", ec="k", lw=0.8, zorder=3))
            ax.text(ox, oy, v.op, ha="center", va="center", fontsize=6, zorder=4)
            ax.annotate("", xy=(x - box_w / 2, y), xytext=(ox + 0.22, oy),
                        arrowprops={"arrowstyle": "->", "lw": 0.8}, zorder=2)
            for c in v.children:
                cx, cy = pos[id(c)]
                ax.annotate("", xy=(ox - 0.22, oy), xytext=(cx + box_w / 2, cy),
                            arrowprops={"arrowstyle": "->", "lw": 0.8, "color": "#555555"}, zorder=1)
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h, boxstyle="round,pad=0.02",
                                    fc="#e8f0fa" if v.children else "#ffffff", ec="k", lw=0.8, zorder=3))
        name = f"{v.label}\n" if v.label else ""
        ax.text(x, y, f"{name}data {v.data:.3f}\ngrad {v.grad:.3f}", ha="center", va="center",
                fontsize=6.5, zorder=4, linespacing=1.1)
    ax.set_xlim(-box_w, 2.0 * (n_cols - 1) + box_w)
    ax.set_ylim(-(n_rows - 1) / 2 - 0.6, (n_rows - 1) / 2 + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
