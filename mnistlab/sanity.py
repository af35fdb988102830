"""Sanity checks for attribution maps: does a map depend on the model, and on what the model uses?

An attribution method turns a model, an image and a target class into a map (N, 784)
of how much each pixel matters. Two kinds of check ask whether such a map means anything:

* **Randomisation** (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-initialise
  the model's layers, from the output layer down (:func:`randomised_copies`), or one at a
  time (:func:`independent_randomisation`), and compare each map of the randomised model
  with the trained model's map. A method whose maps barely change explains the image, not
  the model. The comparisons are :func:`rank_correlation` (Spearman, per image) and
  :func:`ssim` (structural similarity of the two pictures).
* **Faithfulness** (Petsiuk et al. 2018, RISE): delete the most-attributed pixels first and
  watch the target's probability fall (:func:`deletion_curve`: a faithful map makes it fall
  fast), or insert them into a blank image and watch it rise (:func:`insertion_curve`); the
  baseline is a random order (:func:`random_attributions`), the summary the area under the
  curve (:func:`curve_area`).

Maps are (N, 784) tensors, one row per image, as every attribution method returns them.

>>> from mnistlab.models import ModelConfig, build_model
>>> model = build_model(ModelConfig(hidden=(8, 4)))
>>> list(randomised_copies(model))
['out', 'out, fc2', 'out, fc2, fc1']
>>> a = torch.tensor([[3.0, -1.0, 2.0, 0.5]])
>>> rank_correlation(a, torch.tensor([[9.0, 1.0, 5.0, 0.0]]))  # |a| ranks the pixels the same way
tensor([1.], dtype=torch.float64)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from mnistlab.checks import check_class, check_finite, check_images, check_labels, check_positive_int, is_int, is_number
from mnistlab.hooks import eval_mode
from mnistlab.stats import average_ranks

N_PIXELS = 784
SIDE = 28

# ---------------------------------------------------------------------------
# Randomisation
# ---------------------------------------------------------------------------


def layer_modules(model: nn.Module) -> list[str]:
    """Names of the modules with weights, from the output layer down: ``["out", "fc2", "fc1"]``.

    For the CNN: ``["out", "fc1", "conv2", "conv1"]``. A hidden layer's LayerNorm
    (``ln{i}``, with ``layernorm=True``) belongs to its layer ``fc{i}``.
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "hidden"):
        raise TypeError(f"expected a model from mnistlab.models.build_model, got a {type(model).__name__}")
    convs = [f"conv{i}" for i in range(1, len(config.channels) + 1)] if config.arch == "cnn" else []
    bottom_up = convs + [f"fc{i}" for i in range(1, len(config.hidden) + 1)] + ["out"]
    return bottom_up[::-1]


