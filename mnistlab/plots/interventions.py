"""Figures of chapter 5: ablation, scaling, patching, selectivity against importance, pruning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _digit_ticks, _new, _panels


def ablation_heatmaps(deltas: Mapping[str, torch.Tensor], ncols: int = 2, ax: Panels | None = None) -> Figure:
    """Unit × digit change in per-class accuracy (percentage points) for each ablation.

    Args:
        deltas: ``{panel title: (D, C)}``, e.g. ``AblationTable.delta`` per layer and method.
    """
    nrows = int(np.ceil(len(deltas) / ncols))
    heights = [max(d.shape[0] for d in list(deltas.values())[r * ncols : (r + 1) * ncols]) for r in range(nrows)]
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH * 0.95), gridspec_kw={"height_ratios": heights})
    lim = max(100 * float(np.abs(np.asarray(d)).max()) for d in deltas.values())
    for panel, (title, d) in zip(axes.flat, deltas.items()):
        im = panel.imshow(100 * np.asarray(d), cmap=style.DIVERGING, vmin=-lim, vmax=lim, aspect="auto",
                          interpolation="nearest")
        panel.set(xlabel="digit", ylabel="unit ablated", title=title)
        _digit_ticks(panel, d.shape[1])
    for panel in axes.flat[len(deltas):]:
        panel.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="change in accuracy on the digit (points)")
    return fig


def scaling_sweeps(
    sweeps: Mapping[str, torch.Tensor], factors: Sequence[float], ax: Panels | None = None
) -> Figure:
    """Per-class accuracy against the factor a unit is scaled by, one panel per unit.

    Args:
        sweeps: ``{panel title: (F, C)}`` from :func:`mnistlab.interventions.scaling_sweep`.
    """
    fig, axes = _panels(ax, 1, len(sweeps), (style.WIDTH, style.WIDTH * 0.36), sharey=True)
    for panel, (title, acc) in zip(axes[0], sweeps.items()):
        acc = 100 * np.asarray(acc)
        for c in range(acc.shape[1]):
            panel.plot(factors, acc[:, c], color=style.digit_color(c), lw=1.4, label=str(c))
        panel.axvline(1.0, color="k", lw=0.6, ls=":")
        panel.set(xlabel="scale factor", title=title)
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
                              rho: Mapping[str, float], ax: Axes | None = None) -> Figure:
    """Scatter of each unit's selectivity index against its ablation effect, one colour per layer.

    Args:
        points: ``{layer: (si (D,), largest per-class accuracy drop (D,))}``.
        rho: ``{layer: Spearman rank correlation}`` for the legend.
    """
    fig, ax = _new(ax, (style.WIDTH * 0.6, style.WIDTH * 0.42))
    for (layer, (si, drop)), color in zip(points.items(), style.LAYER_COLORS):
        ax.scatter(np.asarray(si), 100 * np.asarray(drop), color=color, s=18, label=f"{layer} (ρ = {rho[layer]:.2f})")
    ax.set(xlabel="selectivity index", ylabel="largest drop in a digit's\naccuracy when ablated (points)")
    ax.legend()
    return fig


def patching_heatmaps(
    effects: Mapping[str, torch.Tensor], pair_labels: Sequence[str], ax: Panels | None = None
) -> Figure:
    """Class pair × unit normalised patching effects, one panel per layer (diverging around 0).

    Args:
        effects: ``{layer: (P, D)}``; pair_labels: one label per row, e.g. "4 → 9".
    """
    widths = [e.shape[1] for e in effects.values()]
    fig, axes = _panels(ax, 1, len(effects), (style.WIDTH, style.WIDTH * 0.32), gridspec_kw={"width_ratios": widths})
    for panel, (layer, e) in zip(axes[0], effects.items()):
        im = panel.imshow(np.asarray(e), cmap=style.DIVERGING, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        panel.set(xlabel="unit patched", title=layer)
        panel.set_yticks(range(len(pair_labels)), pair_labels)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label="normalised effect")
    return fig


def pair_similarity(
    same: Mapping[str, torch.Tensor], different: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """Histograms of the cosine similarity of two images' activations: same digit vs different digits."""
    fig, axes = _panels(ax, 1, len(same), (style.WIDTH, style.WIDTH * 0.33), sharey=True)
    bins = np.linspace(0, 1, 26)
    for panel, layer in zip(axes[0], same):
        for values, color, label in (
            (same[layer], style.SERIES_COLORS[0], "same digit"),
            (different[layer], style.SERIES_COLORS[1], "different digits"),
        ):
            panel.hist(np.asarray(values), bins=bins, alpha=0.6, color=color, label=label, density=True)
        panel.set(xlabel="cosine similarity of activations", title=layer)
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
    colors = style.SERIES_COLORS
    if random is not None:
        r = 100 * np.asarray(random)
        n = np.arange(r.shape[1])
        band = np.percentile(r, 5, 0), np.percentile(r, 95, 0)
        ax.fill_between(n, *band, color=style.RANDOM_BAND, label="random (5–95%)")
        ax.plot(n, np.median(r, 0), color=style.RANDOM_LINE, lw=1)
    for (name, acc), color in zip(curves.items(), colors):
        ax.plot(np.arange(len(acc)), 100 * np.asarray(acc), color=color, marker=".", ms=3, label=name)
    ax.set(xlabel="units removed", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.legend(fontsize=8)
    return fig


def pruning_panels(
    curves: Mapping[str, Mapping[str, torch.Tensor]], random: Mapping[str, torch.Tensor], ax: Panels | None = None
) -> Figure:
    """One :func:`pruning_curves` panel per layer: ``curves[layer]``, ``random[layer]`` (draws, D + 1)."""
    fig, axes = _panels(ax, 1, len(curves), (style.WIDTH, style.WIDTH * 0.4))
    for panel, (layer, by_order) in zip(axes[0], curves.items()):
        pruning_curves(by_order, random.get(layer), ax=panel, title=layer)
    return fig
