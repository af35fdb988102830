"""Activation patching: which units carry the difference between two digits?

Take pairs of images, a *clean* one of digit ``a`` and a *corrupt* one of digit ``b``.
Run the corrupt image, but copy one unit's activation in from the clean run: if the
logit difference ``a − b`` swings back towards its clean value, that unit carries
what tells ``a`` from ``b``. :func:`patching_effects` does this for every unit of a
layer at once (and for the whole layer), in both directions (``denoise`` and
``noise``), with the edits of :mod:`mnistlab.interventions`.

The effect is normalised: 1 means the patch restores the clean answer fully, 0 that
it changes nothing (Meng et al., 2022; Heimersheim & Nanda, 2024, on its pitfalls).

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig())
>>> x = torch.rand(6, 784, generator=torch.Generator().manual_seed(0))
>>> effects = patching_effects(model, x[:3], x[3:], 3, 8, "fc1_post")
>>> effects.per_unit.shape
torch.Size([32])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.checks import check_class
from mnistlab.hooks import run_with_cache
from mnistlab.interventions import patching, run_edited


def logit_diff(logits: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """(N,) logit of class ``a`` minus logit of class ``b``."""
    return logits[:, a] - logits[:, b]


def normalised_effect(ld_patched: torch.Tensor, ld_clean: torch.Tensor, ld_corrupt: torch.Tensor) -> torch.Tensor:
    """``(LD_patched - LD_corrupt) / (LD_clean - LD_corrupt)`` of mean logit differences.

    Means are taken over image pairs first (a ratio of means: a single pair whose clean
    and corrupt runs happen to agree cannot blow it up). Shapes: (..., P) → (...).
    """
    denom = ld_clean.mean(-1) - ld_corrupt.mean(-1)
    if (denom.abs() < 1e-6).any():
        raise ValueError("clean and corrupted runs have the same mean logit difference; the effect is undefined")
    return (ld_patched.mean(-1) - ld_corrupt.mean(-1)) / denom


@dataclass(frozen=True)
class PatchingEffects:
    """Effects of patching each unit (and the whole layer) between image pairs.

    per_unit: (D,) normalised effect of patching unit ``u`` alone; layer: the same for
    the whole layer; ld_clean, ld_corrupt: (P,) logit differences of the unpatched runs.
    """

    per_unit: torch.Tensor
    layer: float
    ld_clean: torch.Tensor
    ld_corrupt: torch.Tensor


@torch.no_grad()
def patching_effects(
    model: nn.Module, clean: torch.Tensor, corrupt: torch.Tensor, a: int, b: int, layer: str, mode: str = "denoise"
) -> PatchingEffects:
    """Patch each unit of ``layer`` between paired images and measure the logit difference ``a − b``.

    ``clean[i]`` (a digit ``a``) and ``corrupt[i]`` (a digit ``b``) form pair ``i``.

    * ``denoise``: run the corrupt images with units patched in from the clean run;
      effect 1 = the clean answer fully restored, 0 = nothing changed.
    * ``noise``: run the clean images with units patched in from the corrupt run;
      the same normalised effect, so 1 = unharmed and 0 = fully pushed to the corrupt answer.

    All D single-unit patches are evaluated in one batched pass.
    """
    if mode not in ("denoise", "noise"):
        raise ValueError(f"mode must be 'denoise' or 'noise', got {mode!r}")
    check_class(a, "class a")
    check_class(b, "class b")
    if clean.shape != corrupt.shape:
        raise ValueError(f"clean and corrupt images must pair up, got {tuple(clean.shape)} and {tuple(corrupt.shape)}")
    logits_clean, cache_clean = run_with_cache(model, clean, names=[layer])
    logits_corrupt, cache_corrupt = run_with_cache(model, corrupt, names=[layer])
    ld_clean, ld_corrupt = logit_diff(logits_clean, a, b), logit_diff(logits_corrupt, a, b)
    target, source = (corrupt, cache_clean[layer]) if mode == "denoise" else (clean, cache_corrupt[layer])
    target_acts = cache_corrupt[layer] if mode == "denoise" else cache_clean[layer]
    width, pairs = source.shape[1], len(clean)
    # Copy u of the target batch gets unit u from the source: (D * P) rows in one pass.
    patched = target_acts.repeat(width, *[1] * (target_acts.ndim - 1)).view(width, pairs, *target_acts.shape[1:])
    units = torch.arange(width)
    patched[units, :, units] = source.transpose(0, 1)  # (D, P, ...) ← each unit from the source
    edit = patching(None, patched.view(width * pairs, *target_acts.shape[1:]))
    logits = run_edited(model, target.repeat(width, *[1] * (target.ndim - 1)), {layer: edit})
    ld_patched = logit_diff(logits, a, b).view(width, pairs)
    whole = run_edited(model, target, {layer: patching(None, source)})
    return PatchingEffects(
        per_unit=normalised_effect(ld_patched, ld_clean, ld_corrupt),
        layer=normalised_effect(logit_diff(whole, a, b), ld_clean, ld_corrupt).item(),
        ld_clean=ld_clean,
        ld_corrupt=ld_corrupt,
    )
