"""The on-disk model cache: trained weights keyed by everything that made them.

An entry's key is a SHA-256 over the whole configuration (as stable JSON), the data's
fingerprint and the source code of the modules that train the model, so a change of
any of them misses the cache and can never serve a stale model.

An entry is a folder ``<cache>/models/<key>/`` with

* ``weights.safetensors`` — named tensors, never pickle;
* ``meta.json`` — the config, training history and the SHA-256 of the weights file.

Entries are written to a temporary folder and renamed into place (atomic on POSIX),
verified against their checksum on every load, and a file lock keeps two processes
from training the same entry at once. A damaged entry is reported in one line,
deleted and rebuilt — never loaded.

The cache lives in ``$MNISTLAB_CACHE`` (default ``~/.cache/mnistlab``): trained models
in ``models/``, and results of expensive analysis functions in ``results/`` (entries of
the same form, see :mod:`mnistlab.build.memo`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

ENV_CACHE = "MNISTLAB_CACHE"
WEIGHTS = "weights.safetensors"
META = "meta.json"


class CacheCorruptionWarning(UserWarning):
    """A cache entry failed verification and is being rebuilt."""


def cache_dir() -> Path:
    """The cache root: ``$MNISTLAB_CACHE`` or ``~/.cache/mnistlab``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "mnistlab")


def stable_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; dataclasses become dicts, tuples lists."""

    def default(o):
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {"__class__": type(o).__name__, **dataclasses.asdict(o)}
        raise TypeError(f"cannot hash an object of type {type(o).__name__} into a cache key")

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def source_fingerprint(modules: Iterable[ModuleType]) -> str:
    """SHA-256 of the source files of ``modules``: training code is part of the key."""
    h = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        h.update(module.__name__.encode())
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def cache_key(*parts: Any) -> str:
    """A 64-character key from any JSON-able parts (configs, fingerprints, names)."""
    return hashlib.sha256(stable_json(list(parts)).encode()).hexdigest()


KINDS = ("models", "results")


class ModelCache:
    """Weights + JSON metadata on disk, verified on load and written atomically.

    ``kind`` picks the folder below the root: ``"models"`` for trained models,
    ``"results"`` for the results of expensive analysis functions (:mod:`mnistlab.build.memo`).
    """

    def __init__(self, root: str | Path | None = None, kind: str = "models"):
        if kind not in KINDS:
            raise ValueError(f"ModelCache kind must be one of {KINDS}, got {kind!r}")
        self.root = Path(root) if root is not None else cache_dir()
        self.kind = kind
        self.folder = self.root / kind

    def __repr__(self) -> str:
        return f"ModelCache({str(self.root)!r}, kind={self.kind!r})"

    def path(self, key: str) -> Path:
        return self.folder / key

    @contextmanager
    def lock(self, key: str):
        """Hold the entry's file lock: one process builds an entry, the others wait for it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / f"{key}.lock")):
            yield

    @contextmanager
    def locks(self, keys: Iterable[str]):
        """Hold several entries' locks (take them in sorted order, so two callers cannot deadlock)."""
        with ExitStack() as held:
            for key in keys:
                held.enter_context(self.lock(key))
            yield

    def discard(self, key: str, problem: str) -> None:
        """Report an entry that is not the one asked for in one line, and delete it."""
        warnings.warn(
            f"{self.kind[:-1]} cache entry {key[:12]}… is damaged ({problem}); deleting it and rebuilding",
            CacheCorruptionWarning,
            stacklevel=3,
        )
        shutil.rmtree(self.path(key), ignore_errors=True)

    def load(self, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The entry's tensors and metadata, or None if absent or damaged (then it is removed)."""
        entry = self.path(key)
        if not entry.exists():
            return None
        try:
            meta = json.loads((entry / META).read_text())
            blob = (entry / WEIGHTS).read_bytes()
            digest = hashlib.sha256(blob).hexdigest()
            if digest != meta.get("weights_sha256"):
                raise ValueError(f"weights checksum {digest[:12]}… does not match meta.json")
            if meta.get("key") != key:
                raise ValueError("meta.json belongs to another entry")
            tensors = st_load(blob)
        except Exception as err:  # missing file, bad JSON, bad checksum, bad safetensors
            warnings.warn(
                f"{self.kind[:-1]} cache entry {key[:12]}… is damaged ({err}); deleting it and rebuilding",
                CacheCorruptionWarning,
                stacklevel=2,
            )
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return tensors, meta

    def save(self, key: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Write an entry atomically: a reader sees the old entry, or the whole new one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        meta = {**meta, "key": key, "weights_sha256": hashlib.sha256(blob).hexdigest()}
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.folder))
        try:
            (tmp / WEIGHTS).write_bytes(blob)
            (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            for f in (tmp / WEIGHTS, tmp / META):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            final = self.path(key)
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get_or_build(
        self,
        key: str,
        build: Callable[[], tuple[dict[str, torch.Tensor], dict]],
        validate: Callable[[dict], str | None] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict, bool]:
        """Load the entry, or build, save and return it. Returns ``(tensors, meta, was_cached)``.

        ``validate(meta)`` may return a reason why an intact entry is still not the one
        asked for (say, its metadata names another config); the entry is then treated
        as damaged: reported, deleted and rebuilt.
        """
        with self.lock(key):
            hit = self.load(key)
            problem = validate(hit[1]) if hit is not None and validate is not None else None
            if problem is not None:
                self.discard(key, problem)
                hit = None
            if hit is not None:
                return (*hit, True)
            tensors, meta = build()
            self.save(key, tensors, meta)
            # Return what is on disk, so a cached and a fresh result are the same objects.
            loaded = self.load(key)
            assert loaded is not None, "an entry just written failed to load"
            return (*loaded, False)

    def entries(self) -> list[Path]:
        """Every complete entry folder in the cache."""
        if not self.folder.exists():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".tmp-"))

    def clear(self) -> int:
        """Delete every entry; returns how many were deleted."""
        entries = self.entries()
        for p in entries:
            shutil.rmtree(p, ignore_errors=True)
        return len(entries)
