"""The MLP's options and input checks."""

import pytest
import torch

from mnistlab.hooks import run_with_cache
from mnistlab.models import ModelConfig, build_model, flatten_images


def test_image_shapes_are_accepted_and_flattened():
    x = torch.rand(3, 28, 28)
    assert flatten_images(x).shape == (3, 784)
    assert flatten_images(x.unsqueeze(1)).shape == (3, 784)


@pytest.mark.parametrize("shape", [(3, 783), (3, 2, 28, 28), (784,)])
def test_wrong_shape_says_what_was_expected(shape):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 784\)"):
        build_model(ModelConfig())(torch.rand(*shape))


def test_integer_images_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        build_model(ModelConfig())(torch.zeros(2, 784, dtype=torch.uint8))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"hidden": ()}, "hidden"), ({"hidden": (32, 0)}, "hidden"), ({"dropout": 1.0}, "dropout")],
)
def test_invalid_model_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_input_norm_uses_training_statistics():
    x_train = torch.rand(100, 784) * 0.5
    model = build_model(ModelConfig(input_norm=True), x_train)
    _, cache = run_with_cache(model, x_train, names="input")
    assert cache["input"].mean().abs() < 1e-4
    assert (cache["input"].std() - 1).abs() < 1e-3
    with pytest.raises(ValueError, match="x_train"):
        build_model(ModelConfig(input_norm=True))


def test_layernorm_and_dropout_options():
    model = build_model(ModelConfig(layernorm=True, dropout=0.5))
    assert hasattr(model, "ln1") and hasattr(model, "ln2")
    x = torch.rand(8, 784)
    model.eval()
    torch.testing.assert_close(model(x), model(x))  # dropout is off in eval mode
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))  # and on in training


def test_widths_are_configurable():
    model = build_model(ModelConfig(hidden=[8, 8, 4]))
    assert model.config.hidden == (8, 8, 4)
    assert model.config.layer_names == ["fc1_post", "fc2_post", "fc3_post"]
    _, cache = run_with_cache(model, torch.rand(2, 784), names=model.config.layer_names)
    assert [cache[n].shape[1] for n in model.config.layer_names] == [8, 8, 4]


def test_split_units_computes_the_same_function_with_twice_the_units():
    from mnistlab import attribution
    from mnistlab.models import split_units

    torch.manual_seed(0)
    for config, layer in ((ModelConfig(hidden=(12, 6)), "fc1_post"), (ModelConfig(hidden=(12, 6)), "fc2_post"),
                          (ModelConfig(arch="cnn", channels=(2, 3), hidden=(5,)), "fc1_post")):
        model = build_model(config).eval()
        twin = split_units(model, layer)
        x = torch.rand(16, 784)
        torch.testing.assert_close(twin(x), model(x), atol=1e-5, rtol=1e-5)
        i = int(layer[2]) - 1
        assert twin.config.hidden[i] == 2 * config.hidden[i]
        target = model(x).argmax(1)
        ig = [attribution.integrated_gradients(m, x, target) for m in (model, twin)]
        torch.testing.assert_close(ig[1], ig[0], atol=1e-5, rtol=1e-4)  # implementation invariance
        gbp = [attribution.guided_backprop(m, x, target) for m in (model, twin)]
        assert ((gbp[1] - gbp[0]).norm(dim=1) / gbp[0].norm(dim=1)).median() > 0.05  # reads the wiring: fails
    assert split_units(model, "fc1_post", shares=(0.5, 0.5)) is not None
    with pytest.raises(ValueError, match="sum to 1"):
        split_units(model, "fc1_post", shares=(1.0, 1.0))
    with pytest.raises(KeyError, match="hidden linear layer"):
        split_units(model, "conv1_post")
    with pytest.raises(ValueError, match="LayerNorm"):
        split_units(build_model(ModelConfig(hidden=(4, 3), layernorm=True)), "fc1_post")
