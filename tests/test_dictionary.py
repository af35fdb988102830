"""Sparse autoencoders (mnistlab.dictionary) and their features at work (mnistlab.features) against oracles:
a planted dictionary, autograd and Adam, hand-made SAEs, forward passes."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mnistlab import dictionary as dl
from mnistlab import features as ft
from mnistlab import interventions as iv
from mnistlab.cache import CacheCorruptionWarning, ModelCache
from mnistlab.hooks import hook_points, hooks, run_with_cache
from mnistlab.models import ModelConfig, build_model


def planted(n=4000, d=16, atoms=32, active=3, seed=0):
    """Rows that are sums of ``active`` of ``atoms`` random unit directions, with coefficients in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    dictionary = dl.random_unit_directions(d, atoms, g)  # (d, atoms)
    chosen = torch.rand(n, atoms, generator=g).argsort(1)[:, :active]  # (n, active)
    coef = torch.zeros(n, atoms).scatter_(1, chosen, 0.5 + torch.rand(n, active, generator=g))
    return coef @ dictionary.T, dictionary  # (n, d), (d, atoms)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(8, 4))).eval()


@pytest.fixture(scope="module")
def batch(model):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 784, generator=g)
    y = torch.arange(64) % 10
    _, cache = run_with_cache(model, x, names=["fc1_post"])
    return x, y, cache["fc1_post"]  # (64, 784), (64,), (64, 8)


@pytest.fixture(scope="module")
def small_sae(batch):
    _, _, acts = batch
    return dl.train_sae(acts, dl.SAEConfig(width=16, steps=300, batch_size=32)).sae


def state(sae):
    return {k: v.clone() for k, v in sae.state_dict().items()}


