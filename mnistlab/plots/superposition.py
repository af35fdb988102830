"""Figures of chapter 8: the toy model's columns, and its two-feature phase diagram."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Patch

from mnistlab import style
from mnistlab.plots._base import Panels, _new, _panels
from mnistlab.superposition import DEDICATED, NOT_REPRESENTED, OTHER, OUTCOMES, SUPERPOSITION, PhaseDiagram

# The outcomes are series of one figure, so they take series colours; "not represented" the grey.
OUTCOME_COLORS = {
    NOT_REPRESENTED: style.SERIES_COLORS[4],
    DEDICATED: style.SERIES_COLORS[1],
    SUPERPOSITION: style.SERIES_COLORS[2],
    OTHER: style.SERIES_COLORS[3],
}
STORED = 0.5  # a column longer than this is drawn as a stored feature (mnistlab.superposition.represented)


def _columns(W: torch.Tensor, what: str) -> np.ndarray:
    W = np.asarray(torch.as_tensor(W).detach(), dtype=float)
    if W.ndim != 2 or W.shape[0] != 2:
        raise ValueError(
            f"{what} must be a toy model's W of shape (2, n_features), a 2-D hidden space; got shape {W.shape}"
        )
    return W


def _draw_columns(panel: Axes, W: np.ndarray, lim: float) -> None:
    """Column i of W as an arrow from the origin, labelled i; short columns listed, not drawn."""
    panel.add_patch(Circle((0, 0), 1.0, fill=False, ls=":", lw=0.8, color="#bbbbbb"))  # unit norm, for scale
    norms = np.linalg.norm(W, axis=0)
    for i in np.flatnonzero(norms > STORED):
        x, y = W[:, i]
        panel.annotate(
            "", xy=(x, y), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": style.SERIES_COLORS[0], "lw": 1.5}
        )
        panel.text(x * (1 + 0.12 / norms[i]), y * (1 + 0.12 / norms[i]), str(i), ha="center", va="center", fontsize=9)
    panel.plot([0], [0], marker="o", ms=3, color=style.SERIES_COLORS[0])
    dropped = np.flatnonzero(norms <= STORED)
    if len(dropped):
        panel.text(
            0.02,
            0.02,
            "not stored: " + ", ".join(map(str, dropped)),
            transform=panel.transAxes,
            fontsize=8,
            color=style.SERIES_COLORS[4],
        )
    panel.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    panel.spines[:].set_visible(False)  # the hidden space has no preferred axes: no frame to suggest one


def _limit(Ws: list[np.ndarray]) -> float:
    longest = max(float(np.linalg.norm(W, axis=0).max(initial=0.0)) for W in Ws)
    return 1.3 * max(longest, 1.0)


def toy_columns(W: torch.Tensor, title: str | None = None, ax: Axes | None = None) -> Figure:
    """The columns of a toy model's ``W`` (2, n_features) as arrows from the origin.

    Arrow ``i`` is where feature ``i`` is stored in the two hidden dimensions, labelled
    ``i``; features stored with norm at most 0.5 are listed in a corner instead (their
    arrows would be dots). The dotted circle has radius 1; the axes have equal scales.
    """
    W = _columns(W, "W")
    fig, ax = _new(ax, (style.WIDTH * 0.4, style.WIDTH * 0.4))
    _draw_columns(ax, W, _limit([W]))
    if title is not None:
        ax.set_title(title)
    return fig


def toy_columns_grid(weights: Mapping[str, torch.Tensor], ncols: int | None = None, ax: Panels | None = None) -> Figure:
    """Several toy models side by side (as :func:`toy_columns`), all at one scale.

    Args:
        weights: ``{panel title: W (2, n_features)}``, e.g. one per sparsity.
        ncols: panels per row (default: all in one row).
    """
    if not weights:
        raise ValueError("weights is empty: pass {panel title: W (2, n_features)}, one per panel")
    Ws = {title: _columns(W, f"weights[{title!r}]") for title, W in weights.items()}
    ncols = ncols or len(Ws)
    nrows = int(np.ceil(len(Ws) / ncols))
    fig, axes = _panels(ax, nrows, ncols, (style.WIDTH, style.WIDTH / ncols * nrows * 1.1))
    lim = _limit(list(Ws.values()))
    for panel, (title, W) in zip(axes.flat, Ws.items()):
        _draw_columns(panel, W, lim)
        panel.set_title(title, fontsize=10)
    for panel in axes.flat[len(Ws) :]:
        panel.axis("off")
    return fig


def phase_diagram(diagram: PhaseDiagram, ax: Axes | None = None) -> Figure:
    """What a two-feature, one-dimension model does with feature 1, cell by cell.

    Rows are sparsities (dense at the bottom), columns feature 1's importance relative
    to feature 0's; each cell is coloured by its outcome
    (:func:`mnistlab.superposition.phase_outcome`), with a legend.

    Args:
        diagram: from :func:`mnistlab.superposition.phase_diagram` (its ``sparsities``
            (S,), ``importances`` (R,) and ``outcomes`` (S, R) are read).
    """
    outcomes = np.asarray(diagram.outcomes)
    S, R = len(diagram.sparsities), len(diagram.importances)
    if outcomes.shape != (S, R):
        raise ValueError(f"diagram.outcomes must be (sparsities, importances) = ({S}, {R}), got {outcomes.shape}")
    codes = sorted(OUTCOMES)  # -1, 0, 1, 2
    unknown = sorted(set(outcomes.ravel().tolist()) - set(codes))
    if unknown:
        raise ValueError(f"diagram.outcomes holds {unknown}; valid outcomes are {codes}")
    fig, ax = _new(ax, (style.WIDTH * 0.62, style.WIDTH * 0.45))
    cmap = ListedColormap([OUTCOME_COLORS[c] for c in codes])
    norm = BoundaryNorm(np.arange(codes[0] - 0.5, codes[-1] + 1), cmap.N)
    ax.imshow(outcomes, cmap=cmap, norm=norm, origin="lower", aspect="auto", interpolation="nearest")
    ax.set_xticks(range(R), [f"{float(r):g}" for r in diagram.importances])
    ax.set_yticks(range(S), [f"{float(s):g}" for s in diagram.sparsities])
    ax.set(xlabel="importance of feature 1 (feature 0: 1)", ylabel="sparsity S (both features)")
    shown = [NOT_REPRESENTED, DEDICATED, SUPERPOSITION] + ([OTHER] if (outcomes == OTHER).any() else [])
    handles = [Patch(color=OUTCOME_COLORS[c], label=OUTCOMES[c]) for c in shown]
    ax.legend(handles=handles, title="feature 1", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    return fig
