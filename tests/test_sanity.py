"""Sanity checks for attributions against oracles: reset_parameters, scipy, a loop, a linear model."""

import copy
import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
from torch import nn

from mnistlab import sanity
from mnistlab.models import ModelConfig, build_model

FRACTIONS = torch.linspace(0, 1, 11)


def mlp(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(8, 4), **kw)).eval()


def cnn():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="cnn", channels=(2, 3), hidden=(4,))).eval()


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_bits(a, b):
    return a.shape == b.shape and torch.equal(a, b)


def layer_params(model, layer):
    """The parameters of one layer (with its LayerNorm, if any), by full name."""
    parts = (layer, f"ln{layer[2:]}") if layer.startswith("fc") else (layer,)
    return {k: v for k, v in model.named_parameters() if k.split(".")[0] in parts}


# ---------------------------------------------------------------------------
# Randomisation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, keys",
    [
        (mlp, ["out", "out, fc2", "out, fc2, fc1"]),
        (cnn, ["out", "out, fc1", "out, fc1, conv2", "out, fc1, conv2, conv1"]),
    ],
    ids=["mlp", "cnn"],
)
def test_cascading_randomisation_replaces_the_top_layers_only(make, keys):
    model = make()
    before, rng = state(model), torch.get_rng_state()
    copies = sanity.randomised_copies(model, seed=3)
    assert list(copies) == keys
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator is untouched
    for key, randomised in copies.items():
        chosen = key.split(", ")
        assert randomised is not model
        for layer in sanity.layer_modules(model):
            for name, p in layer_params(randomised, layer).items():
                original = dict(model.named_parameters())[name]
                if layer in chosen:
                    assert not torch.equal(p, original), f"{key}: {name} was not re-initialised"
                else:
                    assert same_bits(p, original), f"{key}: {name} changed"
        for name, buffer in randomised.named_buffers():  # input standardisation is not a weight
            assert torch.equal(buffer, dict(model.named_buffers())[name])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the original is unchanged


def test_random_layers_are_what_reset_parameters_gives_under_the_seed():
    model = cnn()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        expected = {}
        for layer in ["out", "fc1", "conv2", "conv1"]:  # top-down, as documented
            fresh = copy.deepcopy(getattr(model, layer))
            fresh.reset_parameters()
            expected |= {f"{layer}.{k}": v for k, v in fresh.named_parameters()}
    full = sanity.randomised_copies(model, seed=5)["out, fc1, conv2, conv1"]
    for name, p in full.named_parameters():
        torch.testing.assert_close(p, expected[name], rtol=0, atol=0)
        fan_in = p.shape[1] * (p[0, 0].numel() if p.ndim == 4 else 1) if p.ndim > 1 else None
        if fan_in:  # PyTorch's default: kaiming-uniform with bound 1 / sqrt(fan_in)
            assert p.abs().max() <= 1 / math.sqrt(fan_in)


def test_a_layer_gets_the_same_random_weights_in_every_copy_and_seed_decides_them():
    model = mlp()
    a, b = sanity.randomised_copies(model, seed=1), sanity.randomised_copies(model, seed=1)
    c = sanity.randomised_copies(model, seed=2)
    for key in a:
        for (name, p), q in zip(a[key].named_parameters(), b[key].parameters()):
            assert same_bits(p, q), f"seed 1 twice differs at {key}: {name}"
    assert same_bits(a["out"].out.weight, a["out, fc2, fc1"].out.weight)  # cumulative: out stays as drawn
    assert not torch.equal(a["out"].out.weight, c["out"].out.weight)
    single = sanity.independent_randomisation(model, seed=1)
    assert list(single) == ["out", "fc2", "fc1"]
    for layer, randomised in single.items():
        for name, p in randomised.named_parameters():
            if name.startswith(layer + "."):
                assert same_bits(p, a["out, fc2, fc1"].get_parameter(name))
            else:
                assert same_bits(p, model.get_parameter(name))


def test_a_layernorm_is_reset_with_its_layer():
    model = mlp(layernorm=True)
    with torch.no_grad():
        model.ln2.weight.fill_(3.0)
        model.ln1.weight.fill_(3.0)
    randomised = sanity.randomised_copies(model)["out, fc2"]
    assert torch.equal(randomised.ln2.weight, torch.ones(4))  # LayerNorm's default: gain 1, shift 0
    assert torch.equal(randomised.ln1.weight, torch.full((8,), 3.0))


