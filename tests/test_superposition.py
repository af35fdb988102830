"""The toy model of superposition: hand-made oracles, the paper's findings as properties,
the hand-written training step against autograd and torch.optim.Adam, bit-identical runs."""

import math
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mnistlab import plots  # noqa: E402
from mnistlab import superposition as sp  # noqa: E402
from mnistlab.hooks import hooks  # noqa: E402

PENTAGON = 2 * math.pi / 5
ANGLE_TOL = 0.02  # rad; trained pentagons (sparsity 0.9, seeds 0 and 1) are within 0.003


def test_dense_features_are_stored_as_pca_would():
    """Sparsity 0, decaying importance: the n_hidden most important features, orthogonal, norm 1; the rest dropped."""
    configs = [sp.ToyConfig(sparsity=0.0, importance=r) for r in (0.7, 0.9)]
    for model in sp.train_toys(configs):
        W = model.W.detach()
        norms = sp.feature_norms(W)
        assert sp.represented(W).tolist() == [True, True, False, False, False], norms
        assert sp.top_features_stored(W, model.config.importances)
        torch.testing.assert_close(norms[:2], torch.ones(2), atol=0.02, rtol=0)
        assert norms[2:].max() < 0.05
        assert sp.interference(W)[:2].max() < 1e-3  # the two stored columns are orthogonal


def test_sparse_features_form_a_regular_pentagon():
    """Sparsity 0.9, five equal features in two dimensions: all stored, at the angles of a regular pentagon."""
    for model in sp.train_toys([sp.ToyConfig(sparsity=0.9, seed=seed) for seed in (0, 1)]):
        W = model.W.detach()
        assert sp.represented(W).all()
        angles = sp.polygon_angles(W)
        assert angles.shape == (5,)
        assert (angles - PENTAGON).abs().max() < ANGLE_TOL, angles
        assert (sp.interference(W) > 1).all()  # each shares its space with its neighbours
        assert (model.b.detach() < 0).all()  # the negative bias that filters out the interference


def test_train_toy_is_bit_identical_and_seeds_differ():
    config = sp.ToyConfig(steps=300)
    a, b = sp.train_toy(config), sp.train_toy(config)
    assert torch.equal(a.W, b.W) and torch.equal(a.b, b.b)
    c = sp.train_toy(replace(config, seed=1))
    assert not torch.equal(a.W, c.W)


def test_a_model_trains_to_the_same_model_alone_and_in_a_group():
    """The same model up to float32 rounding: a group's batched products may add in another order."""
    configs = [
        sp.ToyConfig(sparsity=0.9, steps=300),
        sp.ToyConfig(sparsity=0.0, importance=0.7, steps=300, seed=3),
        sp.ToyConfig(sparsity=0.5, importance=0.9, steps=300),
    ]
    for config, grouped in zip(configs, sp.train_toys(configs)):
        alone = sp.train_toy(config)
        assert torch.allclose(alone.W, grouped.W, atol=1e-5) and torch.allclose(alone.b, grouped.b, atol=1e-5), config


def test_untrained_model_is_the_starting_point():
    config = sp.ToyConfig(steps=0)
    assert torch.equal(sp.train_toy(config).W, sp.ToyModel(config).W)
    assert torch.equal(sp.train_toy(config).b, torch.zeros(5))


def paper_loss(model: sp.ToyModel, x: torch.Tensor) -> torch.Tensor:
    """The paper's loss, written from its formula: mean over samples of Σ_i I_i (x_i - x'_i)²."""
    return (model.config.importances * (x - model(x)) ** 2).sum(1).mean()


def test_the_gradient_is_autograds():
    config = sp.ToyConfig(n_features=6, n_hidden=3, sparsity=0.5, importance=0.8, batch_size=256)
    model = sp.ToyModel(config)
    with torch.no_grad():
        model.b.copy_(torch.linspace(-0.3, 0.3, 6))  # some outputs below zero, where ReLU passes no gradient
    x = sp.feature_batch(config, 256, torch.Generator().manual_seed(1))
    paper_loss(model, x).backward()
    weight = config.importances.reshape(1, 6, 1) * (2.0 / 256)
    grad = sp._grad(model.W.detach()[None], model.b.detach().reshape(1, 1, 6), x.T[None], weight)[0]
    torch.testing.assert_close(grad[:3], model.W.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad[3], model.b.grad, rtol=1e-5, atol=1e-6)


