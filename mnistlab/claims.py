"""Claims: every verdict the book states, chosen by a rule that reads an interval.

A sentence such as "training leaves fewer units silent" is a claim about an effect: it
holds when the effect's interval lies wholly on the claimed side of zero, is
contradicted when the interval lies wholly on the other side, and is otherwise
undecided: no effect is detectable with the data at hand, which is not the same as no
effect. A :class:`Claim` records the statement, the rule, the estimate with its
interval and sample size, and the verdict; the chapter glues ``claim.sentence`` into its
prose, so the text says what this build measured, on whatever data it used.

A verdict must not depend on the last bits of the arithmetic. Another machine adds
float32 numbers in another order, and after 20 epochs of SGD its network differs from
this one as much as a one-ulp nudge to the initial weights makes it differ (measured:
about 4% of the weights' norm, a few test answers in a thousand), so every estimate moves
a little from machine to machine. A claim whose interval ends within its :class:`Margin`
of the reference is **fragile**: its sentence says it is close to the line, and a rebuild
elsewhere may read it the other way (``mnistlab.build.nbcheck`` allows exactly that, and
nothing else).

Each chapter collects its claims in a :class:`Claims` book that writes them to the
results folder of the build (``<cache>/claims/``); the appendix page "What this book
claims and how sure it is" reads every chapter's file back and lists them all.

>>> from mnistlab.stats import proportion
>>> c = greater("demo", "the network beats chance (10%)", proportion(906, 1000), than=0.10, spec=".1%")
>>> c.verdict, c.sentence
('holds', 'holds (90.6% [88.6%, 92.3%]; 95% interval, n = 1,000 images)')
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mnistlab.stats import Estimate

VERDICTS = ("holds", "contradicted", "undecided")
CLOSE_CALL = "close to the line"


@dataclass(frozen=True)
class Margin:
    """How far an interval's end may move on another machine.

    The margin is ``width`` × the interval's width + ``effect`` × |estimate − reference|.

    Another machine's network differs by a few percent, so an estimate moves by a share of
    its own sampling noise (the width term) and by a share of the effect itself (the effect
    term: a 17-point effect known to ±0.7 moves by more than ±0.7). A verdict whose
    interval ends within the margin of its reference is fragile.
    """

    width: float
    effect: float

    def of(self, estimate: Estimate, reference: float) -> float:
        return self.width * (estimate.high - estimate.low) + self.effect * abs(estimate.value - reference)


# Measured over the book's 148 claims, between this machine's arithmetic and another
# (mnistlab.build.arithmetic.OTHER_MACHINE): an end moved by at most 0.27 of its interval's
# width where the effect was near zero (chapter 6's accuracy of all three changes), and by
# 3% of the effect where the effect was large (chapter 3's share of silent units, 0.6 points
# of 17.9, 0.45 of its narrow interval). MARGIN covers both with room to spare.
MARGIN = Margin(width=0.35, effect=0.05)
# For a claim about what one training run chose (which features a dictionary learned,
# which half of a CNN's channels it can spare), another machine's run chooses as another
# seed would: measured, such claims' ends moved by up to 1.2 of their width (chapter 7's
# halved CNN under random ablation) and 0.9 (its cost), so their margin is wider.
RUN_MARGIN = Margin(width=1.5, effect=0.5)


@dataclass(frozen=True)
class Claim:
    """One verdict of the book: what is claimed, the evidence, and what the rule made of it.

    key: a stable name (``"ch03.zeros_fall"``); statement: the claim in words;
    rule: how the estimate decides it (e.g. ``"> 0"``); reference: the number the rule
    compares the estimate with; estimate: the number behind it; verdict: ``"holds"``,
    ``"contradicted"`` or ``"undecided"``; sentence: the verdict as prose, with the
    estimate, its interval and n.
    """

    key: str
    statement: str
    rule: str
    reference: float
    estimate: Estimate
    verdict: str
    sentence: str
    spec: str = ".3g"  # how the sentence formats the estimate (Estimate.format)
    fragile: bool = False  # an end of the interval lies within the claim's Margin of the reference

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    @property
    def side(self) -> str | None:
        """``"above"`` or ``"below"`` when the whole interval lies on that side of the reference, else None."""
        return side(self.estimate, self.reference)


def evidence(estimate: Estimate, spec: str = ".3g") -> str:
    """The estimate, its interval and n as the prose shows them.

    For example ``0.91 [0.89, 0.92]; 95% interval, n = 1,000 images``.
    """
    return f"{estimate.format(spec)}; {estimate.level:.0%} interval, n = {estimate.n:,} {estimate.of}"


def fragile(estimate: Estimate, reference: float, margin: Margin = MARGIN) -> bool:
    """Whether an end of the interval lies within ``margin`` of ``reference`` (see :class:`Margin`).

    Such a verdict could be read the other way by a rebuild whose arithmetic moved the
    interval a little (see the module docstring).

    >>> near, far = Estimate(0.09, 0.01, 0.17, 32, "units", "t"), Estimate(0.3, 0.2, 0.4, 32, "units", "t")
    >>> fragile(near, 0.0), fragile(far, 0.0), fragile(far, 0.0, RUN_MARGIN)
    (True, False, True)
    """
    return bool(min(abs(estimate.low - reference), abs(estimate.high - reference)) < margin.of(estimate, reference))


def sentence(word: str, estimate: Estimate, spec: str, close: bool) -> str:
    """The verdict's words, then its evidence in brackets, with "close to the line" for a fragile one."""
    return f"{word} ({evidence(estimate, spec)}{'; ' + CLOSE_CALL if close else ''})"


