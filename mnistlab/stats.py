"""Estimates with their uncertainty: every number that carries a conclusion gets an interval.

A test accuracy is a proportion of a finite set of test images, a comparison of two
networks is a difference on the same images, a trend over units is a correlation of a
few dozen points, and a property of a training recipe varies from seed to seed. Each
comes with a 95% interval here, computed the standard way for its kind:

* :func:`proportion` — Wilson's score interval for k successes out of n (an accuracy);
* :func:`proportion_difference` — two proportions on different items, with Newcombe's
  interval built from their Wilson intervals;
* :func:`paired_difference` — a paired bootstrap over the same items (two networks'
  correctness on the same test images), with :func:`mcnemar` for its exact test;
* :func:`crossed_mean` — a mean over items and over random draws that every item sees
  (a control task's clusters), with a bootstrap that resamples both;
* :func:`mean` — Student's t interval over independent runs (seeds);
* :func:`mean_difference` — Welch's t interval for the difference of two groups of runs;
* :func:`spearman` — Spearman's rank correlation with a Fisher-z interval (Bonett and
  Wright's variance);
* :func:`bootstrap` — a percentile bootstrap of any statistic of items (images, units);
* :func:`shift_from_null` — how far an observed statistic lies from its values over
  every alternative (a randomisation test, for items too few or too dependent to resample).

All return an :class:`Estimate`: the value, its interval, and the number of independent
things behind it.

>>> round(proportion(906, 1000).low, 3), round(proportion(906, 1000).high, 3)
(0.886, 0.923)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import torch

from mnistlab.checks import check_predictions

LEVEL = 0.95
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class Estimate:
    """A number, its interval at ``level``, and the count of independent things behind it.

    ``n`` counts what varies between repetitions (images, seeds, units); ``of`` names it.
    """

    value: float
    low: float
    high: float
    n: int
    of: str
    method: str
    level: float = LEVEL

    def __post_init__(self):
        if not self.low <= self.value <= self.high and not math.isnan(self.value):
            raise ValueError(f"an estimate's value {self.value} must lie in its interval [{self.low}, {self.high}]")

    def excludes(self, x: float) -> bool:
        """Whether ``x`` lies outside the interval."""
        return x < self.low or x > self.high

    def format(self, spec: str = ".3g") -> str:
        """``value [low, high]`` with one format spec for all three (e.g. ``".1%"``).

        ``"pp1"`` shows a difference of proportions in signed percentage points with one
        decimal: ``+3.2 points [+2.9, +3.5]``.
        """
        if spec.startswith("pp"):
            d = int(spec[2:] or 1)
            v, lo, hi = (f"{100 * x:+.{d}f}".replace("-", "−") for x in (self.value, self.low, self.high))
            return f"{v} points [{lo}, {hi}]"
        v, lo, hi = (f"{x:{spec}}".replace("-", "−") for x in (self.value, self.low, self.high))  # a typographic minus
        return f"{v} [{lo}, {hi}]"

    def __str__(self) -> str:
        return f"{self.format()} ({self.level:.0%} interval, n = {self.n:,} {self.of}, {self.method})"


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def proportion(successes: int, n: int, of: str = "images", level: float = LEVEL) -> Estimate:
    """Wilson's score interval for ``successes`` out of ``n`` (e.g. correct test images)."""
    successes, n = int(successes), int(n)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p, z = successes / n, _z(level)
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, center - half), min(1.0, center + half)
    return Estimate(p, min(low, p), max(high, p), n, of, "Wilson", level)  # min/max: rounding at p = 0 or 1


def proportion_difference(k1: int, n1: int, k2: int, n2: int, of: str = "images", level: float = LEVEL) -> Estimate:
    """k1/n1 minus k2/n2 for two independent samples, with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: the difference's interval from the two Wilson intervals.
    For proportions on *different* images (two digits' accuracies, or accuracy on the
    training and the test images); for two networks on the *same* images use
    :func:`paired_difference`.
    """
    a, b = proportion(k1, n1, of, level), proportion(k2, n2, of, level)
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Estimate(d, low, high, min(int(n1), int(n2)), of, "Newcombe", level)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor, level: float = LEVEL) -> Estimate:
    """The share of ``predictions`` equal to ``labels`` (N,), with its Wilson interval over the N images."""
    check_predictions(predictions, labels)
    correct = predictions == labels
    return proportion(int(correct.sum()), len(correct), "images", level)


