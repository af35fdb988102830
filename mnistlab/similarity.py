"""Representational similarity: do two layers, or two networks, represent the inputs alike?

Every function takes activations of the *same* N inputs, row for row: ``x`` (N, D1) and
``y`` (N, D2) from two layers, or one layer of two networks (two seeds); widths may
differ; conv maps (N, C, H, W) are flattened by the caller (``acts.flatten(1)``).
Computed in float64 on the CPU. From whole layers to single units:

* CKA (Kornblith et al. 2019): :func:`linear_cka`, :func:`rbf_cka`, :func:`cka_matrix`,
  and :func:`most_similar_layer` for their test "is the most similar layer of another
  seed the corresponding one?". 1 up to a rotation and a scale, invariant to no more;
* CCA (Raghu et al. 2017): :func:`canonical_correlations` and their mean
  :func:`cca_similarity`; invariant to every invertible linear map;
* units (Li et al. 2016, "Convergent learning"): :func:`unit_correlations`,
  :func:`best_partner`, the one-to-one :func:`match_units`, and its chance level
  :func:`shuffled_baseline`.

>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(1000, 8, generator=g)  # (N, 8)
>>> q = torch.linalg.qr(torch.randn(8, 8, generator=g)).Q  # a random rotation
>>> round(linear_cka(x, 3 * x @ q), 6), round(cca_similarity(x, x @ q), 6)
(1.0, 1.0)
>>> round(linear_cka(x, torch.randn(1000, 8, generator=g)), 2)  # unrelated: about D / N
0.01
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mnistlab.checks import as_units, check_finite_number, check_positive_int, is_int

KINDS = ("linear", "rbf")
F64 = torch.float64


def _pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> tuple[torch.Tensor, torch.Tensor]:
    """Both checked, as float64 on the CPU, with one row per input in each."""
    x, y = (as_units(t, name, maps=False).detach().to("cpu", F64) for t, name in zip((x, y), names))
    if len(x) != len(y):
        raise ValueError(
            f"{names[0]} and {names[1]} must be activations of the same inputs, row for row: "
            f"got N = {len(x)} and N = {len(y)} rows"
        )
    if len(x) < 2:
        raise ValueError(f"comparing representations needs at least 2 inputs, got N = {len(x)}")
    return x, y


def _centred(x: torch.Tensor) -> torch.Tensor:
    """Columns minus their means; a constant column (a dead unit) becomes exactly 0, not rounding residue."""
    constant = (x == x[0]).all(0)  # (D,)
    return (x - x.mean(0)).masked_fill(constant, 0.0)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of Kornblith et al. (2019): ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F), columns centred.

    The alignment of the inputs' N × N similarity matrices XXᵀ and YYᵀ: 1 when ``y`` is
    ``x`` rotated and scaled, about D / N for unrelated random data, below 1 after a map
    that stretches some directions more than others. From D × D products when both
    widths are below N, else from N × N Grams (equal). NaN for a constant representation.

    >>> x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    >>> round(linear_cka(x, x[:, :8]), 2)  # half of the units
    0.71
    """
    x, y = (_centred(t) for t in _pair(x, y))
    if max(x.shape[1], y.shape[1]) < len(x):
        # ‖YᵀX‖² = ⟨XXᵀ, YYᵀ⟩ and ‖XᵀX‖ = ‖XXᵀ‖: O(N D²) instead of O(N² D).
        return _ratio((y.T @ x).square().sum(), (x.T @ x).norm() * (y.T @ y).norm())
    return _aligned(x @ x.T, y @ y.T)  # (N, N) Grams, centred since x and y are


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    """A CKA: at most 1 by Cauchy–Schwarz (rounding can overshoot it); NaN for a constant representation."""
    return min(num.item() / den.item(), 1.0) if den > 0 else math.nan


def _aligned(kx: torch.Tensor, ky: torch.Tensor) -> float:
    """⟨Kx, Ky⟩ / (‖Kx‖ ‖Ky‖) of centred Grams: HSIC(Kx, Ky) / √(HSIC(Kx, Kx) HSIC(Ky, Ky))."""
    return _ratio((kx * ky).sum(), kx.norm() * ky.norm())