def side(estimate: Estimate, reference: float) -> str | None:
    """``"above"`` or ``"below"`` when the whole interval lies on that side of ``reference``, else None."""
    return "above" if estimate.low > reference else "below" if estimate.high < reference else None


def beyond(
    key: str,
    statement: str,
    estimate: Estimate,
    than: float = 0.0,
    *,
    claimed: str,
    spec: str = ".3g",
    yes: str = "holds",
    no: str = "does not hold",
    unclear: str = "is not shown",
    margin: Margin = MARGIN,
) -> Claim:
    """The claim "the estimate lies ``claimed`` (``"above"`` or ``"below"``) ``than``".

    It holds when the whole interval lies on the claimed side, is contradicted when the
    whole interval lies on the other, and is undecided otherwise. The sentence is
    ``yes``, ``no`` or ``unclear`` followed by the evidence, formatted with ``spec``, and
    "close to the line" where an end of the interval lies within ``margin`` of ``than``
    (:data:`RUN_MARGIN` for a claim about what one training run chose).
    """
    if claimed not in ("above", "below"):
        raise ValueError(f"claimed must be 'above' or 'below', got {claimed!r}")
    found = side(estimate, than)
    verdict = "undecided" if found is None else "holds" if found == claimed else "contradicted"
    words = {"holds": yes, "contradicted": no, "undecided": unclear}
    rule = f"{'>' if claimed == 'above' else '<'} {than:.3g}"
    close = fragile(estimate, than, margin)
    return Claim(
        key, statement, rule, than, estimate, verdict, sentence(words[verdict], estimate, spec, close), spec, close
    )


def greater(key: str, statement: str, estimate: Estimate, than: float = 0.0, **wording) -> Claim:
    """The claim "the estimate is above ``than``" (``spec``, ``margin`` and the wording as in :func:`beyond`)."""
    return beyond(key, statement, estimate, than, claimed="above", **wording)


def less(key: str, statement: str, estimate: Estimate, than: float = 0.0, **wording) -> Claim:
    """The claim "the estimate is below ``than``" (``spec``, ``margin`` and the wording as in :func:`beyond`)."""
    return beyond(key, statement, estimate, than, claimed="below", **wording)


def differs(
    key: str,
    statement: str,
    estimate: Estimate,
    null: float = 0.0,
    spec: str = ".3g",
    above: str = "is higher",
    below: str = "is lower",
    none: str = "shows no detectable difference",
    margin: Margin = MARGIN,
) -> Claim:
    """The claim "the estimate differs from ``null``", in whichever direction the data show.

    It holds when the interval excludes ``null``; the sentence then says which side
    (``above`` or ``below``). Otherwise no difference is detectable with this n, which
    is not evidence of no difference: the interval says how large one could still be.
    """
    found = side(estimate, null)
    verdict, word = ("undecided", none) if found is None else ("holds", above if found == "above" else below)
    close = fragile(estimate, null, margin)
    return Claim(
        key, statement, f"≠ {null:g}", null, estimate, verdict, sentence(word, estimate, spec, close), spec, close
    )


class Claims:
    """The claims of one chapter, written to ``<cache>/claims/<data>/<chapter>.json`` as they come.

    Args:
        chapter: the page's name (``"03_activations_over_training"``).
        data: the dataset's fingerprint: a build on other data keeps its own claims.
    """

    def __init__(self, chapter: str, data: str, folder: str | Path | None = None):
        self.chapter = chapter
        self.path = build_folder(data, folder) / f"{chapter}.json"
        self.claims: dict[str, Claim] = {}
        self._write()  # a chapter that makes no claim any more leaves no stale file behind

    def add(self, claim: Claim) -> Claim:
        """Record ``claim`` (a key may be stated once per chapter) and return it."""
        if claim.key in self.claims:
            raise KeyError(f"claim {claim.key!r} is stated twice in {self.chapter}")
        self.claims[claim.key] = claim
        self._write()
        return claim

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records = [dataclasses.asdict(c) for c in self.claims.values()]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump({"chapter": self.chapter, "library": library_fingerprint(), "claims": records}, f, indent=1)
        os.replace(tmp, self.path)


