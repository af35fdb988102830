"""Recording over training: snapshots equal a manual forward pass; gradients and hooks."""

import pytest
import torch

from mnistlab.hooks import hook_points
from mnistlab.models import ModelConfig
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, load_or_train, train


class WeightsPerEpoch:
    """Keeps a copy of the model's weights at every epoch."""

    def __init__(self):
        self.states = []

    def __call__(self, epoch, model):
        self.states.append({k: v.clone() for k, v in model.state_dict().items()})


def test_snapshots_equal_a_manual_forward_pass_at_that_epoch(data):
    config = ModelConfig(hidden=(16, 8))
    rec, weights = ActivationRecorder(data.x_test, config.layer_names), WeightsPerEpoch()
    train(config, TrainConfig(epochs=3), data, callbacks=[rec, weights], progress=False)
    snaps = rec.snapshots
    assert snaps["fc1_post"].shape == (4, data.n_test, 16) and snaps["fc1_post"].dtype == torch.float16
    for epoch in (0, 2, 3):
        w = weights.states[epoch]
        h1 = torch.relu(data.x_test @ w["fc1.weight"].T + w["fc1.bias"])  # the forward pass by hand
        h2 = torch.relu(h1 @ w["fc2.weight"].T + w["fc2.bias"])
        torch.testing.assert_close(snaps["fc1_post"][epoch].float(), h1, atol=5e-3, rtol=1e-3)
        torch.testing.assert_close(snaps["fc2_post"][epoch].float(), h2, atol=5e-3, rtol=1e-3)


def test_recording_does_not_change_training(data):
    config, tc = ModelConfig(hidden=(16, 8)), TrainConfig(epochs=2)
    plain = train(config, tc, data, progress=False)
    recorded = train(config, tc, data, callbacks=[ActivationRecorder(data.x_test, config.layer_names)], progress=False)
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, recorded.model.state_dict()[k]), k


@pytest.mark.parametrize("config", [ModelConfig(hidden=(8, 4)), ModelConfig(arch="cnn", channels=(2, 3), hidden=(4,))])
def test_gradient_norms_match_a_manual_step(data, config):
    """One epoch of one batch: the recorded norm is that batch's gradient's norm (both training loops)."""
    tc = TrainConfig(epochs=1, batch_size=data.n_train)
    torch.manual_seed(tc.seed)
    from mnistlab.models import build_model

    model = build_model(config)
    loss = torch.nn.functional.cross_entropy(model(data.x_train), data.y_train)
    loss.backward()
    run = train(config, tc, data, progress=False)
    for name in config.weight_names:
        expected = model.get_parameter(name).grad.norm().item()
        assert run.grad_norms[name] == [pytest.approx(expected, rel=1e-4)], name


def test_forward_hooks_are_removed_after_training_even_on_error(data):
    config = ModelConfig(hidden=(8, 4))
    seen = {}

    def explode(epoch, model):
        seen["model"] = model
        if epoch == 1:
            raise RuntimeError("boom")

    recorder = ActivationRecorder(data.x_test, config.layer_names)
    with pytest.raises(RuntimeError, match="boom"):
        train(config, TrainConfig(epochs=2), data, callbacks=[recorder, explode], progress=False)
    model = seen["model"]
    assert all(not hp._forward_hooks for hp in hook_points(model).values())


def test_load_or_train_caches_snapshots_and_gradients(data, tmp_cache):
    config, tc = ModelConfig(hidden=(8, 4)), TrainConfig(epochs=2)
    first = load_or_train(config, tc, data, cache=tmp_cache, progress=False)
    again = load_or_train(config, tc, data, cache=tmp_cache, progress=False)
    assert not first.from_cache and again.from_cache
    assert list(again.snapshots) == ["fc1_post", "fc2_post"]
    assert again.snapshots["fc2_post"].shape == (3, data.n_test, 4)
    for name in config.layer_names:
        assert torch.equal(first.snapshots[name], again.snapshots[name])
    assert again.grad_norms == first.grad_norms and len(again.grad_norms["out.weight"]) == 2


def test_cached_snapshots_are_read_when_asked_for_not_held(data, tmp_cache):
    """Runs from the cache keep their snapshots on disk: keyed by content, read on demand, at most KEEP held."""
    from mnistlab.build.memo import digest
    from mnistlab.record import StoredSnapshots, snapshot_digest

    config = ModelConfig(hidden=(8, 4))
    runs = [load_or_train(config, TrainConfig(epochs=1, seed=s), data, cache=tmp_cache, progress=False)
            for s in range(StoredSnapshots.KEEP + 2)]
    StoredSnapshots._kept.clear()
    assert all(isinstance(r.snapshots, StoredSnapshots) for r in runs)
    digests = [digest(r) for r in runs]  # keying a run (as results are memoised) reads no snapshots
    assert len(set(digests)) == len(runs) and not StoredSnapshots._kept
    recorded = []
    for r in runs:
        recorder = ActivationRecorder(data.x_test, config.layer_names)
        train(config, r.train_config, data, callbacks=[recorder], progress=False)
        recorded.append(recorder.snapshots)
        assert all(torch.equal(r.snapshots[n], recorder.snapshots[n]) for n in config.layer_names)
        assert len(StoredSnapshots._kept) <= StoredSnapshots.KEEP
    assert [r.snapshots.digest for r in runs] == [snapshot_digest(s) for s in recorded]
    with pytest.raises(KeyError, match="no snapshots of 'fc9_post'; recorded: \\['fc1_post', 'fc2_post'\\]"):
        runs[0].snapshots["fc9_post"]


def test_snapshots_of_a_removed_or_replaced_entry_are_an_error(data, tmp_cache):
    import shutil

    from mnistlab.cache import ENTRY_SHA
    from mnistlab.record import StoredSnapshots
    from mnistlab.train import SNAPSHOT, model_key

    config, tc = ModelConfig(hidden=(8, 4)), TrainConfig(epochs=1)
    run = load_or_train(config, tc, data, cache=tmp_cache, progress=False)
    key = model_key(config, tc, data)
    tensors, meta = tmp_cache.load(key)
    tensors[f"{SNAPSHOT}fc1_post"] = tensors[f"{SNAPSHOT}fc1_post"] + 1  # other numbers under the same key
    tmp_cache.save(key, tensors, {k: v for k, v in meta.items() if k != ENTRY_SHA})
    StoredSnapshots._kept.clear()
    with pytest.raises(RuntimeError, match="removed or changed after the run was loaded; load the run again"):
        run.snapshots["fc1_post"]
    shutil.rmtree(tmp_cache.path(key))
    with pytest.raises(RuntimeError, match="removed or changed"):
        run.snapshots["fc2_post"]