def test_randomisation_needs_a_book_model_and_a_valid_seed():
    with pytest.raises(TypeError, match="build_model"):
        sanity.randomised_copies(nn.Linear(784, 10))
    with pytest.raises(ValueError, match="seed"):
        sanity.randomised_copies(mlp(), seed=-1)


# ---------------------------------------------------------------------------
# Rank correlation and SSIM
# ---------------------------------------------------------------------------


def test_rank_correlation_matches_scipy_with_ties_and_signs():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (6, 784), generator=g).float()  # many ties, both signs
    b = a + torch.randint(-2, 3, (6, 784), generator=g).float()
    r = sanity.rank_correlation(a, b)
    expected = [scipy.stats.spearmanr(a[i].abs(), b[i].abs()).statistic for i in range(6)]
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-12)
    signed = sanity.rank_correlation(a, b, absolute=False)
    np.testing.assert_allclose(signed.numpy(), [scipy.stats.spearmanr(a[i], b[i]).statistic for i in range(6)])


def test_rank_correlation_on_a_mask_matches_scipy_on_the_masked_pixels_alone():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(-3, 4, (5, 784), generator=g).float()
    b = a + torch.randint(-2, 3, (5, 784), generator=g).float()
    mask = torch.rand(5, 784, generator=g) < torch.tensor([0.05, 0.2, 0.5, 0.9, 1.0])[:, None]
    for absolute in (True, False):
        r = sanity.rank_correlation(a, b, absolute=absolute, mask=mask)
        f = (lambda t: t.abs()) if absolute else (lambda t: t)
        expected = [scipy.stats.spearmanr(f(a[i][mask[i]]), f(b[i][mask[i]])).statistic for i in range(5)]
        np.testing.assert_allclose(r.numpy(), expected, rtol=1e-12)
    few = torch.zeros(1, 784, dtype=torch.bool)
    few[0, 3] = True  # one pixel: no ranking to compare
    assert math.isnan(sanity.rank_correlation(a[:1], b[:1], mask=few)[0])
    with pytest.raises(ValueError, match="bool tensor of the maps' shape"):
        sanity.rank_correlation(a, b, mask=mask.float())


def digit_masks(n=32, ink=200, seed=0):
    """Masks with ``ink`` pixels marked per image, like an MNIST digit's (about 150-200)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(n, 784, generator=g).argsort(1)
    return order < ink


def test_maps_that_share_only_their_zeros_correlate_highly_on_all_pixels_and_not_on_the_mask():
    """Why chapter 9 compares on the ink: the all-pixel check cannot pass methods that are 0 off the ink."""
    mask = digit_masks()
    assert sanity.shared_zeros_null(mask).min() > 0.9
    g = torch.Generator().manual_seed(2)
    a, b = (torch.rand(mask.shape, generator=g) * mask for _ in range(2))  # independent on the ink
    assert sanity.rank_correlation(a, b).mean() > 0.9  # the naive comparison: "unchanged"
    on_ink = sanity.rank_correlation(a, b, mask=mask)
    assert abs(on_ink.mean()) < 0.05 and on_ink.abs().max() < 0.3  # on the ink: unrelated


def test_the_ink_randomisation_rule_passes_a_map_that_changes_and_fails_one_that_does_not():
    """Planted effects for chapter 9's rule (mean rank correlation on the ink below 0.5 passes)."""
    from mnistlab import claims, stats

    mask = digit_masks(64)
    g = torch.Generator().manual_seed(3)
    image = torch.rand(mask.shape, generator=g) * mask  # the "image": ink values on the mask

    def verdict(trained, randomised):
        rho = sanity.rank_correlation(trained, randomised, mask=mask)
        return claims.less("demo", "maps change", stats.mean(rho.tolist(), of="images"), than=0.5).verdict

    weights_a, weights_b = (torch.randn(mask.shape, generator=g) for _ in range(2))
    assert verdict(weights_a * image, weights_b * image) == "holds"  # like gradient × input: passes on the ink
    assert verdict(image + 0.01 * weights_a, image + 0.01 * weights_b) == "contradicted"  # the image itself: fails
    # The control the all-pixel version cannot pass: the same planted change, ranked over every pixel.
    rho_all = sanity.rank_correlation(weights_a * image, weights_b * image)
    assert claims.less("demo", "maps change", stats.mean(rho_all.tolist()), than=0.5).verdict == "contradicted"


