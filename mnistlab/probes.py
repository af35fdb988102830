"""Linear probes: what a layer makes linearly readable, and how much a probe could memorise.

A linear probe (Alain and Bengio, 2016) is a multinomial logistic regression trained on a
layer's frozen activations (N, D) to predict a label. High held-out accuracy says the
label can be read off the layer by a linear map; it says nothing about whether the
network *uses* it (that is what ablations test).

A probe can also succeed by memorising. Hewitt and Liang (2019) pair every probing task
with a *control task* whose labels carry no information about the input, so that only
memorisation can fit it, and report the *selectivity*: task accuracy minus control
accuracy. :func:`control_labels` builds the control task for images, with a random label
for each group of near-alike images (:func:`image_types`), so that what a probe memorised
about a group carries over to held-out images of that group, as a word type's label does.

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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mnistlab.checks import N_CLASSES, as_units, check_labels, check_positive_int, is_int, is_number


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
        if not is_number(self.l2):
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
    features = as_units(features, "probe features", maps=False)
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
    features = as_units(features, "probe features", maps=False)
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


def control_labels(
    labels: torch.Tensor,
    seed: int = 0,
    n_classes: int = N_CLASSES,
    types: torch.Tensor | None = None,
    n_types: int | None = None,
) -> torch.Tensor:
    """Hewitt and Liang's control task: a random class for every input *type*; int64 (N,).

    Their control task for a word-level property gives each word *type* a random label,
    drawn once and shared by every occurrence of that type, so a probe can fit it only by
    memorising which type gets which label, and can carry what it memorised to held-out
    sentences, where the same types occur again. Images have no types of their own; pass
    ``types`` (N,), a group index for each image, say the cluster of near-alike images
    it falls in (:func:`image_types`), and every image of a group gets its group's label.
    The labels are uniform over the ``n_classes`` classes and independent of the true
    labels (only ``len(labels)`` is used), one per type drawn from ``seed``: label the
    training and the test images with the same ``seed`` and ``n_types`` and they share
    the table. On held-out images a control probe then scores above chance exactly as far
    as the features let it place a new image with the training images of its group.

    Without ``types`` each image is its own type and gets its own label. No test image
    occurs in the training set, so on held-out images such a control probe scores chance
    (1 / C) by construction: it measures only memorisation (a probe's *training* accuracy
    on the control labels), and held-out selectivity is task accuracy minus chance.

    >>> control_labels(torch.tensor([3, 3, 3, 3]), seed=1, n_classes=10).shape
    torch.Size([4])
    >>> table = control_labels(torch.zeros(4, dtype=torch.long), types=torch.tensor([0, 1, 2, 3]), n_types=4)
    >>> torch.equal(control_labels(torch.zeros(3, dtype=torch.long), types=torch.tensor([2, 2, 0]), n_types=4),
    ...             table[[2, 2, 0]])
    True
    """
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor (N,), got {getattr(labels, 'shape', type(labels).__name__)}")
    check_labels(labels, len(labels), "labels", n_classes)
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    g = torch.Generator().manual_seed(seed)
    if types is None:
        if n_types is not None:
            raise ValueError("n_types is the number of types: pass it with types, or neither")
        return torch.randint(0, n_classes, (len(labels),), generator=g).to(labels.device)
    check_positive_int(n_types, "n_types")
    check_labels(types, len(labels), "types", n_types)
    table = torch.randint(0, n_classes, (n_types,), generator=g)
    return table[types.cpu()].to(labels.device)


def image_types(
    train: torch.Tensor, test: torch.Tensor, n_types: int = 100, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Types for images: groups of near-alike images, the word types of :func:`control_labels`; int64 (N,) twice.

    ``train``, ``test``: (N, D) the images in the space where "alike" is measured (their
    pixels, or another network's layer). The training images are clustered by k-means
    there into ``n_types`` groups (scikit-learn's ``KMeans``, one initialisation from
    ``seed``); each test image joins the group whose centre is nearest. The groups never
    see a label, so one set of types serves every layer's probe. A space that a probe
    reads should not be the one the groups are found in: k-means cells are linear regions
    of their space, which a linear probe there reads off easily.

    >>> g = torch.Generator().manual_seed(0)
    >>> centres = torch.rand(3, 784, generator=g)
    >>> train = centres.repeat(10, 1) + 0.01 * torch.rand(30, 784, generator=g)
    >>> a, b = image_types(train, centres, n_types=3)
    >>> torch.equal(b, a[:3])  # each centre joins the group of the training images around it
    True
    """
    from sklearn.cluster import KMeans

    train, test = as_units(train, "train images", maps=False), as_units(test, "test images", maps=False)
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test images must have one width, got {train.shape[1]} and {test.shape[1]}")
    check_positive_int(n_types, "n_types")
    if n_types > len(train):
        raise ValueError(f"n_types ({n_types}) cannot exceed the number of training images ({len(train)})")
    km = KMeans(n_types, n_init=1, random_state=seed).fit(train.detach().cpu().double().numpy())
    test_types = km.predict(test.detach().cpu().double().numpy())
    return torch.as_tensor(km.labels_, dtype=torch.long), torch.as_tensor(test_types, dtype=torch.long)