def bootstrap(
    statistic: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    of: str = "images",
    level: float = LEVEL,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of ``statistic(index)`` over ``n`` items resampled with replacement.

    ``statistic`` takes a (draws, n) index tensor and returns the (draws,) statistics
    (batched: one call evaluates every resample); the whole set is ``arange(n)``.
    """
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 items, got {n}")
    value = float(statistic(torch.arange(n)[None])[0])
    gen = torch.Generator().manual_seed(seed)
    stats = []
    chunk = max(1, 4_000_000 // n)  # bound the index tensor to ~32 MB
    for start in range(0, draws, chunk):
        index = torch.randint(n, (min(chunk, draws - start), n), generator=gen)
        stats.append(statistic(index).double())
    low, high = _percentiles(torch.cat(stats), level)
    return Estimate(value, min(low, value), max(high, value), n, of, "bootstrap", level)


def _percentiles(replicates: torch.Tensor, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates: their (1 − level)/2 and (1 + level)/2 quantiles."""
    tail = (1 - level) / 2
    low, high = torch.quantile(replicates.double(), torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return low, high


def shift_from_null(observed: float, null: torch.Tensor, of: str, level: float = LEVEL) -> Estimate:
    """How far ``observed`` lies from the statistic's values ``null`` over every alternative.

    ``null`` holds the statistic for each of the N alternatives the observation could
    have been, the observed one included (every set of as many digits, say). The value
    is ``observed`` minus the null's median. The interval is the range of shifts that
    keep ``observed`` out of either tail of the null: with m = ⌊(1 − level) N / 2⌋ and
    v₍ⱼ₎ the null sorted, it runs from observed − v₍N−m₎ to observed − v₍m+1₎. It
    excludes 0 exactly when at most m of the N values lie at or beyond ``observed`` on
    one side, that is when the exact two-sided randomisation p-value, 2 · min(#≥, #≤) / N,
    is at most 1 − level. With fewer than 2 / (1 − level) alternatives (40 at 95%) m is
    0, and no observation can be shown to stand out. Use it where the things behind a
    statistic share parts (pairs of digits that share digits) and cannot be resampled as
    if independent; n is N, the alternatives compared, not independent observations.

    >>> e = shift_from_null(99.0, torch.arange(100.0), of="sets")  # the largest of 100
    >>> e.value, e.low, e.high
    (49.5, 2.0, 97.0)
    """
    null = torch.as_tensor(null, dtype=torch.float64).flatten()
    if len(null) < 2 or not torch.isfinite(null).all() or not math.isfinite(observed):
        raise ValueError(f"need a finite observed value and two or more finite null values, got {observed} and "
                         f"{len(null)} value(s)")
    ordered = null.sort().values
    m = math.floor((1 - level) * len(null) / 2 + 1e-9)  # the most values a tail may hold (1e-9: 0.05 · 40 / 2 is 1)
    low, high = observed - ordered[len(null) - 1 - m].item(), observed - ordered[m].item()
    return Estimate(observed - null.quantile(0.5).item(), low, high, len(null), of, "randomisation", level)


def paired_difference(
    a: torch.Tensor, b: torch.Tensor, of: str = "images", level: float = LEVEL, seed: int = 0
) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` over the same N items, with a paired bootstrap interval.

    ``a`` and ``b`` are (N,) values of the same items under two conditions: whether two
    networks got test image i right (booleans), or one image's share of silent units at
    two epochs. Resampling items keeps each item's pair together, so the interval
    reflects how much the items disagree, not how much they vary.
    """
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"expected two (N,) tensors of one length, got {tuple(a.shape)} and {tuple(b.shape)}")
    d = a.double() - b.double()  # (N,)
    return bootstrap(lambda index: d[index].mean(1), len(d), of, level, seed=seed)


def crossed_mean(
    a: torch.Tensor,
    b: torch.Tensor | None = None,
    of: str = "images",
    over: str = "draws",
    level: float = LEVEL,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> Estimate:
    """Mean of ``a`` (or of ``a − b``) over K random constructions and the same N items,
    with an interval from a two-way bootstrap that resamples both.

    ``a``, ``b``: (K, N), row k from the k-th draw of something random that every item
    sees (a control task's random clusters and labels, say), column i from item i (an
    image). Two things vary between repetitions: which items were measured, and which
    constructions were drawn; a draw can move every item at once. Resampling items alone
    (:func:`paired_difference` of the row means) misses that second part. Here each
    bootstrap replicate resamples the rows and the columns independently, with
    replacement, and takes the mean of the cells they pick (Owen's pigeonhole bootstrap,
    2007, which errs on the wide side). With K = 1 only the items vary.

    >>> d = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0]])  # 2 draws, 4 items
    >>> crossed_mean(d).value
    0.5
    """
    a = _matrix(a, "a")
    if b is not None:
        b = _matrix(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"a and b must be (K, N) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        a = a - b
    k, n = a.shape
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 items, got {n}")
    value = a.mean().item()
    gen = torch.Generator().manual_seed(seed)
    stats = []
    chunk = max(1, 4_000_000 // (n + k))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        rows = _times_picked(torch.randint(k, (size, k), generator=gen), k)  # (B, K): how often each draw is picked
        cols = _times_picked(torch.randint(n, (size, n), generator=gen), n)  # (B, N): how often each item is
        stats.append(((rows @ a) * cols).sum(1) / (k * n))  # the mean of the picked cells, repeats counted
    low, high = _percentiles(torch.cat(stats), level)
    return Estimate(value, min(low, value), max(high, value), n, f"{of} × {k} {over}", "two-way bootstrap", level)


def _times_picked(index: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) float64: how many times each of n things occurs in each row of the (B, m) ``index``."""
    ones = torch.ones(index.shape, dtype=torch.float64)
    return torch.zeros(len(index), n, dtype=torch.float64).scatter_add_(1, index, ones)


def _matrix(x, name: str) -> torch.Tensor:
    """``x`` as a finite (K, N) float64 tensor, or a ValueError that says what it was."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or 0 in x.shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a (K, N) tensor, one row per draw and one column per item, got {got}")
    x = x.detach().cpu().double()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return x


def ratio(numerator: torch.Tensor, denominator: torch.Tensor, of: str = "units", level: float = LEVEL) -> Estimate:
    """Σ numerator / Σ denominator over N items, with a bootstrap over the items.

    For a share whose parts come in clusters: say the share of all preferred-digit
    changes that fall in the first epochs, where each unit contributes its own changes
    (resampling units, not single changes, keeps a unit's changes together).
    """
    if numerator.shape != denominator.shape or numerator.ndim != 1:
        raise ValueError(f"expected two (N,) tensors, got {tuple(numerator.shape)} and {tuple(denominator.shape)}")
    if denominator.sum() <= 0:
        raise ValueError("the denominator sums to zero: the ratio is undefined")
    num, den = numerator.double(), denominator.double()
    return bootstrap(lambda index: num[index].sum(1) / den[index].sum(1).clamp(min=1e-300), len(num), of, level)


def mcnemar(correct_a: torch.Tensor, correct_b: torch.Tensor) -> float:
    """Exact two-sided McNemar p-value: do A and B err on the same images at the same rate?"""
    from scipy.stats import binomtest

    b = int((correct_a & ~correct_b).sum())  # A right, B wrong
    c = int((~correct_a & correct_b).sum())
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def mean(values, of: str = "seeds", level: float = LEVEL) -> Estimate:
    """Mean of independent runs with Student's t interval (a single run has no interval: NaN bounds)."""
    from scipy.stats import t

    x = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if len(x) == 0 or not torch.isfinite(x).all():
        raise ValueError(f"need one or more finite values, got {list(values)}")
    m = x.mean().item()
    if len(x) == 1:
        return Estimate(m, -math.inf, math.inf, 1, of, "one run: no interval", level)
    half = t.ppf(0.5 + level / 2, len(x) - 1) * x.std().item() / math.sqrt(len(x))
    return Estimate(m, m - half, m + half, len(x), of, "t", level)


def mean_difference(a, b, of: str = "seeds", level: float = LEVEL) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` (independent runs each), with Welch's t interval."""
    from scipy.stats import t

    x = torch.tensor([float(v) for v in a], dtype=torch.float64)
    y = torch.tensor([float(v) for v in b], dtype=torch.float64)
    if len(x) < 2 or len(y) < 2 or not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError(f"need two or more finite values per group, got {list(a)} and {list(b)}")
    d = (x.mean() - y.mean()).item()
    va, vb = x.var().item() / len(x), y.var().item() / len(y)
    se = math.sqrt(va + vb)
    if se == 0:  # no spread within either group: a t interval does not exist, and none is claimed
        bounds = (d, d) if d == 0 else (-math.inf, math.inf)
        return Estimate(d, *bounds, min(len(x), len(y)), of, "Welch t: no spread in either group", level)
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = t.ppf(0.5 + level / 2, dof) * se
    return Estimate(d, d - half, d + half, min(len(x), len(y)), of, "Welch t", level)


def spearman(x: torch.Tensor, y: torch.Tensor, of: str = "units", level: float = LEVEL) -> Estimate:
    """Spearman's rank correlation of (N,) ``x`` and ``y``, with a Fisher-z interval.

    The interval uses Bonett and Wright's (2000) variance for Spearman's rho,
    (1 + rho²/2) / (N - 3).
    """
    from scipy.stats import spearmanr

    if x.shape != y.shape or x.ndim != 1 or len(x) < 4:
        raise ValueError(f"expected two (N,) tensors with N >= 4, got {tuple(x.shape)} and {tuple(y.shape)}")
    if (x == x[0]).all() or (y == y[0]).all():
        raise ValueError("Spearman's rho is undefined when one of the variables is constant")
    rho = float(spearmanr(x.double().numpy(), y.double().numpy()).statistic)
    z, half = (
        math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12)),
        _z(level) * math.sqrt((1 + rho * rho / 2) / (len(x) - 3)),
    )
    return Estimate(rho, math.tanh(z - half), math.tanh(z + half), len(x), of, "Fisher z", level)


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of each row's values (along the last dimension), tied values sharing
    their average rank; float64, the shape of ``x``.

    >>> average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]]))
    tensor([[3.5000, 1.0000, 3.5000, 2.0000]], dtype=torch.float64)
    """
    x = x.contiguous()
    s = x.sort(dim=-1).values
    lo = torch.searchsorted(s, x, right=False)  # values strictly below
    hi = torch.searchsorted(s, x, right=True)  # values below or equal
    return (lo + hi + 1).double() / 2


def _rho(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's rho of each row pair of (B, N) ``x`` and ``y``; NaN for a constant row."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(-1, keepdim=True), ry - ry.mean(-1, keepdim=True)
    norm = (rx.square().sum(-1) * ry.square().sum(-1)).sqrt()
    return (rx * ry).sum(-1) / norm


def spearman_difference(
    x: torch.Tensor, other: torch.Tensor, y: torch.Tensor, of: str = "units", level: float = LEVEL
) -> Estimate:
    """Spearman's rho of ``x`` with ``y`` minus that of ``other`` with ``y``: is ``x`` the better predictor of ``y``?

    All three are (N,) values of the same N items (say, units: what an attribution map
    predicts about each unit, what a control predicts, and what ablating the unit costs).
    The interval is a paired bootstrap over the items, which resamples each item's three
    values together; a resample in which a variable is constant is dropped.

    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.rand(200, generator=g)
    >>> noisy, unrelated = y + 0.1 * torch.rand(200, generator=g), torch.rand(200, generator=g)
    >>> spearman_difference(noisy, unrelated, y).low > 0.5
    True
    """
    if not (x.shape == other.shape == y.shape) or x.ndim != 1 or len(x) < 4:
        raise ValueError(
            f"expected three (N,) tensors with N >= 4, got {tuple(x.shape)}, {tuple(other.shape)} and {tuple(y.shape)}"
        )
    for v, what in ((x, "x"), (other, "other"), (y, "y")):
        if (v == v[0]).all():
            raise ValueError(f"Spearman's rho is undefined when {what} is constant")
    x, other, y = x.double().cpu(), other.double().cpu(), y.double().cpu()

    def statistic(index: torch.Tensor) -> torch.Tensor:
        d = _rho(x[index], y[index]) - _rho(other[index], y[index])
        return d[~d.isnan()] if len(index) > 1 else d

    return bootstrap(statistic, len(x), of, level)
