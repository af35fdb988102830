"""Figures. Each function takes results (tensors, histories), never runs a model, and
returns a matplotlib ``Figure``. Every function takes ``ax=None``: pass the axes to draw
into (one per panel, for a figure of several) to place it in a figure of your own.
Colours come from :mod:`mnistlab.style`, one meaning each: a digit's colour is never a
layer's, a rule's, a split's or a highlight.

One module per part of the book: :mod:`~mnistlab.plots.training` (chapters 1–2),
:mod:`~mnistlab.plots.dynamics` (chapter 3), :mod:`~mnistlab.plots.selectivity`
(chapter 4), :mod:`~mnistlab.plots.interventions` (chapter 5),
:mod:`~mnistlab.plots.variants` (chapters 6–7), :mod:`~mnistlab.plots.superposition` and
:mod:`~mnistlab.plots.dictionary` (chapter 8), :mod:`~mnistlab.plots.attribution`
(chapter 9) and :mod:`~mnistlab.plots.similarity` (chapter 10); every figure is also
importable from here, as ``plots.confusion_matrix``.
"""

from mnistlab.plots.attribution import attribution_grid, completeness, faithfulness, sanity_curves, visualisation_grid
from mnistlab.plots.dictionary import sae_sweep
from mnistlab.plots.dynamics import (
    activation_ridges,
    channel_peaks,
    epoch_unit_heatmaps,
    feature_maps,
    firing_over_training,
    gradient_norms,
    preference_stability,
    weight_images,
)
from mnistlab.plots.interventions import (
    ablation_heatmaps,
    confusion_shift,
    pair_similarity,
    patching_heatmaps,
    pruning_curves,
    pruning_panels,
    scaling_sweeps,
    selectivity_vs_importance,
)
from mnistlab.plots.selectivity import (
    auc_heatmaps,
    class_mean_heatmaps,
    embeddings,
    neuron_card,
    selectivity_over_training,
    selectivity_summary,
    subspace_silhouettes,
)
from mnistlab.plots.similarity import probe_accuracies, similarity_matrices
from mnistlab.plots.superposition import phase_diagram, toy_columns, toy_columns_grid
from mnistlab.plots.training import (
    computation_graph,
    confusion_matrix,
    decision_boundary,
    digit_grid,
    loss_curve,
    per_class_accuracy,
    training_curves,
)
from mnistlab.plots.variants import (
    accuracy_by_variant,
    robustness,
    si_distributions,
    variant_measures,
    variant_selectivity,
)

__all__ = [
    "digit_grid",
    "training_curves",
    "per_class_accuracy",
    "confusion_matrix",
    "loss_curve",
    "decision_boundary",
    "computation_graph",
    "activation_ridges",
    "firing_over_training",
    "epoch_unit_heatmaps",
    "preference_stability",
    "gradient_norms",
    "weight_images",
    "feature_maps",
    "channel_peaks",
    "class_mean_heatmaps",
    "auc_heatmaps",
    "selectivity_summary",
    "selectivity_over_training",
    "embeddings",
    "subspace_silhouettes",
    "neuron_card",
    "ablation_heatmaps",
    "scaling_sweeps",
    "confusion_shift",
    "selectivity_vs_importance",
    "patching_heatmaps",
    "pair_similarity",
    "pruning_curves",
    "pruning_panels",
    "accuracy_by_variant",
    "variant_measures",
    "si_distributions",
    "variant_selectivity",
    "robustness",
    "toy_columns",
    "toy_columns_grid",
    "phase_diagram",
    "sae_sweep",
    "attribution_grid",
    "completeness",
    "sanity_curves",
    "faithfulness",
    "visualisation_grid",
    "probe_accuracies",
    "similarity_matrices",
]
