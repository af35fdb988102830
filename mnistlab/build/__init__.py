"""Build machinery: what building and measuring the book needs, apart from what it teaches.

* :mod:`mnistlab.build.page` — the hidden first cell of every chapter: pin the arithmetic
  and keep the results of expensive analyses between builds;
* :mod:`mnistlab.build.memo` — that results cache: a function's results kept on disk,
  keyed by the library's source, package versions, the pinned arithmetic and every
  argument's content;
* :mod:`mnistlab.build.bench` — the benchmark (``python -m mnistlab.build.bench``);
* :mod:`mnistlab.build.pdf` — the whole book as one PDF, printed from the built site by
  headless Chromium (``python -m mnistlab.build.pdf _build/html``);
* :mod:`mnistlab.build.lock` — Binder's pinned environment (``python -m mnistlab.build.lock``).

Nothing in the teaching library imports this package.
"""
