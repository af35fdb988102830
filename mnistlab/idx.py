"""MNIST's file format: IDX arrays of unsigned bytes, and the official files' digests.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the rank), one
big-endian 4-byte size per dimension, then the values. MNIST publishes four of them
(train and test images and labels), often gzipped. This module reads them strictly:
a wrong magic number, shape or length is refused, never half-loaded, and full MNIST is
recognised by the MD5 of its uncompressed bytes, whatever container holds them.
:mod:`mnistlab.data` turns the arrays into a :class:`~mnistlab.data.Dataset`.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np


class DataError(RuntimeError):
    """A data file is missing, truncated or not what it claims to be."""


# The IDX files of full MNIST and the shapes they must have.
MNIST_FILES = {
    "x_train": ("train-images-idx3-ubyte", (60000, 28, 28)),
    "y_train": ("train-labels-idx1-ubyte", (60000,)),
    "x_test": ("t10k-images-idx3-ubyte", (10000, 28, 28)),
    "y_test": ("t10k-labels-idx1-ubyte", (10000,)),
}
# MD5 of the official IDX files' uncompressed bytes (the digests MNIST is published with).
# A file is MNIST's when its bytes are, whatever holds them: a .gz written by another gzip
# has another compressed digest, so the uncompressed bytes are what is verified, for a
# .gz and an unpacked file alike. Bytes in the right layout that are not MNIST's never load.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# IDX magic numbers: two zero bytes, the type code (0x08 = unsigned byte), the rank.
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


def mnist_names() -> list[str]:
    """The four file names of full MNIST (each may also be found as ``<name>.gz``)."""
    return [name for name, _ in MNIST_FILES.values()]


def find_idx(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name``, whichever exists (None if neither): the bytes are verified either way."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def read_mnist_folder(folder: Path) -> dict[str, np.ndarray]:
    """Full MNIST's four arrays from ``folder``, keyed as ``MNIST_FILES``, each verified by its MD5."""
    arrays = {}
    for key, (name, shape) in MNIST_FILES.items():
        path = find_idx(folder, name)
        if path is None:
            raise DataError(f"{folder} has no {name} (or {name}.gz); MNIST needs all of {mnist_names()}")
        raw = idx_bytes(path, shape)
        arrays[key] = parse_idx(raw, path, expected_shape=shape)  # a truncated file says so first
        digest = hashlib.md5(raw).hexdigest()
        if digest != MNIST_MD5[name]:
            raise DataError(
                f"{path}: its uncompressed bytes have MD5 {digest}, not MNIST's official {MNIST_MD5[name]}; "
                "the file is damaged or is not MNIST's. Replace it by the official file (.gz or unpacked)."
            )
    return arrays


def idx_bytes(path: str | Path, expected_shape: tuple[int, ...] | None = None) -> bytes:
    """The bytes of an IDX file, uncompressed if its name ends in ``.gz``, read no further than its header allows.

    The header says how many bytes follow (``expected_shape``, when given, must agree):
    at most one byte more is read, so a file that is longer than it says (a padded
    file, or a small ``.gz`` that expands to gigabytes) is refused after reading what
    a valid file holds, never loaded whole. :func:`parse_idx` then checks the bytes.
    """
    path = Path(path)
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read(4)
            rank = raw[3] if len(raw) == 4 and IDX_MAGIC.get(raw[3]) == int.from_bytes(raw, "big") else None
            if rank is None:
                return raw  # not an IDX header: parse_idx says what is wrong
            raw += f.read(4 * rank)
            shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
            if len(raw) < 4 + 4 * rank or (expected_shape is not None and shape != tuple(expected_shape)):
                return raw
            body = int(np.prod(shape, dtype=np.int64))
            if body > MAX_IDX_BYTES:
                raise DataError(f"{path} says it holds an array of shape {shape}: {body:,} bytes, more than "
                                f"{MAX_IDX_BYTES:,}; MNIST's largest file holds 47,040,000")
            raw += f.read(body + 1)
            if len(raw) > 4 + 4 * rank + body:
                raise DataError(f"{path} holds more than the {4 + 4 * rank + body:,} bytes its header {shape} "
                                "allows: the file is padded or damaged; replace it by the official file")
    except (OSError, EOFError, zlib.error) as e:  # not gzip, or a truncated/damaged stream
        if path.suffix != ".gz":
            raise DataError(f"{path} cannot be read ({e.strerror or e})") from None
        raise DataError(f"{path} is not a readable gzip file ({e}); replace it by the official file") from None
    return raw


MAX_IDX_BYTES = 1 << 30  # 1 GiB: twenty times MNIST's largest file


def read_idx(path: str | Path, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (optionally gzipped), checking it as it goes.

    Checks the magic number, that the header's dimensions match ``expected_shape``,
    and that the file holds exactly that many bytes: a truncated or padded file is
    refused, never half-loaded.
    """
    return parse_idx(idx_bytes(path, expected_shape), path, expected_shape)


def parse_idx(raw: bytes, path: str | Path, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The array in ``raw``, the bytes of the IDX file ``path`` (named in errors); see :func:`read_idx`."""
    if len(raw) < 4:
        raise DataError(f"{path} is {len(raw)} bytes long: too short to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    rank = magic & 0xFF
    if IDX_MAGIC.get(rank) != magic:
        raise DataError(
            f"{path} starts with magic number {magic:#010x}; an IDX file of unsigned bytes starts with "
            f"{IDX_MAGIC[1]:#010x} (labels) or {IDX_MAGIC[3]:#010x} (images)"
        )
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if expected_shape is not None and shape != tuple(expected_shape):
        raise DataError(f"{path} holds an array of shape {shape}; expected {tuple(expected_shape)}")
    expected_bytes = header + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise DataError(
            f"{path} is {len(raw):,} bytes but its header {shape} needs {expected_bytes:,}: "
            "the file is truncated or damaged; delete it and fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()