def test_random_attributions_can_put_the_ink_first_in_random_order():
    mask = digit_masks(4, ink=150)
    maps = sanity.random_attributions((4, 784), seed=0, first=mask)
    top = maps.argsort(1, descending=True)[:, :150]
    assert mask.gather(1, top).all()  # every marked pixel comes before every other
    other = sanity.random_attributions((4, 784), seed=1, first=mask).argsort(1, descending=True)[:, :150]
    assert not torch.equal(top, other)  # and in random order within the ink
    with pytest.raises(ValueError, match="bool tensor of shape"):
        sanity.random_attributions((4, 784), first=mask[:2])


def test_rank_correlation_is_nan_for_a_constant_map_and_one_for_a_monotone_change():
    a = torch.rand(3, 784)
    b = torch.cat([a[:2] ** 3 * 5, torch.zeros(1, 784)])
    assert sanity.rank_correlation(a, b)[:2].tolist() == [1.0, 1.0]
    assert math.isnan(sanity.rank_correlation(a, b)[2])


def ssim_by_loop(x, y, window, sigma=1.5):
    """Wang et al.'s formula, one window at a time, on two 28 × 28 float64 arrays already in [0, 1]."""
    r = np.arange(window) - (window - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(28 - window + 1):
        for j in range(28 - window + 1):
            px, py = x[i : i + window, j : j + window], y[i : i + window, j : j + window]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def ssim_by_scipy_filter(x, y, window, sigma=1.5):
    """scikit-image's algorithm: Gaussian-filter the whole image, keep the full windows' centres."""
    r = window // 2
    f = lambda img: scipy.ndimage.gaussian_filter(img, sigma, truncate=r / sigma, mode="constant")  # noqa: E731
    mx, my = f(x), f(y)
    vx, vy, cov = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s[r : 28 - r, r : 28 - r].mean())


@pytest.mark.parametrize("window", [7, 11])
def test_ssim_matches_the_formula_computed_window_by_window(window):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 784, generator=g)
    b = a + 0.5 * torch.randn(3, 784, generator=g)
    got = sanity.ssim(a, b, window=window)
    na, nb = sanity.normalise(a).view(-1, 28, 28).numpy(), sanity.normalise(b).view(-1, 28, 28).numpy()
    for i in range(3):
        assert got[i].item() == pytest.approx(ssim_by_loop(na[i], nb[i], window), rel=1e-10)
        assert got[i].item() == pytest.approx(ssim_by_scipy_filter(na[i], nb[i], window), rel=1e-10)


