"""Training: reproducibility, history and config checks."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mnistlab.models import ModelConfig, build_model
from mnistlab.train import TrainConfig, evaluate, load_or_train, sgd_step, train


def small_run(data, **kwargs):
    return train(ModelConfig(hidden=(16, 8)), TrainConfig(epochs=2, **kwargs), data, progress=False)


def test_same_seed_gives_bit_identical_weights(data):
    a, b = small_run(data, seed=3), small_run(data, seed=3)
    for (name, wa), (_, wb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(wa, wb), name
    assert a.history == b.history


def test_different_seed_gives_different_weights(data):
    a, b = small_run(data, seed=0), small_run(data, seed=1)
    assert not torch.equal(a.model.fc1.weight, b.model.fc1.weight)


def test_history_has_one_entry_per_epoch_plus_init(data):
    run = small_run(data)
    assert set(run.history) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert all(len(v) == 3 for v in run.history.values())
    assert run.history["train_loss"][-1] < run.history["train_loss"][0]
    assert run.final_test_acc == run.history["test_acc"][-1]


def test_history_matches_evaluate(data):
    run = small_run(data)
    loss, acc = evaluate(run.model, data.x_test, data.y_test)
    assert acc == run.history["test_acc"][-1]
    assert loss == pytest.approx(run.history["test_loss"][-1], rel=1e-6)


def test_callbacks_see_every_epoch(data):
    seen = []
    callbacks = [lambda epoch, model: seen.append(epoch)]
    train(ModelConfig(hidden=(8,)), TrainConfig(epochs=3), data, callbacks=callbacks, progress=False)
    assert seen == [0, 1, 2, 3]


def test_learns_something(data):
    run = train(ModelConfig(), TrainConfig(epochs=10), data, progress=False)
    assert run.final_test_acc > 0.75  # chance is 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -0.1}, "lr"),
        ({"lr": 0}, "lr"),
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "gpu"}, "device must name a torch device.*'gpu'"),
        ({"device": "cuda:x"}, "device"),
    ],
)
def test_invalid_train_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_step_seconds_time_the_sgd_steps_only(data):
    run = train(ModelConfig(hidden=(8,)), TrainConfig(epochs=2), data, progress=False)
    assert 0 < run.step_seconds < run.train_seconds  # evaluation of both splits is left out


@pytest.mark.parametrize(
    "config",
    [ModelConfig(), ModelConfig(layernorm=True, dropout=0.2), ModelConfig(arch="cnn", hidden=(16,))],
    ids=["mlp", "layernorm-dropout", "cnn"],
)
def test_sgd_step_makes_torch_sgd_update_bit_for_bit(config):
    # Oracle: torch.optim.SGD on a copy of the model, fed the same batches.
    x, y = torch.rand(5 * 32, 1, 28, 28), torch.randint(0, 10, (5 * 32,))
    torch.manual_seed(1)
    ours = build_model(config)
    theirs, initial = copy.deepcopy(ours), copy.deepcopy(ours)
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.3)
    params = list(ours.parameters())
    for xb, yb in zip(x.split(32), y.split(32)):
        torch.manual_seed(2)  # the same dropout masks on both sides
        F.cross_entropy(ours(xb), yb).backward()
        sgd_step(params, 0.3)
        torch.manual_seed(2)
        optimizer.zero_grad()
        F.cross_entropy(theirs(xb), yb).backward()
        optimizer.step()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.equal(a, b), name
        assert a.grad is None, f"{name}: sgd_step leaves no gradient behind"
    moved = [not torch.equal(a, b) for a, b in zip(ours.parameters(), initial.parameters())]
    assert all(moved), "every parameter took a step"


def test_sgd_step_without_gradients_says_so():
    model = build_model(ModelConfig(hidden=(4,)))
    with pytest.raises(RuntimeError, match="no gradient.*backward"):
        sgd_step(list(model.parameters()), 0.1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so_before_training_or_loading(data, tmp_path):
    from mnistlab.cache import ModelCache

    config = TrainConfig(epochs=1, device="cuda")
    with pytest.raises(RuntimeError, match="device='cuda' is not usable on this machine.*device='cpu'"):
        train(ModelConfig(hidden=(4,)), config, data, progress=False)
    cache = ModelCache(tmp_path)

    def read_cache(*args):
        raise AssertionError("the device is checked before the cache is read (a cached model would go there too)")

    cache.get_or_build = read_cache
    with pytest.raises(RuntimeError, match="device='cuda' is not usable"):
        load_or_train(ModelConfig(hidden=(4,)), config, data, cache=cache, progress=False)


def test_training_on_an_explicit_cpu_device_is_the_default_run(data):
    a = train(ModelConfig(hidden=(8,)), TrainConfig(epochs=1), data, progress=False)
    b = train(ModelConfig(hidden=(8,)), TrainConfig(epochs=1, device="cpu:0"), data, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert a.history == b.history


def test_the_training_split_is_scored_whole_or_on_one_fixed_sample():
    from mnistlab.train import TRAIN_EVAL_SIZE, train_eval_rows

    assert train_eval_rows(TRAIN_EVAL_SIZE) is None  # the offline data's 4,000: all of them
    rows = train_eval_rows(60_000)
    assert len(rows) == TRAIN_EVAL_SIZE == len(rows.unique()) and rows.max() < 60_000
    assert torch.equal(rows, rows.sort().values) and torch.equal(rows, train_eval_rows(60_000))
