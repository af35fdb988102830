"""Results of expensive analysis functions, kept in the cache between builds.

A chapter that embeds a layer with UMAP or ablates every unit of a CNN twenty times
computes the same numbers on every build of the book. ``cached(fn)`` returns ``fn``
with its results kept on disk:

>>> import torch
>>> from mnistlab import embed
>>> from mnistlab.build.memo import cached
>>> acts = torch.rand(50, 8, generator=torch.Generator().manual_seed(0))
>>> first = cached(embed.pca)(acts)  # computed, then kept on disk
>>> again = cached(embed.pca)(acts)  # read back from disk
>>> torch.equal(first.coords, again.coords)
True

A result is served only when everything that could change it is the same. Its key is
a SHA-256 over

* the function's module and name, and the source of every ``mnistlab`` module (any
  change to the library recomputes every result);
* every argument's full content: tensors and arrays byte for byte, models by their
  architecture and weights, dataclasses field by field (:func:`digest`);
* the versions of the numerical packages (torch, numpy, scipy, scikit-learn,
  umap-learn, pynndescent, numba, mlxtend). Not the processor or the thread count:
  another machine's arithmetic changes a result's last bits, not its evidence.

Entries are :class:`mnistlab.cache.ModelCache` entries under ``<cache>/results/``:
written atomically, checked against their SHA-256 on every read, and rebuilt when
damaged. A fresh result is also read back from disk, so a first build and a rebuild
return the very same objects. Only pure functions belong here: one that reads or
advances a global random generator would leave that generator elsewhere on a cache hit.

Results may be tensors, arrays, numbers, strings, ``None``, and tuples, lists,
dicts, named tuples and dataclasses of them; an argument or result of any other
type is refused with a :class:`TypeError` naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import struct
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from mnistlab.cache import ModelCache, cache_key

R = TypeVar("R")

PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "umap-learn", "pynndescent", "numba", "mlxtend")
VALID = (
    "tensors, numpy arrays and scalars, bool/int/float/str/None, range, and tuples, lists, dicts, "
    "named tuples and dataclasses of them (and, as arguments, nn.Modules)"
)


def cached(fn: Callable[..., R], cache: ModelCache | None = None) -> Callable[..., R]:
    """``fn`` with its results kept in the results cache (see the module docstring)."""
    if getattr(fn, "__module__", None) in (None, "__main__") or "<" in getattr(fn, "__qualname__", "<"):
        raise TypeError(
            f"cached() needs a function defined at the top level of an importable module, got {fn!r}: "
            "its source is part of the key, and a notebook's or a nested function's cannot be read back"
        )

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        store = cache or ModelCache(kind="results")
        name = f"{fn.__module__}.{fn.__qualname__}"
        why_not = _unkeyable((args, kwargs)) or _edited_since_start(fn)
        if why_not is not None:  # what would decide the result is not in the key: compute it, keep nothing
            warnings.warn(f"{name} is not cached: {why_not}", UncachedWarning, stacklevel=2)
            return fn(*args, **kwargs)
        key = cache_key("result", name, code_fingerprint(fn), versions(), digest((args, kwargs)))

        def build():
            tensors: dict[str, torch.Tensor] = {}
            return tensors, {"function": name, "result": _pack(fn(*args, **kwargs), tensors)}

        def validate(meta: dict, tensors: dict[str, torch.Tensor]) -> str | None:
            if meta.get("function") != name:
                return f"it holds a result of {meta.get('function')!r}"
            try:  # intact by its checksum, but is it something this function could have written?
                _unpack(meta["result"], tensors)
            except Exception as err:  # noqa: BLE001 (whatever a malformed skeleton raises, it is not served)
                return f"its result does not read back: {type(err).__name__}: {err}"
            return None

        tensors, meta, _ = store.get_or_build(key, build, validate)
        return _unpack(meta["result"], tensors)

    wrapper.__mnistlab_cached__ = True
    return wrapper


class UncachedWarning(UserWarning):
    """A call's result was computed and not cached: something that decides it cannot be keyed."""


def _library_files() -> list[Path]:
    return sorted(Path(__file__).parents[1].glob("*.py")) + [Path(__file__)]


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


# The library's source as this process runs it: read once, when this module is imported
# (a chapter imports it before it calls anything it caches), with each file's size and
# time, so a file edited later is noticed rather than hashed as if it were running.
_SOURCES_AT_START = {p: (_stat(p), p.read_bytes()) for p in _library_files()}


@functools.cache
def _library_sources() -> bytes:
    """The teaching library's modules and this one: a change to any of them recomputes every result."""
    return b"".join(p.name.encode() + source for p, (_, source) in _SOURCES_AT_START.items())


_OTHER_SOURCES: dict[Path, tuple[tuple[int, int] | None, bytes]] = {}  # modules outside mnistlab/*.py


