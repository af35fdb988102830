"""The Binder environment's lock file: the versions this environment runs, for what the book needs.

Binder (repo2docker) builds the launch environment from ``.binder/requirements.txt``.
Unpinned, it would install whatever is newest on the day a reader clicks, which no test
has run. This module writes that file from the environment the test suite passed in:
every distribution that ``mnistlab[book]`` needs, directly or through another, pinned
to its installed version, then mnistlab itself from the repository.

    python -m mnistlab.build.lock > .binder/requirements.txt

PyTorch comes from its CPU index there (a Binder machine has no GPU), so the CUDA
libraries that the CUDA build of torch pulls in on Linux are left out (:data:`GPU_ONLY`).
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT_DIST, EXTRAS = "mnistlab", ("book",)
# Dependencies of the CUDA build of torch only; its CPU build needs none of them.
GPU_ONLY = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _requirements(dist: str, extras: tuple[str, ...]) -> list[Requirement]:
    """The requirements of installed ``dist`` that apply here with ``extras`` (markers evaluated)."""
    found = []
    for text in metadata.requires(dist) or []:
        req = Requirement(text)
        if req.marker is None:
            found.append(req)
            continue
        for extra in ("", *extras):
            if req.marker.evaluate({**default_environment(), "extra": extra}):
                found.append(req)
                break
    return found


def closure(dist: str = ROOT_DIST, extras: tuple[str, ...] = EXTRAS) -> dict[str, str]:
    """{canonical name: installed version} of every distribution ``dist[extras]`` needs, itself excluded."""
    seen: dict[str, str] = {}
    todo = [(dist, extras)]
    while todo:
        name, wanted = todo.pop()
        for req in _requirements(name, wanted):
            key = canonicalize_name(req.name)
            if GPU_ONLY.match(key):
                continue
            if key == canonicalize_name(dist):  # mnistlab[book] requires mnistlab's own extras
                todo.append((name, tuple(req.extras)))
                continue
            if key not in seen:
                try:
                    seen[key] = metadata.version(req.name)
                except metadata.PackageNotFoundError as e:
                    raise RuntimeError(f"{dist} needs {req.name}, which is not installed here: "
                                       f"install the environment first (pip install -e '.[test]')") from e
                todo.append((req.name, tuple(req.extras)))
            elif req.extras:
                todo.append((req.name, tuple(req.extras)))
    return dict(sorted(seen.items()))


def lock_text() -> str:
    """The contents of ``.binder/requirements.txt``."""
    pins = "\n".join(f"{name}=={version}" for name, version in closure().items())
    return (
        "# Binder (repo2docker) environment: the versions the test suite passed with, for everything\n"
        f"# mnistlab[{','.join(EXTRAS)}] needs; written by `python -m mnistlab.build.lock`, do not edit.\n"
        "# PyTorch from its CPU index; then mnistlab itself from this repository.\n"
        f"--extra-index-url {CPU_INDEX}\n"
        f"{pins}\n"
        f".[{','.join(EXTRAS)}]\n"
    )


if __name__ == "__main__":
    print(lock_text(), end="")
