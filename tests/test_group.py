"""Many networks in one pass: a network does not depend on the group it trained in.

Alone or in a group, a network starts from the same weights and sees the same batches; the
batched products of a group may add in another order than one network's (on some
processors, with some thread counts), so the two agree to float32 rounding, and the same
group on the same machine gives the same bits twice.
"""

import hashlib

import pytest
import torch

from mnistlab.cache import ModelCache
from mnistlab.group import Job, check_groupable, train_group
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, load_or_train, load_or_train_all, train

VARIANTS = [
    ModelConfig(),
    ModelConfig(input_norm=True),
    ModelConfig(layernorm=True),
    ModelConfig(dropout=0.2),
    ModelConfig(input_norm=True, layernorm=True, dropout=0.2),
]


def assert_same_network(a, b) -> None:
    """The same network up to float32 rounding: weights, history and gradient norms."""
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), f"{name} differs by {(p - q).abs().max().item():.2e}"
    for key in a.history:
        assert a.history[key] == pytest.approx(b.history[key], rel=1e-4, abs=1e-5), key
    for key in a.grad_norms:
        assert a.grad_norms[key] == pytest.approx(b.grad_norms[key], rel=1e-3), key


def fingerprint(run) -> tuple:
    weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in run.model.parameters())).hexdigest()
    return weights, run.history, run.grad_norms


@pytest.fixture(scope="module")
def alone(data):
    """Two networks trained on their own: a baseline and one with every option."""
    return {
        name: train(config, TrainConfig(epochs=2, seed=3, lr=lr), data, progress=False)
        for name, config, lr in (("baseline", VARIANTS[0], 0.1), ("all options", VARIANTS[4], 0.05))
    }


@pytest.mark.parametrize("size", [5, 16])
def test_a_network_trains_to_the_same_network_alone_and_in_a_group(data, alone, size):
    others = [Job(VARIANTS[i % 5], TrainConfig(epochs=2, seed=10 + i, lr=0.1 * (1 + i % 3))) for i in range(size - 2)]
    ours = [Job(VARIANTS[0], TrainConfig(epochs=2, seed=3)), Job(VARIANTS[4], TrainConfig(epochs=2, seed=3, lr=0.05))]
    jobs = others[: size // 2] + ours[:1] + others[size // 2 :] + ours[1:]  # not at the front, not together
    runs = train_group(jobs, data, progress=False)
    assert len(runs) == size
    assert_same_network(runs[jobs.index(ours[0])], alone["baseline"])
    assert_same_network(runs[jobs.index(ours[1])], alone["all options"])
    again = train_group(jobs, data, progress=False)  # the same group on the same machine: the same bits
    assert [fingerprint(r) for r in again] == [fingerprint(r) for r in runs]


def test_each_network_of_a_group_is_its_own(data):
    runs = train_group([Job(VARIANTS[0], TrainConfig(epochs=1, seed=s)) for s in (0, 1)], data, progress=False)
    assert not torch.equal(runs[0].model.fc1.weight, runs[1].model.fc1.weight)
    assert runs[0].history != runs[1].history


def test_the_groups_gradient_norms_are_each_networks_own(data):
    """Oracle: the mean gradient norm of one epoch, computed step by step in a plain loop."""
    import torch.nn.functional as F

    from mnistlab.models import build_model

    run = train(VARIANTS[0], TrainConfig(epochs=1, seed=2), data, progress=False)
    torch.manual_seed(2)
    model = build_model(VARIANTS[0])
    order = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(2))
    norms = []
    for idx in order.split(64):
        model.zero_grad()
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        norms.append(model.fc1.weight.grad.norm().item())
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    assert run.grad_norms["fc1.weight"][0] == pytest.approx(sum(norms) / len(norms), rel=1e-4)
    torch.testing.assert_close(run.model.fc1.weight, model.fc1.weight, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "jobs, match",
    [
        ([], "at least one"),
        ([Job(ModelConfig(arch="cnn"), TrainConfig())], "only MLPs"),
        ([Job(ModelConfig(), TrainConfig()), Job(ModelConfig(hidden=(8,)), TrainConfig())], "hidden widths"),
        ([Job(ModelConfig(), TrainConfig()), Job(ModelConfig(), TrainConfig(epochs=3))], "epochs"),
        ([Job(ModelConfig(), TrainConfig()), Job(ModelConfig(), TrainConfig(batch_size=32))], "batch size"),
    ],
)
def test_networks_that_cannot_share_a_group_are_named(jobs, match):
    with pytest.raises(ValueError, match=match):
        check_groupable(jobs)


def test_load_or_train_all_trains_the_missing_together_and_stores_each_alone(data, tmp_path):
    cache = ModelCache(tmp_path / "cache")
    runs = [(VARIANTS[i], TrainConfig(epochs=1, seed=s)) for i in (0, 2) for s in (0, 1)]
    first_alone = load_or_train(*runs[0], data, cache=cache, progress=False)
    together = load_or_train_all(runs, data, cache=cache, progress=False)
    assert [r.from_cache for r in together] == [True, False, False, False]
    assert [(r.model_config, r.train_config) for r in together] == runs
    again = load_or_train_all(list(reversed(runs)), data, cache=cache, progress=False)
    assert all(r.from_cache for r in again)
    for r, twin in zip(together, reversed(again)):
        assert fingerprint(r) == fingerprint(twin) and torch.equal(r.snapshots["fc1_post"], twin.snapshots["fc1_post"])
    assert_same_network(together[0], first_alone)
    assert len(cache.entries()) == 4
