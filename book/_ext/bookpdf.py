"""Sphinx extension: the whole book as one PDF, printed at the end of every HTML build.

When the build has finished without error, :func:`mnistlab.build.pdf.print_book` prints
every page of the table of contents from the built site with headless Chromium into
``mnistlab.pdf`` beside ``index.html`` (the introduction links to it). That needs a
Chromium and the ``pdf`` extra (Playwright, pypdf), which the test command installs; a
build without them says so and leaves the PDF out. ``MNISTLAB_PDF=0`` skips it.
"""

import os
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _print(app, exception):
    if exception is not None or app.builder.format != "html" or os.environ.get("MNISTLAB_PDF") == "0":
        return
    try:
        from mnistlab.build import pdf
    except ImportError as e:  # the pdf extra is missing
        logger.info(f"no PDF of the book: {e} (pip install -e '.[pdf]')")
        return
    try:
        import playwright  # noqa: F401
        import pypdf  # noqa: F401
    except ImportError as e:
        logger.info(f"no PDF of the book: {e.name} is not installed (pip install -e '.[pdf]')")
        return
    if pdf.chromium() is None:
        logger.info("no PDF of the book: no Chromium found (apt-get install -y chromium, or set MNISTLAB_CHROMIUM)")
        return
    pages = pdf.toc_pages(Path(app.srcdir) / "_toc.yml")
    path = pdf.print_book(app.outdir, pages)
    logger.info(f"printed the book to {path} ({path.stat().st_size / 1e6:.1f} MB)")


def setup(app):
    app.connect("build-finished", _print)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