def test_ssim_equals_scikit_image_for_the_standard_window():
    metrics = pytest.importorskip("skimage.metrics")
    a, b = torch.rand(2, 784, generator=torch.Generator().manual_seed(2))
    x, y = (sanity.normalise(m[None]).view(28, 28).numpy() for m in (a, b))
    expected = metrics.structural_similarity(
        x, y, data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert sanity.ssim(a[None], b[None], window=11).item() == pytest.approx(expected, rel=1e-10)


def test_ssim_known_values():
    g = torch.Generator().manual_seed(3)
    a = torch.rand(4, 784, generator=g)
    noise = torch.rand(4, 784, generator=g)
    torch.testing.assert_close(sanity.ssim(a, a), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(sanity.ssim(a, -3 * a), torch.ones(4, dtype=torch.float64))  # |map| / max
    torch.testing.assert_close(sanity.ssim(a, noise), sanity.ssim(noise, a))  # symmetric
    blurred = torch.from_numpy(scipy.ndimage.gaussian_filter(a.view(4, 28, 28).numpy(), (0, 1, 1))).view(4, 784)
    assert (sanity.ssim(a, noise) < sanity.ssim(a, a + 0.1 * noise)).all()
    assert (sanity.ssim(a, noise) < 0.2).all() and (sanity.ssim(a, blurred) < 1).all()
    # A flat map against an empty one: no structure, only the means differ, SSIM = C1 / (1 + C1).
    flat = sanity.ssim(torch.ones(1, 784), torch.zeros(1, 784)).item()
    assert flat == pytest.approx(1e-4 / (1 + 1e-4))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sanity.ssim(torch.rand(2, 784), torch.rand(3, 784)), "one map of each kind"),
        (lambda: sanity.ssim(torch.rand(2, 100), torch.rand(2, 100)), r"\(N, 784\)"),
        (lambda: sanity.ssim(torch.rand(2, 784), torch.rand(2, 784), window=8), "odd"),
        (lambda: sanity.rank_correlation(torch.rand(2, 784), torch.full((2, 784), math.nan)), "NaN"),
        (lambda: sanity.rank_correlation(torch.ones(2, 784, dtype=torch.long), torch.rand(2, 784)), "floating"),
    ],
    ids=["lengths", "not images", "even window", "nan", "integer maps"],
)
def test_bad_maps_fail_clearly(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------------------
# Deletion and insertion
# ---------------------------------------------------------------------------


def only_target_reads_pixels(target=3):
    """A linear model whose only non-zero logit is ``target``'s: its probability rises with that logit."""
    torch.manual_seed(0)
    model = nn.Linear(784, 10)
    with torch.no_grad():
        model.weight[torch.arange(10) != target] = 0
        model.bias.zero_()
    return model


def test_deleting_by_weight_times_input_lowers_the_target_fastest():
    model, target = only_target_reads_pixels(), 3
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(0))
    attributions = model.weight[target].detach() * x  # (N, 784): each pixel's share of the target's logit
    curve = sanity.deletion_curve(model, x, target, attributions, FRACTIONS)
    # By hand: deleting the k largest contributions leaves the logit minus their sum.
    top = attributions.sort(dim=1, descending=True).values.cumsum(1)  # (N, 784)
    counts = torch.round(FRACTIONS * 784).long()
    logit = (model(x)[:, target, None] - torch.cat([torch.zeros(5, 1), top], 1)[:, counts]).detach()
    expected = logit.exp() / (logit.exp() + 9)
    torch.testing.assert_close(curve, expected)
    randomly = sanity.deletion_curve(model, x, target, sanity.random_attributions(x.shape, seed=0), FRACTIONS)
    assert (curve <= randomly + 1e-6).all()  # no other order of k pixels lowers it more
    assert (sanity.curve_area(curve, FRACTIONS) < sanity.curve_area(randomly, FRACTIONS)).all()
    inserted = sanity.insertion_curve(model, x, target, attributions, FRACTIONS)
    inserted_randomly = sanity.insertion_curve(model, x, target, sanity.random_attributions(x.shape, 1), FRACTIONS)
    assert (sanity.curve_area(inserted, FRACTIONS) > sanity.curve_area(inserted_randomly, FRACTIONS)).all()


def by_single_images(model, x, target, attributions, fractions, fill, insert):
    """The curve one modified image at a time; ties by pixel index (Python's sort is stable)."""
    out = torch.empty(len(x), len(fractions))
    for i in range(len(x)):
        order = sorted(range(784), key=lambda p: -attributions[i, p].item())
        for j, f in enumerate(fractions.tolist()):
            chosen = torch.zeros(784, dtype=torch.bool)
            chosen[order[: round(f * 784)]] = True
            image = torch.where(chosen, x[i], fill) if insert else torch.where(chosen, fill, x[i])
            out[i, j] = model(image[None]).softmax(1)[0, target[i]]
    return out


@pytest.mark.parametrize("insert", [False, True], ids=["deletion", "insertion"])
def test_curves_equal_one_modified_image_at_a_time(insert):
    model = mlp()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 784, generator=g)
    target = torch.tensor([0, 3, 7, 9])
    attributions = torch.randint(0, 3, (4, 784), generator=g).float()  # ties everywhere
    fill = torch.full((784,), 0.25)
    fractions = torch.tensor([0.0, 0.05, 0.5, 0.9, 1.0])
    curve_fn = sanity.insertion_curve if insert else sanity.deletion_curve
    with torch.no_grad():
        expected = by_single_images(model, x, target, attributions, fractions, fill, insert)
    for batch_size in (3, 4096):  # several passes, or one
        got = curve_fn(model, x, target, attributions, fractions, fill=fill, batch_size=batch_size)
        torch.testing.assert_close(got, expected)
    clean = model(x).softmax(1)[torch.arange(4), target].detach()
    blank = model(fill.expand(4, 784)).softmax(1)[torch.arange(4), target].detach()
    first, last = (blank, clean) if insert else (clean, blank)
    torch.testing.assert_close(got[:, 0], first)
    torch.testing.assert_close(got[:, -1], last)