def same_bits(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- training ------------------------------------------------------------------------


def test_a_planted_dictionary_is_recovered():
    # 100% of the 32 atoms recovered, worst cosine 0.96, when this test was written (l1 = 0.2).
    x, atoms = planted()
    run = dl.train_sae(x, dl.SAEConfig(width=32))
    best = ft.match_features(atoms, run.sae.W_dec, one_to_one=False)  # (32,) per planted atom
    assert (best > 0.9).float().mean() >= 0.9, best
    assert ft.match_features(atoms, run.sae.W_dec, one_to_one=True).mean() > 0.9
    chance = ft.match_features(atoms, dl.random_unit_directions(16, 32, torch.Generator().manual_seed(5)), False)
    assert (chance > 0.9).float().mean() < 0.2  # random directions do not pass the same bar
    assert ft.sae_stats(run.sae, x).explained_variance > 0.8


def test_hand_written_gradients_equal_autograd():
    g = torch.Generator().manual_seed(0)
    d, width = 5, 7
    flat = torch.randn(2 * d * width + width + d, generator=g)
    xb = torch.randn(9, d, generator=g)
    grad = torch.zeros_like(flat)
    loss = dl._loss_and_grads(dl._views(flat, d, width), dl._views(grad, d, width), xb, l1=0.3)
    W_enc, b_enc, W_dec, b_dec = (p.clone().requires_grad_() for p in dl._views(flat, d, width))
    f = F.relu((xb - b_dec) @ W_enc.T + b_enc)
    assert 0 < (f > 0).float().mean() < 1  # both sides of the ReLU are exercised
    expected = ((f @ W_dec.T + b_dec - xb) ** 2).sum(1).mean() + 0.3 * f.sum(1).mean()
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    for ours, theirs in zip(dl._views(grad, d, width), (W_enc, b_enc, W_dec, b_dec)):
        torch.testing.assert_close(ours, theirs.grad)


def test_training_equals_autograd_with_torch_adam():
    """train_sae against the loop it replaces: autograd, torch.optim.Adam, projected decoder gradients."""
    acts = 3 * torch.relu(torch.randn(300, 6, generator=torch.Generator().manual_seed(1)))
    config = dl.SAEConfig(width=10, steps=40, batch_size=32, l1=0.1, lr=1e-2, seed=4)
    run = dl.train_sae(acts, config)
    gen = torch.Generator().manual_seed(config.seed)
    mean = acts.mean(0)
    sigma = (acts - mean).pow(2).sum(1).mean().sqrt()
    x = acts / sigma
    sae = dl.SparseAutoencoder(6, 10, generator=gen)
    with torch.no_grad():
        sae.b_dec.copy_(mean / sigma)
    total = config.steps * config.batch_size
    order = torch.cat([torch.randperm(300, generator=gen) for _ in range(-(-total // 300))])[:total]
    opt = torch.optim.Adam(sae.parameters(), lr=config.lr)
    for rows in order.view(config.steps, -1):
        f = sae.encode(x[rows])
        loss = (sae.decode(f) - x[rows]).pow(2).sum(1).mean() + config.l1 * f.sum(1).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            g = sae.W_dec.grad
            g -= (g * sae.W_dec).sum(0) * sae.W_dec
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=0)
    with torch.no_grad():
        sae.b_enc *= sigma
        sae.b_dec *= sigma
    for name, value in sae.state_dict().items():
        torch.testing.assert_close(run.sae.state_dict()[name], value, rtol=1e-5, atol=1e-5, msg=name)


def test_training_is_deterministic_keeps_unit_columns_and_leaves_the_global_generator_alone():
    x, _ = planted(n=500, seed=2)
    config = dl.SAEConfig(width=24, steps=300)
    rng = torch.get_rng_state()
    first, second = dl.train_sae(x, config), dl.train_sae(x, config)
    assert torch.equal(torch.get_rng_state(), rng)
    assert same_bits(state(first.sae), state(second.sae)) and torch.equal(first.losses, second.losses)
    assert first.losses.shape == (300,) and first.losses[-20:].mean() < first.losses[:20].mean()
    torch.testing.assert_close(first.sae.W_dec.norm(dim=0), torch.ones(24), rtol=0, atol=1e-6)
    other_seed = dl.train_sae(x, dataclasses.replace(config, seed=1))
    assert not torch.equal(other_seed.sae.W_dec, first.sae.W_dec)


def test_the_loss_does_not_depend_on_the_scale_of_the_activations():
    x, _ = planted(n=400, seed=3)
    config = dl.SAEConfig(width=16, steps=100)
    small, large = dl.train_sae(x, config).sae, dl.train_sae(4 * x, config).sae  # 4: exact in floating point
    assert torch.equal(small.W_dec, large.W_dec)  # the same directions, found by the same steps
    torch.testing.assert_close(4 * small.b_dec, large.b_dec)
    torch.testing.assert_close(4 * small.encode(x), large.encode(4 * x))  # features in the layer's units


# --- the cache -----------------------------------------------------------------------


def test_load_or_train_sae_round_trips_bit_for_bit(tmp_path):
    cache = ModelCache(tmp_path, kind="results")
    x, _ = planted(n=300, seed=4)
    config = dl.SAEConfig(width=12, steps=60)
    first = dl.load_or_train_sae(x, config, cache)
    again = dl.load_or_train_sae(x, config, cache)
    fresh = dl.train_sae(x, config)
    assert (first.from_cache, again.from_cache) == (False, True)
    assert same_bits(state(first.sae), state(again.sae)) and same_bits(state(again.sae), state(fresh.sae))
    assert torch.equal(again.losses, fresh.losses) and again.config == config
    nudged = x.clone()
    nudged[0, 0] = torch.nextafter(nudged[0, 0], torch.tensor(9.0))  # one bit of the activations
    assert not dl.load_or_train_sae(nudged, config, cache).from_cache
    assert not dl.load_or_train_sae(x, dataclasses.replace(config, l1=0.1), cache).from_cache
    assert len(cache.entries()) == 3


def test_a_damaged_cache_entry_is_not_served(tmp_path):
    cache = ModelCache(tmp_path)  # a model cache: the SAE goes to its results, where `mnistlab cache list` expects it
    x, _ = planted(n=300, seed=5)
    config = dl.SAEConfig(width=12, steps=60)
    first = dl.load_or_train_sae(x, config, cache)
    assert cache.entries() == []
    (entry,) = ModelCache(tmp_path, kind="results").entries()
    weights = entry / "weights.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.warns(CacheCorruptionWarning, match="damaged"):
        again = dl.load_or_train_sae(x, config, cache)
    assert not again.from_cache and same_bits(state(first.sae), state(again.sae))
    assert dl.load_or_train_sae(x, config, cache).from_cache  # rebuilt and stored again


# --- statistics ----------------------------------------------------------------------


def hand_made_sae():
    """Feature 0 reads unit 0, feature 1 reads unit 1 above 0.5, feature 2 never fires."""
    sae = dl.SparseAutoencoder(2, 3, generator=torch.Generator())
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, -0.5, -100.0]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
        sae.b_dec.zero_()
    return sae


def test_sae_stats_equal_hand_computed_values():
    acts = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 2.0]])
    stats = ft.sae_stats(hand_made_sae(), acts)
    # Features: row 0 → (1, 0, 0), row 1 → (2, 0, 0), row 2 → (0, 0.5, 0), row 3 → (1, 1.5, 0).
    assert stats.l0_per_row.tolist() == [1, 1, 1, 2] and stats.l0 == 1.25
    assert stats.firing.tolist() == [0.75, 0.5, 0.0]
    assert stats.dead.tolist() == [False, False, True]
    assert stats.dense.tolist() == [True, False, False]  # more than half the rows: 0.5 is not
    # Unit 1 comes back 0.5 short on rows 2 and 3: 0.5 unexplained of Σ‖x − mean‖² = 2 + 2.75.
    assert stats.explained_variance == pytest.approx(1 - 0.5 / 4.75)
    assert ft.sae_stats(hand_made_sae(), acts, dense_threshold=0.8).dense.tolist() == [False, False, False]


