"""Representational similarity against formulas written out, NumPy, SciPy, scikit-learn and its properties."""

import math
import statistics

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from sklearn.cross_decomposition import CCA

from mnistlab import similarity as sim

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def orthogonal(d, seed=1):
    return torch.linalg.qr(randn(d, d, seed=seed)).Q


def related(n, d1, d2, seed=0):
    """Two layers that share some, not all, of their signal: x, and a noisy non-linear map of it."""
    x = randn(n, d1, seed=seed)
    return x, torch.tanh(x @ randn(d1, d2, seed=seed + 1)) + 0.5 * randn(n, d2, seed=seed + 2)


def hsic_cka(k, m):
    """The definition: tr(KHMH) / √(tr(KHKH) tr(MHMH)), with the centring matrix H = I − 11ᵀ/N."""
    n = len(k)
    h = torch.eye(n, dtype=F64) - torch.full((n, n), 1 / n, dtype=F64)
    return (torch.trace(k @ h @ m @ h) / torch.sqrt(torch.trace(k @ h @ k @ h) * torch.trace(m @ h @ m @ h))).item()


# --- linear CKA -----------------------------------------------------------------------------


@pytest.mark.parametrize("n, d1, d2", [(200, 10, 6), (40, 60, 90), (50, 50, 3), (30, 3, 30)])
def test_linear_cka_equals_the_hsic_formula_with_n_by_n_grams(n, d1, d2):
    # The first case takes the feature-space (D × D) route, the others the N × N one.
    x, y = related(n, d1, d2)
    assert sim.linear_cka(x, y) == pytest.approx(hsic_cka(x @ x.T, y @ y.T), abs=1e-12)
    assert sim.linear_cka(x.float(), y.float()) == pytest.approx(hsic_cka(x @ x.T, y @ y.T), abs=1e-6)


def test_linear_cka_is_one_for_a_rotated_scaled_shifted_copy_and_symmetric():
    x, y = related(300, 12, 7)
    assert sim.linear_cka(x, x) == pytest.approx(1, abs=1e-12)
    assert sim.linear_cka(x, 7.5 * x @ orthogonal(12) + 3.0) == pytest.approx(1, abs=1e-12)
    assert sim.linear_cka(x, y) == pytest.approx(sim.linear_cka(y, x), abs=1e-14)
    assert sim.linear_cka(x @ orthogonal(12), 0.01 * y @ orthogonal(7, 2)) == pytest.approx(
        sim.linear_cka(x, y), abs=1e-12
    )
    assert 0.05 < sim.linear_cka(x, y) < 0.95


def test_linear_cka_is_not_invariant_to_every_invertible_map_but_cca_is():
    x = randn(2000, 8)
    stretch = orthogonal(8) @ torch.diag(torch.logspace(0, 2, 8, dtype=F64))  # invertible, far from orthogonal
    assert sim.linear_cka(x, x @ stretch) < 0.6
    assert sim.cca_similarity(x, x @ stretch) == pytest.approx(1, abs=1e-9)


def test_linear_cka_of_unrelated_data_is_small_and_of_a_constant_layer_nan():
    x, y = randn(5000, 10), randn(5000, 10, seed=9)
    assert sim.linear_cka(x, y) < 0.01  # about D / N
    assert math.isnan(sim.linear_cka(x, torch.full((5000, 4), 0.3)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), d1=st.integers(1, 40), d2=st.integers(1, 40), seed=st.integers(0, 1000))
def test_linear_cka_lies_in_0_1_and_is_symmetric(n, d1, d2, seed):
    x, y = randn(n, d1, seed=seed), randn(n, d2, seed=seed + 1)
    c = sim.linear_cka(x, y)
    assert -1e-12 <= c <= 1 + 1e-12
    assert c == pytest.approx(sim.linear_cka(y, x), abs=1e-12)
    assert c == pytest.approx(hsic_cka(x @ x.T, y @ y.T), abs=1e-10)


# --- RBF CKA -----------------------------------------------------------------------------------


def rbf_gram_by_loops(x, sigma_fraction):
    """K[i][j] = exp(−‖xᵢ − xⱼ‖² / 2σ²), σ = fraction × the median distance over pairs i < j, one pair at a time."""
    rows = x.tolist()
    n = len(rows)
    sigma = sigma_fraction * statistics.median(math.dist(rows[i], rows[j]) for i in range(n) for j in range(i + 1, n))
    k = [[math.exp(-(math.dist(rows[i], rows[j]) ** 2) / (2 * sigma**2)) for j in range(n)] for i in range(n)]
    return torch.tensor(k, dtype=F64)


