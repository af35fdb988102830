"""The examples in the library's docstrings run and print what they say.

A reader meets a module through its docstring first; an example there that no longer
holds (a split that changed size, a rounded score) teaches the wrong thing. Every
module's examples run here as doctests.
"""

import doctest
import importlib
import pkgutil

import pytest

import mnistlab

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(mnistlab.__path__, "mnistlab.") if not m.name.endswith("__main__")
)


def test_the_library_has_examples():
    finder = doctest.DocTestFinder()
    with_examples = [m for m in MODULES if any(t.examples for t in finder.find(importlib.import_module(m)))]
    assert len(with_examples) >= 10, with_examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail (output above)"