def test_hook_points_see_the_features_and_the_reconstruction(small_sae, batch):
    _, _, acts = batch
    assert list(hook_points(small_sae)) == ["features", "reconstruction"]
    seen = {}
    with hooks(small_sae, {n: lambda a, n: seen.setdefault(n, a.detach()) for n in ("features", "reconstruction")}):
        out = small_sae(acts)
    torch.testing.assert_close(seen["features"], small_sae.encode(acts))
    torch.testing.assert_close(seen["reconstruction"], out)


# --- edits ---------------------------------------------------------------------------


def rest_of_the_network(model, h1):
    """The MLP's forward pass from fc1_post on, by hand."""
    return model.out(torch.relu(model.fc2(h1)))


def test_loss_recovered_equals_manual_forward_passes(model, small_sae, batch):
    x, y, acts = batch
    res = ft.loss_recovered(model, "fc1_post", small_sae, x, y, acts, torch.zeros(8))
    with torch.no_grad():
        spliced = F.cross_entropy(rest_of_the_network(model, small_sae.decode(small_sae.encode(acts))), y).item()
        ablated = F.cross_entropy(rest_of_the_network(model, torch.zeros(64, 8)), y).item()
        clean = F.cross_entropy(model(x), y).item()
    assert res.spliced == pytest.approx(spliced, rel=1e-6)
    assert res.ablated == pytest.approx(ablated, rel=1e-6) and res.clean == pytest.approx(clean, rel=1e-6)
    assert res.recovered == pytest.approx((ablated - spliced) / (ablated - clean), rel=1e-5)
    mean = ft.loss_recovered(model, "fc1_post", small_sae, x, y, acts, acts.mean(0))
    with torch.no_grad():
        by_hand = F.cross_entropy(rest_of_the_network(model, acts.mean(0).expand(64, 8)), y).item()
    assert mean.ablated == pytest.approx(by_hand, rel=1e-6) and mean.spliced == res.spliced


def test_splicing_is_patching_in_the_reconstruction(model, small_sae, batch):
    x, _, acts = batch
    spliced = iv.run_edited(model, x, {"fc1_post": ft.splice(small_sae, acts)})
    with torch.no_grad():
        torch.testing.assert_close(spliced, rest_of_the_network(model, small_sae(acts)))