def test_training_equals_autograd_with_torch_adam_and_a_cosine_schedule():
    """The oracle: ToyModel, the paper's loss, torch.optim.Adam and LambdaLR, on the batches train_toy draws."""
    config = sp.ToyConfig(sparsity=0.7, importance=0.9, steps=200)
    generator = torch.Generator().manual_seed(config.seed)
    model = sp.ToyModel(config)
    torch.testing.assert_close(sp._initial_weights(config, generator), model.W.detach(), rtol=0, atol=0)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=sp.BETAS, eps=sp.EPS)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / config.steps)))
    for _ in range(config.steps):
        x = sp.feature_batch(config, config.batch_size, generator)
        opt.zero_grad()
        paper_loss(model, x).backward()
        opt.step()
        schedule.step()
    trained = sp.train_toy(config)
    # Not bit for bit: the two sum the gradient's terms in other orders (float32 rounding;
    # after 200 steps they differ by 2e-7).
    torch.testing.assert_close(trained.W, model.W, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(trained.b, model.b, rtol=1e-5, atol=1e-5)


def test_feature_batch_has_the_stated_distribution():
    x = sp.feature_batch(sp.ToyConfig(n_features=4, sparsity=0.8), 50_000, torch.Generator().manual_seed(0))
    assert x.shape == (50_000, 4) and x.min() >= 0 and x.max() < 1
    zero = (x == 0).double().mean(0)
    assert ((zero - 0.8).abs() < 4 * math.sqrt(0.8 * 0.2 / 50_000)).all(), zero  # 4 standard errors
    present = x[x > 0]
    assert abs(present.mean().item() - 0.5) < 0.01  # uniform in [0, 1] when present


def test_the_hidden_hook_point_sees_the_bottleneck():
    model = sp.ToyModel(sp.ToyConfig(n_features=4, n_hidden=2))
    with torch.no_grad():
        model.b.fill_(0.1)
    x = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    seen = {}
    with hooks(model, {"hidden": lambda h, name: seen.setdefault(name, h)}):
        model(x)
    torch.testing.assert_close(seen["hidden"], x @ model.W.detach().T)
    with hooks(model, {"hidden": lambda h, name: torch.zeros_like(h)}), torch.no_grad():
        assert torch.equal(model(x), torch.full((8, 4), 0.1))  # no hidden signal: only ReLU(b) is left
    assert model.hidden.name == "hidden"


# Hand-made oracles for the functions that read W.


def test_polygon_angles_of_regular_polygons_are_exact():
    for k in (3, 4, 5, 7):
        theta = torch.tensor([2 * math.pi * i / k + 0.3 for i in range(k)], dtype=torch.float64)
        order = torch.randperm(k, generator=torch.Generator().manual_seed(k))  # columns in any order
        lengths = torch.linspace(0.8, 1.6, k, dtype=torch.float64)  # and of any length
        W = torch.stack([theta.cos(), theta.sin()]) * lengths
        angles = sp.polygon_angles(W[:, order])
        torch.testing.assert_close(angles, torch.full((k,), 2 * math.pi / k, dtype=torch.float64))
    square = torch.tensor([[1.0, 0.0, -2.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
    torch.testing.assert_close(sp.polygon_angles(square), torch.full((4,), math.pi / 2, dtype=torch.float64))


def test_polygon_angles_use_the_chosen_features_and_sum_to_a_turn():
    W = torch.tensor([[1.0, 0.0, -1.0, 0.1], [0.0, 1.0, 0.0, 0.0]])  # feature 3 too short to count
    torch.testing.assert_close(sp.polygon_angles(W), torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64) * math.pi)
    torch.testing.assert_close(sp.polygon_angles(W, features=[0, 2]), torch.tensor([math.pi, math.pi]).double())
    mask = torch.tensor([True, True, False, False])
    torch.testing.assert_close(sp.polygon_angles(W, features=mask), torch.tensor([0.5, 1.5]).double() * math.pi)
    W = torch.randn(2, 9, generator=torch.Generator().manual_seed(0))
    assert sp.polygon_angles(W, features=range(9)).sum().item() == pytest.approx(2 * math.pi, abs=1e-12)
    with pytest.raises(ValueError, match="none is represented"):
        sp.polygon_angles(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"W of shape \(2, n_features\); got \(3, 5\)"):
        sp.polygon_angles(torch.ones(3, 5))


def test_interference_by_hand():
    assert sp.interference(torch.eye(3)[:, :3]).tolist() == [0.0, 0.0, 0.0]  # orthogonal: none
    assert sp.interference(torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])).tolist() == [0.0, 0.0, 0.0]
    # Columns (1, 0), (0, 2), (3, 4): Ŵ_0·W_2 = 3, Ŵ_1·W_2 = 4, Ŵ_2 = (0.6, 0.8): 0.6² + 1.6² = 2.92.
    W = torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 4.0]])
    torch.testing.assert_close(sp.interference(W), torch.tensor([9.0, 16.0, 2.92]))
    antipodal = torch.tensor([[1.0, -1.0]])  # two features sharing one direction, opposite signs
    assert sp.interference(antipodal).tolist() == [1.0, 1.0]
    torch.testing.assert_close(sp.feature_norms(W), torch.tensor([1.0, 2.0, 5.0]))
    assert sp.represented(W, threshold=1.5).tolist() == [False, True, True]


