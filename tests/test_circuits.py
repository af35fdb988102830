"""Circuits read from the weights, against the model's own forward pass."""

import math

import pytest
import torch

from mnistlab import circuits
from mnistlab.analysis import firing_rate
from mnistlab.hooks import run_with_cache
from mnistlab.models import ModelConfig, build_model

NAMES = ["fc1_post", "fc2_pre", "fc2_post"]


def random_run(config: ModelConfig | None = None, n: int = 400, seed: int = 0):
    """A randomly initialised model (the book's by default), random images in [0, 1], its logits and activations."""
    torch.manual_seed(seed)
    model = build_model(config or ModelConfig(hidden=(32, 16)))
    x = torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))
    logits, cache = run_with_cache(model, x, names=NAMES)
    return model, logits, cache


@pytest.mark.parametrize(
    "config",
    [ModelConfig(hidden=(32, 16)), ModelConfig(hidden=(32, 16), dropout=0.5, layernorm=True), ModelConfig(arch="cnn")],
    ids=["book", "dropout-layernorm", "cnn"],
)
def test_dla_summed_over_units_plus_the_bias_is_the_logits(config):
    model, logits, cache = random_run(config, n=200)
    dla = circuits.direct_logit_attribution(model, cache["fc2_post"])
    assert dla.shape == (200, 16, 10)
    torch.testing.assert_close(dla.sum(1) + model.out.bias.detach(), logits)  # float32 tolerance
    # One contribution by hand: activation times its readout weight.
    assert dla[7, 3, 5] == cache["fc2_post"][7, 3] * model.out.weight[5, 3]


def test_each_inputs_own_pattern_linearises_the_network_exactly():
    model, logits, cache = random_run()
    pattern = cache["fc2_pre"] > 0  # (N, 16)
    torch.testing.assert_close(circuits.linearised_logits(model, cache["fc1_post"], pattern), logits)
    per_input = circuits.virtual_weights_per_input(model, cache["fc2_post"])  # (N, 32, 10)
    assert per_input.shape == (400, 32, 10)
    for n in (0, 17, 399):
        torch.testing.assert_close(per_input[n], circuits.virtual_weights(model, pattern[n]))


def test_a_shared_pattern_is_exact_on_the_inputs_that_have_it_and_only_there():
    model, logits, cache = random_run(n=1000)
    pattern = cache["fc2_pre"] > 0
    patterns, counts = pattern.unique(dim=0, return_counts=True)
    common = patterns[counts.argmax()]  # (16,)
    has_it = (pattern == common).all(1)
    assert 5 <= has_it.sum() < 1000
    linear = circuits.linearised_logits(model, cache["fc1_post"], common)
    torch.testing.assert_close(linear[has_it], logits[has_it])
    # Elsewhere the error is exactly what the wrongly gated units add or leave out.
    wrong_gate = common.float() - pattern.float()  # (N, 16): +1 forced on, -1 forced off
    error = (wrong_gate * cache["fc2_pre"]) @ model.out.weight.detach().T  # (N, 10)
    torch.testing.assert_close(linear - logits, error, atol=1e-5, rtol=1e-4)
    assert error[~has_it].abs().amax() > 0.1


def test_with_every_relu_on_the_virtual_weights_are_the_weight_product():
    model, _, _ = random_run()
    with torch.no_grad():
        model.fc2.bias.fill_(100.0)  # every fc2 unit is on for every input
    x = torch.rand(300, 784, generator=torch.Generator().manual_seed(1))
    logits, cache = run_with_cache(model, x, names=NAMES)
    share = firing_rate(cache["fc2_post"])
    assert torch.equal(share, torch.ones(16))
    v = circuits.virtual_weights(model, share)
    assert torch.equal(v, (model.out.weight @ model.fc2.weight).T.detach())
    torch.testing.assert_close(circuits.linearised_logits(model, cache["fc1_post"], share), logits)


def test_firing_rate_weights_are_the_mean_of_the_inputs_own():
    model, _, cache = random_run()
    mean = circuits.virtual_weights_per_input(model, cache["fc2_post"]).mean(0)
    torch.testing.assert_close(circuits.virtual_weights(model, firing_rate(cache["fc2_post"])), mean)


def test_mean_dla_averages_the_digits_images_only():
    g = torch.Generator().manual_seed(2)
    dla = torch.randn(50, 16, 10, generator=g)
    labels = torch.randint(0, 10, (50,), generator=g)
    labels[:3] = 4
    of_four = [n for n in range(50) if labels[n] == 4]
    expected = torch.stack([dla[n, :, 4] for n in of_four]).mean(0)
    torch.testing.assert_close(circuits.mean_dla(dla, labels, 4), expected)
    # Other images, and other logits of the digit's images, change nothing.
    edited = dla.clone()
    edited[labels != 4] = 1e6
    edited[labels == 4, :, 5] = -1e6
    torch.testing.assert_close(circuits.mean_dla(edited, labels, 4), expected)