def test_feature_edits_change_only_the_chosen_features(model, small_sae, batch):
    x, _, acts = batch
    clean = iv.run_edited(model, x, {})
    with torch.no_grad():
        f = small_sae.encode(acts)  # (64, 16)
    i = int(((f > 0).float().mean(0) - 0.5).abs().argmin())  # a feature active on some inputs, not all
    on, off = f[:, i] > 0, f[:, i] == 0
    assert on.any() and off.any()
    assert torch.equal(iv.run_edited(model, x, {"fc1_post": ft.feature_edit(small_sae, acts, i, 1.0)}), clean)
    for factor in (0.0, 3.0):
        edited = iv.run_edited(model, x, {"fc1_post": ft.feature_edit(small_sae, acts, i, factor)})
        assert torch.equal(edited[off], clean[off])  # inactive: bit for bit the clean run
        assert not torch.allclose(edited[on], clean[on])
    ablated = ft.feature_edit(small_sae, acts, [i], 0.0)
    torch.testing.assert_close(ablated.value - acts, -f[:, [i]] * small_sae.W_dec[:, i].detach())  # exactly f_i d_i
    both = ft.feature_edit(small_sae, acts, [i, (i + 1) % 16], 2.0)
    expected = acts + f[:, [i]] * small_sae.W_dec[:, i] + f[:, [(i + 1) % 16]] * small_sae.W_dec[:, (i + 1) % 16]
    torch.testing.assert_close(both.value, expected.detach())
    # The control: each feature's change keeps its length and points along the one direction given.
    d = torch.randn(acts.shape[1], generator=torch.Generator().manual_seed(0))
    pair = [i, (i + 1) % 16]
    lengths = small_sae.W_dec[:, pair].detach().norm(dim=0)  # (2,)
    along = ft.feature_edit(small_sae, acts, pair, 2.0, direction=3 * d)
    torch.testing.assert_close(along.value - acts, (f[:, pair] @ lengths)[:, None] * (d / d.norm())[None, :])


# --- comparing dictionaries ----------------------------------------------------------


def test_match_features_best_and_one_to_one():
    e0, e1 = torch.eye(2)
    a = torch.stack([e0, F.normalize(e0 + 0.2 * e1, dim=0)], 1)  # two directions close to e0
    b = torch.stack([e0, e1], 1)
    torch.testing.assert_close(ft.match_features(a, b, one_to_one=False), torch.tensor([1.0, 1 / 1.04**0.5]))
    # Both pick e0 above; one to one (the default), e0 goes to a's first column (the larger
    # total): the second must make do with e1.
    torch.testing.assert_close(ft.match_features(a, b), torch.tensor([1.0, 0.2 / 1.04**0.5]))
    torch.testing.assert_close(ft.match_features(a.flip(1), b), torch.tensor([0.2 / 1.04**0.5, 1.0]))
    unmatched = ft.match_features(torch.eye(3), torch.eye(3)[:, :2])
    assert unmatched[:2].tolist() == [1.0, 1.0] and unmatched[2].isnan()
    scaled = ft.match_features(5 * torch.eye(3), torch.eye(3)[:, [2, 0, 1]])  # lengths do not matter
    torch.testing.assert_close(scaled, torch.ones(3))


def test_random_unit_directions_are_unit_and_seeded():
    one = dl.random_unit_directions(7, 11, torch.Generator().manual_seed(3))
    assert one.shape == (7, 11)
    torch.testing.assert_close(one.norm(dim=0), torch.ones(11))
    assert torch.equal(one, dl.random_unit_directions(7, 11, torch.Generator().manual_seed(3)))


