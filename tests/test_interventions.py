"""Interventions against oracles: weight surgery, identities, and hooks never left behind."""

import copy

import pytest
import torch

from mnistlab import analysis, patching
from mnistlab import interventions as iv
from mnistlab.hooks import hook_points, run_with_cache
from mnistlab.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(12, 6))).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(60, 784, generator=g)
    y = torch.arange(60) % 10
    return x, y


def no_hooks_left(model):
    return all(not hp._forward_hooks for hp in hook_points(model).values())


def test_zero_ablation_equals_zeroing_outgoing_weights(model, batch):
    x, _ = batch
    surgery = copy.deepcopy(model)
    surgery.fc2.weight.data[:, [2, 5]] = 0  # fc1_post units 2 and 5 no longer reach fc2
    torch.testing.assert_close(iv.run_edited(model, x, {"fc1_post": iv.zero_ablation([2, 5])}), surgery(x))


def test_scaling_by_one_and_patching_with_itself_change_nothing(model, batch):
    x, _ = batch
    clean, cache = run_with_cache(model, x, names=["fc1_post"])
    torch.testing.assert_close(iv.run_edited(model, x, {"fc1_post": iv.scaling([0, 3], 1.0)}), clean)
    torch.testing.assert_close(iv.run_edited(model, x, {"fc1_post": iv.patching(None, cache["fc1_post"])}), clean)


def test_patching_a_whole_layer_from_the_clean_run_reproduces_the_clean_logits(model, batch):
    x, _ = batch
    clean_x, corrupt_x = x[:30], x[30:]
    clean, cache = run_with_cache(model, clean_x, names=["fc2_post"])
    patched = iv.run_edited(model, corrupt_x, {"fc2_post": iv.patching(None, cache["fc2_post"])})
    torch.testing.assert_close(patched, clean)


def test_mean_ablation_of_a_constant_unit_changes_nothing(model, batch):
    x, _ = batch
    _, cache = run_with_cache(model, x, names=["fc1_post"])
    const = cache["fc1_post"].clone()
    const[:, 4] = 0.7  # a unit that is constant over the reference set...
    mean_edit = iv.mean_ablation([4], const)
    as_constant = iv.patching(None, const)
    # ...is replaced by its mean, which is that constant: the run with the unit held constant is unchanged.
    torch.testing.assert_close(
        iv.run_edited(model, x, {"fc1_post": [as_constant, mean_edit]}),
        iv.run_edited(model, x, {"fc1_post": as_constant}),
    )


def test_class_mean_ablation_uses_each_inputs_own_class(model, batch):
    x, y = batch
    _, cache = run_with_cache(model, x, names=["fc1_post"])
    acts = cache["fc1_post"]
    edit = iv.class_mean_ablation([1], acts, y, input_labels=y)
    expected = torch.stack([acts[y == c, 1].mean() for c in range(10)])[y]  # (N,)
    torch.testing.assert_close(edit.value[:, 0], expected)
    h1 = acts.clone()
    h1[:, 1] = expected  # the forward pass by hand, from the edited first layer on
    by_hand = model.out(torch.relu(model.fc2(h1)))
    torch.testing.assert_close(iv.run_edited(model, x, {"fc1_post": edit}, batch_size=7), by_hand)  # sliced per batch


def test_resample_ablation_never_keeps_an_inputs_own_activations(batch):
    x, _ = batch
    acts = torch.arange(60.0)[:, None].repeat(1, 3)
    edit = iv.resample_ablation([0], acts, seed=3)
    assert (edit.value[:, 0] != acts[:, 0]).all()
    assert sorted(edit.value[:, 0].tolist()) == sorted(acts[:, 0].tolist())