def test_circuit_share_of_all_units_is_one_and_of_none_zero():
    model, _, cache = random_run(n=1000)
    dla = circuits.direct_logit_attribution(model, cache["fc2_post"])
    labels = dla.sum(1).argmax(1)  # the class each image pushes up most (above the biases)
    digit = labels.mode().values.item()
    assert circuits.mean_dla(dla, labels, digit).sum() > 0
    assert circuits.circuit_share(dla, labels, digit, range(16)) == 1.0
    assert circuits.circuit_share(dla, labels, digit, torch.ones(16, dtype=torch.bool)) == 1.0
    assert circuits.circuit_share(dla, labels, digit, []) == 0.0
    units = [11, 2, 5]
    rest = [u for u in range(16) if u not in units]
    share = circuits.circuit_share(dla, labels, digit, units)
    assert share + circuits.circuit_share(dla, labels, digit, rest) == pytest.approx(1.0)
    m = circuits.mean_dla(dla, labels, digit)
    assert share == pytest.approx((m[units].sum() / m.sum()).item(), rel=1e-6)


def test_circuit_share_refuses_a_logit_that_is_not_above_its_bias():
    dla = -torch.ones(4, 16, 10)
    with pytest.raises(ValueError, match="mean logit above the output bias is -16 on its images, not positive"):
        circuits.circuit_share(dla, torch.zeros(4, dtype=torch.long), 0, [0])


@pytest.mark.parametrize(
    "units, error, match",
    [
        ([3, 16], ValueError, r"units must lie in 0\.\.15; got \[16\]"),
        ([3, 3], ValueError, "distinct"),
        (torch.ones(5, dtype=torch.bool), ValueError, r"bool mask of units must have shape \(16,\)"),
        ([0.5], TypeError, "int indices or a bool mask"),
    ],
)
def test_circuit_share_checks_its_units(units, error, match):
    dla = torch.ones(4, 16, 10)
    with pytest.raises(error, match=match):
        circuits.circuit_share(dla, torch.zeros(4, dtype=torch.long), 0, units)


def test_bad_inputs_say_what_is_wrong():
    model, _, cache = random_run(n=20)
    acts1, acts2 = cache["fc1_post"], cache["fc2_post"]
    with pytest.raises(ValueError, match=r"fc2_post activations \(N, 16\) for this model, got \(20, 32\)"):
        circuits.direct_logit_attribution(model, acts1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        circuits.direct_logit_attribution(model, torch.full((2, 16), math.nan))
    with pytest.raises(ValueError, match=r"fc1_post activations \(N, 32\)"):
        circuits.linearised_logits(model, acts2, acts2 > 0)
    with pytest.raises(ValueError, match=r"pattern of shape \(16,\) or \(20, 16\), got \(19, 16\)"):
        circuits.linearised_logits(model, acts1, acts2[:19] > 0)
    with pytest.raises(ValueError, match=r"active must lie in \[0, 1\]"):
        circuits.virtual_weights(model, torch.full((16,), 2.0))
    with pytest.raises(TypeError, match="bool or floating"):
        circuits.virtual_weights(model, torch.ones(16, dtype=torch.long))
    with pytest.raises(ValueError, match="layernorm=True"):
        circuits.virtual_weights(build_model(ModelConfig(layernorm=True)), torch.ones(16))
    with pytest.raises(ValueError, match=r"hidden=\(32, 16, 8\)"):
        circuits.direct_logit_attribution(build_model(ModelConfig(hidden=(32, 16, 8))), torch.rand(2, 8))
    with pytest.raises(TypeError, match="build_model"):
        circuits.direct_logit_attribution(torch.nn.Linear(16, 10), acts2)

    dla = circuits.direct_logit_attribution(model, acts2)
    with pytest.raises(ValueError, match=r"expected a direct logit attribution \(N, units, classes\)"):
        circuits.mean_dla(dla.sum(1), torch.zeros(20, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"labels of shape \(20,\)"):
        circuits.mean_dla(dla, torch.zeros(19, dtype=torch.long), 0)
    with pytest.raises(ValueError, match=r"digit must be a class index in 0\.\.9, got 10"):
        circuits.mean_dla(dla, torch.zeros(20, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="no image of digit 3 among the 20 labels"):
        circuits.mean_dla(dla, torch.zeros(20, dtype=torch.long), 3)
