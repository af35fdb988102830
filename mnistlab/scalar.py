"""A scalar-valued autograd engine and a tiny MLP built from it (micrograd-style).

Every number is a :class:`Value` that remembers how it was made: the values it was
computed from and, for each of them, the local derivative of the operation (for
``a * b``: ``b`` with respect to ``a``, ``a`` with respect to ``b``). ``backward()``
visits the graph in reverse topological order and applies the chain rule edge by
edge: each value passes its gradient times the local derivative on to its inputs.
Chapter 1 uses it to show what ``loss.backward()`` in PyTorch does, then checks it
against ``torch.autograd``.

micrograd keeps a closure per operation instead, which reads the output's gradient;
each node and its closure then form a reference cycle, and Python's cycle collector
spends most of a training step inspecting the tens of thousands of nodes a step
creates. Local derivatives stored as numbers make the graph a plain structure of
references with no cycles and fewer objects, freed as soon as the loss is dropped,
with the same arithmetic.

>>> a, b = Value(2.0), Value(-3.0)
>>> y = (a * b + a).tanh()
>>> y.backward()
>>> round(a.grad, 6), round(b.grad, 6)
(-0.002682, 0.002682)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import torch
from torch import nn


class Value:
    """One scalar in a computation graph, with its gradient.

    ``children`` are the values it was computed from, and ``local_grads`` the local
    derivative of this value with respect to each of them (for ``a * b``: ``b`` for
    ``a`` and ``a`` for ``b``), fixed when the value is computed.
    """

    __slots__ = ("data", "grad", "_prev", "_local", "op", "label")

    def __init__(
        self,
        data: float,
        _children: tuple[Value, ...] = (),
        _local_grads: tuple[float, ...] = (),
        op: str = "",
        label: str = "",
    ):
        self.data = float(data)
        self.grad = 0.0
        self._prev = _children
        self._local = _local_grads
        self.op = op
        self.label = label

    def __repr__(self) -> str:
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"

    @property
    def children(self) -> tuple[Value, ...]:
        """The values this one was computed from (empty for a leaf)."""
        return self._prev

    @property
    def local_grads(self) -> tuple[float, ...]:
        """d(self)/d(child) for each of :attr:`children`."""
        return self._local

    # --- operations: each one records its local derivatives --------------------------

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, exponent: int | float) -> Value:
        if not isinstance(exponent, int | float):
            raise TypeError(f"Value ** exponent needs an int or float exponent, got {type(exponent).__name__}")
        local = exponent * self.data ** (exponent - 1)
        return Value(self.data**exponent, (self,), (local,), f"**{exponent:g}")

    def exp(self) -> Value:
        e = math.exp(self.data)
        return Value(e, (self,), (e,), "exp")  # d/dx e^x = e^x, already computed

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,), "tanh")

    def relu(self) -> Value:
        # The kink at 0 gets derivative 0, the same convention as torch.relu.
        positive = self.data > 0
        return Value(self.data if positive else 0.0, (self,), (1.0 if positive else 0.0,), "relu")


    # --- everything else is written in terms of the operations above --------------

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rsub__(self, other: float) -> Value:
        return (-self) + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rtruediv__(self, other: float) -> Value:
        return Value(other) * self**-1

    # --- backpropagation -------------------------------------------------------------

    def backward(self) -> None:
        """Fill ``.grad`` of every value this one depends on with d(self)/d(value)."""
        order = topological_order(self)
        for v in order:
            v.grad = 0.0
        self.grad = 1.0
        # Reverse topological order: a node's gradient is complete before it is passed on,
        # along each edge, times that edge's local derivative (the chain rule).
        for v in reversed(order):
            for child, local in zip(v._prev, v._local):
                child.grad += local * v.grad


def topological_order(root: Value) -> list[Value]:
    """All values ``root`` depends on, each after the values it was computed from."""
    order: list[Value] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    # Iterative depth-first search, so deep graphs do not hit Python's recursion limit.
    while stack:
        v, children_done = stack.pop()
        if children_done:
            order.append(v)
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.append((v, True))
        stack.extend((c, False) for c in v._prev if id(c) not in seen)
    return order


# --- a neural network made of Values -----------------------------------------------


class Neuron:
    """``act(w · x + b)`` with ``act`` one of ``"relu"``, ``"tanh"`` or ``"linear"``."""

    def __init__(self, n_in: int, act: str = "relu", rng: random.Random | None = None):
        if act not in ("relu", "tanh", "linear"):
            raise ValueError(f"act must be 'relu', 'tanh' or 'linear', got {act!r}")
        rng = rng or random.Random(0)
        # Uniform(-1/sqrt(n), 1/sqrt(n)): the scale PyTorch's nn.Linear uses by default.
        bound = 1.0 / math.sqrt(n_in)
        self.w = [Value(rng.uniform(-bound, bound), label="w") for _ in range(n_in)]
        self.b = Value(rng.uniform(-bound, bound), label="b")
        self.act = act

    def __call__(self, x: Sequence[Value | float]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}")
        z = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if self.act == "relu":
            return z.relu()
        if self.act == "tanh":
            return z.tanh()
        return z

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]


class Layer:
    """``n_out`` neurons that all read the same inputs."""

    def __init__(self, n_in: int, n_out: int, act: str = "relu", rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.neurons = [Neuron(n_in, act, rng) for _ in range(n_out)]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class ScalarMLP:
    """A multilayer perceptron of scalar Values: ReLU hidden layers, a linear output layer.

    >>> mlp = ScalarMLP(2, [4, 1], seed=0)
    >>> len(mlp.parameters())
    17
    """

    def __init__(self, n_in: int, sizes: Sequence[int], seed: int = 0):
        if n_in < 1 or not sizes or min(sizes) < 1:
            raise ValueError(f"need n_in >= 1 and at least one layer of width >= 1, got n_in={n_in}, sizes={sizes}")
        rng = random.Random(seed)
        dims = [n_in, *sizes]
        self.layers = [
            Layer(dims[i], dims[i + 1], act="relu" if i < len(sizes) - 1 else "linear", rng=rng)
            for i in range(len(sizes))
        ]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        h: Sequence[Value | float] = x
        for layer in self.layers:
            h = layer(h)
        return list(h)

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def input_gradients(self, points: Sequence[Sequence[float]]) -> list[list[float]]:
        """∂ output₀ / ∂ input at each point, by this engine's own backward pass.

        The parameters' gradients are left as they were (backward also reaches them).

        >>> mlp = ScalarMLP(1, [1], seed=0)  # a linear neuron: the gradient is its weight
        >>> mlp.input_gradients([[0.0], [5.0]]) == [[mlp.parameters()[0].data]] * 2
        True
        """
        params = self.parameters()
        kept = [p.grad for p in params]
        grads = []
        for point in points:
            inputs = [Value(float(v)) for v in point]
            self(inputs)[0].backward()
            grads.append([v.grad for v in inputs])
        for p, g in zip(params, kept):
            p.grad = g
        return grads

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


def hinge_loss(mlp: ScalarMLP, xs: Iterable[Sequence[float]], ys: Iterable[float], alpha: float = 1e-4) -> Value:
    """Mean max-margin loss ``relu(1 - y * score)`` for labels ``y`` in {-1, +1}, plus ``alpha * |w|²``."""
    scores_and_labels = [(mlp(x)[0], y) for x, y in zip(xs, ys)]
    if not scores_and_labels:
        raise ValueError("hinge_loss needs at least one example")
    data_loss = sum(((1 - y * s).relu() for s, y in scores_and_labels), Value(0.0)) / len(scores_and_labels)
    reg = alpha * sum((p * p for p in mlp.parameters()), Value(0.0))
    return data_loss + reg


def sgd_step(params: Iterable[Value], lr: float) -> None:
    """Move every parameter against its gradient: ``p -= lr * p.grad``."""
    for p in params:
        p.data -= lr * p.grad


# --- the same network in PyTorch -------------------------------------------------------


def to_torch(mlp: ScalarMLP, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A PyTorch ``nn.Sequential`` with exactly the weights of ``mlp``.

    Linear layers with ReLU between them and none after the last, as in
    :class:`ScalarMLP`. Float64 by default so that a comparison measures the
    algorithms, not float32 rounding.
    """
    modules: list[nn.Module] = []
    for i, layer in enumerate(mlp.layers):
        n_out, n_in = len(layer.neurons), len(layer.neurons[0].w)
        lin = nn.Linear(n_in, n_out, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=dtype))
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=dtype))
        modules.append(lin)
        if i < len(mlp.layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def scalar_grads(mlp: ScalarMLP) -> list[torch.Tensor]:
    """The gradients held by ``mlp``, laid out like the weights and biases of :func:`to_torch`."""
    out: list[torch.Tensor] = []
    for layer in mlp.layers:
        out.append(torch.tensor([[w.grad for w in n.w] for n in layer.neurons], dtype=torch.float64))
        out.append(torch.tensor([n.b.grad for n in layer.neurons], dtype=torch.float64))
    return out
