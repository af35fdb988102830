"""One look for every figure of the book: sizes, fonts and a fixed colour per digit.

:mod:`mnistlab.plots` calls :func:`apply` before drawing, so a figure made in a
notebook looks like the one in the book.
"""

from __future__ import annotations

import matplotlib as mpl

# Digit d is drawn in DIGIT_COLORS[d] in every figure of the book (matplotlib's tab10).
DIGIT_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
# Series that are not digits (training variants, selection rules, removal orders) take
# these, in order; hidden layers take LAYER_COLORS. No colour of one set is in another,
# so a digit's colour always means that digit.
SERIES_COLORS = ("#000000", "#a0522d", "#8b008b", "#e6ab02", "#666666")
LAYER_COLORS = ("#1b9e77", "#7570b3", "#d95f02", "#e7298a")  # fc1_post, fc2_post, … in order
TRAIN_COLOR = "#999999"
TEST_COLOR = "#08306b"  # dark navy: black is the first series (the baseline variant)
HIGHLIGHT = "#ffd700"  # a box around what the text points at (a channel's peak)
RANDOM_BAND, RANDOM_LINE = "#cccccc", "#888888"  # what random choices reach: 5th-95th percentile, median
DIVERGING = "RdBu_r"  # signed quantities, centred at zero
SEQUENTIAL = "viridis"  # magnitudes and counts
IMAGE = "gray_r"  # digits: ink dark on white

WIDTH = 7.0  # inches: the width of the book's text column
DPI = 110

RC = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (WIDTH, WIDTH * 0.6),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "figure.constrained_layout.use": True,
}


def apply() -> None:
    """Set the book's matplotlib defaults."""
    mpl.rcParams.update(RC)


def digit_color(d: int) -> str:
    """The colour of digit ``d`` (0–9)."""
    if not 0 <= int(d) <= 9:
        raise ValueError(f"digits are 0..9, got {d}")
    return DIGIT_COLORS[int(d)]
