"""Every figure function: draws from results alone, into a new figure or the caller's axes.

Each function of :mod:`mnistlab.plots` is called on small made-up results, once on its
own (one new figure) and once into axes the caller made (no new figure, the caller's
figure returned, something drawn in the given axes). Wrong axes are a clear error, and
no colour of the book's palettes means two things.
"""

import inspect
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mnistlab import plots, style  # noqa: E402
from mnistlab.scalar import Value  # noqa: E402
from mnistlab.stats import Estimate  # noqa: E402

g = torch.Generator().manual_seed(0)
LAYERS = ("fc1_post", "fc2_post")
SWEEP_MEASURES = ("L0", "explained variance", "loss recovered (mean)", "loss recovered (zero)", "dead", "dense")


def rand(*shape):
    return torch.rand(*shape, generator=g)


def graph():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    out = (a * b + a).tanh()
    out.backward()
    return out


def profile():
    return SimpleNamespace(unit=3, class_means=rand(10), selectivity=0.4, firing_rate=0.5, auc=rand(10),
                           top_inputs=torch.tensor([0, 4, 7, 9]), top_values=rand(4))


def subspaces():
    scores = SimpleNamespace(ks=torch.tensor([2, 4]), chosen=rand(2), random=rand(2, 6))
    return {layer: {"highest SI": scores, "covering": scores} for layer in LAYERS}


def phase():
    return SimpleNamespace(sparsities=torch.tensor([0.0, 0.9]), importances=torch.tensor([0.5, 1.0, 2.0]),
                           outcomes=torch.tensor([[0, -1, 1], [2, 2, 2]]))


