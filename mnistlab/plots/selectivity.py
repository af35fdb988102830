"""Figures of chapter 4: class means, selectivity, AUC, embeddings, subspaces, neuron cards."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _as_images, _digit_ticks, _new, _panels


def class_mean_heatmaps(means: Mapping[str, torch.Tensor], ax: Panels | None = None) -> Figure:
    """For each layer, unit × digit mean activations, each unit's row divided by its maximum.

    Dividing each row by its largest value puts every unit on the same 0–1 scale, so a
    row with one bright cell is a selective unit and an evenly bright row a class-blind
    one. Dead units (all zero) are left blank and marked.

    Args:
        means: ``{layer: (D, C)}`` from :func:`mnistlab.analysis.class_means`.
    """
    fig, axes = _panels(ax, 1, len(means), (style.WIDTH, style.WIDTH * 0.62))
    for panel, (layer, m) in zip(axes[0], means.items()):
        m = np.asarray(m, dtype=float)
        top = m.max(1, keepdims=True)
        rel = np.where(top > 0, m / np.where(top > 0, top, 1), np.nan)
        im = panel.imshow(rel, cmap=style.SEQUENTIAL, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        for u in np.flatnonzero(top[:, 0] <= 0):
            panel.text(4.5, u, "dead", ha="center", va="center", fontsize=7)
        panel.set(xlabel="digit", ylabel="unit", title=layer)
        _digit_ticks(panel, m.shape[1])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="class mean / unit's largest class mean")
    return fig


def auc_heatmaps(auc: Mapping[str, torch.Tensor], ax: Panels | None = None) -> Figure:
    """For each layer, unit × digit one-vs-rest AUC, diverging around 0.5 (no preference)."""
    fig, axes = _panels(ax, 1, len(auc), (style.WIDTH, style.WIDTH * 0.62))
    for panel, (layer, a) in zip(axes[0], auc.items()):
        im = panel.imshow(np.asarray(a), cmap=style.DIVERGING, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        panel.set(xlabel="digit", ylabel="unit", title=layer)
        _digit_ticks(panel, a.shape[1])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="one-vs-rest AUC (0.5 = no preference)")
    return fig


def selectivity_summary(
    si: Mapping[str, torch.Tensor], driving: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """Left: histogram of the selectivity index per layer (dead units left out).
    Right: how many digits drive each unit (share of the layer's units)."""
    fig, ((ax_s, ax_p),) = _panels(ax, 1, 2, (style.WIDTH, style.WIDTH * 0.38))
    n = len(si)
    for i, ((layer, s), color) in enumerate(zip(si.items(), style.LAYER_COLORS)):
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


def selectivity_over_training(si: Mapping[str, torch.Tensor], ax: Axes | None = None) -> Figure:
    """Median selectivity index of each layer per epoch, with the range between the
    25th and 75th percentiles shaded (dead units left out).

    Args:
        si: ``{layer: (E, D)}`` selectivity indices per epoch (NaN for dead units).
    """
    fig, ax = _new(ax, (style.WIDTH * 0.6, style.WIDTH * 0.38))
    for (layer, s), color in zip(si.items(), style.LAYER_COLORS):
        s = np.asarray(s, dtype=float)
        epochs = np.arange(len(s))
        ax.plot(epochs, np.nanmedian(s, 1), color=color, marker=".", label=f"{layer} (median)")
        ax.fill_between(epochs, np.nanpercentile(s, 25, 1), np.nanpercentile(s, 75, 1), color=color, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="selectivity index", ylim=(0, 1))
    ax.legend()
    return fig


def embeddings(
    points: Mapping[str, torch.Tensor], labels: torch.Tensor, scores: Mapping[str, float] | None = None,
    ncols: int = 3, ax: Panels | None = None,
) -> Figure:
    """2-D embeddings side by side, each point in its digit's colour.

    Args:
        points: ``{panel title: (N, 2)}``.
        scores: optional ``{panel title: silhouette}``, printed under each title.
    """
    nrows = int(np.ceil(len(points) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH / ncols * nrows * 1.08))
    colors = np.array(style.DIGIT_COLORS)[np.asarray(labels)]
    for panel, (title, p) in zip(axes.flat, points.items()):
        p = np.asarray(p)
        panel.scatter(p[:, 0], p[:, 1], c=colors, s=2, alpha=0.7, linewidths=0, rasterized=True)
        if scores is not None and title in scores:
            title = f"{title}\nsilhouette {scores[title]:.2f}"
        panel.set_title(title, fontsize=9)
        panel.set_xticks([])
        panel.set_yticks([])
    for panel in axes.flat[len(points):]:
        panel.axis("off")
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, label=str(d)) for d, c in enumerate(style.DIGIT_COLORS)]
    fig.legend(handles=handles, loc="outside lower center", ncols=10, title="digit", frameon=False)
    return fig


