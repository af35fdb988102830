"""Linear probes: what a layer makes linearly readable, and how much a probe could memorise.

A linear probe (Alain and Bengio, 2016) is a multinomial logistic regression trained on a
layer's frozen activations (N, D) to predict a label. High held-out accuracy says the
label can be read off the layer by a linear map; it says nothing about whether the
network *uses* it (that is what ablations test).

A probe can also succeed by memorising. Hewitt and Liang (2019) pair every probing task
with a *control task* whose labels carry no information about the input, so that only
memorisation can fit it, and report the *selectivity*: task accuracy minus control
accuracy. :func:`control_labels` builds the control task for images.

The fit is deterministic and needs no seed: the loss is convex, the probe starts at zero
and every step sees the whole training set (full-batch L-BFGS), so there is nothing to
draw at random. Features are standardised per column with the *training* mean and std,
kept in the :class:`Probe` and applied again to any features it reads.

>>> g = torch.Generator().manual_seed(0)
>>> labels = torch.arange(300) % 3
>>> features = torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(300, 3, generator=g)
>>> probe = train_probe(features[:200], labels[:200], n_classes=3)
>>> probe.weight.shape, probe.bias.shape
(torch.Size([3, 3]), torch.Size([3]))
>>> probe_accuracy(probe, features[200:], labels[200:])
1.0
>>> control = control_labels(labels, seed=0, n_classes=3)
>>> round(probe_accuracy(train_probe(features[:200], control[:200], n_classes=3), features[200:], control[200:]), 1)
0.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnistlab.checks import N_CLASSES, check_activations, check_labels, check_positive_int


@dataclass(frozen=True)
class ProbeConfig:
    """How a probe is fitted.

    The probe minimises the mean cross-entropy over the N training inputs plus
    ``l2 / 2 · ||W||²`` (the bias is not penalised), on standardised features. This is
    scikit-learn's ``LogisticRegression(C=1 / (l2 · N))``, whose objective is
    ``C · Σ cross-entropy + ½ ||W||²``: the same minimiser.

    Attributes:
        l2: weight decay on the weights (not the bias); 0 fits an unpenalised probe,
            whose weights grow without bound on separable data until ``steps`` runs out.
        steps: the most L-BFGS iterations (each one full-batch step with a strong-Wolfe
            line search, which may evaluate the loss a few times); the fit stops earlier
            when the gradient vanishes or the loss stops changing. L-BFGS rather than Adam: on a convex loss of a few
            thousand parameters it reaches the optimum in tens to hundreds of steps, where
            Adam needs thousands and a learning rate to tune.
    """

    l2: float = 1e-3
    steps: int = 200

    def __post_init__(self):
        if isinstance(self.l2, bool) or not isinstance(self.l2, (int, float)) or not math.isfinite(self.l2):
            raise ValueError(f"ProbeConfig.l2 must be a finite number >= 0, got {self.l2!r}")
        if self.l2 < 0:
            raise ValueError(f"ProbeConfig.l2 must be >= 0 (a weight decay), got {self.l2!r}")
        check_positive_int(self.steps, "ProbeConfig.steps")


@dataclass(frozen=True)
class Probe:
    """A fitted linear probe: ``logits = ((x - mean) / std) @ weight.T + bias``.

    weight: (C, D) and bias: (C,), on standardised features.
    mean, std: (D,) the training features' column means and standard deviations
        (std 1 for a constant column, which the probe then reads as 0).
    iterations: L-BFGS iterations the fit took (``config.steps`` if it did not converge).
    loss: the final training objective (mean cross-entropy plus the penalty).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    iterations: int
    loss: float

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def n_features(self) -> int:
        return self.weight.shape[1]