# name: (arguments, keyword arguments, panels (rows, cols) or None for one panel / a card)
CASES = {
    "digit_grid": ((rand(12, 784), torch.arange(12) % 10), {"ncols": 6}, (2, 6)),
    "training_curves": (({k: [1.0, 0.5, 0.3] for k in ("train_loss", "test_loss", "train_acc", "test_acc")},),
                        {}, (1, 2)),
    "per_class_accuracy": ((rand(10),), {"low": torch.zeros(10), "high": torch.ones(10)}, None),
    "confusion_matrix": ((torch.randint(0, 9, (10, 10), generator=g),), {}, None),
    "loss_curve": (([3.0, 2.0, 1.5],), {}, None),
    "decision_boundary": ((*torch.meshgrid(torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 5), indexing="xy"),
                           rand(5, 5) - 0.5, rand(6, 2), torch.tensor([1, -1, 1, -1, 1, -1])), {}, None),
    "computation_graph": ((graph(),), {}, None),
    "activation_ridges": (({layer: torch.relu(rand(3, 50, 4) - 0.3).half() for layer in LAYERS}, [0, 2]), {},
                          (1, 2)),
    "firing_over_training": (({layer: rand(3, 4) for layer in LAYERS}, {layer: torch.tensor([0, 1, 1])
                                                                         for layer in LAYERS}), {}, (1, 2)),
    "epoch_unit_heatmaps": (({layer: rand(3, 4) for layer in LAYERS}, {layer: rand(3, 4) for layer in LAYERS}), {},
                            (2, 2)),
    "preference_stability": (({layer: rand(2, 4) > 0.5 for layer in LAYERS},
                              {layer: 2 * rand(2, 4) - 1 for layer in LAYERS}), {}, (1, 2)),
    "gradient_norms": (({"fc1.weight": [1.0, 0.5], "fc2.weight": [0.3, 0.2]},), {}, None),
    "weight_images": ((rand(6, 784) - 0.5,), {"ncols": 3}, (2, 3)),
    "feature_maps": ((rand(2, 784), torch.tensor([3, 7]), {"conv1_post": rand(2, 3, 14, 14)}), {}, (2, 4)),
    "channel_peaks": ((rand(2, 3, 784), torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.randint(0, 7, (2, 3, 2),
                                                                                             generator=g), 4,
                       ["channel 0", "channel 1"]), {}, (2, 3)),
    "class_mean_heatmaps": (({layer: rand(4, 10) for layer in LAYERS},), {}, (1, 2)),
    "auc_heatmaps": (({layer: rand(4, 10) for layer in LAYERS},), {}, (1, 2)),
    "selectivity_summary": (({layer: rand(4) for layer in LAYERS},
                             {layer: torch.tensor([1, 2, 10, 3]) for layer in LAYERS}), {}, (1, 2)),
    "selectivity_over_training": (({layer: rand(3, 4) for layer in LAYERS},), {}, None),
    "embeddings": (({"PCA": rand(20, 2), "t-SNE": rand(20, 2), "UMAP": rand(20, 2)}, torch.arange(20) % 10),
                   {"scores": {"PCA": 0.1}, "ncols": 2}, (2, 2)),
    "subspace_silhouettes": ((subspaces(),), {}, (1, 2)),
    "neuron_card": (("fc1_post", profile(), rand(10, 784), torch.arange(10)), {"weights": rand(784)}, None),
    "ablation_heatmaps": (({f"{layer} {m}": rand(4, 10) - 0.5 for layer in LAYERS for m in ("zero", "mean")},), {},
                          (2, 2)),
    "scaling_sweeps": (({"unit 1": rand(3, 10), "unit 2": rand(3, 10)}, [0.0, 1.0, 2.0]), {}, (1, 2)),
    "confusion_shift": ((torch.randint(-3, 3, (10, 10), generator=g), "unit 3 ablated"), {}, None),
    "selectivity_vs_importance": (({layer: (rand(4), rand(4)) for layer in LAYERS}, {layer: 0.3 for layer in LAYERS}),
                                  {}, None),
    "patching_heatmaps": (({layer: 2 * rand(2, 4) - 1 for layer in LAYERS}, ["4 → 9", "3 → 8"]), {}, (1, 2)),
    "pair_similarity": (({layer: rand(20) for layer in LAYERS}, {layer: rand(20) for layer in LAYERS}), {}, (1, 2)),
    "pruning_curves": (({"by SI": rand(5), "by effect": rand(5)},), {"random": rand(8, 5)}, None),
    "pruning_panels": (({layer: {"by SI": rand(5)} for layer in LAYERS}, {layer: rand(8, 5) for layer in LAYERS}), {},
                       (1, 2)),
    "accuracy_by_variant": (({"baseline": rand(3, 4), "dropout": rand(3, 4)},), {"target": 0.9}, None),
    "variant_measures": (({m: {"baseline": [1.0, 2.0], "dropout": [2.0, 3.0]} for m in "abc"},), {"ncols": 2},
                         (2, 2)),
    "si_distributions": (({"baseline": rand(8), "dropout": rand(8)},), {}, None),
    "variant_selectivity": (({layer: {"baseline": rand(8), "dropout": rand(8)} for layer in LAYERS},
                             {"baseline": [1, 2], "dropout": [0, 1]}), {}, (1, 3)),
    "robustness": (({"fc1_post": ([0, 2, 4], rand(3, 5), 32), "fc2_post": ([0, 2, 4], rand(3, 5), 16)},), {}, None),
    "toy_columns": ((2 * rand(2, 5) - 1,), {"title": "S = 0.9"}, None),
    "toy_columns_grid": (({"S = 0": 2 * rand(2, 5) - 1, "S = 0.5": 2 * rand(2, 5) - 1, "S = 0.9": 2 * rand(2, 5) - 1},),
                         {"ncols": 2}, (2, 2)),
    "phase_diagram": ((phase(),), {}, None),
    "attribution_grid": (
        (rand(2, 784), {"gradient": 2 * rand(2, 784) - 1, "occlusion": rand(2, 784)}, ["7 → 7", "3 → 5"]), {}, (2, 3)
    ),
    "completeness": (((4, 16, 64), rand(3, 20) / 10), {"chosen": 64}, None),
    "sanity_curves": (({m: {"gradient": rand(3, 8), "SmoothGrad": rand(3, 8)} for m in ("Spearman", "SSIM")},
                       ["out", "out, fc2", "shuffled labels"]), {}, (1, 2)),
    "faithfulness": (
        (torch.linspace(0, 1, 5), {k: {"IG": rand(4, 5), "random": rand(4, 5)} for k in ("deletion", "insertion")}),
        {},
        (1, 2),
    ),
    "visualisation_grid": (({f"unit {u}": 3 * rand(784) - 1 for u in range(5)},), {"ncols": 3}, (2, 3)),
    "probe_accuracies": (
        ({k: Estimate(0.9, 0.88, 0.92, 1000, "images", "Wilson") for k in ("pixels", "fc1_post")},
         {"pixels": 0.5, "fc1_post": 0.2}),
        {},
        None,
    ),
    "similarity_matrices": (({"a": rand(3, 3), "b": rand(3, 2)}, {"a": "xyz", "b": "xyz"}, {"a": "xyz", "b": "uv"}), {},
                            (1, 2)),
    "sae_sweep": (({l1: {m: float(v) for m, v in zip(SWEEP_MEASURES, rand(6))} for l1 in (0.1, 0.3, 1.0)},),
                  {"chosen": 0.3}, (1, 4)),
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_every_figure_function_is_tested_and_takes_ax():
    public = {name for name in plots.__all__ if inspect.isfunction(getattr(plots, name))}
    assert public == set(CASES), f"untested: {public - set(CASES)}; not in plots: {set(CASES) - public}"
    assert [n for n in public if inspect.signature(getattr(plots, n)).parameters.get("ax") is None] == []
    assert all(inspect.signature(getattr(plots, n)).parameters["ax"].default is None for n in public)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_figure_of_its_own(name):
    args, kwargs, _ = CASES[name]
    before = set(plt.get_fignums())
    fig = getattr(plots, name)(*args, **kwargs)
    assert isinstance(fig, Figure)
    assert len(set(plt.get_fignums()) - before) == 1
    assert any(ax.has_data() or ax.images or ax.patches for ax in fig.axes), "nothing was drawn"


