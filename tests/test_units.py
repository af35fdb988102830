"""Unit statistics (selectivity, AUC, firing, drift) against oracles and properties."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from mnistlab import analysis

N_CLASSES = 10


def labelled_acts(n_per_class=20, width=6, seed=0):
    """Random non-negative activations of a layer on ``n_per_class`` inputs of each class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N_CLASSES).repeat_interleave(n_per_class)
    acts = torch.relu(torch.randn(len(labels), width, generator=g) + torch.randn(1, width, generator=g))
    return acts, labels


def test_one_hot_layer_has_selectivity_one():
    labels = torch.arange(N_CLASSES).repeat(5)
    acts = torch.nn.functional.one_hot(labels, N_CLASSES).float() * 3.0  # unit c fires only on class c
    si = analysis.selectivity_index(analysis.class_means(acts, labels))
    torch.testing.assert_close(si, torch.ones(N_CLASSES))
    assert analysis.driving_classes(analysis.class_means(acts, labels)).tolist() == [1] * N_CLASSES


def test_class_blind_layer_has_selectivity_zero():
    labels = torch.arange(N_CLASSES).repeat(5)
    acts = torch.full((len(labels), 4), 2.0)
    acts[:, 1] = torch.arange(len(labels)) // N_CLASSES  # 0..4 within every class: same mean for each
    si = analysis.selectivity_index(analysis.class_means(acts, labels))
    torch.testing.assert_close(si, torch.zeros(4))


def test_dead_unit_has_undefined_selectivity_not_a_division_by_zero():
    acts, labels = labelled_acts()
    acts[:, 2] = 0.0
    means = analysis.class_means(acts, labels)
    si = analysis.selectivity_index(means)
    assert math.isnan(si[2]) and not si[[0, 1, 3, 4, 5]].isnan().any()
    assert analysis.dead_units(acts).tolist() == [False, False, True, False, False, False]
    assert analysis.driving_classes(means)[2] == 0 and analysis.preferred_class(means)[2] == -1
    torch.testing.assert_close(analysis.one_vs_rest_auc(acts, labels)[2], torch.full((N_CLASSES,), 0.5))


def test_selectivity_refuses_negative_means():
    with pytest.raises(ValueError, match="non-negative"):
        analysis.selectivity_index(torch.tensor([[1.0, -0.5, 0.2]]))


def test_selectivity_matches_its_formula():
    means = torch.tensor([[4.0, 1.0, 1.0, 2.0]])
    mu_rest = (1 + 1 + 2) / 3
    assert analysis.selectivity_index(means).item() == pytest.approx((4 - mu_rest) / (4 + mu_rest))


def test_auc_matches_sklearn_with_ties():
    acts, labels = labelled_acts(width=4)
    acts = (acts * 2).round() / 2  # many ties, as after a ReLU
    auc = analysis.one_vs_rest_auc(acts, labels)
    for unit in range(4):
        for c in (0, 3, 9):
            expected = roc_auc_score((labels == c).numpy(), acts[:, unit].numpy())
            assert auc[unit, c].item() == pytest.approx(expected, abs=1e-6)


def test_class_means_refuse_an_empty_class():
    acts, labels = labelled_acts()
    keep = labels != 4
    with pytest.raises(ValueError, match=r"classes \[4\] have no inputs"):
        analysis.class_means(acts[keep], labels[keep])