def test_top_features_stored_by_hand():
    W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.01]])
    assert sp.top_features_stored(W, torch.tensor([1.0, 0.9, 0.8]))
    assert not sp.top_features_stored(W, torch.tensor([1.0, 0.8, 0.9]))  # keeps 1, less important than 2
    assert sp.top_features_stored(W, torch.tensor([1.0, 1.0, 1.0]))  # ties are not held against it
    assert not sp.top_features_stored(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), torch.ones(3))  # 3 in 2-D
    with pytest.raises(ValueError, match=r"importances must have shape \(3,\)"):
        sp.top_features_stored(W, torch.ones(2))


def test_phase_outcome_by_hand():
    W = torch.tensor([[[1.0, 0.1]], [[0.1, 1.0]], [[0.8, -0.9]], [[0.7, 0.7]], [[0.2, 0.2]]])  # (5, 1, 2)
    assert sp.phase_outcome(W).tolist() == [sp.NOT_REPRESENTED, sp.DEDICATED, sp.SUPERPOSITION, sp.OTHER, 0]
    assert sp.phase_outcome(W, threshold=0.75).tolist() == [0, 1, 2, 0, 0]
    with pytest.raises(ValueError, match=r"shape \(\.\.\., m, 2\); got \(1, 3\)"):
        sp.phase_outcome(torch.ones(1, 3))


# The paper's phase diagram.


def test_phase_diagram_shows_the_papers_three_regions():
    d = sp.phase_diagram(sparsities=(0.0, 0.9, 0.99), importances=(0.2, 0.5, 2.0, 5.0))
    assert d.outcomes.shape == (3, 4) and d.W.shape == (3, 4, 1, 2) and d.b.shape == (3, 4, 2)
    assert d.outcomes.tolist() == [
        [0, 0, 1, 1],  # dense: the more important feature takes the dimension
        [2, 2, 2, 2],  # sparse: both share it
        [2, 2, 2, 2],
    ]
    W0, W1 = d.W[..., 0], d.W[..., 1]
    assert ((W0 * W1).sum(-1)[1:] < 0).all()  # in superposition with opposite signs


def test_a_phase_diagram_cell_is_the_model_train_toy_trains():
    d = sp.phase_diagram(sparsities=(0.0, 0.9), importances=(0.5, 2.0), steps=300, seed=5)
    for i, j in ((0, 1), (1, 0)):
        config = d.config(i, j)
        assert (config.n_features, config.n_hidden, config.sparsity, config.importance) == (
            2,
            1,
            float(d.sparsities[i]),
            float(d.importances[j]),
        )
        assert config.seed in range(5, 9) and config.seed == d.seeds[i, j]
        model = sp.train_toy(config)
        assert torch.equal(model.W, d.W[i, j]) and torch.equal(model.b, d.b[i, j])  # the same bits


def test_restarts_rescue_cells_a_same_sign_start_cannot_reach():
    """A run whose two initial weights share a sign stalls with one feature; the diagram keeps a better run."""
    same_sign = next(s for s in range(20) if (sp.ToyModel(sp.ToyConfig(2, 1, seed=s)).W > 0).all())
    grid = {"sparsities": (0.9, 0.99), "importances": (0.8, 1.25), "seed": same_sign}
    alone = sp.phase_diagram(**grid, restarts=1)
    assert (alone.outcomes != sp.SUPERPOSITION).all()
    best = sp.phase_diagram(**grid, restarts=4)
    assert (best.outcomes == sp.SUPERPOSITION).all()
    assert (best.losses < alone.losses).all()


