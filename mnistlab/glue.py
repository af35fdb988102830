"""The bridge from a chapter's computations to its prose (myst-nb ``glue``).

Every number the book states and every figure it shows is computed in the chapter
and handed to the text through these two functions, so the prose can only say what
the build measured:

* :func:`value` — a number for ``{glue:text}`name:.1%``` in the prose;
* :func:`figure` — a figure for a ``{glue:figure}`` directive with a caption, rendered
  for both of the book's colour modes (:mod:`mnistlab.render`).

Outside a book build (in Colab, say, without myst-nb) both still work: a figure is
shown in the notebook, and a value is simply not registered. Both return nothing, so a
cell that ends with one of them displays nothing more.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mnistlab import render


def _myst_glue():
    try:
        from myst_nb import glue
    except ImportError:  # a reader's notebook without the book's extras
        return None
    return glue


# Significant digits a glued float keeps. The prose shows at most three, and the stored
# record must not change with float noise in the last bits (nbval compares it exactly).
SIGNIFICANT_DIGITS = 4


def stored(v):
    """What is glued for ``v``: a float rounded to SIGNIFICANT_DIGITS, anything else as it is."""
    if isinstance(v, float | np.floating) and np.isfinite(v):
        return float(f"{float(v):.{SIGNIFICANT_DIGITS}g}")
    return v


_glued: dict[str, object] = {}  # name -> value, in this kernel


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)  # NaN is NaN


def value(name: str, v) -> None:
    """Register ``v`` under ``name`` for the prose, without displaying it.

    Floats are glued with four significant digits (see :func:`stored`); the chapter's
    own assertions use its full-precision values. One name holds one value: gluing
    another value under a name already used raises (two numbers cannot both be what one
    place in the prose says); running a cell again with the same result is fine.
    """
    v = stored(v)
    if name in _glued and not _same(_glued[name], v):
        raise ValueError(f"glue name {name!r} already holds {_glued[name]!r}; refusing to glue {v!r} over it")
    _glued[name] = v
    glue = _myst_glue()
    if glue is not None:
        glue(name, v, display=False)


def figure(name: str, fig: Figure) -> None:
    """Show ``fig`` in the notebook and register it under ``name`` for ``{glue:figure}``.

    The cell's own output is hidden in the book (tag it ``remove-output``); the book
    shows the figure where the directive places it, with its caption, in the rendering
    for the page's colour mode (:func:`mnistlab.render.render`). The figure is closed
    afterwards so the notebook shows it once.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"glue.figure needs a matplotlib Figure, got {type(fig).__name__}")
    glue = _myst_glue()
    if glue is not None:
        glue(name, render.Rendered(fig), display=True)
    else:
        from IPython.display import display

        display(fig)
    plt.close(fig)


__all__ = ["figure", "value"]
