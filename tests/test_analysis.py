"""Analysis functions against scikit-learn and hand-made cases."""

import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion

from mnistlab import analysis


def test_confusion_matrix_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    preds = torch.where(torch.rand(500, generator=g) < 0.7, labels, torch.randint(0, 10, (500,), generator=g))
    cm = analysis.confusion_matrix(preds, labels)
    assert cm.tolist() == sk_confusion(labels, preds, labels=range(10)).tolist()
    acc = analysis.per_class_accuracy(preds, labels)
    torch.testing.assert_close(acc, cm.diagonal().double() / cm.sum(1).double())
    assert analysis.accuracy(preds, labels) == pytest.approx((preds == labels).double().mean().item())


def test_per_class_accuracy_refuses_an_empty_class():
    labels = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match=r"classes \[2\] have no examples"):
        analysis.per_class_accuracy(labels, labels, n_classes=3)


@pytest.mark.parametrize(
    "preds, labels, match",
    [
        (torch.tensor([0, 1]), torch.tensor([0]), "of one length"),
        (torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), "empty"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), "integer"),
        (torch.tensor([0, 11]), torch.tensor([0, 1]), "0..9"),
    ],
)
def test_bad_inputs_say_what_is_wrong(preds, labels, match):
    with pytest.raises((ValueError, TypeError), match=match):
        analysis.confusion_matrix(preds, labels)


def test_most_confused_picks_largest_off_diagonal():
    cm = torch.tensor([[50, 3, 9], [1, 40, 0], [9, 2, 30]])
    pairs = analysis.most_confused(cm, k=3)
    assert list(zip(pairs.true.tolist(), pairs.predicted.tolist(), pairs.count.tolist())) == [
        (0, 2, 9),
        (2, 0, 9),
        (0, 1, 3),
    ]


def test_confident_mistakes_are_wrong_and_sorted():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([1, 1, 1, 0])
    m = analysis.confident_mistakes(logits, labels, k=5)
    assert m.index.tolist() == [0, 3, 2]
    assert (m.predicted != m.true).all()
    assert (m.confidence[:-1] >= m.confidence[1:]).all()


def test_mistakes_within_a_group_use_the_row_conditioned_null():
    """Planted: 4, 7 and 9 misread often but evenly is not confusion among them; misread as each other is."""
    from mnistlab import claims, stats

    def verdict(cm):
        within, made = analysis.mistakes_within(cm, [4, 7, 9])
        return claims.greater("demo", "confused", stats.proportion(within, made), than=2 / 9).verdict

    evenly = torch.full((10, 10), 1) + torch.diag(torch.full((10,), 500))
    evenly[[4, 7, 9]] *= 30  # these rows err often, but spread over the nine wrong digits alike
    evenly[[4, 7, 9], [4, 7, 9]] = 500
    within, made = analysis.mistakes_within(evenly, [4, 7, 9])
    assert (within, made) == (3 * 2 * 30, 3 * 9 * 30)
    assert verdict(evenly) != "holds"  # the row-conditioned null: exactly 2/9, not shown
    assert within / int(evenly.sum() - evenly.trace()) > 6 / 90  # the uniform null would have called it confusion
    confused = evenly.clone()
    confused[4, 9] = confused[9, 4] = confused[7, 9] = 300
    assert verdict(confused) == "holds"
    with pytest.raises(ValueError, match="two or more distinct classes"):
        analysis.mistakes_within(evenly, [4, 4])


def test_expected_within_raises_the_null_for_a_group_that_holds_a_common_wrong_answer():
    """Planted: every digit's mistakes go mostly to 9; 4/7/9 beat 2/9 but not the null that knows it."""
    from mnistlab import claims, stats

    cm = torch.diag(torch.full((10,), 500))
    cm[:, 9] += 40  # 9 is the usual wrong answer for every digit
    cm += 2
    cm[9, 9] = 500
    cm[9, :9] = 10
    within, made = analysis.mistakes_within(cm, [4, 7, 9])
    share = stats.proportion(within, made)
    null = analysis.expected_within(cm, [4, 7, 9])
    assert claims.greater("demo", "x", share, than=2 / 9).verdict == "holds"  # the row null is fooled
    assert null > 2 / 9 and claims.greater("demo", "x", share, than=null).verdict != "holds"


def test_selectivity_at_firing_separates_sharper_tuning_from_sparser_firing():
    """Planted: unit 1 is unit 0 with a lower threshold (the same tuning), unit 2 is tuned more sharply. Their plain
    SIs put unit 1 above unit 0; at one firing rate units 0 and 1 agree and unit 2 stays above both. The values are
    re-derived by a plain loop (numpy quantile, class by class), sharing no code with the library."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) % 10
    tuning = labels.float() / 9  # class 0 lowest, class 9 highest
    noise = 0.3 * torch.randn(1000, generator=g)
    pre = torch.stack([tuning + noise, tuning + noise - 0.5, 3 * tuning + noise], 1)  # (N, 3)
    plain = analysis.selectivity_index(analysis.class_means(pre.relu(), labels))
    matched = analysis.selectivity_at_firing(pre, labels, 0.5)
    assert plain[1] > plain[0] + 0.1  # lowering the threshold alone raises the plain SI
    assert matched[1].item() == pytest.approx(matched[0].item(), abs=0.02)  # at one firing rate it does not
    assert matched[2] > matched[0] + 0.1  # sharper tuning still shows
    for d in range(3):
        x = pre[:, d].double().numpy()
        post = np.maximum(x - np.quantile(x, 0.5), 0)
        means = np.array([post[labels.numpy() == c].mean() for c in range(10)])
        best, rest = means.max(), (means.sum() - means.max()) / 9
        assert matched[d].item() == pytest.approx((best - rest) / (best + rest), abs=1e-5)
    dead = torch.cat([pre, -pre[:, :1].abs() - 1], 1)  # a fourth unit whose input is never above zero
    assert analysis.selectivity_at_firing(dead, labels, 0.5)[3].isnan()  # no SI, as selectivity_index gives it
    with pytest.raises(ValueError, match=r"rate must be a share of the inputs in \(0, 1\]"):
        analysis.selectivity_at_firing(pre, labels, 0.0)
