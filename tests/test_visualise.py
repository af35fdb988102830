"""Activation maximisation: the objective rises, presets keep their promises, the model is left as found."""

import dataclasses

import numpy as np
import pytest
import torch

from mnistlab import visualise as vis
from mnistlab.checks import as_units
from mnistlab.hooks import hook_points, hooks
from mnistlab.models import ModelConfig, build_model

SHORT = vis.VisConfig(steps=32)


@pytest.fixture(scope="module")
def mlp():
    """An MLP briefly trained to tell ten random ink patterns apart: its units carry signal, as a real net's do."""
    g = torch.Generator().manual_seed(0)
    patterns = (torch.rand(10, 784, generator=g) < 0.3).float()
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(8, 4)))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(150):
        y = torch.randint(10, (64,), generator=g)
        x = (patterns[y] + 0.3 * torch.rand(64, 784, generator=g)).clamp(0, 1)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.zero_grad(set_to_none=True)
    assert (model(patterns).argmax(1) == torch.arange(10)).all()
    return model.eval()


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="cnn", channels=(2, 3), hidden=(4,))).eval()


def no_hooks_left(model):
    return all(not hp._forward_hooks for hp in hook_points(model).values())


def activations(model, x, layer):
    """The layer's units on images x (any values: the optimum may leave [0, 1]), by a hooked forward pass."""
    seen = []
    with torch.no_grad(), hooks(model, {layer: lambda a, name: seen.append(a)}):
        model(x)
    return as_units(seen[0])


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "arch, layer, units",
    [
        ("mlp", "fc1_post", range(8)),
        ("mlp", "fc2_post", range(4)),
        ("mlp", "logits", range(10)),
        ("cnn", "conv1_post", range(2)),
        ("cnn", "conv2_pre", range(3)),
    ],
)
def test_the_activation_rises_over_the_steps(request, arch, layer, units):
    model = request.getfixturevalue(arch)
    many = vis.maximise_many(model, layer, list(units), SHORT)
    assert (many.traces[..., -1] > many.traces[..., 0]).all()
    # The reported activation is the unit's on the final image, as a forward pass finds it.
    acts = activations(model, many.images.view(-1, 784), layer).view(len(units), 1, -1)
    torch.testing.assert_close(many.activations, acts[torch.arange(len(units)), :, list(units)])


@pytest.mark.parametrize(
    "arch, layer", [("mlp", "fc1_post"), ("mlp", "fc2_post"), ("mlp", "logits"), ("cnn", "conv1_post")]
)
def test_unregularised_ascent_beats_every_random_image(request, arch, layer):
    model = request.getfixturevalue(arch)
    random_best = activations(model, torch.rand(1000, 784, generator=torch.Generator().manual_seed(0)), layer).max(0)
    units = list(range(len(random_best.values)))
    best = vis.maximise_many(model, layer, units, dataclasses.replace(vis.UNREGULARISED, steps=64))
    assert (best.activations[:, 0] > random_best.values).all()


@pytest.mark.parametrize("arch, layer", [("mlp", "logits"), ("cnn", "conv2_post")])
def test_regularised_images_stay_in_range(request, arch, layer):
    model = request.getfixturevalue(arch)
    many = vis.maximise_many(model, layer, [0, 1], dataclasses.replace(vis.REGULARISED, steps=40), restarts=2)
    assert many.images.min() >= 0 and many.images.max() <= 1
    if arch == "mlp":  # the TV penalty may cost an untrained net's faint units activation; not a trained one's
        assert (many.traces[..., -1] > many.traces[..., 0]).all()


def test_a_unit_that_is_off_at_the_start_still_climbs():
    torch.manual_seed(1)
    model = build_model(ModelConfig(hidden=(8, 4))).eval()
    with torch.no_grad():
        model.fc1.weight[0] = 0.01
        model.fc1.bias[0] = -6.0  # off on the grey start image (pre-activation about -2): no gradient through the ReLU
    v = vis.maximise(model, "fc1_post", 0, SHORT)
    assert v.trace[0] == 0 and v.activation > 0


