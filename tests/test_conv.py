"""The convolution as one matrix product: checked against torch's conv2d as the oracle."""

import pytest
import torch
import torch.nn.functional as F

from mnistlab import conv


def case(batch, c_in, c_out, size, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c_in, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(c_out, c_in, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(c_out, generator=g, dtype=torch.float64)
    return x, w, b


@pytest.mark.parametrize("shape", [(3, 1, 8, 28, 5), (4, 8, 16, 14, 5), (2, 3, 2, 7, 3), (1, 2, 3, 5, 1)])
def test_forward_and_every_gradient_equal_torchs_conv2d(shape):
    x, w, b = case(*shape)  # float64, so the oracle comparison is tight
    for t in (x, w, b):
        t.requires_grad_(True)
    ours = conv.conv2d(x, w, b)
    grad_out = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours_grads = torch.autograd.grad(ours, (x, w, b), grad_out)
    theirs = F.conv2d(x, w, b, padding=w.shape[-1] // 2)
    theirs_grads = torch.autograd.grad(theirs, (x, w, b), grad_out)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
    for a, e in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-10)


def test_gradcheck():
    x, w, b = case(2, 2, 3, 6, 3)
    assert torch.autograd.gradcheck(conv.conv2d, (x.requires_grad_(), w.requires_grad_(), b.requires_grad_()))


def test_no_input_gradient_is_computed_for_images_that_need_none():
    x, w, b = case(2, 1, 4, 8, 5)
    out = conv.conv2d(x, w.requires_grad_(), b.requires_grad_())
    out.sum().backward()
    assert x.grad is None and w.grad is not None


def test_output_is_channels_last_with_the_shape_of_conv2d():
    x, w, b = case(2, 3, 4, 9, 5)
    with torch.no_grad():
        out = conv.conv2d(x.float(), w.float(), b.float())
    assert out.shape == (2, 4, 9, 9) and out.is_contiguous(memory_format=torch.channels_last)


def test_a_large_batch_without_gradients_is_split_and_gives_the_same_bits(monkeypatch):
    x, w, b = (t.float() for t in case(10, 2, 3, 6, 3))
    whole = conv._forward(x, w, b)[0]
    monkeypatch.setattr(conv, "EVAL_CHUNK", 3)  # 10 images in chunks of 3, 3, 3, 1
    with torch.no_grad():
        chunked = conv.conv2d(x, w, b)
    assert torch.equal(chunked, whole)


def test_the_layer_keeps_nn_conv2ds_parameters_and_initialisation():
    torch.manual_seed(0)
    ours = conv.Conv2d(3, 5, 5)
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(3, 5, 5, padding=2)
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    x = torch.rand(2, 3, 10, 10)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "x, w, match",
    [
        (torch.rand(2, 3, 8, 8), torch.rand(4, 3, 4, 4), "odd k"),
        (torch.rand(2, 3, 8, 8), torch.rand(4, 3, 3, 5), r"\(O, C, k, k\)"),
        (torch.rand(2, 2, 8, 8), torch.rand(4, 3, 3, 3), r"input \(B, 3, H, W\)"),
        (torch.rand(2, 64), torch.rand(4, 1, 3, 3), r"input \(B, 1, H, W\)"),
    ],
)
def test_bad_shapes_say_what_is_expected(x, w, match):
    with pytest.raises(ValueError, match=match):
        conv.conv2d(x, w, torch.zeros(w.shape[0]))
