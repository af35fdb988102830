"""Intervals, each checked against an independent implementation (SciPy) or a property."""

import math

import pytest
import torch
from scipy import stats as sp

from mnistlab import stats


@pytest.mark.parametrize("k, n", [(906, 1000), (0, 20), (20, 20), (3, 7), (9500, 10000)])
def test_wilson_interval_equals_scipys(k, n):
    ours = stats.proportion(k, n)
    theirs = sp.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours.value == k / n
    assert math.isclose(ours.low, theirs.low, abs_tol=1e-12) and math.isclose(ours.high, theirs.high, abs_tol=1e-12)


def test_accuracy_is_a_proportion_of_images():
    preds, labels = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])
    a = stats.accuracy(preds, labels)
    assert (a.value, a.n, a.of) == (0.75, 4, "images")


def test_t_interval_equals_scipys():
    values = [0.91, 0.93, 0.90, 0.925, 0.915]
    ours = stats.mean(values)
    low, high = sp.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=sp.sem(values))
    assert math.isclose(ours.low, low, rel_tol=1e-12) and math.isclose(ours.high, high, rel_tol=1e-12)
    one = stats.mean([0.9])
    assert one.n == 1 and math.isinf(one.low) and math.isinf(one.high)


def test_welch_interval_equals_scipys():
    a, b = [0.91, 0.93, 0.90, 0.925, 0.915], [0.95, 0.94, 0.96, 0.945, 0.93, 0.955]
    ours = stats.mean_difference(a, b)
    theirs = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert math.isclose(ours.low, theirs.low, rel_tol=1e-10) and math.isclose(ours.high, theirs.high, rel_tol=1e-10)


def test_spearman_value_is_scipys_and_its_interval_widens_with_fewer_points():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, generator=g)
    y = x + torch.randn(40, generator=g)
    ours = stats.spearman(x, y)
    assert math.isclose(ours.value, sp.spearmanr(x.numpy(), y.numpy()).statistic, rel_tol=1e-12)
    few = stats.spearman(x[:10], y[:10])
    assert few.high - few.low > ours.high - ours.low
    # Bonett-Wright: tanh(atanh(r) ± 1.96 sqrt((1 + r²/2) / (n - 3)))
    half = 1.959963984540054 * math.sqrt((1 + ours.value**2 / 2) / 37)
    assert math.isclose(ours.low, math.tanh(math.atanh(ours.value) - half), rel_tol=1e-9)


def test_spearman_difference_is_the_difference_of_scipys_rhos_and_finds_a_planted_better_predictor():
    g = torch.Generator().manual_seed(2)
    y = torch.randn(60, generator=g)
    better, worse = y + 0.3 * torch.randn(60, generator=g), y + 3 * torch.randn(60, generator=g)
    d = stats.spearman_difference(better, worse, y)
    rho = lambda a: sp.spearmanr(a.numpy(), y.numpy()).statistic  # noqa: E731
    assert math.isclose(d.value, rho(better) - rho(worse), rel_tol=1e-12)
    assert d.low > 0 and d.of == "units" and d.n == 60  # planted: detectably better
    same = stats.spearman_difference(better, better.clone(), y)  # no effect: exactly zero
    assert same.low == same.value == same.high == 0
    null = stats.spearman_difference(y + torch.randn(60, generator=g), y + torch.randn(60, generator=g), y)
    assert null.low < 0 < null.high  # two equally good predictors: not shown
    ties = stats.spearman_difference(torch.tensor([1.0, 1, 2, 3, 3, 4]), torch.arange(6.0), torch.arange(6.0))
    assert math.isclose(ties.value, sp.spearmanr([1, 1, 2, 3, 3, 4], range(6)).statistic - 1, rel_tol=1e-12)
    with pytest.raises(ValueError, match="constant"):
        stats.spearman_difference(torch.ones(6), torch.arange(6.0), torch.arange(6.0))


def test_paired_bootstrap_matches_the_normal_interval_of_a_mean_difference():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(4000, generator=g) < 0.9
    b = torch.rand(4000, generator=g) < 0.8
    d = stats.paired_difference(a, b)
    diff = a.double() - b.double()
    se = diff.std().item() / math.sqrt(len(diff))
    assert math.isclose(d.value, diff.mean().item(), rel_tol=1e-12)
    assert abs(d.low - (d.value - 1.96 * se)) < 0.3 * se and abs(d.high - (d.value + 1.96 * se)) < 0.3 * se


