"""The book's networks, with a named hook point at every activation site.

The MLP (784 → 32 → 16 → 10 by default) is the network of chapters 2–6; the small
CNN of chapter 7 (:class:`CNN`) is built from the same config class.

Forward pass of one hidden layer ``i`` (1-based)::

    z = fc{i}(h)                   # (B, width_i)
    z = ln{i}(z)                   # only with layernorm=True
    z = fc{i}_pre(z)               # hook point: what goes into the ReLU
    h = fc{i}_post(relu(z))        # hook point: the layer's activation
    h = dropout(h)                 # only with dropout > 0, and only in training

then ``logits = logits(out(h))``. The input passes the hook point ``input`` after the
optional standardisation, so ``input`` always holds what ``fc1`` reads.

>>> model = build_model(ModelConfig(hidden=(32, 16)))
>>> model(torch.rand(2, 784)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.checks import N_CLASSES
from mnistlab.hooks import HookPoint, name_hook_points

N_INPUTS = 784
ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture, and the options that chapter 6 varies.

    Attributes:
        hidden: widths of the hidden layers.
        input_norm: standardise inputs with the training split's mean and std
            (computed from the data when the model is built, stored as buffers).
        layernorm: LayerNorm on each hidden layer's pre-activation.
        dropout: dropout rate after each hidden ReLU (0 disables it).
    """

    hidden: tuple[int, ...] = (32, 16)
    input_norm: bool = False
    layernorm: bool = False
    dropout: float = 0.0
    arch: str = "mlp"
    channels: tuple[int, ...] = (8, 16)

    def __post_init__(self):
        # Accept lists from a user, store tuples so the config stays hashable.
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if not self.hidden or any(not isinstance(w, int) or w < 1 for w in self.hidden):
            raise ValueError(f"ModelConfig.hidden must be one or more positive int widths, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.arch == "cnn":
            if not 1 <= len(self.channels) <= 2 or any(not isinstance(c, int) or c < 1 for c in self.channels):
                raise ValueError(f"ModelConfig.channels must be one or two positive ints, got {self.channels!r}")
            if self.layernorm:
                raise ValueError("ModelConfig.layernorm is an option of the MLP only (arch='mlp')")
        elif self.channels != ModelConfig.__dataclass_fields__["channels"].default:
            # An MLP has no channels: another value would only change the cache key.
            raise ValueError(f"ModelConfig.channels is an option of the CNN only (arch='cnn'), got {self.channels!r}")

    @property
    def conv_names(self) -> list[str]:
        """Hook point names of the convolutional layers' activations (empty for the MLP)."""
        return [f"conv{i}_post" for i in range(1, len(self.channels) + 1)] if self.arch == "cnn" else []

    @property
    def layer_names(self) -> list[str]:
        """Hook point names of the hidden layers' activations: ``["fc1_post", "fc2_post", ...]``
        (for the CNN, ``["conv1_post", "conv2_post", "fc1_post"]``)."""
        return self.conv_names + [f"fc{i}_post" for i in range(1, len(self.hidden) + 1)]

    @property
    def weight_names(self) -> list[str]:
        """Names of the weight tensors: ``["fc1.weight", ..., "out.weight"]`` (convolutions first)."""
        convs = [name.replace("_post", ".weight") for name in self.conv_names]
        return convs + [f"fc{i}.weight" for i in range(1, len(self.hidden) + 1)] + ["out.weight"]


class _DigitNet(nn.Module):
    """What the MLP and the CNN share: input standardisation, the hidden linear layers
    (``fc{i}``, optional ``ln{i}``, hook points ``fc{i}_pre``/``fc{i}_post``), dropout and
    the output layer. Layers are created in the order the forward pass meets them, so a
    seed gives the same initial weights as it always has."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # Standardisation statistics: identity until set_input_stats() is called.
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
        self.input = HookPoint()

    def _add_dense(self, n_in: int) -> None:
        """The hidden linear layers from ``n_in`` inputs, then dropout, the output layer and ``logits``."""
        widths = [n_in, *self.config.hidden]
        for i in range(1, len(widths)):
            setattr(self, f"fc{i}", nn.Linear(widths[i - 1], widths[i]))
            if self.config.layernorm:
                setattr(self, f"ln{i}", nn.LayerNorm(widths[i]))
            setattr(self, f"fc{i}_pre", HookPoint())
            setattr(self, f"fc{i}_post", HookPoint())
        self.dropout = nn.Dropout(self.config.dropout)
        self.out = nn.Linear(widths[-1], N_CLASSES)
        self.logits = HookPoint()
        name_hook_points(self)

    def set_input_stats(self, mean: float, std: float) -> None:
        """Set the standardisation used when ``config.input_norm`` is on."""
        if not std > 0:
            raise ValueError(f"input std must be positive, got {std}")
        self.input_mean.fill_(mean)
        self.input_std.fill_(std)

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std if self.config.input_norm else x

    def _dense(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden layers and output: (B, n_in) → logits (B, 10)."""
        for i in range(1, len(self.config.hidden) + 1):
            z = getattr(self, f"fc{i}")(h)  # (B, width_i)
            if self.config.layernorm:
                z = getattr(self, f"ln{i}")(z)
            z = getattr(self, f"fc{i}_pre")(z)
            h = self.dropout(getattr(self, f"fc{i}_post")(F.relu(z)))
        return self.logits(self.out(h))  # (B, 10)


class MLP(_DigitNet):
    """A ReLU multilayer perceptron for 28×28 digits with a hook point at every site."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self._add_dense(N_INPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(self._standardise(flatten_images(x)))  # (B, 784)
        return self._dense(h)


def flatten_images(x: torch.Tensor) -> torch.Tensor:
    """(B, 784), (B, 28, 28) or (B, 1, 28, 28) floating images → (B, 784)."""
    if not torch.is_floating_point(x):
        raise TypeError(f"the model needs floating-point images in [0, 1], got dtype {x.dtype}")
    if x.shape[1:] in ((N_INPUTS,), (28, 28), (1, 28, 28)):
        return x.reshape(len(x), N_INPUTS)
    raise ValueError(f"expected images of shape (B, 784), (B, 28, 28) or (B, 1, 28, 28), got {tuple(x.shape)}")


class CNN(_DigitNet):
    """A small convolutional network for 28×28 digits, with a hook point at every site.

    Each convolutional block is a 5×5 convolution (padding 2, so the size is kept), a
    ReLU and a 2×2 max-pool; then the flattened maps go through the hidden linear
    layers and the output layer, as in the MLP::

        conv{i}_pre  (B, C_i, S, S)  convolution output       S = 28, 14
        conv{i}_post (B, C_i, S, S)  after the ReLU, before pooling
        fc{i}_pre, fc{i}_post (B, width_i), logits (B, 10)

    ``input`` holds the (standardised) images as (B, 1, 28, 28).
    """

    def __init__(self, config: ModelConfig):
        if config.arch != "cnn":
            raise ValueError(f"CNN needs ModelConfig(arch='cnn'), got arch={config.arch!r}")
        super().__init__(config)
        in_ch, size = 1, 28
        for i, ch in enumerate(config.channels, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(in_ch, ch, kernel_size=5, padding=2))
            setattr(self, f"conv{i}_pre", HookPoint())
            setattr(self, f"conv{i}_post", HookPoint())
            in_ch, size = ch, size // 2
        self._add_dense(in_ch * size * size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(self._standardise(flatten_images(x).view(-1, 1, 28, 28)))  # (B, 1, 28, 28)
        for i in range(1, len(self.config.channels) + 1):
            z = getattr(self, f"conv{i}_pre")(getattr(self, f"conv{i}")(h))  # (B, C_i, S, S)
            h = F.max_pool2d(getattr(self, f"conv{i}_post")(F.relu(z)), 2)  # (B, C_i, S/2, S/2)
        return self._dense(h.flatten(1))


def make_model(config: ModelConfig) -> MLP | CNN:
    """The network ``config`` describes, with PyTorch's default initialisation."""
    return CNN(config) if config.arch == "cnn" else MLP(config)


def input_weights(model: MLP | CNN, layer: str) -> torch.Tensor | None:
    """The incoming weights (width, 784) of a hidden layer that reads the pixels, else None.

    Row ``u`` is what unit ``u`` of ``fc1_post`` computes a weighted sum of: reshaped to
    28 × 28 it shows which pixels push the unit up (positive) or down (negative).
    Deeper layers read other units, not pixels, and have no such picture.
    """
    valid = model.config.layer_names
    if layer not in valid:
        raise KeyError(f"unknown layer {layer!r}; the hidden layers of this model are {valid}")
    if layer != valid[0] or model.config.arch != "mlp":
        return None
    return model.fc1.weight.detach().cpu().clone()


def split_units(model: MLP | CNN, layer: str, shares: tuple[float, float] = (2.0, -1.0)) -> MLP | CNN:
    """The same function with different insides: every unit of ``layer`` split into two copies.

    Each unit of ``fc{i}_post`` becomes two units with its incoming weights and bias; what
    it sent on to the next layer is split between them in ``shares`` (which must sum to 1),
    so the next layer receives exactly the same sum: the new network computes the same
    logits (up to float rounding), though its layer is twice as wide. With the default
    ``(2, -1)`` one copy sends twice the signal and the other takes one share back, the
    kind of rewiring under which an attribution method that reads the network's insides,
    not its function, changes its answer (Sundararajan et al.'s implementation invariance).
    The copy is in eval mode; ``model`` is not changed.

    >>> model = build_model(ModelConfig(hidden=(8, 4))).eval()
    >>> twin = split_units(model, "fc2_post")
    >>> twin.config.hidden
    (8, 8)
    >>> x = torch.rand(5, 784)
    >>> torch.allclose(model(x), twin(x), atol=1e-6)
    True
    """
    valid = model.config.layer_names
    if layer not in valid or not layer.startswith("fc"):
        raise KeyError(f"split_units splits a hidden linear layer; this model's are "
                       f"{[n for n in valid if n.startswith('fc')]}, got {layer!r}")
    if model.config.layernorm:
        raise ValueError("split_units needs a model without LayerNorm: a LayerNorm over the wider layer "
                         "would compute another function")
    a, b = (float(v) for v in shares)
    if abs(a + b - 1) > 1e-12:
        raise ValueError(f"shares must sum to 1 so the next layer receives the same sum, got {shares}")
    i = int(layer[2:].split("_")[0])
    hidden = list(model.config.hidden)
    hidden[i - 1] *= 2
    twin = make_model(replace(model.config, hidden=tuple(hidden))).to(model.input_mean.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w, bias = state[f"fc{i}.weight"], state[f"fc{i}.bias"]
    state[f"fc{i}.weight"], state[f"fc{i}.bias"] = torch.cat([w, w]), torch.cat([bias, bias])
    after = f"fc{i + 1}" if i < len(hidden) else "out"
    v = state[f"{after}.weight"]  # (next width, width)
    state[f"{after}.weight"] = torch.cat([a * v, b * v], dim=1)
    twin.load_state_dict(state)
    return twin.eval()


def forward_flops(config: ModelConfig) -> int:
    """Floating-point operations of one image's forward pass: 2 per multiply-add of every layer.

    A convolution's weights are reused at every position of its map (each block is
    followed by a 2 × 2 max-pool, halving the map); a linear layer uses each weight once.
    """
    flops, size = 0, 28
    for module in make_model(config).modules():
        if isinstance(module, nn.Conv2d):
            c_out, c_in, k, _ = module.weight.shape
            flops += 2 * c_in * k * k * c_out * size * size
            size //= 2
        elif isinstance(module, nn.Linear):
            flops += 2 * module.weight.numel()
    return flops


def build_model(config: ModelConfig, x_train: torch.Tensor | None = None) -> MLP | CNN:
    """A freshly initialised model (MLP or CNN); with ``input_norm``, ``x_train`` supplies the statistics.

    The statistics come from the training split only: one mean and one std over all
    its pixels, so test data never leaks into them.
    """
    model = make_model(config)
    if config.input_norm:
        if x_train is None:
            raise ValueError("ModelConfig(input_norm=True) needs x_train to compute the input mean and std")
        model.set_input_stats(x_train.mean().item(), x_train.std().item())
    return model