def control_draws(
    train: torch.Tensor, test: torch.Tensor, n_types: int = 100, draws: int = 10, n_classes: int = N_CLASSES
) -> tuple[torch.Tensor, torch.Tensor]:
    """``draws`` control tasks, each on its own groups of look-alike images: int64 (draws, N_train), (draws, N_test).

    One control task is one draw of chance: k-means from one start, one random class per
    group. A single draw can be kind or unkind to a layer (groups that its geometry
    happens to separate well), so a control accuracy is measured over several, and its
    interval counts the draws as well as the images (:func:`mnistlab.stats.crossed_mean`).
    Draw k groups the images with :func:`image_types` from start ``k`` and labels them
    with :func:`control_labels` from seed ``k``; the training and the test images of one
    draw share its table.

    >>> g = torch.Generator().manual_seed(0)
    >>> centres = torch.rand(4, 8, generator=g)
    >>> train, test = control_draws(centres.repeat(5, 1), centres, n_types=4, draws=3)
    >>> train.shape, test.shape
    (torch.Size([3, 20]), torch.Size([3, 4]))
    >>> torch.equal(test, train[:, :4])  # each centre gets the label of its group's training images
    True
    """
    check_positive_int(draws, "draws")
    # control_labels reads only how many labels there are, never their values
    n_train, n_test = torch.zeros(len(train), dtype=torch.long), torch.zeros(len(test), dtype=torch.long)
    train_rows, test_rows = [], []
    for k in range(draws):
        train_types, test_types = image_types(train, test, n_types=n_types, seed=k)
        train_rows.append(control_labels(n_train, seed=k, n_classes=n_classes, types=train_types, n_types=n_types))
        test_rows.append(control_labels(n_test, seed=k, n_classes=n_classes, types=test_types, n_types=n_types))
    return torch.stack(train_rows), torch.stack(test_rows)


def digit_guess(
    control: torch.Tensor, labels: torch.Tensor, new_labels: torch.Tensor, n_classes: int = N_CLASSES
) -> torch.Tensor:
    """What knowing only the true class guesses of a control task: (N_new,) int64.

    The groups of a control task mostly hold one digit each, so the digit alone already
    predicts part of the control labels: for each class, the control label most common
    among the training images of that class (``control``, ``labels``: (N,)), given to each
    new image by its true class (``new_labels``). A control probe whose held-out guesses
    beat this has memorised something about the groups beyond the digit.

    >>> digit_guess(torch.tensor([4, 4, 7, 1, 1, 1]), torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([2, 0]),
    ...             n_classes=3)
    tensor([1, 4])
    """
    labels = check_labels(labels, len(labels), "labels", n_classes)
    control = check_labels(control, len(labels), "control labels")
    new_labels = check_labels(new_labels, len(new_labels), "new images' labels", n_classes)
    counts = torch.zeros(n_classes, int(control.max()) + 1, dtype=torch.long)
    counts.index_put_((labels.cpu(), control.cpu()), torch.ones(len(labels), dtype=torch.long), accumulate=True)
    return counts.argmax(1)[new_labels.cpu()]


def selectivity(task_acc: float, control_acc: float) -> float:
    """Hewitt and Liang's selectivity: task accuracy minus control accuracy, both on one split.

    High selectivity means the probe reads the property from the features rather than
    memorising; see :func:`control_labels` for what the control accuracy means on images.

    >>> round(selectivity(0.95, 0.10), 2)
    0.85
    """
    for name, acc in (("task_acc", task_acc), ("control_acc", control_acc)):
        if not is_number(acc) or not 0 <= acc <= 1:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {acc!r}")
    return float(task_acc) - float(control_acc)
