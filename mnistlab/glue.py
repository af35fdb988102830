"""The bridge from a chapter's computations to its prose (myst-nb ``glue``).

Every number the book states and every figure it shows is computed in the chapter
and handed to the text through these two functions, so the prose can only say what
the build measured:

* :func:`value` — a number for ``{glue:text}`name:.1%``` in the prose;
* :func:`figure` — a figure for a ``{glue:figure}`` directive with a caption.

Outside a book build (in Colab, say, without myst-nb) both still work: a figure is
shown in the notebook, and a value is simply returned.
"""

from __future__ import annotations

from typing import TypeVar

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

T = TypeVar("T")


def _myst_glue():
    try:
        from myst_nb import glue
    except ImportError:  # a reader's notebook without the book's extras
        return None
    return glue


def value(name: str, v: T) -> T:
    """Register ``v`` under ``name`` for the prose, without displaying it; returns ``v``."""
    glue = _myst_glue()
    if glue is not None:
        glue(name, v, display=False)
    return v


def figure(name: str, fig: Figure) -> Figure:
    """Show ``fig`` in the notebook and register it under ``name`` for ``{glue:figure}``.

    The cell's own output is hidden in the book (tag it ``remove-output``); the book
    shows the figure where the directive places it, with its caption. The figure is
    closed afterwards so the notebook shows it once.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"glue.figure needs a matplotlib Figure, got {type(fig).__name__}")
    glue = _myst_glue()
    if glue is not None:
        glue(name, fig, display=True)
    else:
        from IPython.display import display

        display(fig)
    plt.close(fig)
    return fig


__all__ = ["figure", "value"]