def test_maximisation_is_deterministic_and_leaves_everything_as_found(mlp):
    config = dataclasses.replace(vis.REGULARISED, steps=16)
    before, rng = snapshot(mlp), torch.get_rng_state()
    mlp.train()
    mlp.fc1.weight.grad = torch.ones_like(mlp.fc1.weight)
    try:
        a = vis.maximise(mlp, "fc1_post", 2, config)
        b = vis.maximise(mlp, "fc1_post", 2, config)
        assert torch.equal(a.image, b.image) and torch.equal(a.trace, b.trace) and a.activation == b.activation
        assert mlp.training and torch.equal(mlp.fc1.weight.grad, torch.ones_like(mlp.fc1.weight))
        assert all(p.grad is None for n, p in mlp.named_parameters() if n != "fc1.weight")
    finally:
        mlp.eval()
        mlp.fc1.weight.grad = None
    assert all(torch.equal(v, before[k]) for k, v in mlp.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert no_hooks_left(mlp)
    other = vis.maximise(mlp, "fc1_post", 2, dataclasses.replace(config, seed=1))
    assert not torch.equal(other.image, a.image)


def test_a_units_result_does_not_depend_on_its_batch(mlp):
    config = dataclasses.replace(vis.REGULARISED, steps=24)
    alone = vis.maximise(mlp, "fc1_post", 5, config)
    together = vis.maximise_many(mlp, "fc1_post", [1, 5, 7], config, restarts=2)
    torch.testing.assert_close(together.images[1, 0], alone.image)
    torch.testing.assert_close(together.traces[1, 0], alone.trace)
    second = vis.maximise(mlp, "fc1_post", 5, dataclasses.replace(config, seed=1))
    torch.testing.assert_close(together.images[1, 1], second.image)  # restart r is the run with seed + r
    best = together.best()
    assert [v.unit for v in best] == [1, 5, 7] and all(type(v.unit) is int for v in best)
    as_tensor = vis.maximise(mlp, "fc1_post", torch.tensor(5), config)  # e.g. from analysis.top_units
    assert torch.equal(as_tensor.image, alone.image) and as_tensor.unit == 5
    assert [v.activation for v in best] == together.activations.max(1).values.tolist()


def test_jitter_shifts_each_image_with_zeros_coming_in():
    images = torch.arange(2 * 784, dtype=torch.float32).view(2, 28, 28)
    shifts = torch.tensor([[2, -1], [-3, 0]])
    got = vis._shift(images, shifts, pad=3)
    for b, (dy, dx) in enumerate(shifts.tolist()):
        expected = torch.zeros(28, 28)
        for i in range(28):
            for j in range(28):
                if 0 <= i - dy < 28 and 0 <= j - dx < 28:
                    expected[i, j] = images[b, i - dy, j - dx]
        assert torch.equal(got[b], expected)


def test_cosine_to_images_is_the_pixel_correlation():
    g = torch.Generator().manual_seed(0)
    image, images = torch.rand(784, generator=g), torch.rand(5, 784, generator=g)
    expected = [np.corrcoef(image.numpy(), m.numpy())[0, 1] for m in images]
    np.testing.assert_allclose(vis.cosine_to_images(image, images).numpy(), expected, rtol=1e-5)
    raw = torch.nn.functional.cosine_similarity(image[None].double(), images.double())
    torch.testing.assert_close(vis.cosine_to_images(image, images, center=False), raw)
    assert vis.cosine_to_images(image, torch.full((1, 784), 0.3)).isnan().all()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: vis.maximise(m, "fc9_post", 0, SHORT), KeyError, "fc1_post"),
        (lambda m: vis.maximise(m, "fc1_post", 8, SHORT), IndexError, r"units 0\.\.7"),
        (lambda m: vis.maximise(m, "logits", -1, SHORT), IndexError, r"units 0\.\.9"),
        (lambda m: vis.maximise_many(m, "fc1_post", [], SHORT), ValueError, "at least one unit"),
        (lambda m: vis.maximise_many(m, "fc1_post", [0], SHORT, restarts=0), ValueError, "restarts"),
        (lambda m: vis.maximise(m, "fc1_post", 0, {"steps": 3}), TypeError, "VisConfig"),
        (lambda m: vis.maximise(m, "fc1_post", 1.0, SHORT), TypeError, "int indices"),
    ],
    ids=["unknown layer", "unit too large", "negative unit", "no units", "no restarts", "not a config", "float unit"],
)
def test_bad_requests_fail_clearly_and_leave_no_hook(mlp, call, error, match):
    with pytest.raises(error, match=match):
        call(mlp)
    assert no_hooks_left(mlp)


@pytest.mark.parametrize(
    "field, value",
    [("steps", 0), ("lr", 0.0), ("jitter", -1), ("jitter", 28), ("blur", -1.0), ("blur_every", 0), ("tv", float("nan"))]
    + [("pixel_range", 1), ("seed", -2)],
)
def test_bad_configs_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"VisConfig.{field}"):
        vis.VisConfig(**{field: value})