def _random_layers(model: nn.Module, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Freshly initialised parameters of every layer, ``{layer: {param name: tensor}}``.

    Each layer's copy is reset on the CPU with its own ``reset_parameters`` (PyTorch's
    default initialisation), top-down, after ``torch.manual_seed(seed)`` inside
    ``fork_rng``: the global generator is restored afterwards, and a layer's random
    weights are the same bits in every copy that randomises it, on any device.
    """
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    fresh: dict[str, dict[str, torch.Tensor]] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layer_modules(model):
            parts = [name] + ([f"ln{name[2:]}"] if name.startswith("fc") and hasattr(model, f"ln{name[2:]}") else [])
            params = {}
            for part in parts:
                module = copy.deepcopy(getattr(model, part)).cpu()
                module.reset_parameters()
                params |= {f"{part}.{p}": t.detach() for p, t in module.named_parameters()}
            fresh[name] = params
    return fresh


def _with_layers(model: nn.Module, fresh: dict[str, dict[str, torch.Tensor]], layers: Sequence[str]) -> nn.Module:
    """A deep copy of ``model`` whose ``layers`` hold the parameters in ``fresh``."""
    out = copy.deepcopy(model)
    named = dict(out.named_parameters())
    with torch.no_grad():
        for layer in layers:
            for name, value in fresh[layer].items():
                named[name].copy_(value)  # to the copy's device and dtype
    return out


def randomised_copies(model: nn.Module, seed: int = 0) -> dict[str, nn.Module]:
    """Adebayo's cascading randomisation: copies of ``model`` with ever more layers re-initialised, top-down.

    The first copy has the output layer re-initialised, the next the output layer and
    the last hidden layer, and so on down to the first layer (the whole network random).
    A layer is re-initialised with PyTorch's default initialisation (its
    ``reset_parameters``) from a generator seeded with ``seed``; a layer has the same
    random weights in every copy that randomises it. ``model`` is not changed, and
    neither is the global random generator.

    Returns:
        ``{"out": copy, "out, fc2": copy, "out, fc2, fc1": copy}`` for the MLP (keys name
        the randomised layers, top-down; for the CNN they end ``..., conv2, conv1``).

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model = build_model(ModelConfig(arch="cnn", channels=(2, 3), hidden=(4,)))
    >>> list(randomised_copies(model))
    ['out', 'out, fc1', 'out, fc1, conv2', 'out, fc1, conv2, conv1']
    """
    fresh = _random_layers(model, seed)
    layers = list(fresh)
    return {", ".join(layers[: k + 1]): _with_layers(model, fresh, layers[: k + 1]) for k in range(len(layers))}


def independent_randomisation(model: nn.Module, seed: int = 0) -> dict[str, nn.Module]:
    """Copies of ``model`` with one layer re-initialised each, keyed top-down: ``{"out": …, "fc2": …, "fc1": …}``.

    A layer's random weights are the same bits as in :func:`randomised_copies` with the same seed.
    """
    fresh = _random_layers(model, seed)
    return {layer: _with_layers(model, fresh, [layer]) for layer in fresh}


# ---------------------------------------------------------------------------
# Similarity of two maps
# ---------------------------------------------------------------------------


def _maps(a: torch.Tensor, what: str, images: bool = True) -> torch.Tensor:
    """Maps as finite float64 rows (N, 784) on the CPU; (N, 28, 28) and (N, 1, 28, 28) are flattened.

    With ``images=False`` any (N, D) rows are accepted (a rank correlation needs no picture).
    """
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of maps (N, 784), got {type(a).__name__}")
    if not a.is_floating_point():
        raise TypeError(f"{what} must be floating point, got dtype {a.dtype}")
    if a.ndim < 2 or len(a) == 0 or a[0].numel() == 0 or (images and a[0].numel() != N_PIXELS):
        raise ValueError(f"{what} must be maps of shape (N, 784) or (N, 28, 28) with N >= 1, got {tuple(a.shape)}")
    return check_finite(a.reshape(len(a), -1), what).detach().cpu().double()


def _pair(a: torch.Tensor, b: torch.Tensor, images: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _maps(a, "the first maps", images), _maps(b, "the second maps", images)
    if a.shape != b.shape:
        raise ValueError(f"need one map of each kind per image, of one size; got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def ink(x: torch.Tensor) -> torch.Tensor:
    """Which pixels of each image carry ink (value above 0): a bool mask (N, 784).

    On MNIST about four pixels in five are exactly 0, and every method that multiplies by
    the input (gradient × input, integrated gradients from a black baseline) gives them 0
    in every network; occlusion nearly does. Compare such maps on the ink only
    (``rank_correlation(a, b, mask=ink(x))``).

    >>> x = torch.zeros(1, 784)
    >>> x[0, 400:403] = torch.tensor([0.5, 1.0, 0.2])
    >>> ink(x).sum().item()
    3
    """
    check_images(x, "images")
    return x.detach().reshape(len(x), -1).cpu() > 0


def rank_correlation(
    a: torch.Tensor, b: torch.Tensor, absolute: bool = True, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Spearman's rank correlation between two maps of each image; (N,) float64.

    The Pearson correlation of the two maps' pixel ranks, ties given their average rank
    (as ``scipy.stats.spearmanr`` does). With ``absolute=True`` (Adebayo et al.'s main
    comparison) the ranks are of ``|a|`` and ``|b|``: a method whose sign flips but whose
    important pixels stay the same counts as unchanged. An image where either map is
    constant has no ranking to compare: its correlation is NaN.

    With ``mask`` (N, D) bool, each image is compared on its masked pixels only, ranked
    among themselves (an image with fewer than 2 of them gives NaN). Why it matters: two
    maps that are 0 on the same background pixels share most of their ranks whatever they
    do on the ink, so on all 784 pixels of an MNIST digit two maps whose ink values are
    independent already correlate at about 0.9 (:func:`shared_zeros_null` measures it).

    Args:
        a, b: maps (N, 784) of the same N images (say, of a trained and a randomised model);
            any (N, D) rows are accepted.
        mask: the pixels to compare, e.g. :func:`ink` of the images; all of them if None.

    >>> a = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    >>> rank_correlation(a, torch.tensor([[0.0, 10.0, 20.0, -30.0], [1.0, 2.0, 3.0, 4.0]]))
    tensor([1., nan], dtype=torch.float64)
    >>> b = torch.tensor([[0.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    >>> rank_correlation(a[:1], b[:1], mask=torch.tensor([[False, True, True, True]]))  # on the last 3 only
    tensor([-1.], dtype=torch.float64)
    """
    a, b = _pair(a, b, images=False)
    if absolute:
        a, b = a.abs(), b.abs()
    if mask is None:
        mask = torch.ones_like(a, dtype=torch.bool)
    elif not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != a.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of the maps' shape {tuple(a.shape)}, got {shape}")
    mask = mask.cpu()
    # Pixels outside the mask go to +inf, so they sort after every masked pixel and the masked
    # pixels' ranks are their ranks among themselves.
    inf = torch.tensor(math.inf, dtype=torch.float64)
    ra, rb = average_ranks(a.where(mask, inf)), average_ranks(b.where(mask, inf))  # (N, D)
    m = mask.double()
    count = m.sum(1, keepdim=True)
    centre = lambda r: (r - (r * m).sum(1, keepdim=True) / count.clamp(min=1)) * m  # noqa: E731
    ra, rb = centre(ra), centre(rb)
    norm = (ra.square().sum(1) * rb.square().sum(1)).sqrt()  # 0 where a map is constant
    r = (ra * rb).sum(1) / norm.where(norm > 0, torch.ones_like(norm))
    return r.where(norm > 0, torch.full_like(r, math.nan)).clamp(-1, 1)