def _centred_rbf_gram(x: torch.Tensor, sigma_fraction: float, what: str) -> torch.Tensor:
    """H K H for the RBF kernel of the rows of ``x`` (N, D); (N, N)."""
    if check_finite_number(sigma_fraction, "sigma_fraction") <= 0:
        raise ValueError(f"sigma_fraction must be > 0 (Kornblith et al. use 0.2 to 0.8), got {sigma_fraction}")
    x = x - x.mean(0)  # distances do not change; fewer cancellations in ‖a‖² + ‖b‖² − 2a·b
    sq = (x * x).sum(1)  # (N,)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0).fill_diagonal_(0)  # (N, N) squared distances
    dist = d2[torch.ones_like(d2, dtype=torch.bool).triu(1)].sqrt().sort().values  # (N(N-1)/2,) one per pair
    median = (dist[(len(dist) - 1) // 2] + dist[len(dist) // 2]) / 2
    if median == 0:
        if dist[-1] == 0:  # a constant representation: its centred Gram is 0, its CKA NaN
            return torch.zeros_like(d2)
        raise ValueError(
            f"more than half of the pairs of inputs have identical {what}, so the median distance, and the "
            "RBF bandwidth with it, is 0: compare on more varied inputs, or use linear_cka"
        )
    k = torch.exp(-d2 / (2 * (sigma_fraction * median) ** 2))
    return k - k.mean(0) - k.mean(1, keepdim=True) + k.mean()


def rbf_cka(x: torch.Tensor, y: torch.Tensor, sigma_fraction: float = 0.5) -> float:
    """CKA with RBF kernels: HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)), K and L centred N × N.

    ``K[i, j] = exp(−‖xᵢ − xⱼ‖² / 2σ²)`` with σ = ``sigma_fraction`` × the median
    Euclidean distance between two distinct rows, for ``x`` and ``y`` separately:
    Kornblith et al.'s bandwidth (their code takes the median over all N² entries, zero
    diagonal included, slightly smaller for small N). 1 for rotated, scaled copies.

    Memory and time grow as N² (a few N × N float64 matrices: 8 MB each at N = 1,000,
    800 MB at 10,000): callers compare a subsample, e.g. the same 1,000 rows of both.

    >>> x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    >>> round(rbf_cka(x, x), 6), round(rbf_cka(x, x**2), 2)
    (1.0, 0.38)
    """
    x, y = _pair(x, y)
    return _aligned(*(_centred_rbf_gram(t, sigma_fraction, f"rows of {w}") for t, w in ((x, "x"), (y, "y"))))


def cka_matrix(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], kind: str = "linear", sigma_fraction: float = 0.5
) -> torch.Tensor:
    """CKA of every layer in ``xs`` with every layer in ``ys``; (len(xs), len(ys)) float64.

    ``kind`` is ``"linear"`` (:func:`linear_cka`) or ``"rbf"`` (:func:`rbf_cka`, with
    ``sigma_fraction``). Every layer holds activations of the same N inputs.

    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.randn(200, 8, generator=g)
    >>> b = torch.randn(200, 8, generator=g)
    >>> cka_matrix([a, b], [b, a]).round(decimals=2)
    tensor([[0.0400, 1.0000],
            [1.0000, 0.0400]], dtype=torch.float64)
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: choose one of {KINDS}")
    for what, seq in (("xs", xs), ("ys", ys)):
        if isinstance(seq, torch.Tensor) or not isinstance(seq, Sequence) or len(seq) == 0:
            raise TypeError(f"{what} must be a non-empty list of activations (N, D), got {type(seq).__name__}")
    named = [(f"xs[{i}]", x) for i, x in enumerate(xs)] + [(f"ys[{j}]", y) for j, y in enumerate(ys)]
    for what, t in named[1:]:
        _pair(named[0][1], t, (named[0][0], what))  # all checked, all of one N, before any work
    if kind == "linear":
        return torch.tensor([[linear_cka(x, y) for y in ys] for x in xs], dtype=F64)
    # Each layer's Gram once, not once per pair.
    grams = [_centred_rbf_gram(as_units(t, maps=False).detach().to("cpu", F64), sigma_fraction, w) for w, t in named]
    return torch.tensor([[_aligned(kx, ky) for ky in grams[len(xs) :]] for kx in grams[: len(xs)]], dtype=F64)


def most_similar_layer(matrix: torch.Tensor) -> torch.Tensor:
    """For each row of a similarity matrix, the column most similar to it; (rows,) long.

    On ``cka_matrix(layers_of_seed_0, layers_of_seed_1)``, Kornblith et al.'s test passes
    for layer i when entry i is i. Ties go to the first column; NaN never wins (-1 for a
    row of NaN).

    >>> most_similar_layer(torch.tensor([[0.9, 0.2], [0.7, 0.8], [math.nan, math.nan]]))
    tensor([ 0,  1, -1])
    """
    if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or 0 in matrix.shape:
        got = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise ValueError(f"expected a non-empty 2-D similarity matrix (rows, columns), e.g. cka_matrix's; got {got}")
    if not matrix.is_floating_point():
        raise TypeError(f"expected a floating-point similarity matrix, got dtype {matrix.dtype}")
    best = matrix.masked_fill(matrix.isnan(), -math.inf).argmax(1)
    return best.masked_fill(matrix.isnan().all(1), -1)


def _whitened(x: torch.Tensor, eps: float) -> torch.Tensor:
    """An orthonormal basis (N, r) of the centred columns' span: the data, whitened by its thin SVD."""
    u, s, _ = torch.linalg.svd(_centred(x), full_matrices=False)  # x = U S Vᵀ, so U = x V S⁻¹
    return u[:, s > eps * s[0]]


def canonical_correlations(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The canonical correlations of ``x`` and ``y``, largest first; (min(r_x, r_y),) float64.

    The k-th is the largest correlation of a linear combination of units of ``x`` with
    one of ``y``, uncorrelated with the earlier pairs; the first is the maximal
    correlation. Both are centred and whitened by a thin SVD (X = U S Vᵀ); the
    correlations are the singular values of U_xᵀ U_y (Björck and Golub 1973).
    Regularisation: directions with a singular value below ``eps`` × the largest are
    dropped, so r_x, r_y count only directions the data vary in (a dead or copied unit
    adds none) and rounding noise is never scaled up; relative, so scale changes nothing.

    Needs N well above r_x + r_y: when r_x + r_y > N, the spans share r_x + r_y − N
    directions whatever the data, each a correlation of exactly 1.

    >>> x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0))
    >>> canonical_correlations(x, x[:, :2] @ torch.tensor([[2.0, 1.0], [0.0, 1.0]])).round(decimals=6)
    tensor([1., 1.], dtype=torch.float64)
    """
    x, y = _pair(x, y)
    if not 0 < check_finite_number(eps, "eps") < 1:
        raise ValueError(f"eps must lie in (0, 1), a fraction of the largest singular value; got {eps}")
    ux, uy = _whitened(x, eps), _whitened(y, eps)
    if 0 in (ux.shape[1], uy.shape[1]):  # a constant representation: nothing to correlate
        return torch.empty(0, dtype=F64)
    return torch.linalg.svdvals(ux.T @ uy).clamp(max=1.0)  # rounding can overshoot 1


def cca_similarity(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6, top: int | None = None) -> float:
    """Mean canonical correlation ρ̄ (Raghu et al. 2017; Kornblith et al. 2019), in [0, 1].

    The mean of :func:`canonical_correlations` (see there for ``eps`` and for N); NaN when
    either representation is constant. 1 for ``y = x A`` with any invertible A.

    A plain mean averages as many correlations as the narrower layer has directions, so
    pairs of layers of different widths are averaged over different counts, and a layer
    that is a linear image of another (the logits of ``fc2_post``) scores at least as high
    against a third layer as its source, if it is narrower. ``top=k`` averages the ``k``
    largest correlations for every pair (a missing one, where a layer has fewer than
    ``k`` directions, counts as 0), so that comparisons between layer pairs are like for like.

    >>> x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0))
    >>> y = x[:, :2] + 0.5 * torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    >>> round(cca_similarity(x, y), 3) == round(cca_similarity(x, y, top=2), 3), cca_similarity(x, y, top=4) < 0.5
    (True, True)
    """
    rho = canonical_correlations(x, y, eps)
    if len(rho) == 0:
        return math.nan
    if top is not None:
        check_positive_int(top, "top")
        return torch.cat([rho[:top], rho.new_zeros(max(0, top - len(rho)))]).mean().item()
    return rho.mean().item()


def unit_correlations(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the inputs of every unit of ``x`` with every unit of ``y``; (D1, D2) float64.

    A unit that is constant over the inputs (a dead ReLU) has no correlation: its row
    (a unit of ``x``) or column (of ``y``) is NaN. :func:`match_units` treats NaN as 0.

    >>> x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    >>> unit_correlations(x, -x)
    tensor([[-1.0000,     nan],
            [    nan,     nan]], dtype=torch.float64)
    """
    x, y = (_centred(t) for t in _pair(x, y))
    # A constant unit's centred column is exactly 0, so its entries are 0 / 0 = NaN.
    r = (x.T @ y) / (x.norm(dim=0)[:, None] * y.norm(dim=0)[None, :])  # (D1, D2)
    return r.clamp(-1.0, 1.0)