def subspace_silhouettes(results: Mapping[str, Mapping[str, object]], ax: Panels | None = None) -> Figure:
    """Silhouette of chosen unit subsets against random subsets of the same size.

    One panel per layer; for each subset size k, the spread of the random draws as a
    box (whiskers: 5th–95th percentile) and each chosen subset as a marker.

    Args:
        results: ``{layer: {label: SubspaceScores}}`` from
            :func:`mnistlab.embed.subspace_silhouettes`, one entry per way of choosing;
            all entries of a layer share the same ks and random draws.
    """
    fig, axes = _panels(ax, 1, len(results), (style.WIDTH, style.WIDTH * 0.4))
    markers = ("D", "o", "s", "^")
    for panel, (layer, by_rule) in zip(axes[0], results.items()):
        first = next(iter(by_rule.values()))
        ks = np.asarray(first.ks)
        panel.boxplot(np.asarray(first.random).T, positions=range(len(ks)), whis=(5, 95), widths=0.5, showfliers=False,
                   patch_artist=True, boxprops={"facecolor": "#dddddd"}, medianprops={"color": "k"})
        for (label, res), marker, color in zip(by_rule.items(), markers, style.SERIES_COLORS):
            panel.plot(range(len(ks)), np.asarray(res.chosen), marker=marker, ls="--", color=color, label=label)
        panel.set_xticks(range(len(ks)), [str(k) for k in ks])
        panel.set(xlabel="units kept (k)", ylabel="silhouette", title=layer)
        panel.legend(fontsize=8)
    return fig


def neuron_card(layer: str, profile, images: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None, ax: Axes | None = None, noun: str = "unit") -> Figure:
    """A one-figure summary of one unit: what drives it, how selective it is, what it looks at.

    Args:
        layer: the hook point name, for the title.
        profile: a :class:`mnistlab.analysis.UnitProfile`.
        images, labels: the inputs the profile was computed on (to show its top inputs).
        weights: the unit's incoming pixel weights (784,), for a first-layer unit, or any
            pixel image of what it reads (a dictionary feature's direction in pixel space).
        ax: a subplot of a larger figure to lay the card out in (it takes that subplot's
            place), or None for a figure of its own.
        noun: what the card shows, for its title (``"unit"``, ``"feature"``).
    """
    style.apply()
    k = len(profile.top_inputs)
    if ax is None:
        fig = plt.figure(figsize=(style.WIDTH, style.WIDTH * 0.5))
        grid = fig.add_gridspec(2, max(k, 4), height_ratios=[1.6, 1])
    else:
        spec = ax.get_subplotspec() if isinstance(ax, Axes) else None
        if spec is None:
            raise ValueError(f"ax must be a subplot (from plt.subplots or add_subplot) for the card to take its "
                             f"place, got {type(ax).__name__}")
        fig = ax.figure
        ax.remove()
        grid = spec.subgridspec(2, max(k, 4), height_ratios=[1.6, 1])
    ax_bar = fig.add_subplot(grid[0, : max(k, 4) // 2 + (1 if weights is None else 0) + 1])
    means = np.asarray(profile.class_means)
    ax_bar.bar(range(len(means)), means, color=style.DIGIT_COLORS[: len(means)])
    ax_bar.set(xlabel="digit", ylabel="mean activation", xticks=range(len(means)))
    si = "undefined (dead)" if np.isnan(profile.selectivity) else f"{profile.selectivity:.2f}"
    ax_bar.set_title(f"{layer} {noun} {profile.unit}: selectivity {si}, fires on {profile.firing_rate:.0%}",
                     loc="left", fontsize=10)
    if weights is not None:
        ax_w = fig.add_subplot(grid[0, -2:])
        w = np.asarray(weights, dtype=np.float32).reshape(28, 28)
        lim = np.abs(w).max()
        ax_w.imshow(w, cmap=style.DIVERGING, vmin=-lim, vmax=lim)
        ax_w.set_title("incoming weights" if noun == "unit" else "direction in pixel space", fontsize=9)
        ax_w.axis("off")
    imgs = _as_images(images[profile.top_inputs])
    for i in range(k):
        ax = fig.add_subplot(grid[1, i])
        ax.imshow(imgs[i], cmap=style.IMAGE, vmin=0, vmax=1)
        d = int(labels[profile.top_inputs[i]])
        ax.set_title(f"{d}: {float(profile.top_values[i]):.1f}", color=style.digit_color(d), fontsize=8)
        ax.axis("off")
    return fig