def _standardisation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and population standard deviations (N, D) → (D,), (D,); std 1 where a column is constant."""
    mean = x.mean(0)
    std = x.std(0, correction=0)
    # Exactly constant columns (MNIST's border pixels, a dead unit): the rounding of the
    # mean could leave a std of 1e-17 that would blow noise up to the size of a signal.
    constant = x.amax(0) == x.amin(0)
    return mean, torch.where(constant, torch.ones_like(std), std)


def train_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    config: ProbeConfig = ProbeConfig(),
    n_classes: int = N_CLASSES,
) -> Probe:
    """Fit a multinomial logistic-regression probe to ``features`` (N, D) and ``labels`` (N,).

    Deterministic: the same inputs give the same probe on the same machine, with the
    same thread count. The fit runs on the features'
    device, in float32 (float64 for float64 features); the probe is returned in float32.

    Args:
        features: a layer's activations (or pixels), one row per input.
        labels: integer classes 0 … n_classes - 1, one per row.
        config: the penalty and the iteration budget (:class:`ProbeConfig`).
        n_classes: number of classes C; the probe has one logit per class.

    Returns:
        a :class:`Probe`; score it with :func:`probe_accuracy` on *held-out* features.

    >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> probe_predict(train_probe(x, torch.tensor([0, 0, 1, 1]), n_classes=2), x).tolist()
    [0, 0, 1, 1]
    """
    if not isinstance(config, ProbeConfig):
        raise TypeError(f"config must be a ProbeConfig, got {type(config).__name__}")
    check_positive_int(n_classes, "n_classes")
    features = check_activations(features, "probe features")
    labels = check_labels(labels, len(features), "probe labels", n_classes).to(features.device)

    # float32 halves the memory traffic of the two (N, D) products per evaluation, which
    # is the fit's whole cost; the final loss lands within 1e-6 of a float64 fit's.
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    mean, std = _standardisation(features.double())
    mean, std = mean.to(dtype), std.to(dtype)
    x = ((features.to(dtype) - mean) / std).contiguous()  # (N, D)
    d = x.shape[1]
    # Zero start: the loss is convex, so the start changes the path, not the optimum;
    # zero also keeps the biases summing to zero (softmax's free direction).
    weight = torch.zeros(n_classes, d, dtype=dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=config.steps,
        max_eval=2 * config.steps,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(torch.addmm(bias, x, weight.T), labels) + 0.5 * config.l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(objective)  # one call runs up to config.steps iterations
        final = objective().item()
    return Probe(
        weight=weight.detach().float(),
        bias=bias.detach().float(),
        mean=mean.float(),
        std=std.float(),
        iterations=int(opt.state[weight]["n_iter"]),
        loss=final,
    )


def probe_logits(probe: Probe, features: torch.Tensor) -> torch.Tensor:
    """The probe's logits (N, C) for ``features`` (N, D), standardised with the training statistics."""
    if not isinstance(probe, Probe):
        raise TypeError(f"expected a Probe from train_probe, got {type(probe).__name__}")
    features = check_activations(features, "probe features")
    if features.shape[1] != probe.n_features:
        raise ValueError(
            f"this probe was trained on {probe.n_features} features per input, got features of shape "
            f"{tuple(features.shape)} (another layer?)"
        )
    p = [t.to(features.device) for t in (probe.weight, probe.bias, probe.mean, probe.std)]
    x = (features.float() - p[2]) / p[3]  # (N, D)
    return torch.addmm(p[1], x, p[0].T)  # (N, C)


def probe_predict(probe: Probe, features: torch.Tensor) -> torch.Tensor:
    """The class the probe predicts for each row of ``features`` (N, D); int64 (N,)."""
    return probe_logits(probe, features).argmax(1)


def probe_accuracy(probe: Probe, features: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of rows of ``features`` (N, D) whose predicted class equals ``labels`` (N,).

    For an interval, pass :func:`probe_predict`'s output to :func:`mnistlab.stats.accuracy`.
    """
    predicted = probe_predict(probe, features)
    labels = check_labels(labels, len(predicted), "probe labels", probe.n_classes).to(predicted.device)
    return (predicted == labels).double().mean().item()


def control_labels(labels: torch.Tensor, seed: int = 0, n_classes: int = N_CLASSES) -> torch.Tensor:
    """Hewitt and Liang's control task for images: a random class for every input; int64 (N,).

    Their control task for a word-level property gives each word *type* a random label,
    drawn once and shared by every occurrence of that type, so a probe can fit it only by
    memorising which type gets which label. An image has no type: each image is its own
    type, so each gets its own label, uniform over the ``n_classes`` classes, independent
    of its true label (only ``len(labels)`` is used), and fixed by ``seed``.

    One consequence differs from words: no test image occurs in the training set, so on
    held-out images a control probe scores chance (1 / C) by construction, and held-out
    selectivity is task accuracy minus chance. What the control task measures for images
    is memorisation: a probe's *training* accuracy on control labels, against chance,
    says how many arbitrary labels it can fit with these features (many with 784 pixels
    and a few thousand images, few with 32 units and 54,000 images). Label train and test
    rows in one call and split afterwards, or call once per split with different seeds.

    >>> control_labels(torch.tensor([3, 3, 3, 3]), seed=1, n_classes=10).shape
    torch.Size([4])
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor (N,), got {getattr(labels, 'shape', type(labels).__name__)}")
    check_labels(labels, len(labels), "labels", n_classes)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_classes, (len(labels),), generator=g).to(labels.device)


def selectivity(task_acc: float, control_acc: float) -> float:
    """Hewitt and Liang's selectivity: task accuracy minus control accuracy, both on one split.

    High selectivity means the probe reads the property from the features rather than
    memorising; see :func:`control_labels` for what the control accuracy means on images.

    >>> round(selectivity(0.95, 0.10), 2)
    0.85
    """
    for name, acc in (("task_acc", task_acc), ("control_acc", control_acc)):
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {acc!r}")
    return float(task_acc) - float(control_acc)
