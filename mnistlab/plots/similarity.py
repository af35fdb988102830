"""Figures of chapter 10: probes per layer, similarity matrices between layers and networks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from mnistlab import style
from mnistlab.plots._base import Panels, _new, _panels
from mnistlab.stats import Estimate


def probe_accuracies(task: Mapping[str, Estimate], control: Mapping[str, float], ax=None) -> Figure:
    """Test accuracy of a linear probe on each layer (bars with 95% intervals), and the control task's.

    Args:
        task: ``{layer: Estimate}`` the probe's test accuracy on the real labels.
        control: ``{layer: accuracy}`` the same probe trained on a control task (a dot per layer).
    """
    if set(task) != set(control):
        raise ValueError(f"task and control must name the same layers, got {list(task)} and {list(control)}")
    fig, ax = _new(ax, (style.WIDTH * 0.6, style.WIDTH * 0.38))
    x = np.arange(len(task))
    values = np.array([100 * e.value for e in task.values()])
    errors = np.array(
        [[100 * (e.value - e.low) for e in task.values()], [100 * (e.high - e.value) for e in task.values()]]
    )
    ax.bar(x, values, yerr=errors, color=style.LAYER_COLORS[0], alpha=0.8, capsize=3, label="digit labels")
    ax.plot(x, [100 * control[k] for k in task], "o", color=style.SERIES_COLORS[0], label="control task")
    ax.set_xticks(x, list(task))
    ax.set(ylabel="probe accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def similarity_matrices(
    matrices: Mapping[str, torch.Tensor],
    rows: Mapping[str, Sequence[str]],
    cols: Mapping[str, Sequence[str]],
    ax: Panels | None = None,
) -> Figure:
    """One heatmap per matrix of similarities in [0, 1] (e.g. CKA), each cell labelled with its value.

    Args:
        matrices: ``{title: (R, C)}``.
        rows, cols: ``{title: names}`` of each matrix's rows and columns.
    """
    for title, m in matrices.items():
        if tuple(m.shape) != (len(rows[title]), len(cols[title])):
            raise ValueError(
                f"matrix {title!r} is {tuple(m.shape)} but has {len(rows[title])} row and "
                f"{len(cols[title])} column names"
            )
    fig, axes = _panels(ax, 1, len(matrices), (style.WIDTH, style.WIDTH * 0.36))
    for panel, (title, m) in zip(axes.flat, matrices.items()):
        a = np.asarray(m, dtype=float)
        panel.imshow(a, cmap=style.SEQUENTIAL, vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(a):
            panel.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        panel.set_xticks(range(a.shape[1]), list(cols[title]), rotation=30, ha="right", fontsize=7)
        panel.set_yticks(range(a.shape[0]), list(rows[title]), fontsize=7)
        panel.set_title(title, fontsize=9)
    return fig
