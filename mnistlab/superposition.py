"""The toy model of superposition (Elhage et al., 2022, "Toy Models of Superposition").

``n_features`` features, each zero with probability ``sparsity`` and otherwise uniform
in [0, 1], are squeezed into ``n_hidden < n_features`` dimensions and read back out
through the same matrix::

    h  = W x                 (n_hidden,)    W: (n_hidden, n_features), hook point "hidden"
    x' = ReLU(Wᵀ h + b)      (n_features,)

and trained to reconstruct ``x``, feature ``i`` weighted by its importance
``importance ** i``. Column ``W_i`` is where feature ``i`` is stored. When the features
are dense the model keeps the ``n_hidden`` most important ones in orthogonal directions
and drops the rest, as PCA would; when they are sparse it stores more features than it
has dimensions, in directions that interfere (five features in two dimensions make a
regular pentagon), and its negative bias filters out the small interference.

* :func:`train_toy` trains one model, :func:`train_toys` many in one pass (stacked
  weights), each as it would train alone (to float32 rounding: a group's batched
  products may add in another order);
* :func:`feature_norms`, :func:`interference`, :func:`represented`,
  :func:`polygon_angles` and :func:`top_features_stored` read a trained ``W``;
* :func:`phase_diagram` and :func:`phase_outcome`: the paper's smallest case, two
  features in one dimension, over a grid of sparsity and relative importance.

>>> model = train_toy(ToyConfig(sparsity=0.9))
>>> represented(model.W).tolist()
[True, True, True, True, True]
>>> angles = polygon_angles(model.W)  # five angles of about 2π/5: a regular pentagon
>>> bool((angles - 2 * math.pi / 5).abs().max() < 0.05)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.checks import is_int, is_number
from mnistlab.hooks import HookPoint, name_hook_points

# Adam's constants, as torch.optim.Adam's defaults (the oracle tests train with it).
BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass(frozen=True)
class ToyConfig:
    """One toy model and how it is trained.

    Attributes:
        n_features: features in the input (and the output), ``n``.
        n_hidden: dimensions of the bottleneck, ``m`` (at most ``n_features``).
        sparsity: probability that a feature is 0 in a sample, in [0, 1); a present
            feature is uniform in [0, 1].
        importance: feature ``i`` weighs ``importance ** i`` in the loss. 1.0 makes all
            features equal; below 1 they decay (the paper uses 0.7 and 0.9). Above 1
            they grow, which the two-feature phase diagram uses for a second feature
            more important than the first.
        steps, batch_size: Adam steps, each on a fresh batch of ``batch_size`` samples.
        lr: Adam's initial learning rate; it decays to 0 along half a cosine over the
            steps. In 4,000 steps a constant 1e-3 (the paper's) leaves the features a
            dense model drops at norms up to 0.2, and a constant 1e-2 jitters the
            pentagon's angles by 0.02 rad; 1e-2 with the decay brings both within
            0.003 (seeds 0-5).
        seed: seeds the initial weights and every batch.
    """

    n_features: int = 5
    n_hidden: int = 2
    sparsity: float = 0.9
    importance: float = 1.0
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self):
        if not is_int(self.n_features) or self.n_features < 1:
            raise ValueError(f"ToyConfig.n_features must be an int >= 1, got {self.n_features!r}")
        if not is_int(self.n_hidden) or not 1 <= self.n_hidden <= self.n_features:
            raise ValueError(
                f"ToyConfig.n_hidden must be an int in [1, n_features] = [1, {self.n_features}], got {self.n_hidden!r}"
            )
        if not is_number(self.sparsity) or not 0 <= self.sparsity < 1:
            raise ValueError(f"ToyConfig.sparsity must be a number in [0, 1), got {self.sparsity!r}")
        if not is_number(self.importance) or self.importance <= 0:
            raise ValueError(
                f"ToyConfig.importance must be a finite number > 0 (1.0: all equal; < 1: decaying), "
                f"got {self.importance!r}"
            )
        if not is_int(self.steps) or self.steps < 0:
            raise ValueError(f"ToyConfig.steps must be an int >= 0, got {self.steps!r}")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"ToyConfig.batch_size must be an int >= 1, got {self.batch_size!r}")
        if not is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"ToyConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"ToyConfig.seed must be an int in [0, 2**63), got {self.seed!r}")

    @property
    def importances(self) -> torch.Tensor:
        """Each feature's weight in the loss, ``importance ** i``; shape (n_features,)."""
        return torch.tensor(self.importance, dtype=torch.float64).pow(torch.arange(self.n_features)).float()


def _initial_weights(config: ToyConfig, generator: torch.Generator) -> torch.Tensor:
    """Xavier-normal W, as the paper; the first draw of the config's generator."""
    std = math.sqrt(2.0 / (config.n_hidden + config.n_features))
    return torch.randn(config.n_hidden, config.n_features, generator=generator) * std  # (m, n)


class ToyModel(nn.Module):
    """x → ReLU(WᵀW x + b), with a hook point ``hidden`` on the bottleneck ``W x``.

    ``ToyModel(config)`` holds the initial weights :func:`train_toy` starts from
    (Xavier-normal ``W`` from ``config.seed``, ``b = 0``).

    >>> model = ToyModel(ToyConfig(n_features=3, n_hidden=2))
    >>> model(torch.rand(4, 3)).shape
    torch.Size([4, 3])
    """

    def __init__(self, config: ToyConfig = ToyConfig()):
        super().__init__()
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        self.W = nn.Parameter(_initial_weights(config, generator))  # (m, n)
        self.b = nn.Parameter(torch.zeros(config.n_features))  # (n,)
        self.hidden = HookPoint()
        name_hook_points(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.config.n_features
        if x.ndim != 2 or x.shape[1] != n:
            raise ValueError(f"ToyModel expects features of shape (B, {n}), got {tuple(x.shape)}")
        h = self.hidden(x @ self.W.T)  # (B, m)
        return torch.relu(h @ self.W + self.b)  # (B, n)


def _draw(
    generators: Sequence[torch.Generator], which: torch.Tensor, sparsity: torch.Tensor, n_features: int, n: int
) -> torch.Tensor:
    """``n`` samples for each model, as (G, n_features, n).

    Model ``g`` reads the two uniform draws of ``generators[which[g]]`` and thresholds
    them at its own ``sparsity[g]`` (G, 1, 1): its data depend on its seed and sparsity
    only, never on the models it trains beside (:func:`train_toys`).
    """
    uv = torch.stack([torch.rand(2, n_features, n, generator=g) for g in generators])  # (K, 2, n_features, n)
    u, v = uv[which].unbind(1)  # (G, n_features, n) each: is the feature present? its value if so
    # u - S lies in (-1, 1), so its ceiling is 1 where u > S (probability 1 - S) and 0 elsewhere:
    # a 0/1 mask in float arithmetic, several times faster than a boolean one.
    return v * (u - sparsity).ceil()  # (G, n_features, n)


def feature_batch(config: ToyConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` samples of the toy data: each feature 0 with probability ``config.sparsity``,
    else uniform in [0, 1]; shape (n, n_features).

    This is the batch :func:`train_toy` draws from ``generator`` at each step.

    >>> x = feature_batch(ToyConfig(sparsity=0.9), 10_000, torch.Generator().manual_seed(0))
    >>> round((x == 0).float().mean().item(), 2)
    0.9
    """
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be an int >= 1 (samples to draw), got {n!r}")
    sparsity = torch.tensor(config.sparsity, dtype=torch.float32).reshape(1, 1, 1)
    return _draw([generator], torch.tensor([0]), sparsity, config.n_features, n)[0].T  # (n, n_features)


def _check_stackable(configs: Sequence[ToyConfig]) -> None:
    if not configs:
        raise ValueError("train_toys needs at least one ToyConfig")
    first = configs[0]
    for i, c in enumerate(configs):
        if not isinstance(c, ToyConfig):
            raise TypeError(f"configs[{i}] must be a ToyConfig, got {type(c).__name__}")
        differ = [
            f for f in ("n_features", "n_hidden", "steps", "batch_size", "lr") if getattr(c, f) != getattr(first, f)
        ]
        if differ:
            raise ValueError(
                f"configs[{i}] differs from configs[0] in {differ}: models trained in one pass may "
                "differ only in sparsity, importance and seed; train the others in another call"
            )


def train_toys(configs: Sequence[ToyConfig]) -> list[ToyModel]:
    """Train several toy models in one pass; each is what :func:`train_toy` gives, to float32 rounding.

    The models may differ in ``sparsity``, ``importance`` and ``seed``. Their weights
    are stacked, (G, m, n), and each step is one batched matrix product for all of
    them. Each model keeps its own data (its seed's generator draws its initial weights
    and its batches, as alone) and its own gradient: the loss is a sum over models, and
    Adam acts elementwise. The gradient is written out (:func:`_grad`) rather than left
    to autograd: at these sizes a step costs its number of operations, and this needs
    several times fewer than autograd and ``torch.optim.Adam``.

    Layout: a batch is (G, n, B), features on the rows and samples along the contiguous
    last axis, so the products are (n, n) @ (n, B), which BLAS runs fast; with samples
    on the rows they would be (B, n) @ (n, n), many times slower for n = 2.
    """
    _check_stackable(configs)
    first = configs[0]
    m, n, B = first.n_hidden, first.n_features, first.batch_size
    seeds = list(dict.fromkeys(c.seed for c in configs))  # distinct, in order of first use
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    which = torch.tensor([seeds.index(c.seed) for c in configs])  # (G,): each model's generator
    sparsity = torch.tensor([c.sparsity for c in configs], dtype=torch.float32).reshape(-1, 1, 1)  # (G, 1, 1)
    # d loss / d x'_i of the importance-weighted mean squared error, up to (x' - x): 2 I_i / B.
    weight = torch.stack([c.importances for c in configs]).unsqueeze(2) * (2.0 / B)  # (G, n, 1)
    params = torch.zeros(len(configs), m + 1, n)  # (G, m + 1, n): W on rows 0..m-1, b on row m
    params[:, :m] = torch.stack([_initial_weights(first, g) for g in generators])[which]
    W, b = params[:, :m], params[:, m:]  # views: (G, m, n) and (G, 1, n)
    mean, var = torch.zeros_like(params), torch.zeros_like(params)  # Adam's moments
    (beta1, beta2), lr = BETAS, first.lr
    for t in range(1, first.steps + 1):
        x = _draw(generators, which, sparsity, n, B)  # (G, n, B)
        grad = _grad(W, b, x, weight)  # (G, m + 1, n)
        # Adam, as torch.optim.Adam computes it (the oracle test compares the two), with the
        # learning rate decaying from lr to 0 along half a cosine.
        lr_t = lr * 0.5 * (1 + math.cos(math.pi * (t - 1) / first.steps))
        mean.lerp_(grad, 1 - beta1)
        var.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (var.sqrt() / math.sqrt(1 - beta2**t)).add_(EPS)
        params.addcdiv_(mean, denom, value=-lr_t / (1 - beta1**t))
    models = []
    for g, config in enumerate(configs):
        model = ToyModel(config)
        with torch.no_grad():
            model.W.copy_(W[g])
            model.b.copy_(b[g, 0])
        models.append(model)
    return models


def _grad(W: torch.Tensor, b: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The gradient of Σ_i I_i mean_b (x'_i - x_i)² for stacked models, as (G, m + 1, n).

    With M = WᵀW (n, n) the model is z = M x + b, x' = ReLU(z). Then
    dL/dz = (2 I / B)(x' - x) where z > 0, dL/dM = dz xᵀ, and since M = WᵀW,
    dL/dW = W (dL/dM + dL/dMᵀ); dL/db = Σ_b dz.
    """
    z = torch.baddbmm(b.mT, W.mT @ W, x)  # (G, n, B)
    out = z.relu()
    # out >= 0, so its sign is ReLU's derivative: 1 where z > 0, 0 elsewhere.
    dz = (out - x).mul_(weight).mul_(out.sign())  # (G, n, B)
    dM = dz @ x.mT  # (G, n, n)
    return torch.cat([W @ (dM + dM.mT), dz.sum(2).unsqueeze(1)], 1)  # (G, m + 1, n)


def train_toy(config: ToyConfig = ToyConfig()) -> ToyModel:
    """Train one toy model: Adam on the importance-weighted squared error of the paper,
    ``mean over samples of Σ_i importance**i · (x_i − x'_i)²``, each step on a fresh batch.

    Deterministic: the config's own generator (``config.seed``) draws the initial
    weights and every batch, so two calls give the same bits.

    >>> model = train_toy(ToyConfig(sparsity=0.0, importance=0.7))
    >>> feature_norms(model.W).round(decimals=1).tolist()  # the two most important kept, as in PCA
    [1.0, 1.0, 0.0, 0.0, 0.0]
    """
    return train_toys([config])[0]


# ---------------------------------------------------------------------------
# Reading a trained W: (m, n), column i is where feature i is stored.
# ---------------------------------------------------------------------------


def _check_W(W: torch.Tensor) -> torch.Tensor:
    if not isinstance(W, torch.Tensor):
        raise TypeError(f"W must be a torch.Tensor (n_hidden, n_features), got {type(W).__name__}")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n_hidden, n_features), got shape {tuple(W.shape)}")
    return W.detach()


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """‖W_i‖, how strongly feature ``i`` is stored; shape (n_features,).

    >>> feature_norms(torch.tensor([[3.0, 0.0], [4.0, 1.0]])).tolist()
    [5.0, 1.0]
    """
    return _check_W(W).norm(dim=0)


def interference(W: torch.Tensor) -> torch.Tensor:
    """The paper's superposition measure Σ_{j≠i} (Ŵ_i · W_j)²; shape (n_features,).

    How much the other features project onto feature ``i``'s direction Ŵ_i = W_i/‖W_i‖:
    0 when feature ``i`` has a direction of its own, 1 when one other feature of unit
    norm shares it. A column of zeros has no direction and counts 0; a column that is
    merely small (a feature the model dropped) has a direction that means nothing, so
    read this only where :func:`represented` holds.

    >>> [round(v, 4) for v in interference(torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 4.0]])).tolist()]
    [9.0, 16.0, 2.92]
    """
    W = _check_W(W)
    norms = W.norm(dim=0)  # (n,)
    unit = W / torch.where(norms > 0, norms, 1.0)  # (m, n)
    overlap = (unit.T @ W) ** 2  # (n, n): (Ŵ_i · W_j)²
    return overlap.fill_diagonal_(0).sum(1)


def represented(W: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Whether each feature is stored, ``‖W_i‖ > threshold``; bool, shape (n_features,).

    Trained models store a feature with norm near 1 or drop it to near 0, so any
    threshold well between the two gives the same answer.

    >>> represented(torch.tensor([[1.0, 0.1], [0.0, 0.1]])).tolist()
    [True, False]
    """
    if not is_number(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0 (a norm), got {threshold!r}")
    return feature_norms(W) > threshold


def polygon_angles(W: torch.Tensor, features: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """The angles (radians) between angularly consecutive columns of a 2-D ``W``; shape (k,), float64.

    The chosen columns are sorted by their angle around the origin, counter-clockwise
    from the one with the smallest angle in (-π, π]; entry ``j`` is the angle from the
    ``j``-th to the next, the last wrapping around to the first, so the ``k`` angles
    sum to 2π. A regular pentagon gives five angles of 2π/5.

    Args:
        W: (2, n_features).
        features: the columns to use (indices or a boolean mask); by default the
            represented ones (:func:`represented`).

    >>> square = torch.tensor([[1.0, 0.0, -2.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
    >>> [round(a / math.pi, 6) for a in polygon_angles(square).tolist()]  # in units of π
    [0.5, 0.5, 0.5, 0.5]
    """
    W = _check_W(W)
    if W.shape[0] != 2:
        raise ValueError(f"polygon_angles needs a 2-D hidden space, W of shape (2, n_features); got {tuple(W.shape)}")
    keep = represented(W) if features is None else torch.as_tensor(features)
    if keep.dtype == torch.bool and keep.shape != (W.shape[1],):
        raise ValueError(f"a boolean features mask must have shape ({W.shape[1]},), got {tuple(keep.shape)}")
    cols = W[:, keep]  # (2, k)
    if cols.shape[1] == 0:
        raise ValueError("no feature to draw a polygon from: none is represented (or features selects none)")
    cols = cols.double()  # angles in float64, so that k of them sum to 2π to 15 digits
    theta = torch.atan2(cols[1], cols[0]).sort().values  # (k,) in (-π, π]
    return torch.diff(theta, append=theta[:1] + 2 * math.pi)


def top_features_stored(W: torch.Tensor, importances: torch.Tensor, threshold: float = 0.5) -> bool:
    """Whether ``W`` stores its ``n_hidden`` most important features and no other, as PCA would.

    True when exactly ``n_hidden`` features are represented and none of them is less
    important than a feature left out (so ties in importance are not held against it).

    >>> W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> top_features_stored(W, torch.tensor([1.0, 0.7, 0.49]))
    True
    """
    W = _check_W(W)
    importances = torch.as_tensor(importances)
    if importances.shape != (W.shape[1],):
        raise ValueError(
            f"importances must have shape ({W.shape[1]},), one per column of W; got {tuple(importances.shape)}"
        )
    stored = represented(W, threshold)
    if int(stored.sum()) != W.shape[0]:
        return False
    if stored.all():  # n_hidden == n_features: nothing left out
        return True
    return bool(importances[stored].min() >= importances[~stored].max())


# ---------------------------------------------------------------------------
# The phase diagram: two features, one dimension.
# ---------------------------------------------------------------------------

NOT_REPRESENTED, DEDICATED, SUPERPOSITION, OTHER = 0, 1, 2, -1
OUTCOMES = {
    NOT_REPRESENTED: "not represented",
    DEDICATED: "dedicated dimension",
    SUPERPOSITION: "superposition",
    OTHER: "both, same sign",
}


def phase_outcome(W: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """What a two-feature model does with feature 1; W is (..., m, 2), the result (...) int64.

    With ``‖·‖`` a column's norm and ``t = threshold``:

    * ``NOT_REPRESENTED`` (0): ``‖W_1‖ <= t``;
    * ``DEDICATED`` (1): ``‖W_1‖ > t`` and ``‖W_0‖ <= t`` — feature 1 has the
      dimension to itself, feature 0 is dropped;
    * ``SUPERPOSITION`` (2): both norms ``> t`` and ``W_0 · W_1 < 0`` — both share the
      dimension, with opposite signs, so the ReLU can tell them apart;
    * ``OTHER`` (-1): both norms ``> t`` and ``W_0 · W_1 >= 0`` — the dimension holds a
      mix of the two, their weighted sum. The paper's diagram has no region for it; it
      turns up where two choices tie, dense features of equal importance (features in
      [0, 1] are not centred, so their sum is the direction of most variance). It is
      named so that it cannot hide inside another outcome.

    >>> phase_outcome(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, -1.0]], [[1.0, 1.0]]])).tolist()
    [0, 1, 2, -1]
    """
    if not isinstance(W, torch.Tensor) or W.ndim < 2 or W.shape[-1] != 2:
        shape = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"phase_outcome needs the weights of two-feature models, shape (..., m, 2); got {shape}")
    W = W.detach()
    norms = W.norm(dim=-2)  # (..., 2)
    has0, has1 = norms[..., 0] > threshold, norms[..., 1] > threshold
    dot = (W[..., 0] * W[..., 1]).sum(-1)  # (...)
    both = torch.where(dot < 0, SUPERPOSITION, OTHER)
    return torch.where(~has1, NOT_REPRESENTED, torch.where(~has0, DEDICATED, both)).long()


@dataclass(frozen=True)
class PhaseDiagram:
    """Two features in one dimension over a grid: row ``i`` is ``sparsities[i]``, column
    ``j`` is ``importances[j]``.

    sparsities: (S,) both features' sparsity.
    importances: (R,) feature 1's importance relative to feature 0's (which is 1).
    outcomes: (S, R) int64, :func:`phase_outcome` of each cell's model: ``NOT_REPRESENTED``
        (0), ``DEDICATED`` (1), ``SUPERPOSITION`` (2), or ``OTHER`` (-1).
    W: (S, R, 1, 2) and b: (S, R, 2): each cell's kept model.
    seeds: (S, R) int64, the seed of each cell's kept run; losses: (S, R) its held-out loss.
    steps: how every run was trained.
    """

    sparsities: torch.Tensor
    importances: torch.Tensor
    outcomes: torch.Tensor
    W: torch.Tensor
    b: torch.Tensor
    seeds: torch.Tensor
    losses: torch.Tensor
    steps: int

    def config(self, i: int, j: int) -> ToyConfig:
        """The config of cell (i, j)'s kept run: ``train_toy(diagram.config(i, j))`` trains it again."""
        return _cell_config(float(self.sparsities[i]), float(self.importances[j]), self.steps, int(self.seeds[i, j]))


def _cell_config(sparsity: float, importance: float, steps: int, seed: int) -> ToyConfig:
    # With two features, importance ** i is (1, importance): feature 1 relative to feature 0.
    return ToyConfig(n_features=2, n_hidden=1, sparsity=sparsity, importance=importance, steps=steps, seed=seed)


def _held_out_loss(models: Sequence[ToyModel], n: int, seed: int) -> torch.Tensor:
    """Each model's importance-weighted squared error on ``n`` fresh samples at its own
    sparsity, all models reading the same uniform draws; shape (G,)."""
    uv = torch.rand(2, models[0].config.n_features, n, generator=torch.Generator().manual_seed(seed))
    losses = []
    with torch.no_grad():
        for model in models:  # one at a time: a (G, n_features, 2**16) batch would take G times the memory
            x = (uv[1] * (uv[0] - model.config.sparsity).ceil()).T  # (n, n_features), as _draw makes them
            losses.append((model.config.importances * (model(x) - x) ** 2).sum(1).mean())
    return torch.stack(losses)


def phase_diagram(
    sparsities: Sequence[float],
    importances: Sequence[float],
    steps: int = 2000,
    seed: int = 0,
    restarts: int = 4,
    threshold: float = 0.5,
) -> PhaseDiagram:
    """Train two-feature, one-dimension models over a grid of (sparsity, importance) and classify them.

    Feature 0 has importance 1, feature 1 importance ``r`` for each ``r`` of
    ``importances``; both have the cell's sparsity. The paper finds three regions: with
    dense features the more important feature takes the dimension (feature 1 not
    represented for ``r < 1``, dedicated for ``r > 1``); with sparse features both share
    it in superposition, over a band of ``r`` around 1 that widens as sparsity grows.

    Each cell is trained ``restarts`` times, with seeds ``seed, seed + 1, ...``, and the
    run of lowest loss on 2**16 held-out samples is kept: a run whose two initial
    weights have the same sign cannot reach superposition (one of them would have to
    cross zero, where it stops being learned) and stalls with one feature. Every run
    of the grid trains in one pass (:func:`train_toys`), each exactly as
    ``train_toy(diagram.config(i, j))`` trains the one kept. Two-feature models settle
    sooner than the default 4,000 steps of :class:`ToyConfig`: 2,000 give the same
    outcomes on a 5 × 5 grid (sparsity 0 to 0.99, importance 0.2 to 5), in half the time.

    >>> d = phase_diagram([0.0, 0.95], [0.5, 2.0])
    >>> d.outcomes.tolist()  # rows: sparsity 0, 0.95; columns: r = 0.5, 2
    [[0, 1], [2, 2]]
    """
    sparsities, importances = [float(s) for s in sparsities], [float(r) for r in importances]
    if not sparsities or not importances:
        raise ValueError(f"need at least one sparsity and one importance, got {sparsities} and {importances}")
    if not is_int(restarts) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1 (runs per cell, the best kept), got {restarts!r}")
    S, R = len(sparsities), len(importances)
    seeds = [seed + k for k in range(restarts)]
    configs = [_cell_config(s, r, steps, k) for k in seeds for s in sparsities for r in importances]
    models = train_toys(configs)
    # A stream of random numbers that no training run of a small seed reads.
    loss = _held_out_loss(models, 2**16, seed=2**62 + seed).reshape(restarts, S, R)
    best = loss.argmin(0)  # (S, R): the first of equal losses
    rows, cols = torch.arange(S)[:, None], torch.arange(R)[None, :]  # with best: one run per cell
    W = torch.stack([m.W.detach() for m in models]).reshape(restarts, S, R, 1, 2)[best, rows, cols]  # (S, R, 1, 2)
    b = torch.stack([m.b.detach() for m in models]).reshape(restarts, S, R, 2)[best, rows, cols]  # (S, R, 2)
    return PhaseDiagram(
        sparsities=torch.tensor(sparsities, dtype=torch.float64),
        importances=torch.tensor(importances, dtype=torch.float64),
        outcomes=phase_outcome(W, threshold),
        W=W,
        b=b,
        seeds=torch.tensor(seeds)[best],
        losses=loss[best, rows, cols],
        steps=steps,
    )
