"""Sparse autoencoders: a layer's activations rewritten as a sparse sum of learned directions.

A layer of D units may carry more than D features, each a direction in activation
space, few of them active on any one input (superposition). A sparse autoencoder
(SAE, dictionary learning) looks for those directions: it encodes an activation
``x`` (N, D) into ``width`` nonnegative feature activations and decodes them back,

    f = ReLU((x − b_dec) W_encᵀ + b_enc)      # (N, width)
    x̂ = f W_decᵀ + b_dec                      # (N, D)

and is trained to reconstruct ``x`` while keeping ``f`` sparse. Each column ``i`` of
``W_dec`` has unit norm and is feature ``i``'s direction, so ``f_i`` is the length
along it and ``Σ_i f_i`` (the L1 norm) is the right sparsity penalty.

The loss is the one of Anthropic's "Towards Monosemanticity" (2023), measured in units
of the data's spread ``σ² = mean ‖x − mean(x)‖²`` so one ``l1`` means the same on a
layer whatever its scale:

    loss = mean_batch ‖x − x̂‖² / σ²  +  l1 · mean_batch Σ_i f_i / σ

The first term is the share of the variance left unexplained (1 at the start, when
``x̂`` is the mean), the second the features' total activation in units of ``σ``.
Training runs on ``x / σ`` and scales the biases back at the end, so the SAE returned
reads and writes the layer's own units. Adam takes the steps; before each step the
gradient of every decoder column loses its component along the column, and after it
the columns are set back to unit norm (as Anthropic did). Dead features are not
resampled: :func:`mnistlab.features.sae_stats` counts them.

What the features are worth, and the edits that splice the SAE into a network or scale
one feature, are in :mod:`mnistlab.features`.

>>> acts = torch.rand(500, 8, generator=torch.Generator().manual_seed(0))  # (N, D)
>>> run = train_sae(acts, SAEConfig(width=16, steps=200))
>>> run.sae.encode(acts).shape
torch.Size([500, 16])
>>> bool((run.sae.W_dec.norm(dim=0) - 1).abs().max() < 1e-5)  # unit-length directions
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import mnistlab.hooks
from mnistlab.cache import ModelCache, cache_key, runtime, source_fingerprint
from mnistlab.checks import as_units, check_finite, check_positive_int, is_int, is_number
from mnistlab.hooks import HookPoint, name_hook_points
from mnistlab.record import snapshot_digest

# Prefixes of the tensors of a cache entry: the SAE's state dict, and the loss history.
SAE, LOSSES = "sae.", "losses"


@dataclass(frozen=True)
class SAEConfig:
    """How to train a sparse autoencoder. Change it with ``dataclasses.replace``.

    Attributes:
        width: number of dictionary features.
        l1: weight of the sparsity penalty (see the module docstring: the loss is in
            units of the data's spread, so the same value suits any layer).
        steps: Adam steps (a step count, not epochs: the cost is the same on 3,600 rows
            as on 54,000).
        batch_size: rows per step, drawn without replacement in pass after pass over
            the data.
        lr: Adam's learning rate.
        seed: seed of the initial dictionary and of the batch order.

    The defaults of ``steps`` and ``lr`` were measured on chapter 2's ``fc1_post``: at
    3,000 steps and 1e-3 about a third of the features still pointed within cosine 0.9
    of their random initial direction; at 6,000 steps and 3e-3, 2% on 54,000 training
    rows (about a fifth on 3,600, where rare features see few updates).
    """

    width: int = 128
    l1: float = 0.2
    steps: int = 6000
    batch_size: int = 256
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self):
        for name in ("width", "steps", "batch_size"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"SAEConfig.{name} must be an int >= 1, got {value!r}")
        if not is_number(self.l1) or not self.l1 >= 0:
            raise ValueError(f"SAEConfig.l1 must be a finite number >= 0 (0: no sparsity penalty), got {self.l1!r}")
        if not is_number(self.lr) or not self.lr > 0:
            raise ValueError(f"SAEConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise ValueError(f"SAEConfig.seed must be an int in [0, 2**63), got {self.seed!r}")


class SparseAutoencoder(nn.Module):
    """One ReLU encoder layer and a linear decoder with unit-norm columns.

    Parameters: ``W_enc`` (width, D), ``b_enc`` (width,), ``W_dec`` (D, width), whose
    column ``i`` is feature ``i``'s direction, and ``b_dec`` (D,), subtracted before
    encoding and added after decoding. A fresh one has a random unit-norm dictionary
    (from ``generator``, or the global generator) with the encoder as its transpose,
    and zero biases.

    ``forward`` passes hook points ``features`` (N, width) and ``reconstruction``
    (N, D), for :func:`mnistlab.hooks.hooks`. (:func:`mnistlab.hooks.run_with_cache`
    takes images only; call :meth:`encode` for the features.)

    >>> sae = SparseAutoencoder(4, 6, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(sae.W_dec.detach().norm(dim=0), torch.ones(6))
    True
    >>> sae(torch.zeros(3, 4)).shape
    torch.Size([3, 4])
    """

    def __init__(self, d_in: int, width: int, generator: torch.Generator | None = None):
        super().__init__()
        self.d_in = check_positive_int(d_in, "the SAE's input dimension d_in")
        self.width = check_positive_int(width, "the SAE's width")
        directions = random_unit_directions(d_in, width, generator)  # (D, width)
        self.W_enc = nn.Parameter(directions.T.clone())  # (width, D)
        self.b_enc = nn.Parameter(torch.zeros(width))  # (width,)
        self.W_dec = nn.Parameter(directions)  # (D, width)
        self.b_dec = nn.Parameter(torch.zeros(d_in))  # (D,)
        self.features = HookPoint()
        self.reconstruction = HookPoint()
        name_hook_points(self)

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, width={self.width}"

    def _check(self, x: torch.Tensor, what: str, size: int) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != size:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{what} must be (N, {size}) for this SAE (d_in={self.d_in}, width={self.width}), got {shape}"
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations (N, width) of activations ``x`` (N, D)."""
        self._check(x, "the SAE's input", self.d_in)
        return F.relu(F.linear(x - self.b_dec, self.W_enc, self.b_enc))  # (N, width)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Activations (N, D) rebuilt from feature activations ``f`` (N, width)."""
        self._check(f, "feature activations", self.width)
        return F.linear(f, self.W_dec, self.b_dec)  # (N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruction(self.decode(self.features(self.encode(x))))


def random_unit_directions(
    d: int, k: int, generator: torch.Generator | None = None, covariance: torch.Tensor | None = None
) -> torch.Tensor:
    """``k`` random unit directions of R^d, as columns (d, k).

    The baseline for :func:`match_features`: how close do directions come by chance?
    Without ``covariance`` they are uniform on the sphere, so in 32 dimensions two of them
    almost never reach a cosine of 0.9. With ``covariance`` (d, d), say of the layer's
    activations, they are Gaussian draws with that covariance, normalised: they crowd
    where the activations vary most, as learned features do, and come close to each
    other far more often (the honest chance level for "two dictionaries found the same
    direction").

    >>> directions = random_unit_directions(3, 5, torch.Generator().manual_seed(0))
    >>> directions.shape, torch.allclose(directions.norm(dim=0), torch.ones(5))
    (torch.Size([3, 5]), True)
    >>> flat = torch.diag(torch.tensor([1.0, 1e-6, 1e-6]))  # the activations vary along the first axis only
    >>> bool(random_unit_directions(3, 5, torch.Generator().manual_seed(0), flat)[0].abs().min() > 0.99)
    True
    """
    check_positive_int(d, "the dimension d")
    check_positive_int(k, "the number of directions k")
    g = torch.randn(d, k, generator=generator)  # (d, k): a Gaussian is the same in every direction
    if covariance is not None:
        if not isinstance(covariance, torch.Tensor) or covariance.shape != (d, d):
            got = tuple(covariance.shape) if isinstance(covariance, torch.Tensor) else type(covariance).__name__
            raise ValueError(f"covariance must be a ({d}, {d}) tensor, got {got}")
        c = check_finite(covariance.detach().cpu().double(), "covariance")
        if not torch.allclose(c, c.T, atol=1e-8 * float(c.abs().max().clamp(min=1e-300))):
            raise ValueError("covariance must be symmetric")
        values, vectors = torch.linalg.eigh(c)
        if values.min() < -1e-8 * values.max().clamp(min=1e-300):
            raise ValueError(
                f"covariance must be positive semi-definite; its smallest eigenvalue is {values.min():.3g}"
            )
        g = (vectors * values.clamp(min=0).sqrt()) @ g.double()  # (d, k) Gaussian with that covariance
        g = g.float()
    return g / g.norm(dim=0, keepdim=True)


@dataclass(frozen=True)
class TrainedSAE:
    """A trained SAE, the config that made it, and its loss after every step.

    ``losses`` (steps,): the training loss of each step's batch (the module docstring
    says in which units). ``seconds``: training time; ``from_cache``: whether it came
    from the cache. Neither changes the SAE, and results keyed on it leave them out.
    """

    sae: SparseAutoencoder
    config: SAEConfig
    losses: torch.Tensor
    seconds: float = dataclasses.field(metadata={"digest": False})
    from_cache: bool = dataclasses.field(default=False, metadata={"digest": False})


def train_sae(acts: torch.Tensor, config: SAEConfig = SAEConfig()) -> TrainedSAE:
    """Train a sparse autoencoder on a layer's activations ``acts`` (N, D).

    Deterministic: the initial dictionary and the batch order come from a generator
    seeded with ``config.seed`` (the global one is not touched), so the same
    activations and config give the same bits on the same machine.
    It trains on the device ``acts`` are on, and returns the SAE there.

    The dictionary starts random (unit columns, encoder = its transpose) and ``b_dec``
    at the data's mean. The gradients are written out by hand (:func:`_loss_and_grads`)
    and Adam updates all parameters as one flat vector (:func:`_adam_step`): three
    times faster than autograd and ``torch.optim.Adam`` on an SAE this small, with the
    same updates up to rounding (``tests/test_dictionary.py`` compares the two).

    Raises:
        ValueError: ``acts`` not (N, D), not finite, or constant (nothing to explain);
            the loss became non-finite (lower ``config.lr``).
    """
    acts = as_units(acts, "train_sae's activations", maps=False).float()
    if not isinstance(config, SAEConfig):
        raise TypeError(f"config must be an SAEConfig, got {type(config).__name__}")
    n, d = acts.shape
    gen = torch.Generator().manual_seed(config.seed)
    mean = acts.mean(0)  # (D,)
    sigma = (acts - mean).pow(2).sum(1).mean().sqrt().item()
    if not sigma > 0:
        raise ValueError(f"train_sae's activations are the same on all {n} rows: there is nothing to explain")
    x = acts / sigma  # (N, D): the loss in units of the data's spread
    sae = SparseAutoencoder(d, config.width, generator=gen).to(acts.device)  # trained where acts are
    with torch.no_grad():
        sae.b_dec.copy_(mean / sigma)  # start at the mean: the first reconstruction explains nothing, no worse
    flat = torch.cat([p.detach().flatten() for p in sae.parameters()])  # W_enc, b_enc, W_dec, b_dec
    grad, m, v = torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros_like(flat)
    params, grads = _views(flat, d, config.width), _views(grad, d, config.width)
    W_dec, g_dec = params[2], grads[2]
    # Pass after pass over the data, each in a new random order, cut into batches.
    total = config.steps * config.batch_size
    passes = [torch.randperm(n, generator=gen) for _ in range(-(-total // n))]
    order = torch.cat(passes)[:total].view(config.steps, config.batch_size).to(acts.device)  # (steps, B)
    losses = torch.empty(config.steps, device=acts.device)
    start = time.perf_counter()
    for step in range(config.steps):
        losses[step] = _loss_and_grads(params, grads, x.index_select(0, order[step]), config.l1)
        # Move each decoder column only across itself: the part of its gradient along the
        # column would just change its norm, which the renormalisation below undoes.
        g_dec.sub_((g_dec * W_dec).sum(0) * W_dec)
        _adam_step(flat, grad, m, v, step + 1, config.lr)
        W_dec.div_(W_dec.norm(dim=0))
    seconds = time.perf_counter() - start
    finite = torch.isfinite(losses)
    if not bool(finite.all()) or not bool(torch.isfinite(flat).all()):
        bad = int((~finite).nonzero()[0]) if not finite.all() else config.steps - 1  # else: the last step's update
        raise ValueError(f"train_sae's loss became non-finite at step {bad}; lower SAEConfig.lr (now {config.lr})")
    with torch.no_grad():
        for p, trained in zip(sae.parameters(), params):
            p.copy_(trained)
        # Back to the layer's own units: f and x̂ scale with x, the directions do not.
        sae.b_enc.mul_(sigma)
        sae.b_dec.mul_(sigma)
    return TrainedSAE(sae.eval(), config, losses.cpu(), seconds)


def _views(flat: torch.Tensor, d: int, width: int) -> tuple[torch.Tensor, ...]:
    """W_enc (width, D), b_enc (width,), W_dec (D, width), b_dec (D,): views into one flat vector."""
    W_enc, b_enc, W_dec, b_dec = flat.split([width * d, width, d * width, d])
    return W_enc.view(width, d), b_enc, W_dec.view(d, width), b_dec


def _loss_and_grads(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], xb: torch.Tensor, l1: float
) -> torch.Tensor:
    """The loss on batch ``xb`` (B, D); writes its gradient with respect to ``params`` into ``grads``.

    loss = Σ‖x̂ − x‖² / B + l1 · Σ f / B, with f = ReLU(pre), pre = (x − b_dec) W_encᵀ + b_enc
    and x̂ = f W_decᵀ + b_dec. Backwards, with r = x̂ − x:

        ∂/∂x̂ = 2r / B               ∂/∂W_dec = (2r / B)ᵀ f        ∂/∂f = (2r / B) W_dec + l1 / B
        ∂/∂pre = ∂/∂f · [pre > 0]    ∂/∂W_enc = (∂/∂pre)ᵀ (x − b_dec)
        ∂/∂b_enc = Σ_rows ∂/∂pre     ∂/∂b_dec = Σ_rows 2r / B − (∂/∂b_enc) W_enc   (b_dec enters twice)
    """
    W_enc, b_enc, W_dec, b_dec = params
    g_enc, g_benc, g_dec, g_bdec = grads
    batch = len(xb)
    centred = xb - b_dec  # (B, D)
    pre = torch.addmm(b_enc, centred, W_enc.T)  # (B, width)
    f = pre.clamp_min(0)  # (B, width)
    residual = torch.addmm(b_dec, f, W_dec.T).sub_(xb)  # (B, D): x̂ − x
    loss = residual.pow(2).sum() / batch + l1 * f.sum() / batch
    d_out = residual.mul_(2 / batch)  # (B, D)
    torch.mm(d_out.T, f, out=g_dec)
    d_pre = torch.mm(d_out, W_dec).add_(l1 / batch).mul_(pre > 0)  # (B, width)
    torch.mm(d_pre.T, centred, out=g_enc)
    torch.sum(d_pre, 0, out=g_benc)
    torch.sub(d_out.sum(0), g_benc @ W_enc, out=g_bdec)
    return loss


def _adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    t: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """Step ``t`` (from 1) of Adam on ``param``, in place, in the order of operations of ``torch.optim.Adam``."""
    b1, b2 = betas
    m.lerp_(grad, 1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(eps)
    param.addcdiv_(m, denom, value=-lr / (1 - b1**t))


# The modules whose source decides what train_sae produces.
SAE_CODE = (mnistlab.hooks, sys.modules[__name__])


def sae_key(acts: torch.Tensor, config: SAEConfig) -> str:
    """The cache key of an SAE: the activations' bytes, the config, the training code, PyTorch and device type."""
    return cache_key(
        "sae", config, snapshot_digest({"acts": acts}), source_fingerprint(SAE_CODE), runtime(acts.device)
    )


def load_or_train_sae(
    acts: torch.Tensor, config: SAEConfig = SAEConfig(), cache: ModelCache | None = None
) -> TrainedSAE:
    """The SAE :func:`train_sae` makes of ``acts`` and ``config``: from the cache, or trained and cached.

    The key covers the activations byte for byte, the config, this module's source and
    the pinned arithmetic, so a change to any of them trains again. The cache checks
    every entry against its SHA-256 when it is read; a damaged one is reported, deleted
    and trained again, never served. SAEs are kept with the analysis results, under
    ``<root>/results/`` of ``cache`` (default: ``$MNISTLAB_CACHE``), since they are made
    from activations rather than from data. The SAE returned is on the CPU, wherever it
    was trained (:func:`train_sae` trains where ``acts`` are).

    >>> import tempfile
    >>> acts = torch.rand(200, 6, generator=torch.Generator().manual_seed(0))
    >>> config = SAEConfig(width=8, steps=50)
    >>> with tempfile.TemporaryDirectory() as root:
    ...     first = load_or_train_sae(acts, config, ModelCache(root, kind="results"))
    ...     again = load_or_train_sae(acts, config, ModelCache(root, kind="results"))
    >>> first.from_cache, again.from_cache, torch.equal(first.sae.W_dec, again.sae.W_dec)
    (False, True, True)
    """
    acts = as_units(acts, "load_or_train_sae's activations", maps=False)
    if not isinstance(config, SAEConfig):
        raise TypeError(f"config must be an SAEConfig, got {type(config).__name__}")
    cache = ModelCache(cache.root if cache is not None else None, kind="results")
    expected = json.loads(json.dumps(dataclasses.asdict(config)))

    def build() -> tuple[dict[str, torch.Tensor], dict]:
        run = train_sae(acts, config)
        tensors = {f"{SAE}{k}": v.detach().cpu() for k, v in run.sae.state_dict().items()}
        tensors[LOSSES] = run.losses
        meta = {"sae_config": expected, "d_in": acts.shape[1], "seconds": run.seconds}
        return tensors, meta

    def validate(meta: dict, tensors: dict[str, torch.Tensor]) -> str | None:
        if meta.get("sae_config") != expected or meta.get("d_in") != acts.shape[1]:
            return "its meta.json holds another SAE config"
        seconds = meta.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            return f"its training time is {seconds!r}, not a number of seconds"
        shapes = SparseAutoencoder(acts.shape[1], config.width, generator=torch.Generator()).state_dict()
        wanted = {f"{SAE}{k}": v for k, v in shapes.items()}
        wanted[LOSSES] = None  # one loss per step, float32
        if set(tensors) != set(wanted):
            return f"it holds tensors {sorted(tensors)}, not {sorted(wanted)}"
        for name, t in tensors.items():
            w = wanted[name]
            shape, dtype = (w.shape, w.dtype) if w is not None else ((config.steps,), torch.float32)
            if t.shape != shape or t.dtype != dtype:
                return f"its tensor {name!r} is {t.dtype} {tuple(t.shape)}, not {dtype} {tuple(shape)}"
            if name != LOSSES and not bool(torch.isfinite(t).all()):
                return f"its tensor {name!r} holds NaN or infinite values"
        return None

    tensors, meta, was_cached = cache.get_or_build(sae_key(acts, config), build, validate)
    # The stored weights replace the initial ones; a generator of its own leaves the global one alone.
    sae = SparseAutoencoder(meta["d_in"], config.width, generator=torch.Generator())
    sae.load_state_dict({k.removeprefix(SAE): v for k, v in tensors.items() if k.startswith(SAE)})
    return TrainedSAE(sae.eval(), config, tensors[LOSSES], meta["seconds"], was_cached)


def mean_l0(sae: SparseAutoencoder, acts: torch.Tensor) -> float:
    """The mean number of features active per input (L0) of ``sae`` on ``acts`` (N, D)."""
    with torch.no_grad():
        return (sae.encode(as_units(acts, "acts", maps=False).float()) > 0).float().sum(1).mean().item()


def matched_sparsity(
    acts: torch.Tensor,
    config: SAEConfig,
    target_l0: float,
    factors: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0),
    cache: ModelCache | None = None,
) -> TrainedSAE:
    """An SAE on ``acts`` as sparse as another: the control that differs only in what it was trained on.

    SAEs on two layers with the same ``l1`` need not be equally sparse, and a sparser code
    looks more selective whatever it encodes. So the control is trained at ``config.l1``
    times each of ``factors`` (through :func:`load_or_train_sae`), and the one whose mean
    L0 on ``acts`` (its training activations: no held-out image is used to choose) is
    nearest ``target_l0`` is returned.
    """
    as_units(acts, "acts", maps=False)
    if not is_number(target_l0) or not target_l0 >= 0:
        raise ValueError(f"target_l0 must be a number >= 0 (features per input), got {target_l0!r}")
    if not factors or any(not is_number(f) or not f > 0 for f in factors):
        raise ValueError(f"factors must be one or more positive numbers, got {factors!r}")
    trained = [load_or_train_sae(acts, dataclasses.replace(config, l1=config.l1 * f), cache) for f in factors]
    return min(trained, key=lambda t: abs(mean_l0(t.sae, acts) - target_l0))