def shared_zeros_null(mask: torch.Tensor, seed: int = 0, absolute: bool = True) -> torch.Tensor:
    """The rank correlation on all pixels of two maps that share nothing but their zeros; (N,) float64.

    Each map is independent uniform noise on the masked pixels and 0 elsewhere, so any
    correlation comes from the shared zeros alone. On MNIST's ink mask it is about 0.9:
    the value an all-pixel comparison reports for methods that multiply by the input
    (zero on the background) even when the network has nothing in common.

    >>> mask = torch.zeros(2, 784, dtype=torch.bool)
    >>> mask[:, :150] = True  # 150 ink pixels, as in an average digit
    >>> bool((shared_zeros_null(mask) > 0.8).all())
    True
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be a bool tensor (N, D), got {getattr(mask, 'shape', type(mask).__name__)}")
    g = torch.Generator().manual_seed(seed)
    noise = lambda: torch.rand(mask.shape, generator=g, dtype=torch.float64) * mask  # noqa: E731
    return rank_correlation(noise(), noise(), absolute=absolute)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Maps made comparable across methods: ``|map| / max |map|`` per image, in [0, 1]; (N, 784) float64.

    An all-zero map stays zero. Used by :func:`ssim`, so every method's maps are compared
    on the same scale whatever their units (a gradient, gradient × input, a probability).
    """
    m = _maps(maps, "maps").abs()
    top = m.amax(1, keepdim=True)
    return m / top.where(top > 0, torch.ones_like(top))


