"""The bridge from a chapter's computations to its prose (myst-nb ``glue``).

Every number the book states and every figure it shows is computed in the chapter
and handed to the text through these two functions, so the prose can only say what
the build measured:

* :func:`value` — a number for ``{glue:text}`name:.1%``` in the prose, or a claim's
  sentence; an estimate's interval and a claim's verdict travel with it in the output's
  metadata, which is what nbval compares them by on another machine
  (:mod:`mnistlab.build.nbcheck`);
* :func:`figure` — a figure for a ``{glue:figure}`` directive with a caption, rendered
  for both of the book's colour modes (:mod:`mnistlab.render`).

Outside a book build (in Colab, say, without myst-nb) both still work: a figure is
shown in the notebook, and a value is simply not registered. Both return nothing, so a
cell that ends with one of them displays nothing more.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mnistlab import render
from mnistlab.claims import Claim
from mnistlab.stats import Estimate


def _myst_glue():
    try:
        from myst_nb import glue
    except ImportError:  # a reader's notebook without the book's extras
        return None
    return glue


# Significant digits a glued float keeps: the prose shows at most three.
SIGNIFICANT_DIGITS = 4
# The key under a glued output's metadata that says what the value is (read by
# mnistlab.build.nbcheck when nbval compares a fresh run with the stored notebook).
META = "mnistlab"


def stored(v):
    """What is glued for ``v``: a float rounded to SIGNIFICANT_DIGITS, anything else as it is."""
    if isinstance(v, float | np.floating) and np.isfinite(v):
        return float(f"{float(v):.{SIGNIFICANT_DIGITS}g}")
    return v


def spec_unit(spec: str, values: Sequence[float]) -> float:
    """The unit of the last digit ``spec`` shows, in the values' own units.

    ``spec`` is a format spec or :meth:`mnistlab.stats.Estimate.format`'s ``"pp1"``
    (percentage points with one decimal); ``g`` keeps significant digits of the largest
    value, and a spec that fixes no digits keeps three.

    >>> spec_unit(".1%", [0.91]), spec_unit("pp1", [0.02]), spec_unit(".3g", [0.0412, 0.05])
    (0.001, 0.001, 0.0001)
    """
    if spec.startswith("pp"):
        return 10.0 ** -(int(spec[2:] or 1) + 2)
    fixed = _spec_unit(spec)
    if fixed is not None:
        return fixed
    m = re.fullmatch(r"[+\- ]?,?(?:\.(\d+))?([ge]?)", spec or "")
    digits = int(m.group(1)) + (m.group(2) == "e") if m and m.group(1) else 3
    biggest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    return 10.0 ** (math.floor(math.log10(biggest)) - digits + 1) if biggest > 0 else 10.0**-digits


def _spec_unit(spec: str) -> float | None:
    m = re.fullmatch(r"[+\- ]?,?\.(\d+)([f%])", spec or "")
    if not m:
        return None
    decimals = int(m.group(1)) + (2 if m.group(2) == "%" else 0)
    return 10.0**-decimals


_glued: dict[str, object] = {}  # name -> value, in this kernel


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)  # NaN is NaN


class _Record:
    """A glued value's text for the prose, and what it is for the comparison on another machine."""

    def __init__(self, text, meta: dict):
        self.text, self.meta = text, meta

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": repr(self.text)}, {META: self.meta}


def _claim_meta(c: Claim, varies: str | None = None) -> dict:
    e = c.estimate
    return {
        "kind": "claim",
        "verdict": c.verdict,
        "fragile": c.fragile,
        "value": e.value,
        "low": e.low,
        "high": e.high,
        "n": e.n,
        "unit": spec_unit(c.spec, [e.value, e.low, e.high]),
        "varies": varies,
    }


def written_from(claims: Sequence[Claim], verdicts_only: bool = False) -> dict:
    """The metadata of an output written from ``claims`` (a table of them, say), for ``display(..., metadata=)``.

    nbval then compares the output claim by claim (:mod:`mnistlab.build.nbcheck`), and its
    text only where no claim is fragile; with ``verdicts_only``, only the claims' verdicts
    (their estimates are compared where each chapter states them).
    """
    return {META: {"kind": "claims", "claims": [_claim_meta(c) for c in claims], "verdicts_only": verdicts_only}}


def what_it_is(
    v, varies: str | None = None, claims: Sequence[Claim] = (), verdicts_only: bool = False
) -> tuple[object, dict]:
    """What is glued for ``v`` (a number, a text, an estimate's value, a claim's sentence) and its metadata.

    An :class:`~mnistlab.stats.Estimate` is glued as its value, with its interval in the
    metadata; a :class:`~mnistlab.claims.Claim` as its sentence, with its verdict, whether
    it is fragile and its estimate. ``varies`` says why a value is a property of this one
    training run that another machine's arithmetic changes as another seed would (which
    feature a dictionary learned first, say): it is then compared as a text only, its
    numbers aside (a claim's verdict is still compared). ``claims``: the claims a value
    ``v`` was written from (the digits a verdict holds for, listed; a count of verdicts):
    they are compared one by one, and the value only where none of them is fragile.
    """
    if claims:
        meta = {"kind": "claims", "claims": [_claim_meta(c, varies) for c in claims], "verdicts_only": verdicts_only}
        return stored(v), meta
    if isinstance(v, Claim):
        return v.sentence, _claim_meta(v, varies)
    elif isinstance(v, Estimate):
        meta, text = {"kind": "estimate", "value": v.value, "low": v.low, "high": v.high}, stored(v.value)
    else:
        meta, text = {}, stored(v)
    if varies:
        meta = {"kind": "varies", "why": varies}
    return text, meta


def value(name: str, v, varies: str | None = None, claims: Sequence[Claim] = (), verdicts_only: bool = False) -> None:
    """Register ``v`` under ``name`` for the prose, without displaying it.

    ``v`` is a number, a text, an :class:`~mnistlab.stats.Estimate` (the prose shows its
    value) or a :class:`~mnistlab.claims.Claim` (the prose shows its sentence); see
    :func:`what_it_is` for ``varies`` and ``claims``, :func:`written_from` for
    ``verdicts_only``. Floats are glued with four significant digits (see
    :func:`stored`); the chapter's own assertions use its full-precision values. One name
    holds one value: gluing another value under a name already used raises (two numbers
    cannot both be what one place in the prose says); running a cell again with the same
    result is fine.
    """
    text, meta = what_it_is(v, varies, claims, verdicts_only)
    if name in _glued and not _same(_glued[name], text):
        raise ValueError(f"glue name {name!r} already holds {_glued[name]!r}; refusing to glue {text!r} over it")
    _glued[name] = text
    glue = _myst_glue()
    if glue is not None:
        glue(name, _Record(text, meta) if meta else text, display=False)


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


def listing(items: Iterable[str]) -> str:
    """Items as a sentence lists them: ``"a"``, ``"a and b"``, ``"a, b and c"``.

    >>> listing(["gradient", "IG", "occlusion"])
    'gradient, IG and occlusion'
    """
    items = [str(item) for item in items]
    if not items:
        raise ValueError("a listing needs at least one item")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


__all__ = ["figure", "listing", "value"]
