"""Reading a circuit from the weights of the book's MLP: who writes each logit, and through what.

The last two layers of the network are ``fc1_post (32) → fc2 → ReLU → fc2_post (16) →
out → logits (10)``. Two facts make them readable from the weights:

* **The logits are a sum over fc2_post units.** ``logits = out.weight @ h2 + out.bias``,
  so unit ``u`` adds ``h2[u] · out.weight[:, u]`` to the logits, and the 16
  contributions plus the bias *are* the logits (up to float rounding). This is direct
  logit attribution (:func:`direct_logit_attribution`), and :func:`mean_dla` and
  :func:`circuit_share` summarise it per digit.
* **With the ReLUs' on/off pattern fixed, fc2 is linear.** ``relu(z) = a · z`` where
  ``a = 1[z > 0]``, so for every input whose fc2 units are on exactly where ``a`` is 1,
  ``logits = h1 @ V + b`` with the *virtual weights* ``V = (out.weight · diag(a) ·
  fc2.weight)ᵀ`` (32, 10) and ``b = out.weight · diag(a) · fc2.bias + out.bias``
  (:func:`virtual_weights`, :func:`linearised_logits`). With a fractional ``a`` (each
  unit's firing rate) ``V`` is the average of the inputs' own virtual weights.

Everything holds in eval mode (dropout off). Matrices over units and classes are
(units, classes), as in :mod:`mnistlab.analysis`, so :func:`mnistlab.analysis.top_units`
reads them directly. The fc1 units' incoming weights as 28 × 28 images are
:func:`mnistlab.models.input_weights` (``input_weights(model, "fc1_post")[units]``).

>>> from mnistlab.hooks import run_with_cache
>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig(hidden=(32, 16)))
>>> logits, cache = run_with_cache(model, torch.rand(5, 784), names=["fc1_post", "fc2_post"])
>>> dla = direct_logit_attribution(model, cache["fc2_post"])
>>> dla.shape
torch.Size([5, 16, 10])
>>> torch.allclose(dla.sum(1) + model.out.bias, logits, atol=1e-6)
True
>>> active = cache["fc2_post"] > 0  # (5, 16): each input's own pattern
>>> torch.allclose(linearised_logits(model, cache["fc1_post"], active), logits, atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.checks import as_units, check_class, check_labels


def _check_model(model: nn.Module, linear_fc2: bool = False) -> None:
    """A model from :func:`mnistlab.models.build_model` with hidden layers fc1, fc2 and an ``out`` layer."""
    config = getattr(model, "config", None)
    if config is None or not isinstance(getattr(model, "out", None), nn.Linear):
        raise TypeError(f"expected a model from mnistlab.models.build_model, got {type(model).__name__}")
    if len(config.hidden) != 2:
        raise ValueError(
            f"circuits reads the book's two hidden layers fc1 → fc2 → out; this model has hidden={config.hidden}"
        )
    if linear_fc2 and config.layernorm:
        # LayerNorm divides by each input's own std: fc2 is not linear in fc1_post even
        # with the ReLU pattern fixed, so no virtual weights describe it.
        raise ValueError("virtual weights need fc2 to be linear given the ReLU pattern; this model has layernorm=True")


def _check_acts(acts: torch.Tensor, width: int, name: str) -> torch.Tensor:
    acts = as_units(acts, f"{name} activations", maps=False)
    if acts.shape[1] != width:
        raise ValueError(f"expected {name} activations (N, {width}) for this model, got {tuple(acts.shape)}")
    return acts


def _weights(model: nn.Module, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """fc2.weight (16, 32), fc2.bias (16,), out.weight (10, 16), out.bias (10,): detached, as ``like``."""
    params = (model.fc2.weight, model.fc2.bias, model.out.weight, model.out.bias)
    return tuple(p.detach().to(like.device, like.dtype) for p in params)


def direct_logit_attribution(model: nn.Module, acts_fc2: torch.Tensor) -> torch.Tensor:
    """Each fc2_post unit's contribution to each logit: ``dla[n, u, c] = h2[n, u] · out.weight[c, u]``.

    Identity: ``dla.sum(1) + model.out.bias`` equals the model's logits (up to float
    rounding), so the contributions account for the whole logit above the output bias.

    Args:
        model: the book's MLP (two hidden layers), in the state that produced ``acts_fc2``.
        acts_fc2: its ``fc2_post`` activations (N, 16), e.g. from
            :func:`mnistlab.hooks.run_with_cache`.

    Returns:
        (N, 16, 10): input, fc2 unit, logit.
    """
    _check_model(model)
    acts = _check_acts(acts_fc2, model.out.in_features, "fc2_post")
    w_out = _weights(model, acts)[2]  # (10, 16)
    return acts.unsqueeze(2) * w_out.T  # (N, 16, 10)


def _check_dla(dla: torch.Tensor) -> torch.Tensor:
    if not isinstance(dla, torch.Tensor) or dla.ndim != 3 or 0 in dla.shape or not dla.is_floating_point():
        shape = tuple(dla.shape) if isinstance(dla, torch.Tensor) else type(dla).__name__
        raise ValueError(
            f"expected a direct logit attribution (N, units, classes) from direct_logit_attribution, got {shape}"
        )
    return dla


def mean_dla(dla: torch.Tensor, labels: torch.Tensor, digit: int) -> torch.Tensor:
    """Mean contribution of each unit to ``digit``'s logit over the images of ``digit``; (units,).

    Args:
        dla: (N, units, classes) from :func:`direct_logit_attribution`.
        labels: (N,) the true digit of each image.
        digit: the class whose logit, and whose images, are averaged.

    >>> dla = torch.arange(8.0).reshape(4, 2, 1).expand(4, 2, 2)  # 4 images, 2 units, 2 classes
    >>> mean_dla(dla, torch.tensor([0, 1, 0, 1]), digit=0)  # images 0 and 2
    tensor([2., 3.])
    """
    dla = _check_dla(dla)
    n_classes = dla.shape[2]
    labels = check_labels(labels, len(dla), "labels", n_classes).to(dla.device)
    digit = check_class(digit, "digit", n_classes)
    of_digit = labels == digit  # (N,)
    if not of_digit.any():
        raise ValueError(f"no image of digit {digit} among the {len(labels)} labels; its mean is undefined")
    return dla[of_digit, :, digit].mean(0)  # (units,)


def circuit_share(dla: torch.Tensor, labels: torch.Tensor, digit: int, units: Sequence[int] | torch.Tensor) -> float:
    """The share of ``digit``'s mean logit above the output bias that ``units`` carry.

    With ``m = mean_dla(dla, labels, digit)``, the share is ``m[units].sum() / m.sum()``:
    ``m.sum()`` is the digit's mean logit minus ``out.bias[digit]`` over its images. All
    units carry 1, none 0, and the shares of a set and of its complement add to 1. A
    share above 1 means the other units pull the logit down on average; a unit with a
    negative mean contribution lowers the share of any set it joins.

    Args:
        units: unit indices (distinct, any order) or a bool mask over the units.

    Raises:
        ValueError: the units' contributions do not sum to a positive mean (the logit
            above the bias is not positive on the digit's images, so no share is defined).

    >>> dla = torch.tensor([[[3.0], [1.0]], [[1.0], [3.0]]])  # 2 images of digit 0, 2 units
    >>> circuit_share(dla, torch.tensor([0, 0]), digit=0, units=[0])
    0.5
    """
    m = mean_dla(dla, labels, digit).double()  # (units,)
    index = _unit_index(units, len(m))
    total = m.sum().item()
    if not total > 0:
        raise ValueError(
            f"digit {digit}'s mean logit above the output bias is {total:.4g} on its images, not positive, "
            "so a share of it is undefined; look at mean_dla directly"
        )
    return m[index].sum().item() / total


def _unit_index(units: Sequence[int] | torch.Tensor, width: int) -> torch.Tensor:
    """Sorted distinct unit indices (k,) from indices or a bool mask (width,)."""
    t = torch.as_tensor(units) if not isinstance(units, torch.Tensor) else units.cpu()
    if t.dtype == torch.bool:
        if t.shape != (width,):
            raise ValueError(f"a bool mask of units must have shape ({width},), got {tuple(t.shape)}")
        return t.nonzero().flatten()
    if t.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    if t.is_floating_point() or t.ndim != 1:
        raise TypeError(
            f"units must be a 1-D list of int indices or a bool mask, got {t.dtype} of shape {tuple(t.shape)}"
        )
    bad = t[(t < 0) | (t >= width)].tolist()
    if bad:
        raise ValueError(f"units must lie in 0..{width - 1}; got {bad}")
    if len(t.unique()) != len(t):
        raise ValueError(f"units must be distinct (a repeated unit would count twice), got {t.tolist()}")
    return t.long().sort().values


def _check_active(active: torch.Tensor, width: int, per_input: int | None = None) -> torch.Tensor:
    """An on/off pattern of fc2's ReLUs as float: (width,) or, with ``per_input`` = N, (N, width)."""
    if not isinstance(active, torch.Tensor):
        raise TypeError(f"active must be a torch.Tensor (bool pattern or share in [0, 1]), got {type(active).__name__}")
    shapes = [(width,)] + ([(per_input, width)] if per_input is not None else [])
    if tuple(active.shape) not in shapes:
        raise ValueError(f"expected an fc2 pattern of shape {' or '.join(map(str, shapes))}, got {tuple(active.shape)}")
    if active.dtype != torch.bool:
        if not active.is_floating_point():
            raise TypeError(f"active must be bool or floating in [0, 1], got dtype {active.dtype}")
        if not (torch.isfinite(active).all() and (active >= 0).all() and (active <= 1).all()):
            raise ValueError("active must lie in [0, 1] (1 = ReLU on, 0 = off, between = share of inputs on)")
    return active.float()


