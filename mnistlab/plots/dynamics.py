"""Figures of chapter 3 (and chapter 7's maps): units over training, weights and feature maps as images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _as_images, _new, _panels


def activation_ridges(
    snapshots: Mapping[str, torch.Tensor], epochs: Sequence[int], bins: int = 40, ax: Panels | None = None
) -> Figure:
    """One panel per layer: the distribution of its positive activations at chosen epochs.

    Each ridge is a histogram (density) of the activations that are > 0, over all
    units and inputs; its label gives the share of activations that are exactly 0
    (the ReLU's flat side), which a histogram would squash into one spike.

    Args:
        snapshots: ``{layer: (E, N, D)}``, e.g. ``run.snapshots``.
        epochs: which epochs to draw, bottom to top.
    """
    fig, axes = _panels(ax, 1, len(snapshots), (style.WIDTH, style.WIDTH * 0.55))
    colors = plt.get_cmap(style.SEQUENTIAL)(np.linspace(0.0, 0.9, len(epochs)))
    for panel, (layer, snaps) in zip(axes[0], snapshots.items()):
        values = [np.asarray(snaps[e].float()).ravel() for e in epochs]
        top = max(np.quantile(v[v > 0], 0.995) for v in values if (v > 0).any())
        edges = np.linspace(0, top, bins + 1)
        for i, v in enumerate(values):
            dens, _ = np.histogram(v[v > 0], bins=edges, density=True)
            dens = dens / max(dens.max(), 1e-12) * 0.9  # each ridge scaled to its own height
            centers = (edges[:-1] + edges[1:]) / 2
            panel.fill_between(centers, i, i + dens, color=colors[i], alpha=0.8, lw=0)
            panel.plot(centers, i + dens, color="k", lw=0.5)
            panel.text(top * 1.02, i + 0.1, f"{(v == 0).mean():.0%} zero", fontsize=8, va="bottom")
        panel.set_yticks(range(len(epochs)), [f"epoch {e}" for e in epochs])
        panel.set(xlabel="activation (> 0)", title=layer, xlim=(0, top * 1.3))
        panel.spines["left"].set_visible(False)
    return fig


def firing_over_training(
    firing: Mapping[str, torch.Tensor], dead: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """Left: each unit's firing rate over epochs (thin) and the layer's mean (thick).
    Right: the number of dead units per layer over epochs.

    Args:
        firing: ``{layer: (E, D)}`` firing rates; dead: ``{layer: (E,)}`` dead-unit counts.
    """
    fig, ((ax_f, ax_d),) = _panels(ax, 1, 2, (style.WIDTH, style.WIDTH * 0.38))
    for (layer, rates), color in zip(firing.items(), style.LAYER_COLORS):
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


def epoch_unit_heatmaps(
    mean: Mapping[str, torch.Tensor], std: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """Epoch × unit heatmaps of each unit's mean activation (top) and its spread (bottom).

    Args:
        mean, std: ``{layer: (E, D)}``.
    """
    layers = list(mean)
    widths = [mean[layer].shape[1] for layer in layers]
    fig, axes = _panels(ax, 2, len(layers), (style.WIDTH, style.WIDTH * 0.75), gridspec_kw={"width_ratios": widths})
    for col, layer in enumerate(layers):
        for row, (stat, label) in enumerate(((mean, "mean"), (std, "standard deviation"))):
            panel = axes[row, col]
            im = panel.imshow(np.asarray(stat[layer]), cmap=style.SEQUENTIAL, aspect="auto", interpolation="nearest")
            panel.set(xlabel="unit", ylabel="epoch", title=f"{layer}: {label}")
            fig.colorbar(im, ax=panel, shrink=0.8, label="activation")
    return fig


def preference_stability(
    changed: Mapping[str, torch.Tensor], profile_r: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """Left: units whose preferred class changed since the epoch before, per epoch.
    Right: the median (and range) over units of the class-profile correlation with the epoch before.

    Args:
        changed: ``{layer: (E - 1, D) bool}``; profile_r: ``{layer: (E - 1, D)}`` (NaN for dead units).
    """
    fig, ((ax_c, ax_r),) = _panels(ax, 1, 2, (style.WIDTH, style.WIDTH * 0.38))
    n = len(changed)
    for i, ((layer, ch), color) in enumerate(zip(changed.items(), style.LAYER_COLORS)):
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


def gradient_norms(norms: Mapping[str, Sequence[float]], ax: Axes | None = None) -> Figure:
    """Mean gradient norm of each weight matrix during each epoch (log scale)."""
    fig, ax = _new(ax, (style.WIDTH * 0.6, style.WIDTH * 0.38))
    for name, values in norms.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="mean gradient norm per step", yscale="log")
    ax.legend()
    return fig


def weight_images(
    weights: torch.Tensor, ncols: int = 8, titles: Sequence[str] | None = None, ax: Panels | None = None
) -> Figure:
    """Each weight pattern as an image, red positive, blue negative.

    Args:
        weights: (D, 784) rows shown as 28 × 28 (first-layer units of the MLP), or
            (D, H, W) / (D, 1, H, W) patterns shown as they are (convolution filters).

    Every image has its own symmetric colour scale (± its largest absolute weight), so
    white is always exactly zero and the pattern of each unit is visible whatever its size.
    """
    w = np.asarray(weights, dtype=np.float32)
    w = w.reshape(len(w), 28, 28) if w.ndim == 2 else w.reshape(len(w), w.shape[-2], w.shape[-1])
    nrows = int(np.ceil(len(w) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH / ncols * nrows * 1.15))
    for i, panel in enumerate(axes.flat):
        panel.axis("off")
        if i < len(w):
            lim = max(float(np.abs(w[i]).max()), 1e-12)
            panel.imshow(w[i], cmap=style.DIVERGING, vmin=-lim, vmax=lim)
            panel.set_title(titles[i] if titles is not None else f"unit {i}", fontsize=8)
    return fig


def feature_maps(images: torch.Tensor, labels: torch.Tensor, maps: Mapping[str, torch.Tensor],
                 max_channels: int = 8, ax: Panels | None = None) -> Figure:
    """For a few images: the image, then its feature maps at each conv layer.

    Args:
        images, labels: (n, 784) digits and their labels.
        maps: ``{layer: (n, C, H, W)}`` activations of those images (after the ReLU).
    """
    n = len(images)
    n_cols = 1 + sum(min(m.shape[1], max_channels) for m in maps.values())
    fig, axes = _panels(ax, n, n_cols, (style.WIDTH, style.WIDTH / n_cols * n * 1.2))
    imgs = _as_images(images)
    for r in range(n):
        axes[r, 0].imshow(imgs[r], cmap=style.IMAGE, vmin=0, vmax=1)
        axes[r, 0].set_title(f"digit {int(labels[r])}", fontsize=7, color=style.digit_color(int(labels[r])))
        col = 1
        for layer, m in maps.items():
            a = np.asarray(m[r], dtype=np.float32)
            top = max(float(a.max()), 1e-12)
            for c in range(min(a.shape[0], max_channels)):
                axes[r, col].imshow(a[c], cmap=style.SEQUENTIAL, vmin=0, vmax=top)
                if r == 0:
                    axes[r, col].set_title(f"{layer.split('_')[0]}:{c}", fontsize=6)
                col += 1
    for panel in axes.flat:
        panel.set_xticks([])
        panel.set_yticks([])
    return fig


def channel_peaks(images: torch.Tensor, labels: torch.Tensor, peaks: torch.Tensor, scale: int,
                  titles: Sequence[str], ax: Panels | None = None) -> Figure:
    """One row per channel: the images it responds to most, with a box where it peaks.

    Args:
        images, labels: (R, k, 784) and (R, k): the top images of each of R channels.
        peaks: (R, k, 2) the (row, column) of each channel's largest activation in its map.
        scale: pixels per map position (28 / map size).
        titles: one label per row.
    """
    rows, k = labels.shape
    fig, axes = _panels(ax, rows, k, (style.WIDTH, style.WIDTH / k * rows * 1.1))
    for r in range(rows):
        imgs = _as_images(images[r])
        for i in range(k):
            panel = axes[r, i]
            panel.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
            y, x = (int(v) for v in peaks[r, i])
            panel.add_patch(plt.Rectangle((x * scale - 0.5, y * scale - 0.5), scale, scale, fill=False,
                                          ec=style.HIGHLIGHT, lw=1.5))
            panel.set_xticks([])
            panel.set_yticks([])
            if i == 0:
                panel.set_ylabel(titles[r], fontsize=8)
            d = int(labels[r, i])
            panel.set_title(str(d), color=style.digit_color(d), fontsize=7)
    return fig
