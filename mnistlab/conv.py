"""A 2-D convolution written as one matrix product over image patches.

A convolution with ``O`` filters of size ``C × k × k`` computes, at every output position,
the dot product of each filter with the ``C × k × k`` patch of input around it. Stack all
patches of a batch as the columns of a matrix (``im2col``) and the whole layer is one
matrix product::

    patches (C·k·k, B·H·W)      one column per output position of every image
    output  = weight (O, C·k·k) @ patches + bias          → (O, B·H·W)

The backward pass is two more products and a sum of shifted slices (``col2im``)::

    grad weight  = grad (O, B·H·W) @ patchesᵀ
    grad patches = weightᵀ @ grad, then each patch's gradient is added back to the
                   pixels it was cut from

Why not ``torch.nn.functional.conv2d``? Its CPU backends make the book's numbers depend
on the machine: oneDNN sizes its blocks by the processor's caches, and without oneDNN
PyTorch loops over images with one small matrix product each, several times slower. Here
every sum runs inside one MKL matrix product, whose arithmetic :mod:`mnistlab.numerics`
pins, so the bits are the same on every x86-64 machine (``tests/test_conv.py`` checks it
against ``conv2d``).

>>> x, w, b = torch.rand(2, 3, 8, 8), torch.rand(4, 3, 5, 5), torch.rand(4)
>>> torch.allclose(conv2d(x, w, b), torch.nn.functional.conv2d(x, w, b, padding=2), atol=1e-5)
True
"""

from __future__ import annotations

import torch
from torch import nn

# Images per matrix product when no gradient is needed: the patches of a big evaluation
# batch (4,096 images) would otherwise take hundreds of megabytes at once.
EVAL_CHUNK = 256


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=k // 2)`` (stride 1, odd square kernels): (B, C, H, W) → (B, O, H, W).

    The output is stored channels-last, PyTorch's fast layout for the ReLU and the
    max-pooling that follow; its shape and values are those of ``conv2d``.
    """
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3] or weight.shape[2] % 2 == 0:
        raise ValueError(f"conv2d needs a weight (O, C, k, k) with odd k, got {tuple(weight.shape)}")
    if x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d needs input (B, {weight.shape[1]}, H, W), got {tuple(x.shape)}")
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad):
        return _Conv2d.apply(x, weight, bias)
    return torch.cat([_forward(part, weight, bias)[0] for part in x.split(EVAL_CHUNK)])


class Conv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, k, padding=k // 2)`` computed by :func:`conv2d`.

    The same parameters, names and initialisation as ``nn.Conv2d``; only the arithmetic differs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight, self.bias)


def _patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """im2col: (B, C, H, W) → (C·k·k, B·H·W), zero padding k // 2 on every side."""
    B, C, H, W = x.shape
    p = k // 2
    padded = x.new_zeros(C, B, H + 2 * p, W + 2 * p)  # channels first: each patch row is one copy
    padded[:, :, p : p + H, p : p + W] = x.transpose(0, 1)
    s = padded.stride()
    windows = padded.as_strided((C, k, k, B, H, W), (s[0], s[2], s[3], s[1], s[2], s[3]))
    return windows.reshape(C * k * k, B * H * W)


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, _, H, W = x.shape
    n_out, k = weight.shape[0], weight.shape[2]
    patches = _patches(x, k)  # (C·k·k, B·H·W)
    out = torch.addmm(bias[:, None], weight.reshape(n_out, -1), patches)  # (O, B·H·W)
    # (B, O, H, W) in channels-last memory: one transposing copy of the output.
    out = out.T.contiguous().view(B, H, W, n_out).permute(0, 3, 1, 2)
    return out, patches


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        out, patches = _forward(x, weight, bias)
        ctx.save_for_backward(patches, weight)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        patches, weight = ctx.saved_tensors
        B, C, H, W = ctx.input_shape
        n_out, k = weight.shape[0], weight.shape[2]
        grad = grad_out.transpose(0, 1).reshape(n_out, B * H * W)  # (O, B·H·W)
        grad_weight = (grad @ patches.T).reshape(weight.shape)
        grad_bias = grad.sum(1)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # col2im: each patch's gradient goes back to the k × k pixels it was cut from.
            grad_patches = (weight.reshape(n_out, -1).T @ grad).reshape(C, k, k, B, H, W)
            p = k // 2
            padded = grad.new_zeros(C, B, H + 2 * p, W + 2 * p)
            for dy in range(k):
                for dx in range(k):
                    padded[:, :, dy : dy + H, dx : dx + W] += grad_patches[:, dy, dx]
            grad_x = padded[:, :, p : p + H, p : p + W].transpose(0, 1)
        return grad_x, grad_weight, grad_bias
