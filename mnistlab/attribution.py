"""Pixel attributions: how much each pixel of an image counts for one class's logit.

Every method takes a model, images ``x`` (N, 784) in [0, 1] and one class per image,
``target`` (N,), and returns (N, 784) float32 attributions of the **logit** (the score
before the softmax) of ``target[i]`` on ``x[i]``, on the CPU. Each is a few lines of
plain PyTorch:

* :func:`gradient` — ∂ logit / ∂ pixel (a saliency map; signed);
* :func:`gradient_x_input` — the gradient times the pixel;
* :func:`integrated_gradients` — the gradient averaged along the straight path from a
  baseline image to ``x``, times ``x − baseline`` (:func:`path_integral` for any gradient
  function); :func:`completeness_error` says how far its sum is from
  ``logit(x) − logit(baseline)``, :func:`blurred` makes a blurred baseline;
* :func:`smoothgrad` — the gradient averaged over noisy copies of the image;
* :func:`occlusion` — how much the logit drops when a small patch is painted over;
* :func:`guided_backprop` — the gradient with every ReLU passing back only positive gradient.

The model runs in eval mode and in batches of ``batch_size`` inputs (IG, SmoothGrad and
occlusion run several inputs per image), on the device of its parameters; no gradient is
left on its parameters and no hook stays attached, also after an error.
:data:`METHODS` names them all for a loop.

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig())
>>> x, target = torch.rand(3, 784), torch.tensor([0, 1, 7])
>>> list(METHODS)
['gradient', 'gradient × input', 'integrated gradients', 'SmoothGrad', 'occlusion', 'guided backprop']
>>> {tuple(method(model, x, target).shape) for method in METHODS.values()}
{(3, 784)}
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.checks import check_finite_number, check_images, check_labels, check_positive_int, is_int
from mnistlab.hooks import eval_mode, hook_points, hooks

BATCH = 128  # inputs per forward pass: few enough that the CNN's im2col patches stay in the CPU cache
SIDE = 28


def _checked(x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_images(x, "attribution inputs")
    return x.reshape(len(x), SIDE * SIDE), check_labels(target, len(x), "target")


def _per_batch(fn: Callable[..., torch.Tensor], model: nn.Module, batch_size: int, *rows: torch.Tensor) -> torch.Tensor:
    """``fn`` on batches of the rows, on the model's device and in eval mode; results joined on the CPU."""
    check_positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    with eval_mode(model):
        parts = [fn(*(r.to(device) for r in batch)).cpu() for batch in zip(*(r.split(batch_size) for r in rows))]
    return torch.cat(parts)


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """∂ output[i, target[i]] / ∂ x[i] for every row of ``x`` (B, D), in its dtype and on its device.

    The building block of the methods, for any model of (B, D) inputs (chapter 1's float64
    twin too): no checks, batching or eval mode. ``target=None`` takes a one-output model's
    output. Only ``x`` gets a gradient, never the parameters.

    >>> line = torch.nn.Linear(2, 1)  # a linear model's gradient is its weight, everywhere
    >>> torch.equal(input_gradient(line, torch.rand(3, 2)), line.weight.detach().expand(3, 2))
    True
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = model(x)  # (B, K)
        if target is None and out.shape[1] != 1:
            raise ValueError(f"input_gradient needs a target class for a model with {out.shape[1]} outputs")
        out = out[:, 0] if target is None else out.gather(1, target[:, None])[:, 0]
        return torch.autograd.grad(out.sum(), x)[0]  # rows are independent: one backward for all


@torch.no_grad()
def _logit(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return model(x).gather(1, target[:, None])[:, 0]  # (B,)


def gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
    """The saliency map: ∂ logit / ∂ pixel, signed (take ``.abs()`` for its size). (N, 784).

    >>> from mnistlab.models import ModelConfig, build_model
    >>> gradient(build_model(ModelConfig()), torch.rand(2, 784), torch.tensor([3, 5])).shape
    torch.Size([2, 784])
    """
    x, target = _checked(x, target)
    return _per_batch(lambda xb, tb: input_gradient(model, xb, tb), model, batch_size, x, target)


def gradient_x_input(model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
    """Gradient × input: the first-order share of each pixel in the logit, (N, 784). Black pixels get 0."""
    return gradient(model, x, target, batch_size) * x.reshape(len(x), -1).cpu()


def _baseline(baseline: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The baseline as (N, 784): black images for None, one image (784,) repeated, or one per input."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, torch.Tensor) and baseline.shape == (SIDE * SIDE,):
        baseline = baseline.expand_as(x)
    check_images(baseline, "baseline")
    if len(baseline) != len(x):
        raise ValueError(f"baseline must be one image (784,) or one per input ({len(x)}, 784), got {len(baseline)}")
    return baseline.reshape(x.shape)


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    baseline: torch.Tensor | None = None,
    steps: int = 64,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017): (x − baseline) × the mean gradient on the path between them.

    The integral over α ∈ [0, 1] of ∂ logit(baseline + α (x − baseline)) / ∂ x is taken by
    the midpoint rule, Captum's ``method="riemann_middle"``: the gradient at α = (k + ½) / steps,
    k = 0 … steps − 1, all steps of a few images in one batch.

    Args:
        baseline: the image that stands for "no signal": None for black, one image (784,),
            or one per input (N, 784) (e.g. :func:`blurred`).
        steps: points on the path; :func:`completeness_error` shows whether they suffice.

    A linear model's gradient is the same at every point of the path, so its IG is
    exactly weight × (x − baseline):

    >>> linear, x, target = torch.nn.Linear(784, 10), torch.rand(2, 784), torch.tensor([3, 5])
    >>> torch.allclose(integrated_gradients(linear, x, target), linear.weight[target] * x)
    True
    """
    x, target = _checked(x, target)
    baseline = _baseline(baseline, x)
    check_positive_int(steps, "steps")

    def ig(xb: torch.Tensor, tb: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
        return path_integral(lambda path: input_gradient(model, path, tb.repeat(steps)), xb, bb, steps)

    return _per_batch(ig, model, max(1, batch_size // steps), x, target, baseline)


def path_integral(
    grad_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor | None = None,
    steps: int = 64,
) -> torch.Tensor:
    """IG for any gradient function: (x − baseline) × the mean of ``grad_fn`` on the path between them.

    ``grad_fn`` maps points (M, D) to gradients (M, D); it is called once, on the
    ``steps × N`` points ``baseline + α (x − baseline)``, α = (k + ½) / steps (the midpoint
    rule), α-major. ``x`` (N, D) in any dtype; ``baseline=None`` is the origin.

    >>> path_integral(lambda p: 2 * p, torch.tensor([[1.0, 3.0]]), steps=4)  # f = Σ x²: IG from 0 is x²
    tensor([[1., 9.]])
    """
    check_positive_int(steps, "steps")
    baseline = torch.zeros_like(x) if baseline is None else baseline
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps  # (S,)
    path = baseline + alphas[:, None, None] * (x - baseline)  # (S, N, D)
    grads = grad_fn(path.reshape(-1, x.shape[1])).reshape(steps, *x.shape)  # (S, N, D)
    return (x - baseline) * grads.mean(0)


def completeness_error(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    attributions: torch.Tensor,
    baseline: torch.Tensor | None = None,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """How far IG's attributions are from adding up to the logit's change: (N,) relative errors.

    ``|Σ_pixels attributions − (F(x) − F(baseline))| / |F(x) − F(baseline)|``, F the target's
    logit. Exact integration gives 0 (the completeness axiom); too few steps give more.
    Where F(x) = F(baseline) the ratio is undefined (inf or nan).

    >>> linear, x, target = torch.nn.Linear(784, 10), torch.rand(2, 784), torch.tensor([3, 5])
    >>> bool((completeness_error(linear, x, target, integrated_gradients(linear, x, target, steps=1)) < 1e-4).all())
    True
    """
    x, target = _checked(x, target)
    if not isinstance(attributions, torch.Tensor) or attributions.shape != x.shape:
        shape = tuple(attributions.shape) if isinstance(attributions, torch.Tensor) else type(attributions).__name__
        raise ValueError(f"attributions must have the inputs' shape {tuple(x.shape)}, got {shape}")
    baseline = _baseline(baseline, x)
    logit = lambda images: _per_batch(lambda xb, tb: _logit(model, xb, tb), model, batch_size, images, target)
    change = logit(x) - logit(baseline)  # (N,)
    return (attributions.sum(1) - change).abs() / change.abs()


def blurred(x: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Gaussian-blurred copies of the images, IG's "blurred" baseline: (N, 784) in [0, 1].

    A separable kernel of radius ⌈3σ⌉ pixels, zero padding: beyond its border the image
    continues as black background, as MNIST's digits do. Deterministic.

    A white image stays white in the middle; at the corners the black beyond the border bleeds in:

    >>> white = blurred(torch.ones(1, 784), sigma=1.0).view(28, 28)
    >>> round(white[14, 14].item(), 4), round(white[0, 0].item(), 2)
    (1.0, 0.49)
    """
    check_images(x, "images to blur")
    sigma = check_finite_number(sigma, "sigma")
    if sigma <= 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()  # (2r + 1,)
    images = x.reshape(-1, 1, SIDE, SIDE)
    rows = F.conv2d(images, kernel.view(1, 1, 1, -1), padding=(0, radius))  # blur along each row...
    both = F.conv2d(rows, kernel.view(1, 1, -1, 1), padding=(radius, 0))  # ...then along each column
    return both.reshape(len(x), SIDE * SIDE).clamp(0, 1)  # a weighted mean of pixels, up to rounding


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    noise: float = 0.15,
    samples: int = 32,
    seed: int = 0,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over ``samples`` noisy copies of each image.

    The noise is Gaussian with std ``noise × (max − min)`` of the pixel range, i.e. ``noise``,
    since pixels lie in [0, 1]; noisy pixels are not clipped. It is drawn on the CPU from a
    generator of its own seeded with ``seed``, image after image: the same seed gives the
    same bits on any device, and the global random state is left alone.
    """
    x, target = _checked(x, target)
    noise = check_finite_number(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be a std >= 0 (a fraction of the pixel range), got {noise}")
    check_positive_int(samples, "samples")
    generator = torch.Generator().manual_seed(seed)

    def smooth(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(len(xb), samples, xb.shape[1], generator=generator).to(xb.device) * noise  # (B, S, 784)
        grads = input_gradient(model, (xb[:, None] + eps).flatten(0, 1), tb.repeat_interleave(samples))
        return grads.view(len(xb), samples, -1).mean(1)

    return _per_batch(smooth, model, max(1, batch_size // samples), x, target)


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    window: int = 4,
    stride: int = 2,
    fill: float = 0.0,
    batch_size: int = BATCH,
) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus 2014): how much the logit drops when a window × window patch is set to ``fill``.

    The patch slides from the top-left corner in steps of ``stride`` until it has covered
    the last row and column (clipped at the border when the steps overshoot it). A pixel's
    attribution is the mean of ``logit(x) − logit(occluded)`` over the patches that cover
    it, as Captum's ``Occlusion`` computes it with ``sliding_window_shapes=(window, window)``
    on (N, 28, 28) images, ``strides=stride`` and ``baselines=fill``.
    """
    x, target = _checked(x, target)
    if not is_int(window) or not 1 <= window <= SIDE:
        raise ValueError(f"window must be an int in 1..{SIDE} (the images are {SIDE} × {SIDE}), got {window!r}")
    if not is_int(stride) or not 1 <= stride <= window:
        raise ValueError(f"stride must be an int in 1..window={window} (larger skips pixels), got {stride!r}")
    fill = check_finite_number(fill, "fill")
    starts = range(0, -(-(SIDE - window) // stride) * stride + 1, stride)
    masks = torch.zeros(len(starts) ** 2, SIDE, SIDE, dtype=torch.bool)  # (P, 28, 28): one patch each
    for i, (top, left) in enumerate((t, s) for t in starts for s in starts):
        masks[i, top : top + window, left : left + window] = True
    masks = masks.flatten(1)  # (P, 784)
    cover = masks.sum(0)  # (784,) how many patches cover each pixel

    def occlude(xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        m = masks.to(xb.device)
        occluded = torch.where(m, fill, xb[:, None])  # (B, P, 784)
        occluded_logit = _logit(model, occluded.flatten(0, 1), tb.repeat_interleave(len(m))).view(len(xb), len(m))
        drop = _logit(model, xb, tb)[:, None] - occluded_logit  # (B, P)
        return drop @ m.float() / cover.to(xb.device)  # (B, 784): the mean over the patches covering each pixel

    return _per_batch(occlude, model, max(1, batch_size // len(masks)), x, target)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int = BATCH) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): gradients that only pass back positive signal.

    A ReLU's backward multiplies the incoming gradient by ``z > 0``; guided backprop also
    sets the negative incoming gradient to 0. mnistlab's models put an identity hook point
    ``*_post`` right after every ReLU, so clamping the gradient that reaches each of them to
    ≥ 0 before the ReLU's own backward gives exactly that.
    """
    x, target = _checked(x, target)
    names = [name for name in hook_points(model) if name.endswith("_post")]

    def positive_gradient_only(act: torch.Tensor, name: str) -> None:
        # A hook on this activation tensor: it lives and dies with this batch's graph; the
        # forward hook that adds it is removed when the with-block ends, also on error.
        act.register_hook(lambda grad: grad.clamp(min=0))

    with hooks(model, {name: positive_gradient_only for name in names}):
        return gradient(model, x, target, batch_size)


# Every method with its defaults, in the order a chapter meets them: method(model, x, target).
METHODS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradient": gradient,
    "gradient × input": gradient_x_input,
    "integrated gradients": integrated_gradients,
    "SmoothGrad": smoothgrad,
    "occlusion": occlusion,
    "guided backprop": guided_backprop,
}
