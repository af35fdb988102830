"""The scalar autograd engine against torch.autograd as the oracle."""

import math
import random

import pytest
import torch

from mnistlab.scalar import ScalarMLP, Value, hinge_loss, scalar_grads, to_torch, topological_order

UNARY = ["exp", "tanh", "relu", "neg", "square", "cube"]
BINARY = ["add", "mul", "sub", "div"]


def random_expression(rng: random.Random, leaves, depth: int):
    """Build the same random expression over Values and over torch tensors."""
    if depth == 0:
        i = rng.randrange(len(leaves))
        return leaves[i]
    if rng.random() < 0.4:
        op = rng.choice(UNARY)
        v, t = random_expression(rng, leaves, depth - 1)
        if op == "exp":
            # keep exp's argument bounded so values stay finite
            return (v.tanh().exp(), torch.exp(torch.tanh(t)))
        if op == "tanh":
            return v.tanh(), torch.tanh(t)
        if op == "relu":
            return v.relu(), torch.relu(t)
        if op == "neg":
            return -v, -t
        if op == "square":
            return v**2, t**2
        return v**3, t**3
    op = rng.choice(BINARY)
    (a, ta), (b, tb) = random_expression(rng, leaves, depth - 1), random_expression(rng, leaves, depth - 1)
    if op == "add":
        return a + b, ta + tb
    if op == "mul":
        return a * b, ta * tb
    if op == "sub":
        return a - b, ta - tb
    # division: keep the denominator away from zero in both engines
    return a / (b.tanh() + 2.0), ta / (torch.tanh(tb) + 2.0)


@pytest.mark.parametrize("seed", range(40))
def test_random_expressions_match_torch_autograd(seed):
    rng = random.Random(seed)
    xs = [rng.uniform(-2, 2) for _ in range(4)]
    values = [Value(x) for x in xs]
    tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    out, out_t = random_expression(rng, list(zip(values, tensors)), depth=rng.randint(1, 5))
    out.backward()
    out_t.backward()
    assert out.data == pytest.approx(out_t.item(), rel=1e-9, abs=1e-12)
    for v, t in zip(values, tensors):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert v.grad == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_reused_value_accumulates_gradient():
    # y = x * x + x uses x three times: dy/dx = 2x + 1
    x = Value(3.0)
    y = x * x + x
    y.backward()
    assert x.grad == 7.0


def test_backward_twice_gives_the_same_gradients():
    x = Value(0.5)
    y = (x * 2).tanh()
    y.backward()
    first = x.grad
    y.backward()
    assert x.grad == first


def test_relu_gradient_at_zero_matches_torch():
    x = Value(0.0)
    x.relu().backward()
    t = torch.tensor(0.0, requires_grad=True)
    torch.relu(t).backward()
    assert x.grad == t.grad.item() == 0.0


def test_reverse_operators():
    x = Value(2.0)
    assert (1 - x).data == -1.0
    assert (3 * x).data == 6.0
    assert (1 / x).data == 0.5
    assert (1 + x).data == 3.0


def test_pow_rejects_value_exponent():
    with pytest.raises(TypeError, match="exponent"):
        Value(2.0) ** Value(2.0)


def test_topological_order_puts_inputs_first():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    order = topological_order(d)
    assert order.index(a) < order.index(c) < order.index(d)
    assert order.index(b) < order.index(c)
    assert len(order) == 4


def test_deep_graph_does_not_hit_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(5000):
        y = y + 0.0
    y.backward()
    assert x.grad == 1.0


def test_mlp_and_torch_twin_agree_on_outputs_and_gradients():
    rng = random.Random(1)
    xs = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(12)]
    ys = [1.0 if x[0] * x[1] > 0 else -1.0 for x in xs]
    mlp = ScalarMLP(2, [5, 4, 1], seed=3)
    twin = to_torch(mlp)
    loss = hinge_loss(mlp, xs, ys)
    loss.backward()
    X, Y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    scores = twin(X).squeeze(1)
    loss_t = torch.relu(1 - Y * scores).mean() + 1e-4 * sum((p**2).sum() for p in twin.parameters())
    loss_t.backward()
    assert loss.data == pytest.approx(loss_t.item(), abs=1e-12)
    ours = torch.tensor([mlp(x)[0].data for x in xs], dtype=torch.float64)
    torch.testing.assert_close(ours, scores.detach(), rtol=0, atol=1e-12)
    for g, p in zip(scalar_grads(mlp), twin.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=0, atol=1e-12)


def test_mlp_parameter_count_and_init_scale():
    mlp = ScalarMLP(3, [4, 2], seed=0)
    assert len(mlp.parameters()) == (3 * 4 + 4) + (4 * 2 + 2)
    bound = 1 / math.sqrt(3)
    assert all(abs(w.data) <= bound for w in mlp.layers[0].parameters())


@pytest.mark.parametrize("bad", [dict(n_in=0, sizes=[1]), dict(n_in=2, sizes=[]), dict(n_in=2, sizes=[3, 0])])
def test_mlp_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="n_in"):
        ScalarMLP(**bad)


def test_neuron_rejects_wrong_input_length():
    mlp = ScalarMLP(2, [1])
    with pytest.raises(ValueError, match="expects 2 inputs, got 3"):
        mlp([1.0, 2.0, 3.0])


def test_input_gradients_equal_torch_autograd_and_leave_parameter_gradients_alone():
    from mnistlab.scalar import ScalarMLP, to_torch

    mlp = ScalarMLP(2, [5, 4, 1], seed=3)
    for p in mlp.parameters():
        p.grad = 0.25
    points = [[0.3, -1.2], [1.5, 0.7], [-0.4, 0.1]]
    ours = torch.tensor(mlp.input_gradients(points), dtype=torch.float64)
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    to_torch(mlp)(x)[:, 0].sum().backward()
    torch.testing.assert_close(ours, x.grad, rtol=0, atol=1e-12)
    assert all(p.grad == 0.25 for p in mlp.parameters())
