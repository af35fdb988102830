"""The CNN: hook points against a manual forward pass, channels as units, channel ablation."""

import pytest
import torch
import torch.nn.functional as F

from mnistlab import analysis, patching
from mnistlab import interventions as iv
from mnistlab.checks import as_units
from mnistlab.hooks import hook_points, hooks, run_with_cache
from mnistlab.models import CNN, ModelConfig, build_model

CONFIG = ModelConfig(arch="cnn", channels=(4, 6), hidden=(10,))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model(CONFIG).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(12, 784, generator=torch.Generator().manual_seed(2))


def test_hook_points_and_layer_names(cnn):
    assert list(hook_points(cnn)) == [
        "input", "conv1_pre", "conv1_post", "conv2_pre", "conv2_post", "fc1_pre", "fc1_post", "logits",
    ]
    assert CONFIG.layer_names == ["conv1_post", "conv2_post", "fc1_post"]
    assert CONFIG.weight_names == ["conv1.weight", "conv2.weight", "fc1.weight", "out.weight"]
    assert isinstance(cnn, CNN)


def test_feature_maps_equal_a_manual_conv_forward_pass(cnn, images):
    logits, cache = run_with_cache(cnn, images, names=["conv1_post", "conv2_post"])
    x = images.view(-1, 1, 28, 28)
    h1 = F.relu(F.conv2d(x, cnn.conv1.weight, cnn.conv1.bias, padding=2))
    h2 = F.relu(F.conv2d(F.max_pool2d(h1, 2), cnn.conv2.weight, cnn.conv2.bias, padding=2))
    torch.testing.assert_close(cache["conv1_post"], h1)
    torch.testing.assert_close(cache["conv2_post"], h2)
    assert cache["conv2_post"].shape == (12, 6, 14, 14)
    manual = cnn.out(F.relu(cnn.fc1(F.max_pool2d(h2, 2).flatten(1))))
    torch.testing.assert_close(logits, manual)


def test_ablating_a_channel_equals_zeroing_that_channels_output(cnn, images):
    surgery = build_model(CONFIG)
    surgery.load_state_dict(cnn.state_dict())
    with torch.no_grad():
        surgery.conv2.weight[3] = 0  # channel 3 of conv2 now outputs relu(0) = 0 everywhere
        surgery.conv2.bias[3] = 0
    torch.testing.assert_close(iv.run_edited(cnn, images, {"conv2_post": iv.zero_ablation(3)}), surgery.eval()(images))


def test_channel_mean_ablation_and_table_on_conv_maps(cnn, images):
    labels = torch.arange(12) % 10
    _, cache = run_with_cache(cnn, images, names=["conv1_post"])
    table = iv.ablation_table(cnn, images, labels, "conv1_post")
    assert table.ablated.shape == (4, 10)
    preds = iv.run_edited(cnn, images, {"conv1_post": iv.zero_ablation(2)}).argmax(1)
    torch.testing.assert_close(table.ablated[2], analysis.per_class_accuracy(preds, labels))
    means = cache["conv1_post"].mean(0)  # (C, H, W): each channel's mean map
    mean_table = iv.ablation_table(cnn, images, labels, "conv1_post", values=means)
    preds = iv.run_edited(cnn, images, {"conv1_post": iv.mean_ablation([2], cache["conv1_post"])}).argmax(1)
    torch.testing.assert_close(mean_table.ablated[2], analysis.per_class_accuracy(preds, labels))


def test_patching_a_conv_layer_restores_the_clean_run(cnn, images):
    effects = patching.patching_effects(cnn, images[:6], images[6:], 1, 2, "conv2_post")
    assert effects.per_unit.shape == (6,)
    assert effects.layer == pytest.approx(1.0)