def _source(path: Path) -> tuple[tuple[int, int] | None, bytes]:
    """A module file's size and time and its source, as first read by this process."""
    if path in _SOURCES_AT_START:
        return _SOURCES_AT_START[path]
    if path not in _OTHER_SOURCES:
        _OTHER_SOURCES[path] = (_stat(path), path.read_bytes())
    return _OTHER_SOURCES[path]


def _edited_since_start(fn: Callable) -> str | None:
    """Why the code on disk may not be the code running (a library file changed since start), or None."""
    module_file = getattr(importlib.import_module(fn.__module__), "__file__", None)
    for path in [*_SOURCES_AT_START, *([Path(module_file)] if module_file else [])]:
        if _stat(path) != _source(path)[0]:
            return f"{path.name} changed on disk after this process started; restart it to cache results again"
    return None


def _unkeyable(obj: Any) -> str | None:
    """Why an argument's result depends on more than its content (a model with hooks), or None."""
    modules = []

    def walk(o: Any) -> None:
        if isinstance(o, nn.Module):
            modules.append(o)
        elif isinstance(o, list | tuple):
            for x in o:
                walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            for f in dataclasses.fields(o):
                walk(getattr(o, f.name))

    walk(obj)
    if modules and any(getattr(torch.nn.modules.module, g, None) for g in GLOBAL_HOOKS):
        return "a global module hook is registered (its effect is not part of any key)"
    for model in modules:
        for name, sub in model.named_modules():
            for hooks in HOOK_DICTS:
                if getattr(sub, hooks, None):
                    where = f"its submodule {name!r}" if name else "it"
                    return f"a {type(model).__name__} argument has a hook on {where} ({hooks}): not in the key"
    return None


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_load_state_dict_pre_hooks")
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")


def enable(functions: dict[str, tuple[str, ...]]) -> None:
    """Replace each named function, in its module, by :func:`cached` of it (once; idempotent).

    Callers that look the function up in its module when they call it (``embed.umap(...)``,
    and the library's own calls) then get cached results.
    """
    for module_name, names in functions.items():
        module = importlib.import_module(module_name)
        for name in names:
            fn = getattr(module, name)
            if not getattr(fn, "__mnistlab_cached__", False):
                setattr(module, name, cached(fn))


def code_fingerprint(fn: Callable) -> str:
    """SHA-256 of every ``mnistlab`` module's source and of the module defining ``fn``."""
    h = hashlib.sha256(_library_sources())
    module_file = getattr(importlib.import_module(fn.__module__), "__file__", None)
    if module_file is None:
        raise TypeError(f"cached() cannot read the source of {fn.__module__} (it has no file)")
    h.update(_source(Path(module_file))[1])
    return h.hexdigest()


@functools.cache
def versions() -> tuple[str, ...]:
    """``name==version`` of each numerical package a result may depend on (absent ones too)."""
    out = []
    for package in PACKAGES:
        try:
            out.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{package} absent")
    return tuple(out)


# --- the key: every argument's full content ----------------------------------------


def digest(obj: Any) -> str:
    """SHA-256 of ``obj``'s content: equal for equal content, whatever the object's identity.

    Dataclass fields declared with ``metadata={"digest": False}`` are left out (say, a
    flag telling whether a model came from the cache, which does not change the model).
    An object may name its own content with a ``__cache_digest__()`` method returning a
    string (a :class:`mnistlab.data.Dataset` returns its fingerprint).
    """
    h = hashlib.sha256()
    _feed(obj, h)
    return h.hexdigest()


def _feed(obj: Any, h) -> None:
    def tag(name: str, *parts: Any) -> None:
        h.update(f"<{name}:{':'.join(map(str, parts))}>".encode())

    if isinstance(obj, np.ndarray | np.generic):  # first: np.float64 is also a float
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            raise TypeError("cached() cannot key a numpy array of Python objects; valid: " + VALID)
        tag("ndarray" if isinstance(obj, np.ndarray) else "npscalar", a.dtype.str, a.shape)
        h.update(a.tobytes())
    elif obj is None or isinstance(obj, bool | int | str):
        tag(type(obj).__name__, repr(obj))
    elif isinstance(obj, float):
        tag("float", struct.pack("<d", obj).hex())
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        tag("tensor", t.dtype, tuple(t.shape))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif hasattr(obj, "__cache_digest__"):
        tag("custom", type(obj).__qualname__, obj.__cache_digest__())
    elif isinstance(obj, nn.Module):
        tag("module", type(obj).__qualname__, repr(obj), obj.training)
        for name, t in obj.state_dict().items():
            tag("state", name)
            _feed(t, h)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        tag("dataclass", type(obj).__module__, type(obj).__qualname__)
        for f in dataclasses.fields(obj):
            if f.metadata.get("digest", True):
                tag("field", f.name)
                _feed(getattr(obj, f.name), h)
    elif isinstance(obj, range):
        tag("range", obj.start, obj.stop, obj.step)
    elif isinstance(obj, list | tuple):
        tag(type(obj).__qualname__, len(obj))
        for item in obj:
            _feed(item, h)
    elif isinstance(obj, dict):
        tag("dict", len(obj))
        for k, v in obj.items():
            _feed(k, h)
            _feed(v, h)
    else:
        raise TypeError(f"cached() cannot key an argument of type {type(obj).__qualname__}; valid: {VALID}")


