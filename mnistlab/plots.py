"""Figures. Each function takes results (tensors, histories), never runs a model, and
returns a matplotlib ``Figure``; pass ``ax`` to draw into an existing axes instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from mnistlab import style
from mnistlab.scalar import Value, topological_order


def _new(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    style.apply()
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def _as_images(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), 28, 28)


def digit_grid(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
) -> Figure:
    """Digits in a grid, each titled in its digit's colour (``titles`` overrides the text)."""
    style.apply()
    imgs = _as_images(images)
    labels = [int(v) for v in labels]
    nrows = int(np.ceil(len(imgs) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.WIDTH, 0.85 * style.WIDTH / ncols * nrows * 1.25))
    for i, ax in enumerate(np.atleast_1d(axes).flat):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
            text = titles[i] if titles is not None else str(labels[i])
            ax.set_title(text, color=style.digit_color(labels[i]), fontsize=9)
    return fig


def training_curves(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, train and test, from a training history."""
    style.apply()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(style.WIDTH, style.WIDTH * 0.38))
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


# ---------------------------------------------------------------------------
# Chapter 3: a network's units over training.
# ---------------------------------------------------------------------------


def activation_ridges(
    snapshots: Mapping[str, torch.Tensor], epochs: Sequence[int], bins: int = 40
) -> Figure:
    """One panel per layer: the distribution of its positive activations at chosen epochs.

    Each ridge is a histogram (density) of the activations that are > 0, over all
    units and inputs; its label gives the share of activations that are exactly 0
    (the ReLU's flat side), which a histogram would squash into one spike.

    Args:
        snapshots: ``{layer: (E, N, D)}``, e.g. ``run.snapshots``.
        epochs: which epochs to draw, bottom to top.
    """
    style.apply()
    fig, axes = plt.subplots(1, len(snapshots), figsize=(style.WIDTH, style.WIDTH * 0.55), squeeze=False)
    colors = plt.get_cmap(style.SEQUENTIAL)(np.linspace(0.0, 0.9, len(epochs)))
    for ax, (layer, snaps) in zip(axes[0], snapshots.items()):
        values = [np.asarray(snaps[e].float()).ravel() for e in epochs]
        top = max(np.quantile(v[v > 0], 0.995) for v in values if (v > 0).any())
        edges = np.linspace(0, top, bins + 1)
        for i, v in enumerate(values):
            dens, _ = np.histogram(v[v > 0], bins=edges, density=True)
            dens = dens / max(dens.max(), 1e-12) * 0.9  # each ridge scaled to its own height
            centers = (edges[:-1] + edges[1:]) / 2
            ax.fill_between(centers, i, i + dens, color=colors[i], alpha=0.8, lw=0)
            ax.plot(centers, i + dens, color="k", lw=0.5)
            ax.text(top * 1.02, i + 0.1, f"{(v == 0).mean():.0%} zero", fontsize=8, va="bottom")
        ax.set_yticks(range(len(epochs)), [f"epoch {e}" for e in epochs])
        ax.set(xlabel="activation (> 0)", title=layer, xlim=(0, top * 1.3))
        ax.spines["left"].set_visible(False)
    return fig


def firing_over_training(firing: Mapping[str, torch.Tensor], dead: Mapping[str, torch.Tensor]) -> Figure:
    """Left: each unit's firing rate over epochs (thin) and the layer's mean (thick).
    Right: the number of dead units per layer over epochs.

    Args:
        firing: ``{layer: (E, D)}`` firing rates; dead: ``{layer: (E,)}`` dead-unit counts.
    """
    style.apply()
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(style.WIDTH, style.WIDTH * 0.38))
    layer_colors = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")
    for (layer, rates), color in zip(firing.items(), layer_colors):
        r = 100 * np.asarray(rates)
        epochs = np.arange(len(r))
        ax_f.plot(epochs, r, color=color, lw=0.5, alpha=0.35)
        ax_f.plot(epochs, r.mean(1), color=color, lw=2.2, label=f"{layer} (mean)")
        ax_d.plot(epochs, np.asarray(dead[layer]), color=color, marker=".", label=layer)
    ax_f.set(xlabel="epoch", ylabel="firing rate (% of test images)", ylim=(0, 100))
    ax_f.legend(loc="lower right")
    ax_d.set(xlabel="epoch", ylabel="dead units (count)")
    ax_d.yaxis.get_major_locator().set_params(integer=True)
    ax_d.set_ylim(bottom=-0.2)
    ax_d.legend(loc="center right")
    return fig


def epoch_unit_heatmaps(mean: Mapping[str, torch.Tensor], std: Mapping[str, torch.Tensor]) -> Figure:
    """Epoch × unit heatmaps of each unit's mean activation (top) and its spread (bottom).

    Args:
        mean, std: ``{layer: (E, D)}``.
    """
    style.apply()
    layers = list(mean)
    widths = [mean[layer].shape[1] for layer in layers]
    fig, axes = plt.subplots(2, len(layers), figsize=(style.WIDTH, style.WIDTH * 0.75), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for col, layer in enumerate(layers):
        for row, (stat, label) in enumerate(((mean, "mean"), (std, "standard deviation"))):
            ax = axes[row, col]
            im = ax.imshow(np.asarray(stat[layer]), cmap=style.SEQUENTIAL, aspect="auto", interpolation="nearest")
            ax.set(xlabel="unit", ylabel="epoch", title=f"{layer}: {label}")
            fig.colorbar(im, ax=ax, shrink=0.8, label="activation")
    return fig


def preference_stability(changed: Mapping[str, torch.Tensor], profile_r: Mapping[str, torch.Tensor]) -> Figure:
    """Left: units whose preferred class changed since the epoch before, per epoch.
    Right: the median (and range) over units of the class-profile correlation with the epoch before.

    Args:
        changed: ``{layer: (E - 1, D) bool}``; profile_r: ``{layer: (E - 1, D)}`` (NaN for dead units).
    """
    style.apply()
    fig, (ax_c, ax_r) = plt.subplots(1, 2, figsize=(style.WIDTH, style.WIDTH * 0.38))
    layer_colors = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")
    n = len(changed)
    for i, ((layer, ch), color) in enumerate(zip(changed.items(), layer_colors)):
        counts = np.asarray(ch).sum(1)
        epochs = np.arange(1, len(counts) + 1)
        ax_c.bar(epochs + (i - (n - 1) / 2) * 0.8 / n, counts, width=0.8 / n, color=color, label=layer)
        r = np.asarray(profile_r[layer], dtype=float)
        ax_r.plot(epochs, np.nanmedian(r, 1), color=color, marker=".", label=f"{layer} (median)")
        ax_r.fill_between(epochs, np.nanmin(r, 1), np.nanmax(r, 1), color=color, alpha=0.15)
    ax_c.set(xlabel="epoch", ylabel="units whose preferred digit changed")
    ax_c.legend()
    ax_r.set(xlabel="epoch", ylabel="correlation of class profile\nwith the epoch before", ylim=(-1.05, 1.05))
    ax_r.axhline(0, color="k", lw=0.5)
    ax_r.legend(loc="lower right")
    return fig


def gradient_norms(norms: Mapping[str, Sequence[float]]) -> Figure:
    """Mean gradient norm of each weight matrix during each epoch (log scale)."""
    fig, ax = _new(None, (style.WIDTH * 0.6, style.WIDTH * 0.38))
    for name, values in norms.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="mean gradient norm per step", yscale="log")
    ax.legend()
    return fig


def weight_images(weights: torch.Tensor, ncols: int = 8, titles: Sequence[str] | None = None) -> Figure:
    """Each weight pattern as an image, red positive, blue negative.

    Args:
        weights: (D, 784) rows shown as 28 × 28 (first-layer units of the MLP), or
            (D, H, W) / (D, 1, H, W) patterns shown as they are (convolution filters).

    Every image has its own symmetric colour scale (± its largest absolute weight), so
    white is always exactly zero and the pattern of each unit is visible whatever its size.
    """
    style.apply()
    w = np.asarray(weights, dtype=np.float32)
    w = w.reshape(len(w), 28, 28) if w.ndim == 2 else w.reshape(len(w), w.shape[-2], w.shape[-1])
    nrows = int(np.ceil(len(w) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.WIDTH, style.WIDTH / ncols * nrows * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(w):
            lim = max(float(np.abs(w[i]).max()), 1e-12)
            ax.imshow(w[i], cmap=style.DIVERGING, vmin=-lim, vmax=lim)
            ax.set_title(titles[i] if titles is not None else f"unit {i}", fontsize=8)
    return fig


def feature_maps(images: torch.Tensor, labels: torch.Tensor, maps: Mapping[str, torch.Tensor],
                 max_channels: int = 8) -> Figure:
    """For a few images: the image, then its feature maps at each conv layer.

    Args:
        images, labels: (n, 784) digits and their labels.
        maps: ``{layer: (n, C, H, W)}`` activations of those images (after the ReLU).
    """
    style.apply()
    n = len(images)
    n_cols = 1 + sum(min(m.shape[1], max_channels) for m in maps.values())
    fig, axes = plt.subplots(n, n_cols, figsize=(style.WIDTH, style.WIDTH / n_cols * n * 1.2), squeeze=False)
    imgs = _as_images(images)
    for r in range(n):
        ax = axes[r, 0]
        ax.imshow(imgs[r], cmap=style.IMAGE, vmin=0, vmax=1)
        ax.set_title(f"digit {int(labels[r])}", fontsize=7, color=style.digit_color(int(labels[r])))
        col = 1
        for layer, m in maps.items():
            a = np.asarray(m[r], dtype=np.float32)
            top = max(float(a.max()), 1e-12)
            for c in range(min(a.shape[0], max_channels)):
                axes[r, col].imshow(a[c], cmap=style.SEQUENTIAL, vmin=0, vmax=top)
                if r == 0:
                    axes[r, col].set_title(f"{layer.split('_')[0]}:{c}", fontsize=6)
                col += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def channel_peaks(images: torch.Tensor, labels: torch.Tensor, peaks: torch.Tensor, scale: int,
                  titles: Sequence[str]) -> Figure:
    """One row per channel: the images it responds to most, with a box where it peaks.

    Args:
        images, labels: (R, k, 784) and (R, k): the top images of each of R channels.
        peaks: (R, k, 2) the (row, column) of each channel's largest activation in its map.
        scale: pixels per map position (28 / map size).
        titles: one label per row.
    """
    style.apply()
    rows, k = labels.shape
    fig, axes = plt.subplots(rows, k, figsize=(style.WIDTH, style.WIDTH / k * rows * 1.1), squeeze=False)
    for r in range(rows):
        imgs = _as_images(images[r])
        for i in range(k):
            ax = axes[r, i]
            ax.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
            y, x = (int(v) for v in peaks[r, i])
            ax.add_patch(plt.Rectangle((x * scale - 0.5, y * scale - 0.5), scale, scale, fill=False,
                                       ec="#d62728", lw=1.5))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(titles[r], fontsize=8)
            d = int(labels[r, i])
            ax.set_title(str(d), color=style.digit_color(d), fontsize=7)
    return fig


# ---------------------------------------------------------------------------
# Chapter 4: which units care about which digit.
# ---------------------------------------------------------------------------


def class_mean_heatmaps(means: Mapping[str, torch.Tensor]) -> Figure:
    """For each layer, unit × digit mean activations, each unit's row divided by its maximum.

    Dividing each row by its largest value puts every unit on the same 0–1 scale, so a
    row with one bright cell is a selective unit and an evenly bright row a class-blind
    one. Dead units (all zero) are left blank and marked.

    Args:
        means: ``{layer: (D, C)}`` from :func:`mnistlab.analysis.class_means`.
    """
    style.apply()
    layers = list(means)
    fig, axes = plt.subplots(1, len(layers), figsize=(style.WIDTH, style.WIDTH * 0.62), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        m = np.asarray(means[layer], dtype=float)
        top = m.max(1, keepdims=True)
        rel = np.where(top > 0, m / np.where(top > 0, top, 1), np.nan)
        im = ax.imshow(rel, cmap=style.SEQUENTIAL, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        for u in np.flatnonzero(top[:, 0] <= 0):
            ax.text(4.5, u, "dead", ha="center", va="center", fontsize=7)
        ax.set(xlabel="digit", ylabel="unit", title=layer, xticks=range(m.shape[1]))
        for t, label in enumerate(ax.get_xticklabels()):
            label.set_color(style.digit_color(t))
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="class mean / unit's largest class mean")
    return fig


def auc_heatmaps(auc: Mapping[str, torch.Tensor]) -> Figure:
    """For each layer, unit × digit one-vs-rest AUC, diverging around 0.5 (no preference)."""
    style.apply()
    fig, axes = plt.subplots(1, len(auc), figsize=(style.WIDTH, style.WIDTH * 0.62), squeeze=False)
    for ax, (layer, a) in zip(axes[0], auc.items()):
        im = ax.imshow(np.asarray(a), cmap=style.DIVERGING, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set(xlabel="digit", ylabel="unit", title=layer, xticks=range(a.shape[1]))
        for t, label in enumerate(ax.get_xticklabels()):
            label.set_color(style.digit_color(t))
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="one-vs-rest AUC (0.5 = no preference)")
    return fig


def selectivity_summary(si: Mapping[str, torch.Tensor], driving: Mapping[str, torch.Tensor]) -> Figure:
    """Left: histogram of the selectivity index per layer (dead units left out).
    Right: how many digits drive each unit (share of the layer's units)."""
    style.apply()
    fig, (ax_s, ax_p) = plt.subplots(1, 2, figsize=(style.WIDTH, style.WIDTH * 0.38))
    layer_colors = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")
    n = len(si)
    for i, ((layer, s), color) in enumerate(zip(si.items(), layer_colors)):
        s = np.asarray(s, dtype=float)
        ax_s.hist(s[~np.isnan(s)], bins=np.linspace(0, 1, 21), color=color, alpha=0.55, label=layer)
        counts = np.bincount(np.asarray(driving[layer]), minlength=11)[1:11]
        share = 100 * counts / len(driving[layer])
        ax_p.bar(np.arange(1, 11) + (i - (n - 1) / 2) * 0.8 / n, share, width=0.8 / n, color=color, label=layer)
    ax_s.set(xlabel="selectivity index", ylabel="units (count)")
    ax_s.legend()
    ax_p.set(xlabel="digits driving the unit (≥ half its top class mean)", ylabel="share of units (%)",
             xticks=range(1, 11))
    ax_p.legend()
    return fig


def selectivity_over_training(si: Mapping[str, torch.Tensor]) -> Figure:
    """Median selectivity index of each layer per epoch, with the range between the
    25th and 75th percentiles shaded (dead units left out).

    Args:
        si: ``{layer: (E, D)}`` selectivity indices per epoch (NaN for dead units).
    """
    fig, ax = _new(None, (style.WIDTH * 0.6, style.WIDTH * 0.38))
    layer_colors = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")
    for (layer, s), color in zip(si.items(), layer_colors):
        s = np.asarray(s, dtype=float)
        epochs = np.arange(len(s))
        ax.plot(epochs, np.nanmedian(s, 1), color=color, marker=".", label=f"{layer} (median)")
        ax.fill_between(epochs, np.nanpercentile(s, 25, 1), np.nanpercentile(s, 75, 1), color=color, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="selectivity index", ylim=(0, 1))
    ax.legend()
    return fig


def embeddings(
    points: Mapping[str, torch.Tensor], labels: torch.Tensor, scores: Mapping[str, float] | None = None,
    ncols: int = 3,
) -> Figure:
    """2-D embeddings side by side, each point in its digit's colour.

    Args:
        points: ``{panel title: (N, 2)}``.
        scores: optional ``{panel title: silhouette}``, printed under each title.
    """
    style.apply()
    nrows = int(np.ceil(len(points) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.WIDTH, style.WIDTH / ncols * nrows * 1.08), squeeze=False)
    colors = np.array(style.DIGIT_COLORS)[np.asarray(labels)]
    for ax, (title, p) in zip(axes.flat, points.items()):
        p = np.asarray(p)
        ax.scatter(p[:, 0], p[:, 1], c=colors, s=2, alpha=0.7, linewidths=0, rasterized=True)
        if scores is not None and title in scores:
            title = f"{title}\nsilhouette {scores[title]:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(points):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=str(d)) for d, c in enumerate(style.DIGIT_COLORS)]
    fig.legend(handles=handles, loc="outside lower center", ncols=10, title="digit", frameon=False)
    return fig


def subspace_silhouettes(results: Mapping[str, Mapping[str, object]]) -> Figure:
    """Silhouette of chosen unit subsets against random subsets of the same size.

    One panel per layer; for each subset size k, the spread of the random draws as a
    box (whiskers: 5th–95th percentile) and each chosen subset as a marker.

    Args:
        results: ``{layer: {label: SubspaceScores}}`` from
            :func:`mnistlab.embed.subspace_silhouettes`, one entry per way of choosing;
            all entries of a layer share the same ks and random draws.
    """
    style.apply()
    fig, axes = plt.subplots(1, len(results), figsize=(style.WIDTH, style.WIDTH * 0.4), squeeze=False)
    markers = ("D", "o", "s", "^")
    rule_colors = ("#000000", "#a0522d", "#555555", "#8b008b")  # not digit colours: these are not digits
    for ax, (layer, by_rule) in zip(axes[0], results.items()):
        first = next(iter(by_rule.values()))
        ks = np.asarray(first.ks)
        ax.boxplot(np.asarray(first.random).T, positions=range(len(ks)), whis=(5, 95), widths=0.5, showfliers=False,
                   patch_artist=True, boxprops={"facecolor": "#dddddd"}, medianprops={"color": "k"})
        for (label, res), marker, color in zip(by_rule.items(), markers, rule_colors):
            ax.plot(range(len(ks)), np.asarray(res.chosen), marker=marker, ls="--", color=color, label=label)
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set(xlabel="units kept (k)", ylabel="silhouette", title=layer)
        ax.legend(fontsize=8)
    return fig


def neuron_card(layer: str, profile, images: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> Figure:
    """A one-figure summary of one unit: what drives it, how selective it is, what it looks at.

    Args:
        layer: the hook point name, for the title.
        profile: a :class:`mnistlab.analysis.UnitProfile`.
        images, labels: the inputs the profile was computed on (to show its top inputs).
        weights: the unit's incoming pixel weights (784,), for a first-layer unit.
    """
    style.apply()
    k = len(profile.top_inputs)
    fig = plt.figure(figsize=(style.WIDTH, style.WIDTH * 0.5))
    grid = fig.add_gridspec(2, max(k, 4), height_ratios=[1.6, 1])
    ax_bar = fig.add_subplot(grid[0, : max(k, 4) // 2 + (1 if weights is None else 0) + 1])
    means = np.asarray(profile.class_means)
    ax_bar.bar(range(len(means)), means, color=style.DIGIT_COLORS[: len(means)])
    ax_bar.set(xlabel="digit", ylabel="mean activation", xticks=range(len(means)))
    si = "undefined (dead)" if np.isnan(profile.selectivity) else f"{profile.selectivity:.2f}"
    ax_bar.set_title(f"{layer} unit {profile.unit}: selectivity {si}, fires on {profile.firing_rate:.0%}",
                     loc="left", fontsize=10)
    if weights is not None:
        ax_w = fig.add_subplot(grid[0, -2:])
        w = np.asarray(weights, dtype=np.float32).reshape(28, 28)
        lim = np.abs(w).max()
        ax_w.imshow(w, cmap=style.DIVERGING, vmin=-lim, vmax=lim)
        ax_w.set_title("incoming weights", fontsize=9)
        ax_w.axis("off")
    imgs = _as_images(images[profile.top_inputs])
    for i in range(k):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
        d = int(labels[profile.top_inputs[i]])
        ax.set_title(f"{d}: {float(profile.top_values[i]):.1f}", color=style.digit_color(d), fontsize=8)
        ax.axis("off")
    return fig


# ---------------------------------------------------------------------------
# Chapter 5: interventions.
# ---------------------------------------------------------------------------


def _digit_ticks(ax: Axes, n: int = 10) -> None:
    ax.set_xticks(range(n))
    for t, label in enumerate(ax.get_xticklabels()):
        label.set_color(style.digit_color(t))


def ablation_heatmaps(deltas: Mapping[str, torch.Tensor], ncols: int = 2) -> Figure:
    """Unit × digit change in per-class accuracy (percentage points) for each ablation.

    Args:
        deltas: ``{panel title: (D, C)}``, e.g. ``AblationTable.delta`` per layer and method.
    """
    style.apply()
    nrows = int(np.ceil(len(deltas) / ncols))
    heights = [max(d.shape[0] for d in list(deltas.values())[r * ncols : (r + 1) * ncols]) for r in range(nrows)]
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.WIDTH, style.WIDTH * 0.95), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    lim = max(100 * float(np.abs(np.asarray(d)).max()) for d in deltas.values())
    for ax, (title, d) in zip(axes.flat, deltas.items()):
        im = ax.imshow(100 * np.asarray(d), cmap=style.DIVERGING, vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set(xlabel="digit", ylabel="unit ablated", title=title)
        _digit_ticks(ax, d.shape[1])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="change in accuracy on the digit (points)")
    return fig


def scaling_sweeps(sweeps: Mapping[str, torch.Tensor], factors: Sequence[float]) -> Figure:
    """Per-class accuracy against the factor a unit is scaled by, one panel per unit.

    Args:
        sweeps: ``{panel title: (F, C)}`` from :func:`mnistlab.interventions.scaling_sweep`.
    """
    style.apply()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(style.WIDTH, style.WIDTH * 0.36), squeeze=False, sharey=True)
    for ax, (title, acc) in zip(axes[0], sweeps.items()):
        acc = 100 * np.asarray(acc)
        for c in range(acc.shape[1]):
            ax.plot(factors, acc[:, c], color=style.digit_color(c), lw=1.4, label=str(c))
        ax.axvline(1.0, color="k", lw=0.6, ls=":")
        ax.set(xlabel="scale factor", title=title)
    axes[0, 0].set_ylabel("accuracy on the digit (%)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right center", title="digit", fontsize=8)
    return fig


def confusion_shift(diff: torch.Tensor, title: str, ax: Axes | None = None) -> Figure:
    """Change in the confusion matrix (ablated − intact): where lost digits go."""
    fig, ax = _new(ax, (style.WIDTH * 0.55, style.WIDTH * 0.48))
    d = np.asarray(diff)
    lim = max(1, np.abs(d).max())
    im = ax.imshow(d, cmap=style.DIVERGING, vmin=-lim, vmax=lim)
    for t in range(d.shape[0]):
        for p in range(d.shape[1]):
            if d[t, p]:
                ax.text(p, t, f"{d[t, p]:+d}", ha="center", va="center", fontsize=6.5)
    ax.set(xlabel="predicted digit", ylabel="true digit", title=title, yticks=range(d.shape[0]))
    _digit_ticks(ax, d.shape[1])
    fig.colorbar(im, ax=ax, shrink=0.8, label="change in count of test images")
    return fig


def selectivity_vs_importance(points: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                              rho: Mapping[str, float]) -> Figure:
    """Scatter of each unit's selectivity index against its ablation effect, one colour per layer.

    Args:
        points: ``{layer: (si (D,), largest per-class accuracy drop (D,))}``.
        rho: ``{layer: Spearman rank correlation}`` for the legend.
    """
    fig, ax = _new(None, (style.WIDTH * 0.6, style.WIDTH * 0.42))
    layer_colors = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")
    for (layer, (si, drop)), color in zip(points.items(), layer_colors):
        ax.scatter(np.asarray(si), 100 * np.asarray(drop), color=color, s=18, label=f"{layer} (ρ = {rho[layer]:.2f})")
    ax.set(xlabel="selectivity index", ylabel="largest drop in a digit's\naccuracy when ablated (points)")
    ax.legend()
    return fig


def patching_heatmaps(effects: Mapping[str, torch.Tensor], pair_labels: Sequence[str]) -> Figure:
    """Class pair × unit normalised patching effects, one panel per layer (diverging around 0).

    Args:
        effects: ``{layer: (P, D)}``; pair_labels: one label per row, e.g. "4 → 9".
    """
    style.apply()
    widths = [e.shape[1] for e in effects.values()]
    fig, axes = plt.subplots(1, len(effects), figsize=(style.WIDTH, style.WIDTH * 0.32), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (layer, e) in zip(axes[0], effects.items()):
        im = ax.imshow(np.asarray(e), cmap=style.DIVERGING, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        ax.set(xlabel="unit patched", title=layer)
        ax.set_yticks(range(len(pair_labels)), pair_labels)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label="normalised effect")
    return fig


def pair_similarity(same: Mapping[str, torch.Tensor], different: Mapping[str, torch.Tensor]) -> Figure:
    """Histograms of the cosine similarity of two images' activations: same digit vs different digits."""
    style.apply()
    fig, axes = plt.subplots(1, len(same), figsize=(style.WIDTH, style.WIDTH * 0.33), squeeze=False, sharey=True)
    bins = np.linspace(0, 1, 26)
    for ax, layer in zip(axes[0], same):
        ax.hist(np.asarray(same[layer]), bins=bins, alpha=0.6, color="#1b9e77", label="same digit", density=True)
        ax.hist(np.asarray(different[layer]), bins=bins, alpha=0.6, color="#555555", label="different digits",
                density=True)
        ax.set(xlabel="cosine similarity of activations", title=layer)
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(loc="upper left")
    return fig


def pruning_curves(curves: Mapping[str, torch.Tensor], random: torch.Tensor | None = None,
                   ax: Axes | None = None, title: str = "") -> Figure:
    """Accuracy against the number of units removed, for several removal orders.

    Args:
        curves: ``{order name: (D + 1,)}`` accuracies after removing 0 … D units.
        random: optional (draws, D + 1) accuracies for random orders, drawn as a band.
    """
    fig, ax = _new(ax, (style.WIDTH * 0.6, style.WIDTH * 0.42))
    colors = ("#000000", "#a0522d", "#8b008b", "#1b9e77")
    if random is not None:
        r = 100 * np.asarray(random)
        n = np.arange(r.shape[1])
        ax.fill_between(n, np.percentile(r, 5, 0), np.percentile(r, 95, 0), color="#cccccc", label="random (5–95%)")
        ax.plot(n, np.median(r, 0), color="#888888", lw=1)
    for (name, acc), color in zip(curves.items(), colors):
        ax.plot(np.arange(len(acc)), 100 * np.asarray(acc), color=color, marker=".", ms=3, label=name)
    ax.set(xlabel="units removed", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.legend(fontsize=8)
    return fig


def pruning_panels(curves: Mapping[str, Mapping[str, torch.Tensor]], random: Mapping[str, torch.Tensor]) -> Figure:
    """One :func:`pruning_curves` panel per layer: ``curves[layer]``, ``random[layer]`` (draws, D + 1)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(style.WIDTH, style.WIDTH * 0.4), squeeze=False)
    for ax, (layer, by_order) in zip(axes[0], curves.items()):
        pruning_curves(by_order, random.get(layer), ax=ax, title=layer)
    return fig


# ---------------------------------------------------------------------------
# Chapter 6: the same network trained several ways.
# ---------------------------------------------------------------------------


def accuracy_by_variant(curves: Mapping[str, torch.Tensor], target: float | None = None) -> Figure:
    """Test accuracy per epoch of each variant: mean over seeds, band from min to max.

    Args:
        curves: ``{variant: (seeds, epochs + 1)}`` test accuracies.
        target: an accuracy to mark with a horizontal line (e.g. the baseline's final one).
    """
    fig, ax = _new(None, (style.WIDTH * 0.75, style.WIDTH * 0.42))
    for (name, acc), color in zip(curves.items(), style.SERIES_COLORS):
        a = 100 * np.asarray(acc, dtype=float)
        epochs = np.arange(a.shape[1])
        ax.plot(epochs[1:], a.mean(0)[1:], color=color, marker=".", label=name)
        ax.fill_between(epochs[1:], a.min(0)[1:], a.max(0)[1:], color=color, alpha=0.15)
    if target is not None:
        ax.axhline(100 * target, color="k", lw=0.7, ls=":", label="baseline's final accuracy")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=range(1, a.shape[1], 2))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def variant_measures(measures: Mapping[str, Mapping[str, Sequence[float]]], ncols: int = 3) -> Figure:
    """Small multiples: one panel per measure, one bar per variant (mean over seeds), seeds as dots.

    Args:
        measures: ``{panel title: {variant: values over seeds}}``.
    """
    style.apply()
    nrows = int(np.ceil(len(measures) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.WIDTH, style.WIDTH * 0.33 * nrows), squeeze=False)
    for ax, (title, by_variant) in zip(axes.flat, measures.items()):
        for i, (values, color) in enumerate(zip(by_variant.values(), style.SERIES_COLORS)):
            v = np.asarray(values, dtype=float)
            ax.bar(i, v.mean(), color=color, alpha=0.35, width=0.7)
            ax.scatter(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, color=color, s=10, zorder=3)
        ax.set_xticks(range(len(by_variant)), list(by_variant), rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    for ax in axes.flat[len(measures):]:
        ax.axis("off")
    return fig


def si_distributions(si: Mapping[str, torch.Tensor], ax: Axes | None = None, title: str = "") -> Figure:
    """Box plots of selectivity indices, one per variant (dead units left out)."""
    fig, ax = _new(ax, (style.WIDTH * 0.5, style.WIDTH * 0.4))
    data = [np.asarray(v, dtype=float)[~np.isnan(np.asarray(v, dtype=float))] for v in si.values()]
    box = ax.boxplot(data, widths=0.6, patch_artist=True, medianprops={"color": "k"})
    for patch, color in zip(box["boxes"], style.SERIES_COLORS):
        patch.set(facecolor=color, alpha=0.35)
    ax.set_xticks(range(1, len(si) + 1), list(si), rotation=35, ha="right", fontsize=8)
    ax.set(ylabel="selectivity index", ylim=(0, 1), title=title)
    return fig


def variant_selectivity(
    si: Mapping[str, Mapping[str, torch.Tensor]], bottlenecks: Mapping[str, Sequence[int]]
) -> Figure:
    """Selectivity indices per variant for each layer (box plots) and bottleneck units per variant.

    Args:
        si: ``{layer: {variant: selectivity indices pooled over seeds}}``.
        bottlenecks: ``{variant: bottleneck units per seed}``.
    """
    style.apply()
    fig, axes = plt.subplots(1, len(si) + 1, figsize=(style.WIDTH, style.WIDTH * 0.42))
    for ax, (layer, by_variant) in zip(axes, si.items()):
        si_distributions(by_variant, ax=ax, title=layer)
    ax = axes[-1]
    for i, (counts, color) in enumerate(zip(bottlenecks.values(), style.SERIES_COLORS)):
        c = np.asarray(counts, dtype=float)
        ax.bar(i, c.mean(), color=color, alpha=0.35, width=0.7)
        ax.scatter(np.full(len(c), i) + np.linspace(-0.15, 0.15, len(c)), c, color=color, s=10, zorder=3)
    ax.set_xticks(range(len(bottlenecks)), list(bottlenecks), rotation=35, ha="right", fontsize=8)
    ax.set(title="bottleneck units", ylabel="units (both layers)")
    return fig


# ---------------------------------------------------------------------------
# Chapter 7: the CNN beside the MLP.
# ---------------------------------------------------------------------------


def robustness(curves: Mapping[str, tuple[Sequence[int], torch.Tensor, int]]) -> Figure:
    """Accuracy with k random units of a layer ablated, against the share k / width of the layer.

    Args:
        curves: ``{label: (ks, accuracies (K, draws), width)}``; each line is the mean
            over draws, the band spans the 5th to 95th percentile.
    """
    fig, ax = _new(None, (style.WIDTH * 0.75, style.WIDTH * 0.45))
    for (label, (ks, acc, width)), color in zip(curves.items(), style.SERIES_COLORS):
        share = 100 * np.asarray(ks, dtype=float) / width
        a = 100 * np.asarray(acc, dtype=float)
        ax.plot(share, a.mean(1), color=color, marker=".", label=label)
        ax.fill_between(share, np.percentile(a, 5, 1), np.percentile(a, 95, 1), color=color, alpha=0.15)
    ax.set(xlabel="share of the layer's units ablated at random (%)", ylabel="test accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=8, loc="lower left")
    return fig