# Mistakes name what was wrong and what is valid.


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("n_features", 0, r"ToyConfig.n_features must be an int >= 1, got 0"),
        ("n_features", 2.0, r"ToyConfig.n_features must be an int >= 1, got 2.0"),
        ("n_hidden", 6, r"ToyConfig.n_hidden must be an int in \[1, n_features\] = \[1, 5\], got 6"),
        ("n_hidden", 0, r"ToyConfig.n_hidden must be an int in \[1, n_features\]"),
        ("sparsity", 1.0, r"ToyConfig.sparsity must be a number in \[0, 1\), got 1.0"),
        ("sparsity", -0.1, r"ToyConfig.sparsity must be a number in \[0, 1\)"),
        ("sparsity", True, r"ToyConfig.sparsity must be a number in \[0, 1\), got True"),
        ("importance", 0.0, r"ToyConfig.importance must be a finite number > 0"),
        ("importance", math.inf, r"ToyConfig.importance must be a finite number > 0"),
        ("steps", -1, r"ToyConfig.steps must be an int >= 0, got -1"),
        ("batch_size", 0, r"ToyConfig.batch_size must be an int >= 1, got 0"),
        ("lr", math.nan, r"ToyConfig.lr must be a finite number > 0, got nan"),
        ("seed", -1, r"ToyConfig.seed must be an int in \[0, 2\*\*63\), got -1"),
    ],
)
def test_bad_configs_name_the_field_and_the_valid_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        sp.ToyConfig(**{field: value})


def test_other_mistakes_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"differs from configs\[0\] in \['n_hidden'\]"):
        sp.train_toys([sp.ToyConfig(), sp.ToyConfig(n_hidden=3)])
    with pytest.raises(ValueError, match="at least one ToyConfig"):
        sp.train_toys([])
    with pytest.raises(ValueError, match=r"expects features of shape \(B, 5\), got \(4, 3\)"):
        sp.ToyModel()(torch.rand(4, 3))
    with pytest.raises(ValueError, match=r"W must be 2-D \(n_hidden, n_features\), got shape \(5,\)"):
        sp.feature_norms(torch.ones(5))
    with pytest.raises(ValueError, match="restarts must be an int >= 1"):
        sp.phase_diagram([0.9], [1.0], restarts=0)
    with pytest.raises(ValueError, match=r"ToyConfig.sparsity must be a number in \[0, 1\), got 1.5"):
        sp.phase_diagram([1.5], [1.0])
    with pytest.raises(ValueError, match=r"n must be an int >= 1"):
        sp.feature_batch(sp.ToyConfig(), 0, torch.Generator())


# Figures: what test_plots.py does not check for every figure.


def test_toy_columns_refuse_a_hidden_space_that_is_not_a_plane():
    with pytest.raises(ValueError, match=r"W must be a toy model's W of shape \(2, n_features\).*got shape \(3, 5\)"):
        plots.toy_columns(torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"weights\['S = 0'\] must be"):
        plots.toy_columns_grid({"S = 0": torch.ones(1, 2)})
    plt.close("all")


def test_phase_figure_names_the_other_outcome_only_when_present():
    d = sp.PhaseDiagram(
        sparsities=torch.tensor([0.0, 0.9]),
        importances=torch.tensor([0.5, 2.0]),
        outcomes=torch.tensor([[0, 1], [2, 2]]),
        W=torch.zeros(2, 2, 1, 2),
        b=torch.zeros(2, 2, 2),
        seeds=torch.zeros(2, 2, dtype=torch.long),
        losses=torch.zeros(2, 2),
        steps=0,
    )
    labels = [t.get_text() for t in plots.phase_diagram(d).axes[0].get_legend().get_texts()]
    assert labels == ["not represented", "dedicated dimension", "superposition"]
    other = replace(d, outcomes=torch.tensor([[0, -1], [2, 2]]))
    labels = [t.get_text() for t in plots.phase_diagram(other).axes[0].get_legend().get_texts()]
    assert labels[-1] == sp.OUTCOMES[sp.OTHER]
    with pytest.raises(ValueError, match=r"holds \[7\]; valid outcomes are \[-1, 0, 1, 2\]"):
        plots.phase_diagram(replace(d, outcomes=torch.tensor([[0, 7], [2, 2]])))
    plt.close("all")
