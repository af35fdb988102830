"""The on-disk model cache: trained weights keyed by everything that made them.

An entry's key is a SHA-256 over the whole configuration (as stable JSON), the data's
fingerprint and the source code of the modules that train the model, so a change of
any of them misses the cache and can never serve a stale model.

An entry is a folder ``<cache>/models/<key>/`` with

* ``weights.safetensors`` — named tensors, never pickle;
* ``meta.json`` — the config, training history, and one SHA-256 over the weights and
  all of this metadata together (:func:`entry_digest`).

Entries are written to a temporary folder and renamed into place (atomic on POSIX),
verified in every part on every load, and a file lock keeps two processes from
training the same entry at once. A damaged entry is reported in one line, deleted and
rebuilt — never served. Nothing non-finite is ever stored.

A cache the process cannot write to (a read-only mount, say) still serves its intact
entries, without taking locks; what cannot be stored is returned uncached, with a
one-line :class:`CacheWriteWarning`.

The cache lives in ``$MNISTLAB_CACHE`` (default ``~/.cache/mnistlab``): trained models
in ``models/``, and results of expensive analysis functions in ``results/`` (entries of
the same form, see :mod:`mnistlab.build.memo`).

What the cache is trusted for. Anyone who can write its folder (a shared cache, one
restored by CI from elsewhere) can write any bytes there and recompute any checksum,
which has no secret: the checksums catch damage, not intent. So reading an entry may
only ever produce data: tensors from safetensors (never pickle), metadata from JSON,
and results built from the JSON by :mod:`mnistlab.build.memo`, which imports nothing
and builds only the library's own dataclasses and named tuples. The worst a hostile
entry can do is to be wrong in a way it describes consistently (a training history
with other numbers): no reader can tell that from the real one without a secret, so a
cache folder must be trusted as much as the code that fills it. Everything else is
checked after the checksum (``get_or_build``'s ``validate``): a model entry must hold
exactly the model's weights and snapshots, of their shapes and dtypes, finite, and a
history of numbers; an SAE entry likewise; a result must read back. An entry that is
not the one asked for is reported, deleted and rebuilt. ``tests/test_fuzz_files.py``
writes structure-aware variants of every format the library reads and checks that each
is served well-formed or rebuilt, and runs no code.
Numba's compiled code, whose index files are pickles, is kept outside the cache
(:func:`mnistlab.embed.numba_folder`). ``clear`` deletes only what this module
writes (:func:`written_here`), whatever else the folder holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

ENV_CACHE = "MNISTLAB_CACHE"
WEIGHTS = "weights.safetensors"
META = "meta.json"


ENTRY_SHA = "entry_sha256"


class CacheCorruptionWarning(UserWarning):
    """A cache entry failed verification and is being rebuilt."""


class CacheWriteWarning(UserWarning):
    """A result could not be stored in the cache (it is returned, uncached)."""


class CacheWaitWarning(UserWarning):
    """Another process holds an entry's lock: this one waits for it (said once, after LOCK_PATIENCE)."""


LOCK_PATIENCE = 5.0  # seconds of waiting on a lock before saying what is being waited for


def entry_digest(blob: bytes, meta: dict) -> str:
    """SHA-256 over an entry's weights file and its metadata (all of it but this digest).

    Any change to either — a flipped bit in the weights, one edited character or a
    deleted key in ``meta.json`` — changes the digest.
    """
    body = {k: v for k, v in meta.items() if k != ENTRY_SHA}
    h = hashlib.sha256(blob)
    h.update(b"\0meta\0")
    h.update(stable_json(body).encode())
    return h.hexdigest()