@pytest.mark.parametrize("name", sorted(CASES))
def test_into_the_callers_axes(name):
    args, kwargs, shape = CASES[name]
    fig, axes = plt.subplots(*(shape or (1, 1)), squeeze=shape is None)
    before = set(plt.get_fignums())
    out = getattr(plots, name)(*args, **kwargs, ax=axes)
    assert out is fig and set(plt.get_fignums()) == before
    drawn = [ax for ax in fig.axes if ax.has_data() or ax.images or ax.patches]
    assert drawn, "nothing was drawn into the caller's figure"


@pytest.mark.parametrize("name", sorted(n for n, case in CASES.items() if case[2] is not None))
def test_too_few_axes_say_how_many_the_figure_draws(name):
    args, kwargs, (rows, cols) = CASES[name]
    _, axes = plt.subplots(1, 1)
    with pytest.raises(ValueError, match=f"draws {rows} × {cols} panels: pass ax as {rows * cols} matplotlib Axes"):
        getattr(plots, name)(*args, **kwargs, ax=[axes])


def test_a_one_panel_figure_refuses_several_axes():
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="one matplotlib Axes"):
        plots.loss_curve([1.0, 0.5], ax=axes)


def test_axes_of_two_figures_are_refused():
    (_, a), (_, b) = plt.subplots(), plt.subplots()
    with pytest.raises(ValueError, match="different figures"):
        plots.training_curves(CASES["training_curves"][0][0], ax=[a, b])


def test_a_neuron_card_takes_the_place_of_a_subplot():
    fig, axes = plt.subplots(1, 2)
    args, kwargs, _ = CASES["neuron_card"]
    plots.neuron_card(*args, **kwargs, ax=axes[1])
    assert axes[1] not in fig.axes and axes[0] in fig.axes and len(fig.axes) > 2


def test_no_colour_means_two_things():
    named = {
        "digits": style.DIGIT_COLORS,
        "series": style.SERIES_COLORS,
        "layers": style.LAYER_COLORS,
        "splits": (style.TRAIN_COLOR, style.TEST_COLOR),
        "highlight": (style.HIGHLIGHT,),
        "random": (style.RANDOM_BAND, style.RANDOM_LINE),
    }
    seen: dict[str, str] = {}
    for meaning, colors in named.items():
        assert len(set(colors)) == len(colors), f"{meaning} repeats a colour"
        for c in colors:
            c = c.lower()
            assert c not in seen, f"{c} means both {seen[c]} and {meaning}"
            seen[c] = meaning
    assert np.array(style.DIGIT_COLORS).shape == (10,)


def test_sae_sweep_names_a_missing_measure():
    with pytest.raises(KeyError, match="lacks.*'dense'"):
        plots.sae_sweep({0.1: {m: 0.5 for m in SWEEP_MEASURES[:-1]}})


def test_attribution_grid_needs_a_title_and_a_map_per_image():
    with pytest.raises(ValueError, match="one title and one map per image"):
        plots.attribution_grid(rand(2, 784), {"gradient": rand(3, 784)}, ["a", "b"])


def test_sanity_curves_draws_a_reference_line_and_refuses_one_for_a_measure_not_drawn():
    from mnistlab import plots

    sims = {m: {"gradient": torch.rand(3, 8)} for m in ("ink", "signed", "all pixels", "SSIM")}
    fig = plots.sanity_curves(sims, ["a", "b", "c"], references={"all pixels": 0.97})
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert len(drawn) == 4 and len(fig.axes) == 4  # four measures: two rows of two
    dashed = [line for line in fig.axes[2].get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == [0.97]
    with pytest.raises(ValueError, match="not drawn"):
        plots.sanity_curves(sims, ["a", "b", "c"], references={"SSIM ": 0.5})
