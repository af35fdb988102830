"""Chapter 6's machinery: variants are distinct cached models, measures equal the chapters' own."""

import pytest
import torch

from mnistlab import analysis, compare
from mnistlab import interventions as iv
from mnistlab.models import ModelConfig
from mnistlab.train import TrainConfig, load_or_train, model_key

VARIANTS = list(compare.VARIANTS.values())


def test_every_variant_has_its_own_cache_key(data):
    keys = {model_key(config, TrainConfig(), data) for config in VARIANTS}
    assert len(keys) == len(VARIANTS)
    assert model_key(ModelConfig(dropout=0.2), TrainConfig(), data) != model_key(
        ModelConfig(dropout=0.3), TrainConfig(), data
    )


def test_input_standardisation_sees_only_the_training_split(data, tmp_cache):
    run = load_or_train(ModelConfig(hidden=(8, 4), input_norm=True), TrainConfig(epochs=1), data, cache=tmp_cache)
    assert run.model.input_mean.item() == pytest.approx(data.x_train.mean().item(), abs=1e-6)
    assert run.model.input_std.item() == pytest.approx(data.x_train.std().item(), abs=1e-6)
    everything = torch.cat([data.x_train, data.x_test])
    assert run.model.input_mean.item() != pytest.approx(everything.mean().item(), abs=1e-6)


def test_dropout_variant_is_evaluated_without_dropout(data, tmp_cache):
    run = load_or_train(ModelConfig(hidden=(8, 4), dropout=0.5), TrainConfig(epochs=1), data, cache=tmp_cache)
    assert not run.model.training
    torch.testing.assert_close(run.model(data.x_test[:50]), run.model(data.x_test[:50]))
    # The recorded snapshots are eval-mode activations: no unit zeroed at random.
    from mnistlab.hooks import run_with_cache

    _, cache = run_with_cache(run.model, data.x_test, names=["fc1_post"])
    torch.testing.assert_close(run.snapshots["fc1_post"][-1].float(), cache["fc1_post"], atol=5e-3, rtol=1e-3)


def test_measure_equals_the_chapters_functions(data, tmp_cache):
    from mnistlab.hooks import run_with_cache

    run = load_or_train(ModelConfig(hidden=(8, 4)), TrainConfig(epochs=2), data, cache=tmp_cache)
    m = compare.measure(run, data)
    _, val_acts = run_with_cache(run.model, data.x_val, names=["fc1_post"])
    mean_values = val_acts["fc1_post"].mean(0)  # mean ablation's values: the validation images' mean
    final = run.snapshots["fc1_post"][-1].float()
    lm = m.layers["fc1_post"]
    assert lm.dead == int(analysis.dead_units(final).sum())
    assert lm.firing == pytest.approx(analysis.firing_rate(final).mean().item())
    torch.testing.assert_close(lm.si, analysis.selectivity_index(analysis.class_means(final, data.y_test)),
                               equal_nan=True)
    table = iv.ablation_table(run.model, data.x_test, data.y_test, "fc1_post")  # zero ablation, test images
    torch.testing.assert_close(lm.largest_drop["zero"], -table.delta.min(1).values)
    mean = iv.ablation_table(run.model, data.x_test, data.y_test, "fc1_post", values=mean_values)
    torch.testing.assert_close(lm.largest_drop["mean"], -mean.delta.min(1).values)
    # Bottlenecks are found on the validation images, by hand here.
    val = iv.ablation_table(run.model, data.x_val, data.y_val, "fc1_post")
    assert lm.bottlenecks["zero"] == int((-val.delta.min(1).values > compare.BOTTLENECK_THRESHOLD).sum())
    assert m.test_acc == run.history["test_acc"]
    assert m.gap == pytest.approx(run.history["train_acc"][-1] - run.history["test_acc"][-1])
    assert m.first_epoch_reaching(0.0) == 0 and m.first_epoch_reaching(1.01) is None


def test_spread():
    s = compare.spread([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.min, s.max) == (2.0, 1.0, 1.0, 3.0)
    assert compare.spread([5]).std == 0.0
    with pytest.raises(ValueError, match="finite"):
        compare.spread([1.0, float("nan")])