def _virtual(model: nn.Module, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Virtual weights (..., 32, 10) and bias (..., 10) for a pattern (..., 16)."""
    w_fc2, b_fc2, w_out, b_out = _weights(model, active)
    gated = w_out * active.unsqueeze(-2)  # (..., 10, 16): out.weight · diag(active)
    weight = (gated @ w_fc2).transpose(-1, -2)  # (..., 32, 10)
    bias = gated @ b_fc2 + b_out  # (..., 10)
    return weight, bias


def virtual_weights(model: nn.Module, active: torch.Tensor) -> torch.Tensor:
    """The linear map from fc1_post to the logits through fc2 with its ReLU pattern fixed; (32, 10).

    ``V = (out.weight · diag(active) · fc2.weight)ᵀ``: ``V[j, c]`` is how much a unit of
    fc1_post raises logit ``c`` per unit of activation, through the fc2 units that are
    on. It is exact for inputs whose fc2 ReLUs are on where ``active`` is 1 and off where
    it is 0 (:func:`linearised_logits`); with ``active`` every unit's firing rate
    (:func:`mnistlab.analysis.firing_rate` of fc2_post) it is the mean over the inputs of
    their own virtual weights (:func:`virtual_weights_per_input`).

    Args:
        model: the book's MLP (two hidden layers, no LayerNorm).
        active: (16,) bool (on/off) or float in [0, 1] (the share of inputs on which each
            fc2 unit is on).

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig(hidden=(32, 16)))
    >>> v = virtual_weights(model, torch.ones(16, dtype=torch.bool))  # every ReLU on
    >>> torch.equal(v, (model.out.weight @ model.fc2.weight).T.detach())
    True
    """
    _check_model(model, linear_fc2=True)
    return _virtual(model, _check_active(active, model.out.in_features))[0]


def virtual_weights_per_input(model: nn.Module, acts_fc2: torch.Tensor) -> torch.Tensor:
    """Every input's own virtual weights, from its fc2 pattern ``acts_fc2 > 0``; (N, 32, 10).

    Row ``n`` is :func:`virtual_weights` with ``active = acts_fc2[n] > 0`` (1.3 kB per input).
    """
    _check_model(model, linear_fc2=True)
    acts = _check_acts(acts_fc2, model.out.in_features, "fc2_post")
    return _virtual(model, (acts > 0).float())[0]


def linearised_logits(model: nn.Module, acts_fc1: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """The logits (N, 10) of the network with fc2's ReLUs frozen to ``active``: ``h1 @ V + b``.

    ``V`` is :func:`virtual_weights` and ``b = out.weight · diag(active) · fc2.bias +
    out.bias``. For an input whose fc2 ReLUs are on exactly where ``active`` is 1 this is
    its true logits (up to float rounding): a ReLU that is on passes its input unchanged,
    one that is off passes 0, and a unit whose pre-activation is exactly 0 gives 0 either
    way. For other inputs it is the logits of a network in which the other pattern is
    forced, and differs from the truth.

    Args:
        model: the book's MLP (two hidden layers, no LayerNorm).
        acts_fc1: ``fc1_post`` activations (N, 32).
        active: one pattern (16,) for all inputs, or one per input (N, 16) (e.g.
            ``acts_fc2 > 0``, which reproduces every input's logits); bool, or float in [0, 1].
    """
    _check_model(model, linear_fc2=True)
    acts = _check_acts(acts_fc1, model.fc2.in_features, "fc1_post")
    weight, bias = _virtual(model, _check_active(active, model.out.in_features, per_input=len(acts)).to(acts.device))
    if weight.ndim == 2:
        return acts @ weight + bias  # (N, 10)
    return (acts.unsqueeze(1) @ weight).squeeze(1) + bias  # (N, 1, 32) @ (N, 32, 10) → (N, 10)