# --- mistakes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: dl.SAEConfig(width=0), ValueError, r"width must be an int >= 1"),
        (lambda: dl.SAEConfig(width=True), ValueError, r"width must be an int >= 1"),
        (lambda: dl.SAEConfig(l1=-0.1), ValueError, r"l1 must be a finite number >= 0"),
        (lambda: dl.SAEConfig(l1=float("nan")), ValueError, r"l1 must be a finite number >= 0"),
        (lambda: dl.SAEConfig(lr=0), ValueError, r"lr must be a finite number > 0"),
        (lambda: dl.SAEConfig(steps=0), ValueError, r"steps must be an int >= 1"),
        (lambda: dl.SAEConfig(seed=-1), ValueError, r"seed must be an int in"),
        (lambda: dl.train_sae(torch.rand(4, 2, 3)), ValueError, r"2-D tensor \(N, D\).*flatten"),
        (lambda: dl.train_sae(torch.rand(10)), ValueError, r"2-D tensor \(N, D\)"),
        (lambda: dl.train_sae(torch.ones(5, 3)), ValueError, r"same on all 5 rows"),
        (lambda: dl.train_sae(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])), ValueError, r"1 NaN or infinite"),
        (lambda: dl.train_sae(torch.ones(5, 3, dtype=torch.long)), TypeError, r"floating-point"),
        (lambda: dl.train_sae(torch.rand(5, 3), {"width": 4}), TypeError, r"SAEConfig"),
        (lambda: ft.sae_stats(hand_made_sae(), torch.rand(5, 3)), ValueError, r"3 units per row.*reads 2"),
        (lambda: ft.sae_stats(hand_made_sae(), torch.rand(5, 2), 1.5), ValueError, r"dense_threshold"),
        (lambda: hand_made_sae().encode(torch.rand(5, 4)), ValueError, r"must be \(N, 2\)"),
        (lambda: ft.splice(hand_made_sae(), torch.rand(5, 3)), ValueError, r"reads 2"),
        (lambda: ft.feature_edit(hand_made_sae(), torch.rand(5, 2), [3], 0.0), IndexError, r"features 0\.\.2"),
        (lambda: ft.feature_edit(hand_made_sae(), torch.rand(5, 2), [1, 1], 0.0), ValueError, r"distinct"),
        (lambda: ft.feature_edit(hand_made_sae(), torch.rand(5, 2), 0, float("inf")), ValueError, r"finite"),
        (lambda: ft.match_features(torch.eye(3), torch.eye(4)), ValueError, r"D = 3 and D = 4"),
        (lambda: ft.match_features(torch.ones(3), torch.eye(3)), ValueError, r"columns of a float \(D, k\)"),
        (lambda: dl.SparseAutoencoder(0, 4), ValueError, r"d_in must be an int >= 1"),
    ],
)
def test_mistakes_fail_clearly(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_loss_recovered_refuses_activations_of_other_inputs_and_bad_baselines(model, small_sae, batch):
    x, y, acts = batch
    with pytest.raises(ValueError, match="not the activations of x"):
        ft.loss_recovered(model, "fc1_post", small_sae, x, y, acts.flip(0), torch.zeros(8))
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        ft.loss_recovered(model, "fc1_post", small_sae, x, y, acts, torch.zeros(64, 8))
    with pytest.raises(KeyError, match="unknown hook point"):
        ft.loss_recovered(model, "fc9_post", small_sae, x, y, acts, torch.zeros(8))
    assert all(not hp._forward_hooks for hp in hook_points(model).values())


def test_steered_to_counts_the_active_inputs_of_other_classes_the_edit_moves(model, small_sae, batch):
    x, y, acts = batch
    codes = small_sae.encode(acts)
    feature = int((codes > 0).sum(0).argmax())  # the most often active feature
    clean = model(x).argmax(1)
    for factor, target in ((1.0, 3), (6.0, 3), (0.0, 5)):
        got = ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, target, factor)
        preds = iv.run_edited(model, x, {"fc1_post": ft.feature_edit(small_sae, acts, feature, factor)}).argmax(1)
        others = (codes[:, feature] > 0) & (y != target)
        assert got.active == int(others.sum()) > 0
        assert torch.equal(got.before, clean[others] == target) and torch.equal(got.after, preds[others] == target)
        assert got.turned == int(((preds[others] == target) & (clean[others] != target)).sum())
    unchanged = ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, 3, 1.0)
    assert unchanged.turned == 0 and torch.equal(unchanged.before, unchanged.after)