@pytest.mark.parametrize(
    "acts, match",
    [
        (torch.zeros(0, 3), "at least one input"),
        (torch.tensor([[1.0, float("nan")]]), "NaN or infinite"),
        (torch.zeros(4, 2, 2), r"\(N, D\) or \(N, C, H, W\)"),
        (torch.zeros(4, 3, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_activations_are_refused_with_a_clear_error(acts, match):
    with pytest.raises((ValueError, TypeError), match=match):
        analysis.firing_rate(acts)


def test_unit_index_out_of_range_is_named():
    acts, labels = labelled_acts(width=3)
    with pytest.raises(IndexError, match=r"units 0\.\.2"):
        analysis.unit_profile(acts, labels, unit=3)


def test_conv_channels_constant_over_space_equal_the_mlp_units():
    acts, labels = labelled_acts()
    as_maps = acts[:, :, None, None].expand(-1, -1, 5, 5)  # (N, C, 5, 5), constant over space
    torch.testing.assert_close(analysis.class_means(as_maps, labels), analysis.class_means(acts, labels))
    torch.testing.assert_close(analysis.one_vs_rest_auc(as_maps, labels), analysis.one_vs_rest_auc(acts, labels))


def test_firing_and_dead_units_on_a_forced_dead_unit():
    acts = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(analysis.firing_rate(acts), torch.tensor([0.0, 0.5, 0.25]))
    assert analysis.dead_units(acts).tolist() == [True, False, False]


def test_top_units_and_top_inputs():
    means = torch.tensor([[1.0, 0.0], [3.0, 1.0], [2.0, 5.0]])  # (D=3, C=2)
    assert analysis.top_units(means, 2).tolist() == [[1, 2], [2, 1]]
    acts = torch.tensor([[0.5], [2.0], [1.0]])
    assert analysis.top_inputs(acts, 0, 2).tolist() == [1, 2]


def test_drift_on_snapshots():
    acts, labels = labelled_acts(width=3)
    first = acts.clone()
    first[:, 1] = 0.0  # unit 1 dead at epoch 0
    later = acts.clone()
    later[:, 0] = acts[:, 0] * 2  # same profile, twice the scale
    d = analysis.drift(torch.stack([first, later]), labels)
    assert d.means.shape == (2, 3, N_CLASSES) and d.mean.shape == (2, 3)
    assert d.profile_r[0, 0].item() == pytest.approx(1.0)
    assert math.isnan(d.profile_r[0, 1])
    assert not d.preference_changed[0, 1]  # a dead unit cannot change preference


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0), exponent=st.integers(-8, 8))
def test_permuting_and_scaling_units(seed, scale, exponent):
    acts, labels = labelled_acts(seed=seed)
    perm = torch.randperm(acts.shape[1], generator=torch.Generator().manual_seed(seed))
    si = analysis.selectivity_index(analysis.class_means(acts, labels))
    si_perm = analysis.selectivity_index(analysis.class_means(acts[:, perm], labels))
    si_scaled = analysis.selectivity_index(analysis.class_means(acts * scale, labels))
    torch.testing.assert_close(si_perm, si[perm], equal_nan=True)
    torch.testing.assert_close(si_scaled, si, equal_nan=True, atol=1e-5, rtol=1e-4)
    auc = analysis.one_vs_rest_auc(acts, labels)
    torch.testing.assert_close(analysis.one_vs_rest_auc(acts[:, perm], labels), auc[perm])
    # AUC depends on ranks only. Scaling by a power of two is exact in floating point, so
    # the ranks, and the AUC, stay exactly the same; another factor can round two nearby
    # values onto one (a new tie), which moves the AUC by half a pair: 0.5 / (n_pos * n_neg).
    assert torch.equal(analysis.one_vs_rest_auc(acts * 2.0**exponent, labels), auc)
    counts = torch.bincount(labels, minlength=N_CLASSES).float()
    one_pair = (0.5 / (counts * (len(labels) - counts))).max().item()
    diff = (analysis.one_vs_rest_auc(acts * scale, labels) - auc).abs().max().item()
    assert diff <= 8 * one_pair, f"scaling by {scale} moved an AUC by {diff}, more than a few tied pairs"


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), split=st.integers(1, 199))
def test_firing_rate_of_a_batch_is_the_weighted_mean_of_its_parts(seed, split):
    acts, _ = labelled_acts(seed=seed)
    perm = torch.randperm(len(acts), generator=torch.Generator().manual_seed(seed))
    acts = acts[perm]
    a, b = acts[:split], acts[split:]
    combined = (analysis.firing_rate(a) * len(a) + analysis.firing_rate(b) * len(b)) / len(acts)
    torch.testing.assert_close(analysis.firing_rate(acts), combined)