def test_bootstrap_of_a_constant_collapses_and_is_deterministic():
    c = stats.bootstrap(lambda i: torch.ones(len(i), dtype=torch.float64), 50)
    assert (c.low, c.value, c.high) == (1.0, 1.0, 1.0)
    x = torch.randn(100, generator=torch.Generator().manual_seed(2))
    first = stats.bootstrap(lambda i: x[i].mean(1), 100)
    assert first == stats.bootstrap(lambda i: x[i].mean(1), 100)


def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs():
    a = torch.tensor([True] * 30 + [False] * 10 + [True] * 50)
    b = torch.tensor([False] * 30 + [True] * 10 + [True] * 50)
    assert math.isclose(stats.mcnemar(a, b), sp.binomtest(30, 40, 0.5).pvalue)
    assert stats.mcnemar(a, a) == 1.0


def test_format_shows_percentage_points_with_signs():
    e = stats.Estimate(-0.032, -0.035, -0.029, 1000, "images", "bootstrap")
    assert e.format("pp1") == "−3.2 points [−3.5, −2.9]"
    assert e.format(".1%") == "−3.2% [−3.5%, −2.9%]"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: stats.proportion(5, 0), "n >= 1"),
        (lambda: stats.proportion(6, 5), "successes <= n"),
        (lambda: stats.mean([]), "one or more finite"),
        (lambda: stats.mean([1.0, float("nan")]), "finite"),
        (lambda: stats.mean_difference([1.0], [2.0, 3.0]), "two or more"),
        (lambda: stats.spearman(torch.rand(3), torch.rand(3)), "N >= 4"),
        (lambda: stats.spearman(torch.ones(5), torch.rand(5)), "constant"),
        (lambda: stats.paired_difference(torch.rand(3), torch.rand(4)), "one length"),
        (lambda: stats.Estimate(2.0, 0.0, 1.0, 3, "seeds", "t"), "must lie in its interval"),
    ],
)
def test_bad_input_says_what_is_needed(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ratio_is_a_ratio_of_sums_resampled_by_item():
    num, den = torch.tensor([1.0, 0.0, 3.0, 2.0]), torch.tensor([2.0, 1.0, 4.0, 2.0])
    r = stats.ratio(num, den)
    assert r.value == pytest.approx(6 / 9) and r.low <= r.value <= r.high and r.n == 4
    same = stats.ratio(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0]))  # every item's ratio is 1/2
    assert same.low == pytest.approx(0.5) and same.high == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sums to zero"):
        stats.ratio(torch.zeros(3), torch.zeros(3))


def test_newcombe_difference_matches_the_published_example():
    """Newcombe (1998), Table II, example (a): 56/70 - 48/80 gives 0.2 with [0.0524, 0.3339]."""
    d = stats.proportion_difference(56, 70, 48, 80)
    assert d.value == pytest.approx(0.2)
    assert d.low == pytest.approx(0.0524, abs=5e-4) and d.high == pytest.approx(0.3339, abs=5e-4)


def test_average_ranks_are_scipys_rankdata_row_by_row_ties_included():
    x = torch.randint(0, 5, (4, 30), generator=torch.Generator().manual_seed(0)).float()  # many ties
    assert torch.equal(stats.average_ranks(x), torch.from_numpy(sp.rankdata(x.numpy(), axis=1)).double())


def test_crossed_mean_covers_a_planted_mean_when_each_draw_moves_every_item():
    """Each draw shifts all items together (sd 0.05): an interval over items alone is far too narrow for the
    mean over draws; the two-way bootstrap covers the planted mean about as often as it says it will."""
    g = torch.Generator().manual_seed(0)
    k, n, true_mean = 10, 200, 0.5
    covered, covered_items_only = 0, 0
    for _ in range(60):
        d = (torch.rand(k, n, generator=g) < true_mean).double() + 0.05 * torch.randn(k, 1, generator=g)
        covered += not stats.crossed_mean(d, draws=500).excludes(true_mean)
        covered_items_only += not stats.paired_difference(d.mean(0), torch.zeros(n)).excludes(true_mean)
    assert covered >= 54  # at least 90% of 60 at a nominal 95%
    assert covered_items_only <= 45  # resampling items alone misses the draws' share