def _window(size: int, sigma: float) -> torch.Tensor:
    """The (28, 28 - size + 1) matrix G with ``Gᵀ X G`` the weighted mean of X in every full window.

    Column j holds the normalised 1-D Gaussian at rows j … j + size - 1; the 2-D window is
    the outer product of two such kernels (a Gaussian is separable), so its weights sum to 1.
    """
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    n_out = SIDE - size + 1
    G = torch.zeros(SIDE, n_out, dtype=torch.float64)
    for j in range(n_out):
        G[j : j + size, j] = g
    return G


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of two maps of each image, as 28 × 28 pictures; (N,) float64.

    Each map is first :func:`normalise`\\ d (absolute value over its maximum, so both lie
    in [0, 1] whatever the method; the data range is 1). In every ``window × window``
    patch that lies wholly inside the image, weighted by a Gaussian of standard deviation
    ``sigma``, with local means μ, variances σ² and covariance σ_ab::

        SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2))

    with C1 = 0.01², C2 = 0.03²; the result is the mean over the patches. 1 means the
    same picture; it is symmetric, and near 0 for unrelated ones.

    Why a 7 × 7 window: Wang et al.'s 11 × 11 was sized for photographs. On 28 × 28
    digits, whose ink lies in the central 20 × 20 box, full 11 × 11 windows only have
    centres in rows and columns 5 … 22, cutting into that box, while 7 × 7 windows
    (centres 3 … 24) cover it; and with σ = 1.5 the 7 × 7 window already holds 96% of
    the Gaussian's weight, so the local statistics barely differ. ``window=11`` gives
    Wang et al.'s reference implementation (``ssim_index.m``: Gaussian 11 × 11, σ = 1.5,
    full windows only), which is also scikit-image's
    ``structural_similarity(x, y, data_range=1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` on the normalised maps. (scikit-image's ``win_size=7``
    with Gaussian weights is not ``window=7``: it keeps the 11-tap filter, over the
    image reflected at its borders, and only crops less.)

    >>> a = torch.rand(3, 784)
    >>> ssim(a, a)
    tensor([1., 1., 1.], dtype=torch.float64)
    """
    a, b = _pair(a, b)
    check_positive_int(window, "ssim's window")
    if window % 2 == 0 or window > SIDE:
        raise ValueError(f"ssim's window must be an odd size from 1 to {SIDE}, got {window}")
    if not is_number(sigma) or not sigma > 0:
        raise ValueError(f"ssim's sigma must be a positive number, got {sigma!r}")
    G = _window(window, sigma)  # (28, S)
    x = normalise(a).view(-1, SIDE, SIDE)
    y = normalise(b).view(-1, SIDE, SIDE)
    mean = lambda img: G.T @ img @ G  # noqa: E731  (N, S, S): local weighted means
    mu_x, mu_y = mean(x), mean(y)
    var_x = mean(x * x) - mu_x**2
    var_y = mean(y * y) - mu_y**2
    cov = mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2  # K1 = 0.01, K2 = 0.03, data range 1
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2))


# ---------------------------------------------------------------------------
# Faithfulness: deletion and insertion
# ---------------------------------------------------------------------------


def random_attributions(
    shape: Sequence[int] | torch.Size, seed: int = 0, first: torch.Tensor | None = None
) -> torch.Tensor:
    """Uniform random maps of ``shape`` (N, 784): a random pixel order, the baseline for deletion and insertion.

    With ``first`` (N, 784) bool, the pixels it marks come before all the others, each
    group in random order: ``first=ink(x)`` deletes the ink in random order before any
    background. That is the fair baseline on MNIST, where deleting a black pixel (setting
    it to 0) changes nothing, so a fully random order wastes four deletions in five.

    >>> random_attributions((2, 784), seed=1).shape
    torch.Size([2, 784])
    >>> torch.equal(random_attributions((2, 784), seed=1), random_attributions((2, 784), seed=1))
    True
    >>> first = torch.zeros(1, 784, dtype=torch.bool)
    >>> first[0, :10] = True
    >>> random_attributions((1, 784), first=first).argsort(descending=True)[0, :10].sort().values.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    shape = tuple(shape)
    if len(shape) != 2 or shape[1] != N_PIXELS or shape[0] < 1:
        raise ValueError(f"random_attributions needs a shape (N, 784) with N >= 1, got {shape}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    maps = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    if first is None:
        return maps
    if not isinstance(first, torch.Tensor) or first.dtype != torch.bool or tuple(first.shape) != shape:
        got = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise ValueError(f"first must be a bool tensor of shape {shape} (say, ink(images)), got {got}")
    return maps + first.cpu().float()  # the marked pixels lie in [1, 2), above every other


def _fractions(fractions: Sequence[float] | torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(fractions, dtype=torch.float64)
    if f.ndim != 1 or len(f) == 0:
        raise ValueError(f"fractions must be a non-empty 1-D sequence, got shape {tuple(f.shape)}")
    if not torch.isfinite(f).all() or (f < 0).any() or (f > 1).any():
        raise ValueError(f"fractions must lie in [0, 1], got {f.tolist()}")
    if (f[1:] <= f[:-1]).any():
        raise ValueError(f"fractions must be increasing, e.g. torch.linspace(0, 1, 11); got {f.tolist()}")
    return f


def _curve(model, x, target, attributions, fractions, fill, batch_size, insert: bool) -> torch.Tensor:
    check_images(x, "images")
    x = x.detach().reshape(len(x), N_PIXELS).cpu()  # modified here, sent to the model's device per batch
    n = len(x)
    target = (
        torch.full((n,), check_class(target, "target"), dtype=torch.long)
        if isinstance(target, int)
        else check_labels(target.cpu() if isinstance(target, torch.Tensor) else target, n, "target")
    )
    attributions = _maps(attributions, "attributions")
    if len(attributions) != n:
        raise ValueError(f"need one attribution map per image: {n} images, {len(attributions)} maps")
    f = _fractions(fractions)
    check_positive_int(batch_size, "batch_size")
    fill = torch.as_tensor(fill, dtype=x.dtype).cpu()
    if fill.ndim not in (0, 1, 2) or (fill.ndim > 0 and fill.shape[-1] != N_PIXELS):
        raise ValueError(
            f"fill must be a number, an image (784,) or one image per input (N, 784), got {tuple(fill.shape)}"
        )
    if fill.ndim == 2 and len(fill) != n:
        raise ValueError(f"fill holds {len(fill)} images for {n} inputs")
    if not torch.isfinite(fill).all() or fill.min() < 0 or fill.max() > 1:
        raise ValueError("fill must lie in [0, 1], like the images")
    fill = fill.expand(n, N_PIXELS)

    # Pixel p of image i is among the k most attributed when its place in the order is < k.
    order = torch.sort(attributions, dim=1, descending=True, stable=True).indices  # (N, 784)
    place = torch.empty_like(order)
    place.scatter_(1, order, torch.arange(N_PIXELS).expand(n, N_PIXELS))
    counts = torch.round(f * N_PIXELS).long()  # (K,) pixels changed at each fraction
    device = next(model.parameters()).device
    per_chunk = max(1, batch_size // len(f))  # images per forward pass: per_chunk × K modified copies
    probs = []
    with torch.no_grad(), eval_mode(model):
        for i in range(0, n, per_chunk):
            s = slice(i, i + per_chunk)
            chosen = place[s, None, :] < counts[None, :, None]  # (B, K, 784)
            keep, other = (fill[s], x[s]) if insert else (x[s], fill[s])
            images = torch.where(chosen, other[:, None, :], keep[:, None, :])  # (B, K, 784)
            logits = model(images.reshape(-1, N_PIXELS).to(device)).cpu()  # (B·K, 10)
            p = logits.softmax(1).view(-1, len(f), logits.shape[1])  # (B, K, 10)
            probs.append(p.gather(2, target[s, None, None].expand(-1, len(f), 1)).squeeze(2))
    return torch.cat(probs)  # (N, K)


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: int | torch.Tensor,
    attributions: torch.Tensor,
    fractions: Sequence[float] | torch.Tensor,
    fill: float | torch.Tensor = 0.0,
    batch_size: int = 4096,
) -> torch.Tensor:
    """The target's probability as the most-attributed pixels are deleted; (N, K).

    For each fraction f the ``round(f × 784)`` pixels with the *highest* attribution
    (signed, as Petsiuk et al. order them: pass ``attributions.abs()`` to delete by
    magnitude) are set to ``fill``; ties are broken by pixel index (a stable sort), so
    the curve is deterministic. A faithful map makes the probability fall fast: a small
    :func:`curve_area`. At fraction 0 the curve is the clean image's probability, at 1
    that of the all-``fill`` image. All N × K modified images go through the model in
    batches of about ``batch_size``, in eval mode and without gradients.

    Args:
        x: images (N, 784) in [0, 1].
        target: the class whose probability is followed: one for all images, or (N,).
        attributions: maps (N, 784), higher = more important.
        fractions: increasing fractions of pixels in [0, 1], e.g. ``torch.linspace(0, 1, 11)``.
        fill: the deleted pixels' value: a number, an image (784,) or one per input (N, 784).

    >>> from mnistlab.models import ModelConfig, build_model
    >>> model, x = build_model(ModelConfig(hidden=(8, 4))), torch.rand(3, 784)
    >>> deletion_curve(model, x, 7, x, torch.linspace(0, 1, 11)).shape
    torch.Size([3, 11])
    """
    return _curve(model, x, target, attributions, fractions, fill, batch_size, insert=False)


def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: int | torch.Tensor,
    attributions: torch.Tensor,
    fractions: Sequence[float] | torch.Tensor,
    fill: float | torch.Tensor = 0.0,
    batch_size: int = 4096,
) -> torch.Tensor:
    """The target's probability as the most-attributed pixels are inserted into an all-``fill`` image; (N, K).

    The mirror of :func:`deletion_curve` (same arguments, same order of pixels): the
    image starts as ``fill`` everywhere and the ``round(f × 784)`` most-attributed
    pixels take their values from ``x``. A faithful map makes the probability rise
    fast: a large :func:`curve_area`. At fraction 0 the curve is the all-``fill``
    image's probability, at 1 the clean image's.
    """
    return _curve(model, x, target, attributions, fractions, fill, batch_size, insert=True)


def curve_area(curve: torch.Tensor, fractions: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Area under each curve (N, K) over ``fractions`` (K,), by the trapezoid rule; (N,) float64.

    Over fractions from 0 to 1 a constant curve has the constant as its area.

    >>> curve_area(torch.full((2, 11), 0.3), torch.linspace(0, 1, 11))
    tensor([0.3000, 0.3000], dtype=torch.float64)
    """
    f = _fractions(fractions)
    if not isinstance(curve, torch.Tensor) or curve.ndim != 2 or curve.shape[1] != len(f):
        shape = tuple(curve.shape) if isinstance(curve, torch.Tensor) else type(curve).__name__
        raise ValueError(f"expected curves (N, {len(f)}), one value per fraction, got {shape}")
    return torch.trapezoid(curve.double(), f, dim=1)
