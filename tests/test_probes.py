"""Linear probes against scikit-learn's logistic regression, and the properties a probe must have."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mnistlab import probes
from mnistlab.probes import ProbeConfig


def blobs(n: int, d: int, spread: float, seed: int, n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian classes (N, D) on shifted, unequally scaled columns: separable-ish."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, d, generator=g) * spread
    labels = torch.randint(0, n_classes, (n,), generator=g)
    scale = 0.5 + 3 * torch.rand(d, generator=g)
    return (centres[labels] + torch.randn(n, d, generator=g)) * scale + 5, labels


def noise(n: int, d: int, seed: int, n_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Features that say nothing about the labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * (1 + 3 * torch.rand(d, generator=g)), torch.randint(
        0, n_classes, (n,), generator=g
    )


@pytest.mark.parametrize(
    "dataset, l2",
    [
        (blobs(3000, 20, 0.6, seed=0), 1e-3),
        (blobs(3000, 20, 0.6, seed=0), 1e-2),
        (blobs(3000, 200, 0.25, seed=2), 1e-3),
        (noise(3000, 20, seed=1), 1e-3),
    ],
    ids=["blobs", "blobs-l2=1e-2", "blobs-wide", "noise"],
)
def test_probe_matches_sklearn_logistic_regression(dataset, l2):
    x, y = dataset
    x_train, y_train, x_test, y_test = x[:2000], y[:2000], x[2000:], y[2000:]
    probe = probes.train_probe(x_train, y_train, ProbeConfig(l2=l2))

    # Our objective, mean cross-entropy + l2/2 ||W||², has the minimiser of sklearn's
    # C Σ cross-entropy + 1/2 ||W||² when C = 1 / (l2 N); both leave the bias unpenalised.
    scaler = StandardScaler().fit(x_train.double().numpy())
    sk = LogisticRegression(C=1 / (l2 * len(x_train)), max_iter=10_000, tol=1e-10)
    sk.fit(scaler.transform(x_train.double().numpy()), y_train.numpy())
    sk_pred = sk.predict(scaler.transform(x_test.double().numpy()))

    pred = probes.probe_predict(probe, x_test).numpy()
    assert (pred == sk_pred).mean() >= 0.99
    acc = probes.probe_accuracy(probe, x_test, y_test)
    assert abs(acc - (sk_pred == y_test.numpy()).mean()) <= 0.005
    # The weights themselves agree to 1% of their largest (measured: 0.05%).
    assert np.abs(probe.weight.numpy() - sk.coef_).max() <= 0.01 * np.abs(sk.coef_).max()
    np.testing.assert_allclose(probe.mean.numpy(), scaler.mean_, rtol=1e-5)
    np.testing.assert_allclose(probe.std.numpy(), scaler.scale_, rtol=1e-5)


def test_training_is_deterministic():
    x, y = blobs(2000, 30, 0.5, seed=3)
    a, b = probes.train_probe(x, y), probes.train_probe(x, y)
    for field in ("weight", "bias", "mean", "std"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert (a.iterations, a.loss) == (b.iterations, b.loss)


def test_features_are_standardised_with_the_training_statistics():
    x, y = blobs(1500, 10, 0.6, seed=4)
    x[:, 3] = 7.0  # a constant column: a dead unit, or a border pixel
    probe = probes.train_probe(x[:1000], y[:1000])
    torch.testing.assert_close(probe.mean, x[:1000].mean(0))
    assert probe.std[3] == 1 and probe.weight[:, 3].abs().max() == 0
    # Standardisation makes the probe blind to each column's unit and origin.
    shifted = x * torch.linspace(0.1, 10, 10) - 3
    shifted_probe = probes.train_probe(shifted[:1000], y[:1000])
    same = probes.probe_predict(probe, x[1000:]) == probes.probe_predict(shifted_probe, shifted[1000:])
    assert same.double().mean() >= 0.99


def test_a_probe_reads_a_label_the_features_hold_and_not_one_they_lack():
    g = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 10, (4000,), generator=g)
    holding = torch.nn.functional.one_hot(labels, 10).float() + 0.1 * torch.randn(4000, 10, generator=g)
    probe = probes.train_probe(holding[:2000], labels[:2000])
    assert probes.probe_accuracy(probe, holding[2000:], labels[2000:]) >= 0.99

    lacking, _ = noise(4000, 32, seed=6)
    probe = probes.train_probe(lacking[:2000], labels[:2000])
    # Chance is 0.1; 2,000 held-out images put the standard error near 0.007.
    assert abs(probes.probe_accuracy(probe, lacking[2000:], labels[2000:]) - 0.1) < 0.04


def test_control_labels_are_seeded_uniform_and_independent_of_the_labels():
    labels = torch.arange(20_000) % 10
    a = probes.control_labels(labels, seed=0)
    assert torch.equal(a, probes.control_labels(labels, seed=0))
    assert torch.equal(a, probes.control_labels(torch.zeros(20_000, dtype=torch.long), seed=0))
    assert not torch.equal(a, probes.control_labels(labels, seed=1))
    counts = torch.bincount(a, minlength=10)
    # Each count is Binomial(20000, 0.1): mean 2000, sd 42.
    assert counts.min() > 1800 and counts.max() < 2200
    assert abs((a == labels).double().mean().item() - 0.1) < 0.01
    assert probes.control_labels(torch.tensor([0, 1, 1]), n_classes=2).max() <= 1


def test_the_control_task_can_only_be_memorised():
    # More parameters than images: a probe memorises random labels on the images it saw,
    # and on unseen images (each its own type) it can only guess.
    x, _ = noise(600, 400, seed=7)
    control = probes.control_labels(torch.zeros(600, dtype=torch.long), seed=0)
    probe = probes.train_probe(x[:300], control[:300])
    assert probes.probe_accuracy(probe, x[:300], control[:300]) >= 0.9
    assert probes.probe_accuracy(probe, x[300:], control[300:]) < 0.2


def test_selectivity_is_task_minus_control():
    assert probes.selectivity(0.9, 0.1) == pytest.approx(0.8)
    assert probes.selectivity(0.1, 0.3) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match=r"task_acc must be an accuracy in \[0, 1\]"):
        probes.selectivity(90.0, 10.0)


def test_probe_config_validates():
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        ProbeConfig(l2=-1.0)
    with pytest.raises(ValueError, match="finite number"):
        ProbeConfig(l2=math.nan)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        ProbeConfig(steps=0)


def _x():
    return torch.rand(8, 3)


@pytest.mark.parametrize(
    "features, labels, error, match",
    [
        (_x(), torch.zeros(7, dtype=torch.long), ValueError, r"shape \(8,\), one per input, got \(7,\)"),
        (_x(), torch.full((8,), 10), ValueError, r"0\.\.9; got \[10\]"),
        (_x(), torch.zeros(8), TypeError, "integer class indices"),
        (torch.full((8, 3), math.nan), torch.zeros(8, dtype=torch.long), ValueError, "24 NaN or infinite"),
        (torch.rand(8), torch.zeros(8, dtype=torch.long), ValueError, r"2-D tensor \(N, D\)"),
        (torch.ones(8, 3, dtype=torch.long), torch.zeros(8, dtype=torch.long), TypeError, "floating-point"),
    ],
    ids=["mismatched-N", "label-out-of-range", "float-labels", "nan", "1-D", "int-features"],
)
def test_bad_inputs_say_what_is_wrong(features, labels, error, match):
    with pytest.raises(error, match=match):
        probes.train_probe(features, labels)


def test_a_probe_refuses_features_of_another_width():
    probe = probes.train_probe(torch.rand(20, 3), torch.arange(20) % 2, n_classes=2)
    with pytest.raises(ValueError, match="trained on 3 features per input"):
        probes.probe_predict(probe, torch.rand(5, 4))
    with pytest.raises(ValueError, match=r"0\.\.1; got \[2\]"):
        probes.probe_accuracy(probe, torch.rand(2, 3), torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="ProbeConfig"):
        probes.train_probe(torch.rand(20, 3), torch.arange(20) % 2, config={"l2": 0.1})


def test_type_control_labels_are_one_random_label_per_type_shared_across_calls():
    types = torch.arange(5000) % 50
    a = probes.control_labels(torch.zeros(5000, dtype=torch.long), seed=3, types=types, n_types=50)
    for t in range(50):
        assert (a[types == t] == a[types == t][0]).all()  # one label per type
    b = probes.control_labels(torch.zeros(7, dtype=torch.long), seed=3, types=torch.tensor([4, 4, 9, 0, 49, 1, 2]),
                              n_types=50)
    assert torch.equal(b, a[[4, 4, 9, 0, 49, 1, 2]])  # the same table in another call: train and test share it
    assert len(set(a[:50].tolist())) > 5  # random over the classes
    with pytest.raises(ValueError, match="n_types"):
        probes.control_labels(torch.zeros(3, dtype=torch.long), n_types=4)
    with pytest.raises(ValueError, match="types"):
        probes.control_labels(torch.zeros(3, dtype=torch.long), types=torch.tensor([0, 1, 5]), n_types=4)


def test_a_type_control_can_fail_where_a_per_image_control_cannot():
    """Planted: features that keep the look-alike groups let the control probe guess new images (low selectivity);
    features that keep only the digit do not."""
    g = torch.Generator().manual_seed(11)
    n_types, n = 40, 4000
    centres = torch.randn(n_types, 20, generator=g) * 3
    types = torch.randint(n_types, (n,), generator=g)
    digit = types % 10  # each group belongs to one digit
    images = centres[types] + torch.randn(n, 20, generator=g)  # groups are tight clusters
    train, test = slice(0, 3000), slice(3000, n)
    tr_types, te_types = probes.image_types(images[train], images[test], n_types=n_types, seed=0)
    control = probes.control_labels(digit[train], seed=0, types=tr_types, n_types=n_types)
    test_control = probes.control_labels(digit[test], seed=0, types=te_types, n_types=n_types)

    def held_out_control(features):
        probe = probes.train_probe(features[train], control)
        return probes.probe_accuracy(probe, features[test], test_control)

    floor = (probes.digit_guess(control, digit[train], digit[test]) == test_control).float().mean().item()
    keeps_groups = images
    keeps_digit_only = torch.nn.functional.one_hot(digit, 10).float() + 0.1 * torch.randn(n, 10, generator=g)
    assert held_out_control(keeps_groups) > floor + 0.3  # the control carries over: the probe is not selective
    assert abs(held_out_control(keeps_digit_only) - floor) < 0.05  # only the digit survives: the digit's floor
    per_image = probes.control_labels(digit[train], seed=0)
    memoriser = probes.train_probe(images[train], per_image)
    assert probes.probe_accuracy(memoriser, images[test], probes.control_labels(digit[test], seed=1)) < 0.15


def test_digit_guess_is_each_digits_most_common_control_label_counted_independently():
    from collections import Counter

    g = torch.Generator().manual_seed(5)
    labels = torch.randint(10, (500,), generator=g)
    control = (labels * 3 + torch.randint(3, (500,), generator=g)) % 10  # each digit favours a few labels
    new = torch.randint(10, (50,), generator=g)
    counts = {d: Counter(control[labels == d].tolist()) for d in range(10)}
    # the most common label; among ties the smallest, as argmax takes the first
    expected = [max(sorted(counts[d]), key=lambda c: counts[d][c]) for d in new.tolist()]
    assert probes.digit_guess(control, labels, new).tolist() == expected


def test_control_draws_are_the_single_draws_stacked_and_differ_from_draw_to_draw():
    g = torch.Generator().manual_seed(6)
    train, test = torch.randn(300, 5, generator=g), torch.randn(40, 5, generator=g)
    train_rows, test_rows = probes.control_draws(train, test, n_types=12, draws=3)
    for k in range(3):
        tr_types, te_types = probes.image_types(train, test, n_types=12, seed=k)
        zeros = torch.zeros(300, dtype=torch.long)
        assert torch.equal(train_rows[k], probes.control_labels(zeros, seed=k, types=tr_types, n_types=12))
        assert torch.equal(test_rows[k], probes.control_labels(zeros[:40], seed=k, types=te_types, n_types=12))
    assert not torch.equal(train_rows[0], train_rows[1])
    with pytest.raises(ValueError, match="draws"):
        probes.control_draws(train, test, draws=0)