# --- the result: tensors in safetensors, the rest as JSON ---------------------------


def _pack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON skeleton of ``obj``; its tensors and arrays go into ``tensors``."""

    def store(t: torch.Tensor) -> str:
        name = f"t{len(tensors)}"
        tensors[name] = t.detach().cpu().clone()  # its own storage: safetensors refuses shared ones
        return name

    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError("cached() cannot keep a numpy array of Python objects; valid: " + VALID)
        return {"ndarray": store(torch.from_numpy(np.ascontiguousarray(obj)))}
    if isinstance(obj, np.generic):  # before float: np.float64 is also a float
        return {"npscalar": obj.dtype.str, "bytes": obj.tobytes().hex()}
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return {"float": obj.hex()}  # exact, also for nan and inf
    if isinstance(obj, torch.Tensor):
        return {"tensor": store(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return {"namedtuple": _class_path(obj), "items": [_pack(x, tensors) for x in obj]}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _pack(getattr(obj, f.name), tensors) for f in dataclasses.fields(obj)}
        return {"dataclass": _class_path(obj), "fields": fields}
    if isinstance(obj, list | tuple):
        return {type(obj).__name__: [_pack(x, tensors) for x in obj]}
    if isinstance(obj, dict):
        return {"dict": [[_pack(k, tensors), _pack(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cached() cannot keep a result of type {type(obj).__qualname__}; valid: {VALID}")


def _class_path(obj: Any) -> str:
    cls = type(obj)
    if not cls.__module__.startswith("mnistlab.") or "<" in cls.__qualname__:
        raise TypeError(f"cached() keeps only mnistlab's own dataclasses and named tuples, got {cls.__qualname__}")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(path: Any) -> type:
    """The class a results entry names, if :func:`_class_path` could have written it; else ``ValueError``.

    An entry's metadata is data, never instructions: anyone who can write the cache can
    also recompute its checksum. So nothing is imported here, and the name must be one
    of ``mnistlab``'s own dataclasses or named tuples in a module this process has
    already imported (the cached function's module imports the types it returns).
    Building one then runs only the library's own constructor.
    """
    if not isinstance(path, str):
        raise ValueError(f"a results entry names a class by {type(path).__name__}, not a string")
    module_name, _, qualname = path.partition(":")
    module = sys.modules.get(module_name) if module_name.startswith("mnistlab.") else None
    if module is None or not qualname or "<" in qualname:
        raise ValueError(f"a results entry names {path!r}, which is not a class of an imported mnistlab module")
    cls: Any = module
    for part in qualname.split("."):
        cls = vars(cls).get(part) if isinstance(cls, type | type(module)) else None
    is_record = isinstance(cls, type) and (
        dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))
    )
    if not is_record or cls.__module__ != module_name or cls.__qualname__ != qualname:
        raise ValueError(f"a results entry names {path!r}, which is not one of mnistlab's dataclasses or named tuples")
    return cls


NUMBER_KINDS = "biufc"  # numpy dtype kinds a cached scalar may have: bool, ints, floats, complex


def _unpack(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The result a JSON skeleton from :func:`_pack` stands for; ``ValueError`` if it is not one."""
    if node is None or isinstance(node, bool | int | str):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"a results cache entry holds a malformed node of type {type(node).__name__}")
    if "npscalar" in node:
        dtype = np.dtype(str(node["npscalar"]))
        if dtype.kind not in NUMBER_KINDS:
            raise ValueError(f"a results cache entry holds a numpy scalar of dtype {dtype}, not a number")
        return np.frombuffer(bytes.fromhex(node["bytes"]), dtype=dtype)[0]
    if "float" in node:
        return float.fromhex(node["float"])
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "ndarray" in node:
        return tensors[node["ndarray"]].numpy()
    if "namedtuple" in node:
        return _class(node["namedtuple"])(*(_unpack(x, tensors) for x in node["items"]))
    if "dataclass" in node:
        cls = _class(node["dataclass"])
        values = {name: _unpack(v, tensors) for name, v in node["fields"].items()}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        obj = cls(**{k: v for k, v in values.items() if k in init})
        for k, v in values.items():
            if k not in init:
                object.__setattr__(obj, k, v)
        return obj
    if "list" in node:
        return [_unpack(x, tensors) for x in node["list"]]
    if "tuple" in node:
        return tuple(_unpack(x, tensors) for x in node["tuple"])
    if "dict" in node:
        return {_unpack(k, tensors): _unpack(v, tensors) for k, v in node["dict"]}
    raise ValueError(f"a results cache entry holds an unknown node {sorted(node)}")