def build_folder(data: str, folder: str | Path | None = None) -> Path:
    """Where the chapters of a build on the data with fingerprint ``data`` keep their claims."""
    from mnistlab.cache import cache_dir

    return Path(folder or cache_dir() / "claims") / data[:16]


def library_fingerprint() -> str:
    """SHA-256 of the library's modules: claims written by other code are not this build's."""
    import hashlib

    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def read(folder: Path) -> dict[str, list[Claim]]:
    """Every chapter's claims in ``folder`` (one build's), by chapter, in the chapters' order."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text())
        out[record["chapter"]] = [Claim(**{**c, "estimate": Estimate(**c["estimate"])}) for c in record["claims"]]
    return out


def read_build(data: str, folder: str | Path | None = None, expected: Iterable[str] = ()) -> dict[str, list[Claim]]:
    """The claims the chapters of this build wrote for the data ``data``, checked to be current.

    Raises ``RuntimeError`` naming the chapter if a file was written by other library
    code (an older build), or if a chapter named in ``expected`` has written none yet:
    run the chapters first, as a book build does.
    """
    where = build_folder(data, folder)
    current = library_fingerprint()
    for path in sorted(where.glob("*.json")):
        if json.loads(path.read_text()).get("library") != current:
            raise RuntimeError(f"{path} was written by other library code; run its chapter again first")
    found = read(where)
    if not found:
        raise RuntimeError(f"no chapter has written its claims to {where} yet; run the chapters first")
    missing = sorted(set(expected) - set(found))
    if missing:
        raise RuntimeError(f"chapters {missing} have written no claims to {where} yet; run them first")
    return {chapter: cs for chapter, cs in found.items() if cs}


def table(chapters: dict[str, list[Claim]], spec: str = ".3g") -> str:
    """Every claim as a Markdown table: chapter, claim, verdict, estimate with its interval, n, rule."""
    lines = ["| Chapter | Claim | Verdict | Estimate [95% interval] | n | Rule |", "|---|---|---|---|---|---|"]
    words = {"holds": "holds", "contradicted": "does not hold", "undecided": "not shown"}
    for chapter, cs in chapters.items():
        for c in cs:
            e = c.estimate
            close = f" ({CLOSE_CALL})" if c.fragile else ""
            lines.append(
                f"| {chapter.split('_')[0]} | {c.statement} | **{words[c.verdict]}**{close} | {e.format(spec)} "
                f"| {e.n:,} {e.of} | {c.rule} ({e.method}) |"
            )
    return "\n".join(lines)


# How a claim of this build bears on a source's claim: "holds" (the book's claim states
# theirs), "below" / "above" (theirs is that the estimate of a "differs" claim is below or
# above its null), or "recipe" (theirs is a method this book adopts; the claim says why
# it departs from it).
EXPECTATIONS = ("holds", "below", "above", "recipe")
SOURCE_WORDS = {"holds": "reproduced", "contradicted": "contradicted", "undecided": "not shown"}


@dataclass(frozen=True)
class Tested:
    """One claim of a source and the claims of this book that test it (none: not tested)."""

    theirs: str
    by: tuple[tuple[str, str, str], ...] = ()  # (chapter, key, expectation)


def against_source(tested: Sequence[Tested], chapters: dict[str, list[Claim]], spec: str = ".3g") -> str:
    """A source's claims against this build, as a Markdown table: reproduced, contradicted, not shown, not tested.

    Each of the book's claims is read in the direction of the source's: a "differs"
    claim that holds on the other side of its null contradicts it.
    """
    by_key = {(chapter, c.key): c for chapter, cs in chapters.items() for c in cs}
    lines = ["| Their claim | Tested by | Verdict | Estimate [95% interval] |", "|---|---|---|---|"]
    for row in tested:
        if not row.by:
            lines.append(f"| {row.theirs} | not tested in this book | **not tested** | |")
        for chapter, key, expect in row.by:
            if expect not in EXPECTATIONS:
                raise ValueError(f"expectation must be one of {EXPECTATIONS}, got {expect!r}")
            if (chapter, key) not in by_key:
                raise KeyError(f"chapter {chapter!r} made no claim {key!r} in this build")
            c = by_key[(chapter, key)]
            e = c.estimate
            if expect == "recipe":  # the book's departure from the recipe, and whether the data back it
                word = "adopted, with this change: " + {"holds": "supported", "contradicted": "not supported"}.get(
                    c.verdict, "not shown"
                )
            elif expect == "holds":
                word = SOURCE_WORDS[c.verdict]
            else:
                word = "not shown" if c.side is None else "reproduced" if c.side == expect else "contradicted"
            close = f" ({CLOSE_CALL})" if c.fragile and expect != "recipe" else ""
            lines.append(
                f"| {row.theirs} | {c.statement} ({chapter.split('_')[0]}) | **{word}**{close} | {e.format(spec)} |"
            )
    return "\n".join(lines)