def test_curves_leave_the_model_in_its_mode():
    model = mlp(dropout=0.5).train()
    x = torch.rand(3, 784)
    a = sanity.deletion_curve(model, x, 1, x, FRACTIONS)
    b = sanity.deletion_curve(model, x, 1, x, FRACTIONS)
    assert torch.equal(a, b) and model.training  # dropout off inside, training mode back after


def test_random_attributions_are_seeded():
    a, b = sanity.random_attributions((3, 784), seed=7), sanity.random_attributions(torch.Size([3, 784]), seed=7)
    assert torch.equal(a, b) and not torch.equal(a, sanity.random_attributions((3, 784), seed=8))
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        sanity.random_attributions((3, 28, 28))


def test_curve_area_is_the_trapezoid_rule():
    assert sanity.curve_area(torch.full((2, 11), 0.7), FRACTIONS).tolist() == pytest.approx([0.7, 0.7])
    curve = torch.rand(3, 6)
    f = torch.tensor([0.0, 0.1, 0.2, 0.5, 0.8, 1.0])
    np.testing.assert_allclose(sanity.curve_area(curve, f).numpy(), np.trapezoid(curve.double().numpy(), f.numpy()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fractions": [0.5, 0.2]}, "increasing"),
        ({"fractions": [0.0, 1.5]}, r"\[0, 1\]"),
        ({"attributions": torch.rand(2, 784)}, "one attribution map per image"),
        ({"target": 10}, "0..9"),
        ({"target": torch.tensor([1, 2])}, r"\(3,\)"),
        ({"fill": 2.0}, "fill must lie in"),
        ({"fill": torch.zeros(5)}, "fill must be"),
        ({"x": torch.rand(3, 784) * 255}, "divide by 255"),
    ],
    ids=["decreasing", "beyond 1", "map count", "class", "targets", "fill range", "fill shape", "0-255"],
)
def test_bad_curve_arguments_fail_clearly(kwargs, match):
    args = {"x": torch.rand(3, 784), "target": 1, "attributions": torch.rand(3, 784), "fractions": FRACTIONS} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        sanity.deletion_curve(mlp(), **args)


def test_the_ink_first_random_order_is_a_control_that_a_map_knowing_only_the_ink_cannot_beat():
    """Planted: a map that knows where the ink is but nothing about it beats a fully random order (which wastes its
    deletions on black pixels) and not a random order over the ink first; a map that knows each pixel's share of the
    logit beats both."""
    from mnistlab import claims, stats

    model, target, n = only_target_reads_pixels(), 3, 40
    with torch.no_grad():
        model.weight[target] = model.weight[target].abs()  # ink counts for the target, as a digit's strokes do
    g = torch.Generator().manual_seed(5)
    ink = torch.rand(n, 784, generator=g) < 0.2  # about a fifth of the pixels carry ink, as on MNIST
    x = torch.where(ink, 0.2 + 0.8 * torch.rand(n, 784, generator=g), torch.zeros(()))
    knows_ink = ink.float() + 1e-3 * torch.rand(n, 784, generator=g)  # ink first, in an order that means nothing
    knows_shares = (model.weight[target] * x).detach()

    def advantage(maps, baseline):  # per image: the baseline's area minus the map's (positive: the map is faster)
        area = {
            name: sanity.curve_area(sanity.deletion_curve(model, x, target, m, FRACTIONS), FRACTIONS)
            for name, m in (("map", maps), ("baseline", baseline))
        }
        return stats.paired_difference(area["baseline"], area["map"])

    def beats(maps, baseline):
        return claims.greater("faster", "deletes faster", advantage(maps, baseline)).verdict

    fully_random = sanity.random_attributions(x.shape, seed=0)
    ink_first = sanity.random_attributions(x.shape, seed=0, first=ink)
    assert beats(knows_ink, fully_random) == "holds"  # the unfair baseline is beaten by knowing the ink alone
    unfair, fair = advantage(knows_ink, fully_random).value, advantage(knows_ink, ink_first).value
    assert abs(fair) < 0.02 * unfair  # against the fair one, knowing the ink is worth next to nothing
    assert beats(knows_shares, ink_first) == "holds"  # and a map that knows more beats it
    assert advantage(knows_shares, ink_first).value > 10 * abs(fair)
