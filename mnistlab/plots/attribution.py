"""Figures of chapter 9: attribution maps, their axioms and sanity checks, feature visualisations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _as_images, _new, _panels


def attribution_grid(
    images: torch.Tensor, maps: Mapping[str, torch.Tensor], titles: Sequence[str], ax: Panels | None = None
) -> Figure:
    """One row per image: the image, then its map under each method (red raises the logit, blue lowers it).

    Args:
        images: (K, 784) the images explained.
        maps: ``{method: (K, 784)}`` attributions; each map is scaled to its own largest
            absolute value, so colours compare pixels within a map, not across maps.
        titles: one per image (e.g. ``"7 → 7"``: label and prediction).
    """
    if len(titles) != len(images) or any(len(m) != len(images) for m in maps.values()):
        raise ValueError(
            f"need one title and one map per image: {len(images)} images, {len(titles)} titles, "
            f"maps of {[len(m) for m in maps.values()]}"
        )
    rows, cols = len(images), 1 + len(maps)
    fig, axes = _panels(ax, rows, cols, (style.WIDTH, style.WIDTH / cols * rows * 1.1))
    imgs = _as_images(images)
    for r in range(rows):
        axes[r, 0].imshow(imgs[r], cmap=style.IMAGE, vmin=0, vmax=1)
        axes[r, 0].set_title(titles[r], fontsize=8)
        for c, (method, m) in enumerate(maps.items(), start=1):
            a = _as_images(m[r : r + 1])[0]
            lim = float(np.abs(a).max()) or 1.0
            axes[r, c].imshow(a, cmap=style.DIVERGING, vmin=-lim, vmax=lim)
            if r == 0:
                axes[r, c].set_title(method, fontsize=8)
        for panel in axes[r]:
            panel.axis("off")
    return fig


def completeness(steps: Sequence[int], errors: torch.Tensor, chosen: int, ax: Axes | None = None) -> Figure:
    """Integrated Gradients' completeness error against the number of steps: median and 90th percentile.

    Args:
        steps: the step counts tried.
        errors: (S, N) relative error of each image at each step count.
        chosen: the step count the chapter uses (a vertical line); a horizontal line marks 1%.
    """
    fig, ax = _new(ax, (style.WIDTH * 0.55, style.WIDTH * 0.38))
    e = 100 * np.asarray(errors, dtype=float)
    ax.plot(steps, np.median(e, 1), marker=".", color=style.SERIES_COLORS[0], label="median")
    ax.plot(steps, np.percentile(e, 90, axis=1), marker=".", color=style.SERIES_COLORS[1], label="90th percentile")
    ax.axhline(1, color=style.RANDOM_LINE, lw=0.8, ls=":")
    ax.axvline(chosen, color=style.RANDOM_LINE, lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="steps", ylabel="completeness error (%)")
    ax.legend(fontsize=8)
    return fig


def sanity_curves(
    similarity: Mapping[str, Mapping[str, torch.Tensor]],
    stages: Sequence[str],
    references: Mapping[str, float] | None = None,
    ax: Panels | None = None,
) -> Figure:
    """How similar each method's maps stay as the network is randomised, one panel per similarity measure.

    Up to three measures sit in one row; four or more in rows of two.

    Args:
        similarity: ``{measure: {method: (stages, N)}}`` similarity of each image's map
            to its map in the trained network, after each randomisation stage.
        stages: the stages' names, in order (the x axis).
        references: ``{measure: value}``, a dashed line on that measure's panel (say, what
            two unrelated maps score), labelled "unrelated maps".
    """
    references = dict(references or {})
    unknown = set(references) - set(similarity)
    if unknown:
        raise ValueError(f"references for measures that are not drawn: {sorted(unknown)}; drawn: {list(similarity)}")
    cols = len(similarity) if len(similarity) <= 3 else 2
    rows = -(-len(similarity) // cols)
    fig, axes = _panels(ax, rows, cols, (style.WIDTH, style.WIDTH * 0.42 * rows))
    x = np.arange(len(stages))
    for panel, (measure, by_method) in zip(axes.flat, similarity.items()):
        for (method, s), color in zip(by_method.items(), (*style.SERIES_COLORS, *style.LAYER_COLORS)):
            s = np.asarray(s, dtype=float)
            panel.plot(x, np.nanmedian(s, 1), marker=".", color=color, label=method)
            panel.fill_between(x, np.nanpercentile(s, 25, 1), np.nanpercentile(s, 75, 1), color=color, alpha=0.12)
        panel.axhline(0, color=style.RANDOM_LINE, lw=0.6)
        if measure in references:
            panel.axhline(references[measure], color=style.RANDOM_LINE, lw=1, ls="--", label="unrelated maps")
        panel.set_xticks(x, list(stages), rotation=30, ha="right", fontsize=8)
        panel.set(ylabel="similarity to trained", title=measure, ylim=(-0.2, 1.05))
    for panel in list(axes.flat)[len(similarity):]:
        panel.axis("off")
    axes.flat[0].legend(fontsize=7)
    for measure in references:  # the reference line's label, where the first panel lacks it
        panel = list(axes.flat)[list(similarity).index(measure)]
        if panel is not axes.flat[0]:
            panel.legend(handles=panel.get_lines()[-1:], fontsize=7)
    return fig


def faithfulness(
    fractions: torch.Tensor, curves: Mapping[str, Mapping[str, torch.Tensor]], ax: Panels | None = None
) -> Figure:
    """Deletion and insertion curves: the target's probability as pixels are removed or inserted.

    Args:
        fractions: (K,) shares of the pixels changed.
        curves: ``{"deletion" | "insertion": {order: (N, K)}}``, e.g. by attribution and at random.
    """
    fig, axes = _panels(ax, 1, len(curves), (style.WIDTH, style.WIDTH * 0.36))
    f = 100 * np.asarray(fractions, dtype=float)
    for panel, (kind, by_order) in zip(axes.flat, curves.items()):
        for (order, c), color in zip(by_order.items(), style.SERIES_COLORS):
            panel.plot(f, np.asarray(c, dtype=float).mean(0), color=color, marker=".", label=order)
        panel.set(
            xlabel=f"pixels {'removed' if kind == 'deletion' else 'inserted'} (%)",
            ylabel="probability of the label",
            title=kind,
            ylim=(0, 1.02),
        )
        panel.legend(fontsize=7)
    return fig


def visualisation_grid(images: Mapping[str, torch.Tensor], ncols: int = 4, ax: Panels | None = None) -> Figure:
    """Images an optimisation produced, each scaled to its own range (they need not lie in [0, 1])."""
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH / ncols * nrows * 1.15))
    for panel, (title, image) in zip(axes.flat, images.items()):
        a = _as_images(image.reshape(1, -1))[0]
        panel.imshow(a, cmap=style.IMAGE, vmin=float(a.min()), vmax=float(a.max()) if a.max() > a.min() else 1.0)
        panel.set_title(title, fontsize=8)
    for panel in axes.flat:
        panel.axis("off")
    return fig