@dataclass(frozen=True)
class UnitMatch:
    """A one-to-one pairing of units of ``x`` with units of ``y`` and each pair's correlation.

    ``pairs[i] = (unit of x, its partner in y)``, ordered by the unit of x; there are
    k = min(D1, D2) pairs (the units of the wider layer left over get no partner).
    ``correlations[i]`` is the pair's Pearson correlation, NaN where a unit is constant.
    """

    pairs: torch.Tensor  # (k, 2) long
    correlations: torch.Tensor  # (k,) float64


def match_units(x: torch.Tensor, y: torch.Tensor) -> UnitMatch:
    """The one-to-one matching of units that maximises the summed correlation (Li et al. 2016).

    The Hungarian algorithm on :func:`unit_correlations`, constant units counted as 0:
    no unit of ``y`` partners two units of ``x``. Chance: :func:`shuffled_baseline`.

    >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    >>> match_units(x, x[:, [2, 0, 1]]).pairs.tolist()
    [[0, 1], [1, 2], [2, 0]]
    """
    from scipy.optimize import linear_sum_assignment

    r = unit_correlations(x, y)  # (D1, D2)
    rows, cols = (torch.as_tensor(i) for i in linear_sum_assignment(r.nan_to_num(0.0).numpy(), maximize=True))
    return UnitMatch(pairs=torch.stack([rows, cols], 1), correlations=r[rows, cols])