def test_steering_along_a_random_direction_is_a_change_of_the_same_size_elsewhere(model, small_sae, batch):
    x, y, acts = batch
    codes = small_sae.encode(acts)
    feature = int((codes > 0).sum(0).argmax())
    own = small_sae.W_dec[:, feature].detach()
    # Along the feature's own direction the control is the feature edit itself.
    same = ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, 3, 6.0, direction=5 * own)
    edit = ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, 3, 6.0)
    assert torch.equal(same.after, edit.after) and torch.equal(same.before, edit.before)
    # A planted target: a network whose fc2 unit 0 writes to digit 3 alone, and a direction of fc1_post that
    # drives only that unit; pushing along it turns images into 3s, pushing against it cannot.
    planted = copy.deepcopy(model)
    with torch.no_grad():
        planted.out.weight.zero_(), planted.out.bias.zero_()
        planted.out.weight[3, 0] = 1.0
        planted.out.weight[torch.arange(10) != 3, 1] = 1.0
        towards = torch.linalg.pinv(planted.fc2.weight) @ torch.eye(4)[0]  # (8,): fc2 unit 0 up, the others still
    push = ft.steered_to(planted, "fc1_post", small_sae, acts, x, y, feature, 3, 1e4, direction=towards)
    against = ft.steered_to(planted, "fc1_post", small_sae, acts, x, y, feature, 3, 1e4, direction=-towards)
    assert push.turned == push.active - int(push.before.sum()) > 0 and against.turned == 0
    with pytest.raises(ValueError, match="one entry per unit"):
        ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, 3, 2.0, direction=torch.ones(3))
    with pytest.raises(ValueError, match="not be zero"):
        ft.steered_to(model, "fc1_post", small_sae, acts, x, y, feature, 3, 2.0, direction=torch.zeros_like(own))


def test_directions_shaped_like_the_activations_match_features_far_more_often_than_uniform_ones():
    """Chapter 8's null: uniform directions in 32 dimensions almost never reach cosine 0.9; shaped ones can."""
    g = torch.Generator().manual_seed(6)
    spread = torch.tensor([10.0, 8.0] + [0.1] * 30)  # activations vary along two axes only
    cov = torch.diag(spread**2)
    features = dl.random_unit_directions(32, 20, g, covariance=cov)
    near = lambda d: int((ft.match_features(features, d) > 0.9).sum())  # noqa: E731
    assert near(dl.random_unit_directions(32, 20, g)) == 0
    assert near(dl.random_unit_directions(32, 20, g, covariance=cov)) >= 10
    with pytest.raises(ValueError, match="semi-definite"):
        dl.random_unit_directions(3, 2, g, covariance=-torch.eye(3))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        dl.random_unit_directions(3, 2, g, covariance=torch.eye(4))


def test_matched_sparsity_picks_the_penalty_whose_code_is_as_sparse_as_the_target(tmp_path):
    g = torch.Generator().manual_seed(3)
    acts = torch.rand(400, 8, generator=g)
    config = dl.SAEConfig(width=16, steps=200, batch_size=64, l1=0.3)
    cache = ModelCache(tmp_path, kind="results")
    runs = {f: dl.load_or_train_sae(acts, dataclasses.replace(config, l1=0.3 * f), cache) for f in (0.5, 1.0, 2.0)}
    l0 = {f: dl.mean_l0(r.sae, acts) for f, r in runs.items()}
    assert l0[0.5] > l0[1.0] > l0[2.0]  # a larger penalty gives a sparser code
    for f in (0.5, 2.0):  # planted: ask for the sparsity another penalty gives, get that penalty back
        chosen = dl.matched_sparsity(acts, config, l0[f], factors=(0.5, 1.0, 2.0), cache=cache)
        assert chosen.config.l1 == pytest.approx(0.3 * f)
    between = 0.8 * l0[2.0] + 0.2 * l0[1.0]  # nearer 2.0's sparsity than 1.0's: the nearest is chosen
    assert dl.matched_sparsity(acts, config, between, factors=(0.5, 1.0, 2.0), cache=cache).config.l1 == \
        pytest.approx(0.6)
    with pytest.raises(ValueError, match="target_l0"):
        dl.matched_sparsity(acts, config, -1.0, cache=cache)
