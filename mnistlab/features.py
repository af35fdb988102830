"""A sparse autoencoder's features at work: how sparse and faithful, what they cause, whether they recur.

:mod:`mnistlab.dictionary` trains the SAE; these functions ask what its features are
worth, on activations of the layer it was trained on:

* :func:`sae_stats` — sparsity (L0), explained variance, dead and dense features;
* :func:`splice` and :func:`feature_edit` — :class:`mnistlab.interventions.Edit` objects
  that put the reconstruction in the layer's place, or scale single features while
  keeping the SAE's error, so that only those features change;
* :func:`loss_recovered` — how much of the network's loss survives the splice;
* :func:`steered_to` — how many inputs an amplified feature moves to its class;
* :func:`match_features` — whether two SAEs (two seeds, say) found the same directions.

>>> from mnistlab.dictionary import SAEConfig, train_sae
>>> acts = torch.rand(500, 8, generator=torch.Generator().manual_seed(0))  # (N, D)
>>> sae = train_sae(acts, SAEConfig(width=16, steps=200)).sae
>>> stats = sae_stats(sae, acts)
>>> bool(0 < stats.explained_variance <= 1)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab import interventions
from mnistlab.checks import as_units, check_finite, check_finite_number, check_images, check_labels
from mnistlab.dictionary import SparseAutoencoder
from mnistlab.hooks import run_with_cache


def _check_fits(sae: SparseAutoencoder, acts: torch.Tensor, what: str) -> torch.Tensor:
    acts = as_units(acts, what, maps=False)
    if acts.shape[1] != sae.d_in:
        raise ValueError(
            f"{what} have {acts.shape[1]} units per row, but this SAE reads {sae.d_in} "
            "(was it trained on another layer?)"
        )
    return acts


@dataclass(frozen=True)
class SAEStats:
    """How sparse an SAE's features are on a set of activations, and how well it rebuilds them.

    Attributes:
        l0: mean number of active features per row; l0_per_row (N,) the count per row.
        explained_variance: 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² (1: perfect reconstruction;
            0: no better than the mean).
        firing: (width,) share of rows on which each feature is active (f > 0).
        dead: (width,) bool, never active on these rows.
        dense: (width,) bool, active on more than ``dense_threshold`` of the rows.
    """

    l0: float
    l0_per_row: torch.Tensor
    explained_variance: float
    firing: torch.Tensor
    dead: torch.Tensor
    dense: torch.Tensor


@torch.no_grad()
def sae_stats(sae: SparseAutoencoder, acts: torch.Tensor, dense_threshold: float = 0.5) -> SAEStats:
    """Sparsity and reconstruction of ``sae`` on activations ``acts`` (N, D).

    >>> sae = SparseAutoencoder(2, 2, generator=torch.Generator())
    >>> with torch.no_grad():  # features = the two units, as they are
    ...     _ = sae.W_enc.copy_(torch.eye(2)); _ = sae.W_dec.copy_(torch.eye(2))
    >>> stats = sae_stats(sae, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    >>> stats.l0, stats.explained_variance, stats.dead.tolist()
    (0.5, 1.0, [False, True])
    """
    acts = _check_fits(sae, acts, "sae_stats's activations")
    dense_threshold = check_finite_number(dense_threshold, "dense_threshold")
    if not 0 <= dense_threshold <= 1:
        raise ValueError(f"dense_threshold is a share of rows, in [0, 1]; got {dense_threshold}")
    acts = acts.float()
    f = sae.encode(acts)  # (N, width)
    active = f > 0  # (N, width)
    l0_per_row = active.sum(1)  # (N,)
    firing = active.double().mean(0)  # (width,)
    x, x_hat = acts.double(), sae.decode(f).double()
    unexplained = (x - x_hat).pow(2).sum()
    spread = (x - x.mean(0)).pow(2).sum()
    return SAEStats(
        l0=l0_per_row.double().mean().item(),
        l0_per_row=l0_per_row,
        explained_variance=(1 - unexplained / spread).item() if spread > 0 else math.nan,
        firing=firing,
        dead=firing == 0,
        dense=firing > dense_threshold,
    )


@torch.no_grad()
def splice(sae: SparseAutoencoder, acts: torch.Tensor) -> interventions.Edit:
    """An edit that replaces a layer's activations by the SAE's reconstruction of them.

    ``acts`` (N, D): the clean activations of the inputs the edit will run on, at the
    layer the SAE was trained on; use it as ``run_edited(model, x, {layer: edit})``.
    """
    acts = _check_fits(sae, acts, "splice's activations")
    return interventions.patching(None, sae(acts.float()).detach())  # (N, D)


@torch.no_grad()
def feature_edit(
    sae: SparseAutoencoder,
    acts: torch.Tensor,
    features: int | Sequence[int] | torch.Tensor,
    factor: float,
    direction: torch.Tensor | None = None,
) -> interventions.Edit:
    """An edit that scales features by ``factor`` (0 ablates them) and leaves the rest of the layer alone.

    The layer gets ``acts + (factor − 1) · Σ_i f_i(acts) · W_dec[:, i]`` over the chosen
    features ``i``: the SAE's reconstruction error, and every other feature, stay as
    they were. Where a feature is inactive (``f_i = 0``) nothing changes.

    ``direction`` (D,): the control. Each feature's change keeps its size (``f_i`` times
    ``factor − 1`` times the length of its decoder column) but points along ``direction``
    instead of the feature's own decoder column.

    >>> sae = SparseAutoencoder(3, 4, generator=torch.Generator().manual_seed(0))
    >>> acts = torch.rand(5, 3, generator=torch.Generator().manual_seed(1))
    >>> torch.equal(feature_edit(sae, acts, [0, 2], 1.0).value, acts)  # factor 1: nothing changes
    True
    """
    acts = _check_fits(sae, acts, "feature_edit's activations").float()
    factor = check_finite_number(factor, "the feature scaling factor")
    chosen = torch.as_tensor(features, dtype=torch.long).flatten()
    if len(chosen) == 0 or len(chosen) != len(set(chosen.tolist())):
        raise ValueError(f"features must be one or more distinct feature indices, got {chosen.tolist()}")
    if chosen.min() < 0 or chosen.max() >= sae.width:
        raise IndexError(f"feature indices {chosen.tolist()} out of range: this SAE has features 0..{sae.width - 1}")
    columns = sae.W_dec[:, chosen]  # (D, k): where each chosen feature writes
    if direction is not None:
        if not isinstance(direction, torch.Tensor) or direction.shape != (sae.W_dec.shape[0],):
            got = tuple(direction.shape) if isinstance(direction, torch.Tensor) else type(direction).__name__
            raise ValueError(f"direction must be a ({sae.W_dec.shape[0]},) tensor, one entry per unit, got {got}")
        d = check_finite(direction.detach().float().to(acts.device), "direction")
        if d.norm() == 0:
            raise ValueError("direction must not be zero")
        columns = (d / d.norm())[:, None] * columns.norm(dim=0)[None, :]  # (D, k): same lengths, one direction
    f = sae.encode(acts)[:, chosen]  # (N, k)
    change = (factor - 1) * F.linear(f, columns)  # (N, D): exactly 0 on rows where f = 0
    return interventions.patching(None, acts + change)


@dataclass(frozen=True)
class Steering:
    """What amplifying a feature did to the inputs of other classes on which it is active.

    ``before``, ``after``: (n,) bool, one entry per such input: whether the network
    assigned it to the target class before the edit, and after it. ``active`` counts the
    inputs, ``turned`` those the edit moved to the target (``after`` and not ``before``).
    """

    before: torch.Tensor
    after: torch.Tensor

    @property
    def active(self) -> int:
        return len(self.after)

    @property
    def turned(self) -> int:
        return int((self.after & ~self.before).sum())


@torch.no_grad()
def steered_to(
    model: nn.Module,
    layer: str,
    sae: SparseAutoencoder,
    acts: torch.Tensor,
    x: torch.Tensor,
    labels: torch.Tensor,
    feature: int,
    target: int,
    factor: float,
    direction: torch.Tensor | None = None,
) -> Steering:
    """Scale ``feature`` by ``factor`` on every input, and record, for the inputs not of class
    ``target`` where the feature is active, whether the network assigns them to ``target``
    before and after the edit.

    Only inputs where the feature is active can change (:func:`feature_edit` keeps the
    rest of the layer), so they are the ones recorded.

    ``direction`` (D,): the control. The layer gets a change of the same size, the
    feature's activation times ``factor - 1`` on each input, along ``direction`` (rescaled
    to the length of the feature's decoder column) instead of the feature's own direction.
    A feature means its class only if amplifying it turns more inputs than a random
    direction does.
    """
    labels = check_labels(labels, len(x), "steered_to's labels")
    edit = feature_edit(sae, acts, feature, factor, direction)
    before = interventions.run_edited(model, x, {}).argmax(1).cpu()
    after = interventions.run_edited(model, x, {layer: edit}).argmax(1).cpu()
    others = (sae.encode(acts.float())[:, feature] > 0).cpu() & (labels.cpu() != target)  # (N,)
    return Steering(before=before[others] == target, after=after[others] == target)


@dataclass(frozen=True)
class LossRecovered:
    """Cross-entropies (mean over images) of the clean run, the run with the SAE spliced in,
    and the run with the layer ablated; ``recovered`` = (ablated − spliced) / (ablated − clean):
    1 when the splice costs nothing, 0 when it is as bad as losing the layer (NaN when
    ablating costs nothing either)."""

    clean: float
    spliced: float
    ablated: float
    recovered: float


def loss_recovered(
    model: nn.Module,
    layer: str,
    sae: SparseAutoencoder,
    x: torch.Tensor,
    y: torch.Tensor,
    acts: torch.Tensor,
    ablation_value: torch.Tensor,
) -> LossRecovered:
    """How much of the network's loss the SAE's reconstruction keeps, at hook point ``layer``.

    Args:
        x, y: images and their labels.
        acts: (N, D) the clean activations of ``x`` at ``layer`` (checked against a run).
        ablation_value: (D,) what the ablated baseline puts in the layer's place: zeros
            (zero ablation) or, say, the layer's mean on validation images (mean ablation).
    """
    check_images(x, "loss_recovered's images")
    y = check_labels(y, len(x))
    acts = _check_fits(sae, acts, "loss_recovered's activations")
    clean_logits, cache = run_with_cache(model, x, names=[layer])
    recorded = cache[layer]
    if recorded.shape != acts.shape:
        raise ValueError(
            f"acts must be the activations of x at {layer!r}, {tuple(recorded.shape)}; got {tuple(acts.shape)}"
        )
    # A loose tolerance: activations stored as float16 pass, another layer's or other images' do not.
    if (recorded - acts.float()).abs().max() > 1e-2 * (recorded.abs().max() + 1e-6):
        raise ValueError(
            f"acts are not the activations of x at {layer!r}: record them with "
            f"run_with_cache(model, x, names=[{layer!r}])"
        )
    if not isinstance(ablation_value, torch.Tensor) or ablation_value.shape != (sae.d_in,):
        shape = tuple(ablation_value.shape) if isinstance(ablation_value, torch.Tensor) else ablation_value
        raise ValueError(f"ablation_value must be one value per unit, shape ({sae.d_in},), got {shape}")
    ablation_value = check_finite(ablation_value, "ablation_value").float()
    ablate = interventions.Edit(torch.arange(sae.d_in), value=ablation_value, source_shape=(sae.d_in,))
    spliced_logits = interventions.run_edited(model, x, {layer: splice(sae, acts)})
    ablated_logits = interventions.run_edited(model, x, {layer: ablate})
    clean, spliced, ablated = (F.cross_entropy(z, y).item() for z in (clean_logits, spliced_logits, ablated_logits))
    recovered = (ablated - spliced) / (ablated - clean) if ablated != clean else math.nan
    return LossRecovered(clean, spliced, ablated, recovered)


def match_features(dec_a: torch.Tensor, dec_b: torch.Tensor, one_to_one: bool = True) -> torch.Tensor:
    """Cosine of each direction (column) of ``dec_a`` (D, k_a) with its partner among the columns of ``dec_b`` (D, k_b).

    Pass two SAEs' ``W_dec`` to ask whether their features recur; compare with
    :func:`random_unit_directions` for what chance gives. By default the partners are
    one to one: the Hungarian matching that maximises the summed cosine, so no column
    of ``dec_b`` serves two columns of ``dec_a``; columns of ``dec_a`` left without a
    partner (when k_a > k_b) get NaN. ``one_to_one=False`` takes for each column its
    closest column of ``dec_b``, shared or not. Returns (k_a,).

    >>> a = torch.eye(3)
    >>> match_features(a, a[:, [2, 0, 1]])
    tensor([1., 1., 1.])
    >>> match_features(a, a[:, :1]), match_features(a, a[:, :1], one_to_one=False)
    (tensor([1., nan, nan]), tensor([1., 0., 0.]))
    """
    for what, dec in (("dec_a", dec_a), ("dec_b", dec_b)):
        if not isinstance(dec, torch.Tensor) or dec.ndim != 2 or 0 in dec.shape or not dec.is_floating_point():
            got = f"{dec.dtype} {tuple(dec.shape)}" if isinstance(dec, torch.Tensor) else type(dec).__name__
            raise ValueError(
                f"{what} must be directions as the columns of a float (D, k) tensor (an SAE's W_dec), got {got}"
            )
        check_finite(dec, what)
    if dec_a.shape[0] != dec_b.shape[0]:
        raise ValueError(
            f"dec_a and dec_b must be directions in one space: got D = {dec_a.shape[0]} and D = {dec_b.shape[0]} rows"
        )
    a = F.normalize(dec_a.detach().cpu().double(), dim=0)
    b = F.normalize(dec_b.detach().cpu().double(), dim=0)
    cos = a.T @ b  # (k_a, k_b)
    if not one_to_one:
        return cos.max(1).values.float()
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cos.numpy(), maximize=True)
    out = torch.full((cos.shape[0],), math.nan, dtype=torch.float64)
    out[torch.as_tensor(rows)] = cos[torch.as_tensor(rows), torch.as_tensor(cols)]
    return out.float()