@pytest.mark.parametrize("sigma_fraction", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("n", [40, 41])  # an even and an odd number of pairs: the median's two cases
def test_rbf_cka_equals_the_hsic_formula_built_by_loops(n, sigma_fraction):
    x, y = related(n, 3, 5)
    expected = hsic_cka(rbf_gram_by_loops(x, sigma_fraction), rbf_gram_by_loops(y, sigma_fraction))
    assert sim.rbf_cka(x, y, sigma_fraction) == pytest.approx(expected, abs=1e-12)


def test_rbf_cka_is_one_for_a_rotated_scaled_copy_and_symmetric():
    x, y = related(300, 6, 4)
    assert sim.rbf_cka(x, x) == pytest.approx(1, abs=1e-12)
    assert sim.rbf_cka(x, 4.0 * x @ orthogonal(6) - 1.0) == pytest.approx(1, abs=1e-12)
    assert sim.rbf_cka(x, y) == pytest.approx(sim.rbf_cka(y, x), abs=1e-14)
    assert 0.05 < sim.rbf_cka(x, y) < 0.95
    assert math.isnan(sim.rbf_cka(x, torch.zeros(300, 2)))


def test_rbf_cka_refuses_a_zero_bandwidth():
    x = torch.zeros(10, 2)
    x[0] = 1.0  # most pairs of rows are identical: the median distance is 0
    with pytest.raises(ValueError, match="median distance"):
        sim.rbf_cka(x, randn(10, 2))


# --- CKA between layers ----------------------------------------------------------------------


def two_seeds(n=400):
    """Three layers of one 'network', and of a second that holds each layer rotated: CKA sees the same layers."""
    x = randn(n, 10)
    layers, h = [], x
    for i, width in enumerate((16, 12, 8)):
        h = torch.relu(h @ randn(h.shape[1], width, seed=10 + i))  # (N, width)
        layers.append(h)
    return layers, [h @ orthogonal(h.shape[1], seed=20 + i) for i, h in enumerate(layers)]


@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_cka_matrix_is_cka_of_every_pair_and_finds_the_corresponding_layers(kind):
    a, b = two_seeds()
    m = sim.cka_matrix(a, b, kind=kind)
    cka = sim.linear_cka if kind == "linear" else sim.rbf_cka
    assert m.shape == (3, 3) and m.dtype == F64
    torch.testing.assert_close(m, torch.tensor([[cka(x, y) for y in b] for x in a], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(m.diagonal(), torch.ones(3, dtype=F64), rtol=0, atol=1e-12)
    assert sim.most_similar_layer(m).tolist() == [0, 1, 2]
    assert sim.cka_matrix(a[:2], b, kind=kind).shape == (2, 3)


def test_most_similar_layer_skips_nan_and_breaks_ties_to_the_first():
    m = torch.tensor([[0.2, 0.9, 0.9], [math.nan, 0.1, 0.3], [math.nan] * 3])
    assert sim.most_similar_layer(m).tolist() == [1, 2, -1]


# --- CCA ---------------------------------------------------------------------------------------


def canonical_correlations_by_eigen(x, y):
    """The textbook solution: ρ² are the eigenvalues of Σxx⁻¹ Σxy Σyy⁻¹ Σyx (full-rank data)."""
    x, y = (t - t.mean(0) for t in (x.numpy(), y.numpy()))
    sxx, syy, sxy = x.T @ x, y.T @ y, x.T @ y
    rho2 = np.linalg.eigvals(np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)).real
    return np.sqrt(np.sort(rho2)[::-1][: min(x.shape[1], y.shape[1])].clip(0))


def test_canonical_correlations_equal_the_eigen_solution_and_sklearns_cca():
    x, y = related(500, 4, 3)
    ours = sim.canonical_correlations(x, y)
    np.testing.assert_allclose(ours.numpy(), canonical_correlations_by_eigen(x, y), atol=1e-10)
    # scikit-learn fits the pairs one at a time by alternating regressions (NIPALS), iterated to convergence here.
    fit = CCA(n_components=3, scale=False, max_iter=10_000, tol=1e-14).fit(x.numpy(), y.numpy())
    u, v = fit.transform(x.numpy(), y.numpy())
    np.testing.assert_allclose(ours.numpy(), [np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(3)], atol=1e-6)
    assert sim.cca_similarity(x, y) == pytest.approx(ours.mean().item(), abs=1e-15)


def test_cca_is_one_for_any_invertible_map_and_ignores_scale_dead_and_copied_units():
    x, y = related(1000, 6, 5)
    assert sim.cca_similarity(x, x @ randn(6, 6, seed=5) + 2.0) == pytest.approx(1, abs=1e-9)
    padded = torch.cat([y, torch.zeros(1000, 2), y[:, :1]], 1)  # two dead units and a copy: no new directions
    assert len(sim.canonical_correlations(x, padded)) == 5
    assert sim.cca_similarity(1e3 * x, padded) == pytest.approx(sim.cca_similarity(x, y), abs=1e-9)
    assert math.isnan(sim.cca_similarity(x, torch.zeros(1000, 3)))


def test_cca_of_unrelated_data_is_small_with_many_inputs_and_one_with_too_few():
    assert sim.cca_similarity(randn(20_000, 8), randn(20_000, 8, seed=7)) < 0.04  # about √(D / N) = 0.02
    # Spans of rank 6 and 6 in 10-space share at least 2 directions, whatever the data.
    rho = sim.canonical_correlations(randn(10, 6), randn(10, 6, seed=7))
    assert (rho > 1 - 1e-9).sum() >= 2


# --- units -------------------------------------------------------------------------------------


def test_unit_correlations_equal_numpys_and_a_dead_unit_is_nan():
    x, y = related(300, 5, 7)
    y[:, 3] = 0.0  # a dead unit
    r = sim.unit_correlations(x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.corrcoef(x.numpy().T, y.numpy().T)[:5, 5:]
    assert r.shape == (5, 7)
    np.testing.assert_allclose(r.numpy(), expected, atol=1e-12)
    assert r[:, 3].isnan().all() and not r[:, [0, 1, 2, 4, 5, 6]].isnan().any()
    assert sim.unit_correlations(torch.full((4, 1), 0.1), randn(4, 2)).isnan().all()  # no rounding residue


@pytest.mark.parametrize("d1, d2", [(8, 8), (8, 5), (5, 8)])
def test_match_units_is_scipys_assignment_on_numpys_correlations(d1, d2):
    x, y = related(400, d1, d2)
    m = sim.match_units(x, y)
    r = np.corrcoef(x.numpy().T, y.numpy().T)[:d1, d1:]
    rows, cols = linear_sum_assignment(r, maximize=True)
    assert m.pairs.dtype == torch.long and m.pairs.shape == (min(d1, d2), 2)
    assert m.pairs.tolist() == np.stack([rows, cols], 1).tolist()
    np.testing.assert_allclose(m.correlations.numpy(), r[rows, cols], atol=1e-12)
    best = sim.best_partner(x, y)
    np.testing.assert_allclose(best.numpy(), r.max(1), atol=1e-12)
    assert (best[m.pairs[:, 0]] >= m.correlations - 1e-12).all()  # sharing partners never does worse


def test_match_units_recovers_a_permutation_of_units_and_the_shuffle_breaks_it():
    x = randn(20_000, 16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    y = torch.empty_like(x)
    y[:, perm] = x  # unit i of x is unit perm[i] of y
    m = sim.match_units(x, y)
    assert m.pairs[:, 0].tolist() == list(range(16)) and m.pairs[:, 1].tolist() == perm.tolist()
    torch.testing.assert_close(m.correlations, torch.ones(16, dtype=F64), rtol=0, atol=1e-12)
    chance = sim.shuffled_baseline(x, y, seed=0)
    assert chance.pairs.shape == (16, 2) and chance.correlations.abs().max() < 0.05  # 1/√N ≈ 0.007 per pair
    torch.testing.assert_close(sim.shuffled_baseline(x, y, seed=0).correlations, chance.correlations)
    assert not torch.equal(sim.shuffled_baseline(x, y, seed=1).correlations, chance.correlations)


def test_dead_units_are_matched_as_uncorrelated_and_reported_as_nan():
    x = randn(200, 4)
    y = torch.cat([x[:, :2], torch.zeros(200, 2)], 1)
    m = sim.match_units(x, y)
    assert m.correlations[:2].tolist() == pytest.approx([1.0, 1.0]) and m.correlations[2:].isnan().all()
    assert sim.best_partner(x, y)[:2].tolist() == pytest.approx([1.0, 1.0])
    assert sim.best_partner(y, x)[2:].isnan().all()
    chance = sim.shuffled_baseline(x, y)
    assert chance.correlations[chance.pairs[:, 1] >= 2].isnan().all()  # a shuffled dead unit stays dead
    assert not chance.correlations[chance.pairs[:, 1] < 2].isnan().any()


# --- bad inputs ----------------------------------------------------------------------------------

PAIRWISE = [
    sim.linear_cka,
    sim.rbf_cka,
    sim.cca_similarity,
    sim.canonical_correlations,
    sim.unit_correlations,
    sim.match_units,
    sim.best_partner,
    sim.shuffled_baseline,
    sim.rotated_baseline,
]
GOOD = torch.rand(20, 4)
NAN = GOOD.clone().index_put_((torch.tensor(3), torch.tensor(1)), torch.tensor(math.nan))


@pytest.mark.parametrize("f", PAIRWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "y, error, match",
    [
        (torch.rand(19, 4), ValueError, r"same inputs, row for row: got N = 20 and N = 19"),
        (torch.rand(20, 2, 2, 2), ValueError, r"2-D tensor \(N, D\).*flatten"),
        (torch.rand(20), ValueError, r"2-D tensor \(N, D\)"),
        (NAN, ValueError, r"y hold 1 NaN"),
        (torch.ones(20, 4, dtype=torch.long), TypeError, "floating-point"),
        ([[0.0] * 4] * 20, TypeError, "torch.Tensor"),
    ],
)
def test_bad_inputs_say_what_is_wrong(f, y, error, match):
    with pytest.raises(error, match=match):
        f(GOOD, y)


def test_bad_arguments_say_what_is_valid():
    with pytest.raises(ValueError, match="at least 2 inputs"):
        sim.linear_cka(torch.rand(1, 3), torch.rand(1, 3))
    with pytest.raises(ValueError, match=r"unknown kind 'cosine': choose one of \('linear', 'rbf'\)"):
        sim.cka_matrix([GOOD], [GOOD], kind="cosine")
    with pytest.raises(ValueError, match=r"xs\[0\] and ys\[1\] must be activations of the same inputs"):
        sim.cka_matrix([GOOD], [GOOD, torch.rand(10, 4)])
    with pytest.raises(ValueError, match=r"ys\[0\] hold 1 NaN"):
        sim.cka_matrix([GOOD], [NAN], kind="rbf")
    with pytest.raises(TypeError, match="non-empty list"):
        sim.cka_matrix(GOOD, [GOOD])
    with pytest.raises(TypeError, match="non-empty list"):
        sim.cka_matrix([], [GOOD])
    with pytest.raises(ValueError, match="sigma_fraction must be > 0"):
        sim.rbf_cka(GOOD, GOOD, sigma_fraction=0)
    with pytest.raises(ValueError, match=r"eps must lie in \(0, 1\)"):
        sim.cca_similarity(GOOD, GOOD, eps=1.0)
    with pytest.raises(TypeError, match="seed must be an int"):
        sim.shuffled_baseline(GOOD, GOOD, seed=0.5)
    with pytest.raises(ValueError, match="2-D similarity matrix"):
        sim.most_similar_layer(torch.rand(3))
    with pytest.raises(TypeError, match="floating-point"):
        sim.most_similar_layer(torch.eye(3, dtype=torch.long))


def test_a_random_rotation_keeps_cka_and_breaks_units_so_it_tests_a_privileged_basis():
    """Planted: units that recur one for one beat the rotated null; units that recur only as a subspace do not."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4000, 12, generator=g, dtype=F64).relu()
    same_units = x[:, torch.randperm(12, generator=g)] + 0.1 * torch.randn(4000, 12, generator=g, dtype=F64)
    q = sim.random_rotation(12, seed=9)
    torch.testing.assert_close(q @ q.T, torch.eye(12, dtype=F64), rtol=0, atol=1e-12)
    same_space = x @ q  # the same information in another basis
    torch.testing.assert_close(sim.linear_cka(x, same_space), sim.linear_cka(x, x), rtol=0, atol=1e-9)
    above = lambda m: int((m.correlations.nan_to_num(0) > 0.8).sum())  # noqa: E731
    assert above(sim.match_units(x, same_units)) == 12 and above(sim.rotated_baseline(x, same_units, seed=1)) < 6
    # Recurring as a subspace only: the "real" units are already mixtures, and they do no better than the null.
    assert above(sim.match_units(x, same_space)) < 6 and above(sim.rotated_baseline(x, same_space, seed=1)) < 6
    assert not torch.equal(sim.random_rotation(12, seed=1), sim.random_rotation(12, seed=2))


def test_mean_cca_over_a_fixed_count_removes_the_advantage_of_a_narrower_linear_image():
    """Planted: y is a 3-unit linear image of x2, which matches x; plain mean CCA prefers y, top-k does not."""
    g = torch.Generator().manual_seed(12)
    x = torch.randn(3000, 8, generator=g, dtype=F64)
    x2 = x + 1.5 * torch.randn(3000, 8, generator=g, dtype=F64)  # another "seed" of the same layer
    y = x2 @ torch.randn(8, 3, generator=g, dtype=F64)  # a narrower layer computed from x2
    assert sim.cca_similarity(x, y) > sim.cca_similarity(x, x2)  # the structural advantage
    assert sim.cca_similarity(x, y, top=3) <= sim.cca_similarity(x, x2, top=3) + 1e-12
    assert sim.cca_similarity(x, x[:, :2], top=4) == pytest.approx(0.5)  # two of four missing: counted as 0
    with pytest.raises(ValueError, match="top"):
        sim.cca_similarity(x, y, top=0)
