"""Build machinery: what building and measuring the book needs, apart from what it teaches.

* :mod:`mnistlab.build.page` — the hidden first cell of every chapter: keep the results
  of expensive analyses between builds;
* :mod:`mnistlab.build.memo` — that results cache: a function's results kept on disk,
  keyed by the library's source, package versions and every argument's content;
* :mod:`mnistlab.build.nbcheck` — what nbval compares: a fresh run of a chapter against
  its stored notebook, by what each output is (text exactly, numbers at the tolerance
  their kind allows, verdicts as their rule and margin allow);
* :mod:`mnistlab.build.arithmetic` — another machine's arithmetic on this one, for the
  tests that show the comparison holds across machines;
* :mod:`mnistlab.build.parallel` — how many chapters a build executes at once, and how
  many threads each gets, from the cores, the memory and each page's measured peak;
* :mod:`mnistlab.build.bench` — the benchmark (``python -m mnistlab.build.bench``);
* :mod:`mnistlab.build.pdf` — the whole book as one PDF, printed from the built site by
  headless Chromium (``python -m mnistlab.build.pdf _build/html``);
* :mod:`mnistlab.build.lock` — Binder's pinned environment (``python -m mnistlab.build.lock``).

Nothing in the teaching library imports this package (``mnistlab.glue`` and
``mnistlab.explorer``, which serve the book, tell it what a glued value is through the
outputs' metadata, not through an import).
"""