def best_partner(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The highest correlation of each unit of ``x`` with any unit of ``y``, partners shared; (D1,) float64.

    NaN for a constant unit of ``x``, or when every unit of ``y`` is constant.
    """
    r = unit_correlations(x, y)
    best = r.masked_fill(r.isnan(), -math.inf).max(1).values
    return best.masked_fill(best == -math.inf, math.nan)


def shuffled_baseline(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> UnitMatch:
    """:func:`match_units` after each unit of ``y`` is shuffled over the inputs on its own.

    Each column of ``y`` is permuted on its own (seeded): a unit keeps its distribution
    but loses its alignment with the inputs. The chance level for "how many units have a
    partner above a threshold".
    """
    x, y = _pair(x, y)
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(y.shape, generator=g, dtype=F64).argsort(0)  # (N, D2): a permutation per column
    return match_units(x, y.gather(0, order))


def random_rotation(d: int, seed: int = 0) -> torch.Tensor:
    """A random orthogonal matrix (d, d), uniform over rotations and reflections (Haar); float64.

    The QR decomposition of a Gaussian matrix, with the signs fixed so that the result
    is uniformly distributed (Mezzadri 2007).

    >>> q = random_rotation(5, seed=1)
    >>> torch.allclose(q @ q.T, torch.eye(5, dtype=torch.float64))
    True
    """
    check_positive_int(d, "d")
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(d, dtype=F64))


def rotated_baseline(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> UnitMatch:
    """:func:`match_units` after ``y``'s units are replaced by a random rotation of them.

    The rotated layer holds exactly the same information as ``y``, in another basis: its
    linear CKA with ``x`` (and every rotation-invariant similarity) is unchanged, while
    its "units" are random mixtures of ``y``'s. So this is the null for a *privileged
    basis*: if ``x``'s units find partners above a threshold in ``y`` no more often than
    in a rotated ``y``, units recur only as much as the subspace does. (Shuffling each
    unit over the inputs, :func:`shuffled_baseline`, destroys the information itself, and
    can only say that units recur more than in unrelated data.)

    >>> x = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    >>> bool(match_units(x, x).correlations.min() > 0.99), bool(rotated_baseline(x, x).correlations.min() < 0.99)
    (True, True)
    """
    x, y = _pair(x, y)
    return match_units(x, (y - y.mean(0)) @ random_rotation(y.shape[1], seed))
