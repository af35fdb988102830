"""Figures of chapters 6 and 7: one network trained several ways, the CNN beside the MLP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _new, _panels


def accuracy_by_variant(
    curves: Mapping[str, torch.Tensor],
    target: float | None = None,
    ax: Axes | None = None,
    target_label: str = "target accuracy",
) -> Figure:
    """Test accuracy per epoch of each variant: mean over seeds, band from min to max.

    Args:
        curves: ``{variant: (seeds, epochs + 1)}`` test accuracies.
        target: an accuracy to mark with a horizontal line (e.g. the lowest final one of a baseline seed),
            named ``target_label`` in the legend.
    """
    fig, ax = _new(ax, (style.WIDTH * 0.75, style.WIDTH * 0.42))
    for (name, acc), color in zip(curves.items(), style.SERIES_COLORS):
        a = 100 * np.asarray(acc, dtype=float)
        epochs = np.arange(a.shape[1])
        ax.plot(epochs[1:], a.mean(0)[1:], color=color, marker=".", label=name)
        ax.fill_between(epochs[1:], a.min(0)[1:], a.max(0)[1:], color=color, alpha=0.15)
    if target is not None:
        ax.axhline(100 * target, color="k", lw=0.7, ls=":", label=target_label)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=range(1, a.shape[1], 2))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def variant_measures(
    measures: Mapping[str, Mapping[str, Sequence[float]]], ncols: int = 3, ax: Panels | None = None
) -> Figure:
    """Small multiples: one panel per measure, one bar per variant (mean over seeds), seeds as dots.

    Args:
        measures: ``{panel title: {variant: values over seeds}}``.
    """
    nrows = int(np.ceil(len(measures) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH * 0.33 * nrows))
    for panel, (title, by_variant) in zip(axes.flat, measures.items()):
        _bars_with_seeds(panel, by_variant)
        panel.set_title(title, fontsize=9)
    for panel in axes.flat[len(measures):]:
        panel.axis("off")
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
    si: Mapping[str, Mapping[str, torch.Tensor]], bottlenecks: Mapping[str, Sequence[int]], ax: Panels | None = None
) -> Figure:
    """Selectivity indices per variant for each layer (box plots) and bottleneck units per variant.

    Args:
        si: ``{layer: {variant: selectivity indices pooled over seeds}}``.
        bottlenecks: ``{variant: bottleneck units per seed}``.
    """
    fig, axes = _panels(ax, 1, len(si) + 1, (style.WIDTH, style.WIDTH * 0.42))
    for panel, (layer, by_variant) in zip(axes[0], si.items()):
        si_distributions(by_variant, ax=panel, title=layer)
    _bars_with_seeds(axes[0, -1], bottlenecks)
    axes[0, -1].set(title="bottleneck units", ylabel="units (both layers)")
    return fig


def _bars_with_seeds(ax: Axes, by_variant: Mapping[str, Sequence[float]]) -> None:
    """One bar per variant (the mean over seeds), each seed as a dot on it, variants named below."""
    for i, (values, color) in enumerate(zip(by_variant.values(), style.SERIES_COLORS)):
        v = np.asarray(values, dtype=float)
        ax.bar(i, v.mean(), color=color, alpha=0.35, width=0.7)
        ax.scatter(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, color=color, s=10, zorder=3)
    ax.set_xticks(range(len(by_variant)), list(by_variant), rotation=35, ha="right", fontsize=8)


def robustness(curves: Mapping[str, tuple[Sequence[int], torch.Tensor, int]], ax: Axes | None = None) -> Figure:
    """Accuracy with k random units of a layer ablated, against the share k / width of the layer.

    Args:
        curves: ``{label: (ks, accuracies (K, draws), width)}``; each line is the mean
            over draws, the band spans the 5th to 95th percentile.
    """
    fig, ax = _new(ax, (style.WIDTH * 0.75, style.WIDTH * 0.45))
    for (label, (ks, acc, width)), color in zip(curves.items(), style.SERIES_COLORS):
        share = 100 * np.asarray(ks, dtype=float) / width
        a = 100 * np.asarray(acc, dtype=float)
        ax.plot(share, a.mean(1), color=color, marker=".", label=label)
        ax.fill_between(share, np.percentile(a, 5, 1), np.percentile(a, 95, 1), color=color, alpha=0.15)
    ax.set(xlabel="share of the layer's units ablated at random (%)", ylabel="test accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=8, loc="lower left")
    return fig