def test_crossed_mean_of_one_draw_is_the_paired_bootstrap_and_finds_a_planted_difference():
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(1, 500, generator=g) < 0.6).double()
    b = a.clone()
    b[0, a[0].nonzero()[:50, 0]] = 0  # b misses 50 of a's successes: a planted +0.1
    crossed, paired = stats.crossed_mean(a, b), stats.paired_difference(a[0], b[0])
    assert crossed.value == pytest.approx(paired.value)
    assert crossed.high - crossed.low == pytest.approx(paired.high - paired.low, rel=0.15)
    assert crossed.low > 0  # the planted +0.1 is found
    assert crossed.of == "images × 1 draws" and crossed.n == 500
    assert stats.crossed_mean(a, a.clone()).excludes(0) is False  # no difference: the interval is [0, 0]


@pytest.mark.parametrize(
    "a, b, match",
    [
        (torch.zeros(5), None, r"\(K, N\) tensor"),
        (torch.zeros(2, 5), torch.zeros(3, 5), "one shape"),
        (torch.tensor([[0.0, float("nan")]]), None, "finite"),
        (torch.zeros(3, 1), None, "at least 2 items"),
    ],
)
def test_crossed_mean_says_what_input_it_needs(a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.crossed_mean(a, b)


def test_shift_from_null_excludes_zero_exactly_when_scipys_permutation_test_rejects():
    """A planted gap between two groups of items: the interval over every relabelling excludes 0 exactly when
    the exact two-sided permutation p-value (scipy, every permutation) is at most 5%; with no gap it does not."""
    from itertools import combinations

    def gap(x, chosen):
        rest = [i for i in range(len(x)) if i not in chosen]
        return x[list(chosen)].mean().item() - x[rest].mean().item()

    g = torch.Generator().manual_seed(0)
    outcomes = set()
    for shift in (0.0, 0.5, 1.0, 3.0):
        x = torch.randn(10, generator=g, dtype=torch.float64)
        x[:5] += shift  # the first five items are shifted up
        null = torch.tensor([gap(x, c) for c in combinations(range(10), 5)])
        e = stats.shift_from_null(gap(x, range(5)), null, of="sets of 5 items")
        p = sp.permutation_test((x[:5].numpy(), x[5:].numpy()), lambda a, b: a.mean() - b.mean(),
                                permutation_type="independent", n_resamples=10_000).pvalue
        assert e.excludes(0) == (p <= 0.05), (shift, p, e)
        outcomes.add(e.excludes(0))
    assert outcomes == {True, False}  # the planted gaps gave both answers


@pytest.mark.parametrize("n", [10, 39, 40, 45, 120, 210, 252])
def test_shift_from_null_rejects_exactly_at_the_counted_p_value_for_every_rank(n):
    """Every rank of the observed value among n alternatives (ties included), against the p-value counted by
    hand, 2 · min(#≥, #≤) / n: the boundary ranks are where an interpolated quantile would be too lenient."""
    null = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    null[: n // 5] = null[0]  # a block of ties
    for observed in null.tolist():
        p = 2 * min((null >= observed).sum().item(), (null <= observed).sum().item()) / n
        e = stats.shift_from_null(observed, null, of="sets")
        assert e.excludes(0) == (p <= 0.05), (n, observed, p, e)
        assert e.low <= e.value <= e.high
    if n < 40:  # too few alternatives: not even the most extreme can stand out
        assert not any(stats.shift_from_null(v, null, of="sets").excludes(0) for v in null.tolist())


def test_shift_from_null_says_what_input_it_needs():
    with pytest.raises(ValueError, match="two or more finite null values"):
        stats.shift_from_null(1.0, torch.tensor([0.5]), of="sets")
    with pytest.raises(ValueError, match="finite observed"):
        stats.shift_from_null(float("nan"), torch.arange(5.0), of="sets")


def test_welch_claims_no_interval_when_neither_group_varies():
    """Counts of 1 in every seed against 0 in every seed: Welch's t has no spread to work with, so no interval is
    claimed (a zero-width one would read as certainty); equal constant groups still give [0, 0]."""
    e = stats.mean_difference([1, 1, 1, 1, 1], [0, 0, 0, 0, 0])
    assert e.value == 1 and math.isinf(e.low) and math.isinf(e.high) and not e.excludes(0)
    same = stats.mean_difference([2, 2, 2], [2, 2, 2])
    assert (same.low, same.high) == (0.0, 0.0)