def remove(path: Path) -> str | None:
    """Delete a file or folder; return why it could not be deleted, or None."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


@dataclasses.dataclass
class Cleared:
    """What :meth:`ModelCache.clear` deleted, what it could not delete (path, why), and what it left alone."""

    entries: int = 0
    leftovers: int = 0  # temporary folders of interrupted saves, and unused lock files
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    foreign: list[Path] = dataclasses.field(default_factory=list)  # not written by this module: kept


KEY_NAME = re.compile(r"[0-9a-f]{64}")
TMP_NAME = re.compile(r"\.tmp-[0-9a-f]{12}-[A-Za-z0-9_]+")
LOCK_NAME = re.compile(r"[0-9a-f]{64}\.lock")


def written_here(path: Path) -> bool:
    """Whether ``path`` in a cache folder is something :class:`ModelCache` writes, so ``clear`` may delete it.

    An entry (or an interrupted save) is a folder named by a key (``.tmp-<key>-…``)
    holding nothing but :data:`WEIGHTS` and :data:`META`; a lock is ``<key>.lock``. A
    stray file or link under a key's name is the cache's own too (a save replaces it).
    Anything else was put there by someone else, and is left alone.
    """
    name = path.name
    if LOCK_NAME.fullmatch(name):
        return path.is_file() and not path.is_symlink()
    if KEY_NAME.fullmatch(name) and (path.is_symlink() or not path.is_dir()):
        return True
    if not (KEY_NAME.fullmatch(name) or TMP_NAME.fullmatch(name)) or path.is_symlink() or not path.is_dir():
        return False
    return all(child.name in (WEIGHTS, META) and child.is_file() and not child.is_symlink() for child in path.iterdir())


def _told_in_a_terminal() -> bool:
    """Whether a wait is worth saying: someone watches stderr in a terminal (not a notebook's
    output, where a wait that depends on which chapter ran first would enter the page)."""
    return sys.stderr is not None and sys.stderr.isatty()


def _umask() -> int:
    """This process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def runtime(device: str | torch.device = "cpu") -> str:
    """What a result was computed with beyond its inputs and code: PyTorch's release and the device type.

    Not the processor, the thread count or the kernels: another machine's arithmetic trains
    a model that differs in its last bits and agrees in its evidence (the book is checked
    against that, not against bits), so a cache restored from another machine serves it.
    """
    return f"torch=={torch.__version__}/{torch.device(device).type}"


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

    def writable(self) -> bool:
        """Whether this process can create entries here (creating the folder if need be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.folder, os.W_OK | os.X_OK)

    @contextmanager
    def lock(self, key: str):
        """Hold the entry's file lock: one process builds an entry, the others wait for it.

        A cache that cannot be written takes no lock: nobody can write an entry there,
        so there is no race to prevent, and its intact entries are still served.
        """
        if not self.writable():
            yield
            return
        path = self.folder / f"{key}.lock"
        lock = FileLock(str(path))
        try:
            try:
                lock.acquire(timeout=LOCK_PATIENCE)
            except Timeout:
                if _told_in_a_terminal():
                    warnings.warn(
                        f"waiting for {path}: another process is building {self.kind[:-1]} {key[:12]}… "
                        "(this one will use it when done); delete the lock file only if no such process runs",
                        CacheWaitWarning,
                        stacklevel=4,
                    )
                lock.acquire()
        except OSError as err:  # a lock file nobody may open (another user's, read-only): entries still serve
            warnings.warn(
                f"cannot take the lock {path} ({err.strerror or err}); going on without it "
                "(entries are written atomically, so two builders at worst do the same work)",
                CacheWriteWarning,
                stacklevel=4,
            )
            yield
            return
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def locks(self, keys: Iterable[str]):
        """Hold several entries' locks (take them in sorted order, so two callers cannot deadlock)."""
        with ExitStack() as held:
            for key in keys:
                held.enter_context(self.lock(key))
            yield

    def discard(self, key: str, problem: str, stacklevel: int = 3) -> None:
        """Report a damaged entry (or one that is not the one asked for) in one line, and delete it."""
        why = remove(self.path(key))
        fate = "deleting it and rebuilding" if why is None else f"not serving it (cannot delete it: {why})"
        warnings.warn(
            f"{self.kind[:-1]} cache entry {key[:12]}… is damaged ({problem}); {fate}",
            CacheCorruptionWarning,
            stacklevel=stacklevel,
        )

    def verify(self, key: str) -> tuple[dict[str, torch.Tensor], dict]:
        """The entry's tensors and metadata, checked in every part; ``ValueError`` says what is wrong."""
        entry = self.path(key)
        if not entry.is_dir():
            raise ValueError("not a folder")
        try:
            meta = json.loads((entry / META).read_text())
            blob = (entry / WEIGHTS).read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise ValueError(f"unreadable: {type(err).__name__}: {err}") from err
        if not isinstance(meta, dict):
            raise ValueError(f"{META} holds a JSON {type(meta).__name__}, not an object")
        if meta.get(ENTRY_SHA) != entry_digest(blob, meta):
            raise ValueError(f"the checksum over {WEIGHTS} and {META} does not match")
        if meta.get("key") != key:
            raise ValueError(f"{META} belongs to another entry")
        try:
            return st_load(blob), meta
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{WEIGHTS} does not parse: {err}") from err

    def load(self, key: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The entry's tensors and metadata, or None if absent or damaged (then it is removed)."""
        if not self.path(key).exists() and not self.path(key).is_symlink():
            return None
        try:
            return self.verify(key)
        except ValueError as err:
            self.discard(key, str(err))
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict | None:
        """Write an entry atomically: a reader sees the old entry, or the whole new one.

        Returns the metadata as stored, or None (with a :class:`CacheWriteWarning`) if
        the cache cannot be written. A model entry with non-finite weights or snapshots
        raises ``ValueError``: a diverged model is never stored. (Results may hold NaN
        by definition: the selectivity of a dead unit, say.)
        """
        for name, t in tensors.items() if self.kind == "models" else ():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"refusing to cache {key[:12]}…: tensor {name!r} holds NaN or infinite values")
        blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
        meta = json.loads(json.dumps({**meta, "key": key}))  # as it will read back: tuples become lists
        meta[ENTRY_SHA] = entry_digest(blob, meta)
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.folder))
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the entry from a shared cache's users
            (tmp / WEIGHTS).write_bytes(blob)
            (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            for f in (tmp / WEIGHTS, tmp / META):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            final = self.path(key)
            if final.exists() or final.is_symlink():
                why = remove(final)
                if why is not None:
                    raise OSError(f"cannot replace {final}: {why}")
            os.rename(tmp, final)
        except OSError as err:
            warnings.warn(
                f"could not store {self.kind[:-1]} {key[:12]}… in {self.folder} "
                f"({err.strerror or err}); using it without caching it",
                CacheWriteWarning,
                stacklevel=2,
            )
            return None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return meta

    def get_or_build(
        self,
        key: str,
        build: Callable[[], tuple[dict[str, torch.Tensor], dict]],
        validate: Callable[[dict, dict[str, torch.Tensor]], str | None] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict, bool]:
        """Load the entry, or build, save and return it. Returns ``(tensors, meta, was_cached)``.

        ``validate(meta, tensors)`` may return a reason why an entry that passed its
        checksum is still not the one asked for (its metadata names another config, a
        weight has another shape): anyone who can write the cache can also recompute a
        checksum, so the checksum proves an entry undamaged, not well-formed. The entry is
        then treated as damaged: reported, deleted and rebuilt.
        """
        with self.lock(key):
            hit = self.load(key)
            problem = validate(hit[1], hit[0]) if hit is not None and validate is not None else None
            if problem is not None:
                self.discard(key, problem)
                hit = None
            if hit is not None:
                return (*hit, True)
            tensors, meta = build()
            stored = self.save(key, tensors, meta)
            if stored is None:  # a read-only cache: the result, uncached
                return tensors, {**meta, "key": key}, False
            # Return what is on disk, so a cached and a fresh result are the same objects.
            loaded = self.load(key)
            if loaded is None:
                raise RuntimeError(f"the cache entry {key[:12]}… just written in {self.folder} does not load back")
            return (*loaded, False)

    def entries(self) -> list[Path]:
        """Every entry in the cache (folders; a stray file where an entry belongs is listed too)."""
        if not self.folder.is_dir():
            return []
        return sorted(
            p for p in self.folder.iterdir() if not p.name.startswith(".") and not p.name.endswith(".lock")
        )

    def clear(self) -> Cleared:
        """Delete every entry, the leftovers of interrupted saves, and lock files nobody holds.

        Only what this class writes (:func:`written_here`): a file or folder someone else
        put in the cache's folder is left where it is, and listed in ``foreign``.
        """
        done = Cleared()
        if not self.folder.is_dir():
            return done
        for p in sorted(self.folder.iterdir()):
            if not written_here(p):
                done.foreign.append(p)
        for p in self.entries():
            if p in done.foreign:
                continue
            why = remove(p)
            if why is None:
                done.entries += 1
            else:
                done.failed.append((p, why))
        for p in sorted(self.folder.glob(".tmp-*")):
            if p in done.foreign:
                continue
            why = remove(p)
            if why is None:
                done.leftovers += 1
            else:
                done.failed.append((p, why))
        for p in sorted(self.folder.glob("*.lock")):
            if p in done.foreign:
                continue
            lock = FileLock(str(p), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                done.failed.append((p, "held by a running process"))
                continue
            except OSError as err:
                done.failed.append((p, err.strerror or type(err).__name__))
                continue
            try:
                why = remove(p)
            finally:
                lock.release()
            if why is None:
                done.leftovers += 1
            else:
                done.failed.append((p, why))
        return done