def test_ablation_table_equals_single_runs(model, batch):
    x, y = batch
    table = iv.ablation_table(model, x, y, "fc1_post", max_rows=100)  # forces several passes
    for unit in (0, 7, 11):
        preds = iv.run_edited(model, x, {"fc1_post": iv.zero_ablation(unit)}).argmax(1)
        torch.testing.assert_close(table.ablated[unit], analysis.per_class_accuracy(preds, y))
    assert table.base_accuracy == pytest.approx(analysis.accuracy(model(x).argmax(1), y))
    _, cache = run_with_cache(model, x, names=["fc1_post"])
    means = cache["fc1_post"].mean(0)
    mean_table = iv.ablation_table(model, x, y, "fc1_post", values=means)
    preds = iv.run_edited(model, x, {"fc1_post": iv.mean_ablation([7], cache["fc1_post"])}).argmax(1)
    torch.testing.assert_close(mean_table.ablated[7], analysis.per_class_accuracy(preds, y))


def test_edit_table_equals_the_ablation_table_for_unit_ablations(model, batch):
    x, y = batch
    units = [0, 7, 11]
    table = iv.edit_table(model, x, y, "fc1_post", [iv.zero_ablation(u) for u in units])
    reference = iv.ablation_table(model, x, y, "fc1_post")
    torch.testing.assert_close(table.ablated, reference.ablated[units])
    torch.testing.assert_close(table.accuracy, reference.accuracy[units])
    torch.testing.assert_close(table.base, reference.base)
    assert table.base_accuracy == reference.base_accuracy
    with pytest.raises(ValueError, match="labels"):
        iv.edit_table(model, x, y[:-1], "fc1_post", [iv.zero_ablation(0)])


def test_patching_effects_match_single_patches(model, batch):
    x, _ = batch
    clean, corrupt = x[:10], x[10:20]
    effects = patching.patching_effects(model, clean, corrupt, 3, 8, "fc1_post")
    _, cache = run_with_cache(model, clean, names=["fc1_post"])
    patched = iv.run_edited(model, corrupt, {"fc1_post": iv.patching([5], cache["fc1_post"])})
    ld = patching.logit_diff(patched, 3, 8)
    expected = patching.normalised_effect(ld, effects.ld_clean, effects.ld_corrupt)
    assert effects.per_unit[5].item() == pytest.approx(expected.item(), rel=1e-5)
    assert effects.layer == pytest.approx(1.0)  # the whole layer restores the clean run
    noised = patching.patching_effects(model, clean, corrupt, 3, 8, "fc1_post", mode="noise")
    assert noised.layer == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(
    "run",
    [
        lambda m, x, y: iv.run_edited(m, x, {"fc1_post": iv.zero_ablation([99])}),
        lambda m, x, y: iv.run_edited(m, x, {"fc1_post": iv.patching(None, torch.zeros(3, 12))}),
        lambda m, x, y: iv.ablation_table(m, x, y, "fc1_post", values=torch.zeros(5)),
        lambda m, x, y: patching.patching_effects(m, x[:3], x[:4], 0, 1, "fc1_post"),
        lambda m, x, y: iv.run_edited(m, x, {"fc9_post": iv.zero_ablation(0)}),
    ],
    ids=["unit out of range", "too few patch rows", "wrong value shape", "unpaired images", "unknown hook point"],
)
def test_bad_interventions_fail_clearly_and_leave_no_hook(model, batch, run):
    x, y = batch
    with pytest.raises((IndexError, ValueError, KeyError)):
        run(model, x, y)
    assert no_hooks_left(model)


def test_unit_out_of_range_names_the_valid_range(model, batch):
    x, _ = batch
    with pytest.raises(IndexError, match=r"units 0\.\.11"):
        iv.run_edited(model, x, {"fc1_post": iv.zero_ablation([99])})


def test_pruning_curve_and_random_ablation_equal_single_runs(model, batch):
    x, y = batch
    order = torch.tensor([3, 0, 9, 4])
    curve = iv.pruning_curve(model, x, y, "fc1_post", order)
    assert curve[0].item() == pytest.approx(analysis.accuracy(model(x).argmax(1), y))
    for n in (1, 4):
        preds = iv.run_edited(model, x, {"fc1_post": iv.zero_ablation(order[:n])}).argmax(1)
        assert curve[n].item() == pytest.approx(analysis.accuracy(preds, y))
    acc = iv.random_ablation(model, x, y, "fc1_post", ks=[0, 12], draws=3)
    assert acc.shape == (2, 3)
    everything = iv.run_edited(model, x, {"fc1_post": iv.zero_ablation(range(12))}).argmax(1)
    assert (acc[1] == analysis.accuracy(everything, y)).all()  # all 12 of 12 units: every draw is the same