def test_channel_units_are_spatial_means(cnn, images):
    _, cache = run_with_cache(cnn, images, names=["conv1_post"])
    torch.testing.assert_close(as_units(cache["conv1_post"]), cache["conv1_post"].mean(dim=(2, 3)))
    peaks = analysis.peak_location(cache["conv1_post"][:, 0])
    flat = cache["conv1_post"][:, 0].flatten(1)
    assert (flat.max(1).values == cache["conv1_post"][torch.arange(12), 0, peaks[:, 0], peaks[:, 1]]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"arch": "resnet"}, "arch must be one of"),
        ({"arch": "cnn", "channels": (0, 4)}, "channels"),
        ({"arch": "cnn", "layernorm": True}, "MLP only"),
    ],
)
def test_invalid_cnn_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("layer", ["conv1_post", "conv2_post", "fc1_post"])
@pytest.mark.parametrize("max_rows", [7, 65_536])  # many small groups and batches, or one pass
def test_masked_ablation_equals_one_edited_run_per_mask(layer, max_rows):
    """The layers before ``layer`` run once per batch; each mask must still see its own copy."""
    torch.manual_seed(0)
    cnn = build_model(CONFIG).eval()
    with torch.no_grad():  # larger weights than at initialisation: answers that depend on the image
        for p in cnn.parameters():
            p.mul_(4)
    x = torch.rand(60, 784, generator=torch.Generator().manual_seed(3))
    # Every digit present, and labels from the intact model on the others, so most
    # ablations change some answers: a mask applied to the wrong copy would show.
    labels = cnn(x).argmax(1)
    labels[:10] = torch.arange(10)
    _, probe = run_with_cache(cnn, x[:1], names=[layer])
    width = probe[layer].shape[1]
    masks = torch.rand(6, width, generator=torch.Generator().manual_seed(1)) < 0.5
    masks[0] = False
    result = iv.masked_ablation(cnn, x, labels, layer, masks, max_rows=max_rows)
    for g, mask in enumerate(masks):
        preds = iv.run_edited(cnn, x, {layer: iv.zero_ablation(mask.nonzero().flatten())}).argmax(1)
        expected = analysis.per_class_accuracy(preds, labels)
        torch.testing.assert_close(result.per_class[g], expected.to(result.per_class.dtype))
    torch.testing.assert_close(result.per_class[0], result.base)
    assert len(set(result.accuracy.tolist())) >= 3, "the masks should give different accuracies"


@pytest.mark.parametrize("layer", ["conv1_post", "conv2_post", "fc1_post"])
def test_masked_ablation_bounds_each_tensor_and_replicates_only_after_the_layer(layer, cnn, monkeypatch):
    """Every activation stays within the element budget; a late layer copies many masks at once."""
    largest = 4 * 28 * 28  # conv1's maps: the largest activation of CONFIG per image
    monkeypatch.setattr(iv, "ELEMENT_BUDGET", 40 * largest)
    x = torch.rand(100, 784, generator=torch.Generator().manual_seed(4))
    labels = torch.arange(100) % 10
    width = run_with_cache(cnn, x[:1], names=[layer])[1][layer].shape[1]
    masks = torch.rand(12, width, generator=torch.Generator().manual_seed(5)) < 0.5
    seen = []  # (hook point, elements) of every activation of every pass

    def observe(act, name):
        seen.append((name, act.numel()))

    with hooks(cnn, {name: observe for name in hook_points(cnn)}):
        iv.masked_ablation(cnn, x, labels, layer, masks)
    # First come the probes, plain runs of the 100 images and of one image (not bounded:
    # run_with_cache has its own batches); then the ablation passes.
    inputs = [i for i, (name, _) in enumerate(seen) if name == "input"]
    probe_rows = [n // 784 for name, n in seen if name == "input"]
    first = next(i for k, i in enumerate(inputs) if sum(probe_rows[:k]) == len(x) + 1)
    ablation = seen[first:]
    too_large = [(name, n) for name, n in ablation if n > iv.ELEMENT_BUDGET]
    assert not too_large, f"activations over the budget of {iv.ELEMENT_BUDGET} elements: {too_large[:3]}"
    # Editing fc1_post (32 floats a copy), every image should go through the layers
    # before it once for all 12 masks; the conv layers need more passes.
    prefix_rows = sum(n for name, n in ablation if name == "input") // 784
    if layer == "fc1_post":
        assert prefix_rows == len(x)
    else:
        assert prefix_rows >= len(x)
