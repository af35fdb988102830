"""Figures of chapter 8's sparse autoencoders: the sweep over the L1 coefficient."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _panels

# The panels of :func:`sae_sweep`: (title, the measures drawn in it, y-axis label).
SWEEP_PANELS = (
    ("active features per image", ("L0",), "L0"),
    ("explained variance", ("explained variance",), "share"),
    ("loss recovered", ("loss recovered (mean)", "loss recovered (zero)"), "share"),
    ("dead and dense features", ("dead", "dense"), "share of features"),
)


def sae_sweep(
    sweep: Mapping[float, Mapping[str, float]], chosen: float | None = None, ax: Panels | None = None
) -> Figure:
    """Sparse autoencoders' quality against their L1 coefficient, in four panels.

    Args:
        sweep: ``{l1: {measure: value}}`` with the measures ``L0``, ``explained variance``,
            ``loss recovered (mean)``, ``loss recovered (zero)``, ``dead`` and ``dense``.
        chosen: the coefficient to mark with a vertical line (the one chosen on held-out data).
    """
    needed = {m for _, measures, _ in SWEEP_PANELS for m in measures}
    for l1, row in sweep.items():
        if missing := needed - set(row):
            raise KeyError(f"sweep[{l1}] lacks {sorted(missing)}; each row needs {sorted(needed)}")
    fig, axes = _panels(ax, 1, 4, (style.WIDTH, style.WIDTH * 0.32))
    l1s = np.array(sorted(sweep))
    for panel, (title, measures, ylabel) in zip(axes.flat, SWEEP_PANELS):
        for measure, color in zip(measures, style.SERIES_COLORS):
            panel.plot(l1s, [sweep[l1][measure] for l1 in l1s], marker=".", color=color, label=measure)
        if chosen is not None:
            panel.axvline(chosen, color=style.RANDOM_LINE, lw=0.8, ls="--")
        panel.set(xscale="log", xlabel="L1 coefficient", ylabel=ylabel, title=title)
        panel.title.set_fontsize(9)
        if len(measures) > 1:
            panel.legend(fontsize=7, labels=[m.split("(")[-1].rstrip(")") for m in measures])
    return fig