def test_scaling_sweep_at_one_is_the_intact_model(model, batch):
    x, y = batch
    sweep = iv.scaling_sweep(model, x, y, "fc2_post", [1, 2], factors=[0.0, 1.0])
    torch.testing.assert_close(sweep[1], analysis.per_class_accuracy(model(x).argmax(1), y))


def test_per_input_values_ablate_each_image_with_its_own_replacement(data):
    """Oracle: resample ablation in the batched table equals one edited run per unit."""
    from mnistlab.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(6, 4))).eval()
    x, y = data.x_test[::3], data.y_test[::3]  # every digit
    _, cache = iv.run_with_cache(model, data.x_train[: len(x)], names=["fc1_post"])
    values = cache["fc1_post"][torch.randperm(len(x), generator=torch.Generator().manual_seed(1))]  # (N, D)
    table = iv.ablation_table(model, x, y, "fc1_post", values=values)
    for unit in range(6):
        edit = iv.Edit(torch.tensor([unit]), values[:, unit : unit + 1], per_input=True)
        preds = iv.run_edited(model, x, {"fc1_post": edit}).argmax(1)
        assert table.accuracy[unit].item() == pytest.approx((preds == y).float().mean().item())


def test_the_beats_random_orders_rule_holds_fails_and_loses_ties_on_a_planted_network(data):
    """Chapter 5's rule: removing a quarter of a layer in some order beats most random orders. A network that reads
    only units 0-5 of fc1_post: removing the others first beats most random orders; removing 0-5 first does not;
    when every unit is useless every order ties, and a tie is not a win."""
    from mnistlab import claims, stats
    from mnistlab.train import TrainConfig, train

    small = train(ModelConfig(hidden=(6, 6)), TrainConfig(epochs=2), data, progress=False).model
    net = build_model(ModelConfig(hidden=(16, 6))).eval()  # small's 6 units, and 10 that are never active
    with torch.no_grad():
        net.load_state_dict({k: v for k, v in small.state_dict().items() if not k.startswith(("fc1", "fc2"))},
                            strict=False)
        net.fc1.weight.zero_(), net.fc1.bias.fill_(-1.0), net.fc2.weight.zero_()
        net.fc1.weight[:6], net.fc1.bias[:6] = small.fc1.weight, small.fc1.bias
        net.fc2.weight[:, :6], net.fc2.bias[:] = small.fc2.weight, small.fc2.bias
    x, y = data.x_test, data.y_test
    torch.testing.assert_close(net(x), small(x))  # the same network, with 10 dead units beside it
    k, draws = 4, 60
    rnd = iv.random_ablation(net, x, y, "fc1_post", [k], draws)[0]  # (draws,)
    gen = torch.Generator().manual_seed(0)  # replayed: each draw zeroes k distinct units, and only those
    for d in range(3):
        units = torch.randperm(16, generator=gen)[:k]
        preds = iv.run_edited(net, x, {"fc1_post": iv.zero_ablation(units)}).argmax(1)
        assert rnd[d].item() == pytest.approx(analysis.accuracy(preds, y))

    def verdict(order, network=net, random_acc=rnd):
        acc = iv.pruning_curve(network, x, y, "fc1_post", torch.tensor(order))[k]
        beaten = stats.proportion(int((acc > random_acc).sum()), len(random_acc), of="random orders")
        return claims.greater("beats", "beats most random orders", beaten, than=0.5).verdict

    assert verdict(list(range(6, 16)) + list(range(6))) == "holds"
    assert verdict(list(range(16))) == "contradicted"
    useless = copy.deepcopy(net)
    with torch.no_grad():
        useless.fc2.weight.zero_()  # every order leaves the same constant logits
    ties = iv.random_ablation(useless, x, y, "fc1_post", [k], draws)[0]
    assert verdict(list(range(16)), useless, ties) == "contradicted"
