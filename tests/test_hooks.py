"""Hook points and recording, with a manual forward pass as the oracle."""

import pytest
import torch
import torch.nn.functional as F

from mnistlab.hooks import ActivationCache, hook_points, hooks, run_with_cache
from mnistlab.models import ModelConfig, build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(32, 16)))


def manual_forward(model, x):
    """The MLP's forward pass written out by hand."""
    h1_pre = x @ model.fc1.weight.T + model.fc1.bias
    h1 = F.relu(h1_pre)
    h2_pre = h1 @ model.fc2.weight.T + model.fc2.bias
    h2 = F.relu(h2_pre)
    logits = h2 @ model.out.weight.T + model.out.bias
    return {"input": x, "fc1_pre": h1_pre, "fc1_post": h1, "fc2_pre": h2_pre, "fc2_post": h2, "logits": logits}


def test_hook_point_names_are_stable(model):
    assert list(hook_points(model)) == ["input", "fc1_pre", "fc1_post", "fc2_pre", "fc2_post", "logits"]
    assert all(hp.name == name for name, hp in hook_points(model).items())


def test_recorded_activations_equal_manual_forward(model):
    x = torch.rand(700, 784)
    logits, cache = run_with_cache(model, x, batch_size=256)  # several batches, last one partial
    expected = manual_forward(model, x)
    assert set(cache) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(cache[name], value.detach(), rtol=1e-5, atol=1e-5)
        assert cache[name].device.type == "cpu" and not cache[name].requires_grad
    torch.testing.assert_close(logits, expected["logits"].detach(), rtol=1e-5, atol=1e-5)


def test_run_with_cache_records_only_named_points(model):
    _, cache = run_with_cache(model, torch.rand(3, 784), names="fc2_post")
    assert list(cache) == ["fc2_post"]
    with pytest.raises(KeyError, match="was not recorded"):
        cache["fc1_post"]


def test_unknown_hook_name_lists_the_valid_ones(model):
    with pytest.raises(KeyError, match="fc1_post") as err:
        run_with_cache(model, torch.rand(2, 784), names=["fc3_post"])
    assert "fc3_post" in str(err.value)
    with pytest.raises(KeyError, match="unknown hook point"):
        with hooks(model, {"nope": lambda a, n: None}):
            pass


def test_edit_hook_replaces_activation(model):
    x = torch.rand(5, 784)
    with hooks(model, {"fc2_post": lambda a, name: torch.zeros_like(a)}):
        out = model(x)
    # With the last hidden layer zeroed, the logits are the output bias.
    torch.testing.assert_close(out, model.out.bias.expand(5, 10))
    assert not torch.allclose(model(x), out), "the edit must end with the with-block"


def test_hooks_removed_after_exception(model):
    def boom(activation, name):
        raise RuntimeError("inside a hook")

    with pytest.raises(RuntimeError, match="inside a hook"):
        with hooks(model, {"fc1_post": boom}):
            model(torch.rand(2, 784))
    assert all(not hp._forward_hooks for hp in hook_points(model).values())

    with pytest.raises(ValueError):
        with hooks(model, {"fc1_post": lambda a, n: None, "logits": lambda a, n: None}):
            raise ValueError("raised in the with-block")
    assert all(not hp._forward_hooks for hp in hook_points(model).values())


def test_run_with_cache_cleans_up_after_exception_and_restores_mode(model):
    model.train()
    with pytest.raises(ValueError, match="784"):
        run_with_cache(model, torch.rand(4, 783))
    assert all(not hp._forward_hooks for hp in hook_points(model).values())
    assert model.training


def test_run_with_cache_rejects_empty_input(model):
    with pytest.raises(ValueError, match="empty"):
        run_with_cache(model, torch.rand(0, 784))


def test_activation_cache_is_a_read_only_mapping():
    cache = ActivationCache({"a": torch.zeros(2, 3)})
    assert len(cache) == 1 and "a" in cache
    assert "a: (2, 3)" in repr(cache)
    with pytest.raises(TypeError):
        cache["b"] = torch.zeros(1)


def test_all_finite_agrees_with_the_elementwise_check():
    from mnistlab.checks import all_finite

    big = torch.full((4, 3), 60000.0, dtype=torch.float16)  # finite values whose sum overflows
    cases = [torch.rand(5, 7), big, torch.tensor([1.0, float("nan")]), torch.tensor([float("inf"), -float("inf")]),
             torch.tensor([-float("inf"), 0.0]), torch.zeros(0)]
    for x in cases:
        assert all_finite(x) == bool(torch.isfinite(x).all()), x
