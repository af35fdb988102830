"""The whole book as one PDF, printed from the built site by headless Chromium (no TeX).

Every page of the table of contents is opened in Chromium (through Playwright) from a
local server, in the light colour mode, once its formulas are typeset and its images
loaded, with every hidden solution opened; it is printed on A4 with the theme's print
style (no sidebars, no buttons). The pages are joined in the order of the table of
contents with pypdf, with an outline entry per page, into ``mnistlab.pdf`` beside the
site's ``index.html``. So the PDF holds exactly the figures, numbers and formulas of the
build it is printed from.

    python -m mnistlab.build.pdf _build/html          # writes _build/html/mnistlab.pdf

The book's Sphinx extension ``book/_ext/bookpdf.py`` calls :func:`print_book` at the end
of every build when a Chromium and the ``pdf`` extra are installed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

NAME = "mnistlab.pdf"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run in the page before printing: solutions and other toggles open, images loaded,
# formulas typeset.
PREPARE_JS = """
async () => {
  document.querySelectorAll(".toggle-hidden").forEach(e => e.classList.remove("toggle-hidden"));
  document.querySelectorAll("details").forEach(d => d.open = true);
  for (const img of document.images) img.loading = "eager";
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  return document.title;
}
"""
# Print-only style: the article only, figures whole on a page.
PRINT_CSS = """
@media print {
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .prev-next-footer,
  .bd-footer, .bd-footer-content, .toggle-button, .headerlink, #pst-back-to-top, .skip-link {
    display: none !important; }
  .bd-page-width, .bd-container, .bd-container__inner, .bd-main, .bd-content, .bd-article-container, .bd-article {
    max-width: none !important; width: 100% !important; margin: 0 !important; padding: 0 !important; }
  /* Nothing is cut at the page's edge: long code lines wrap, wide tables shrink and wrap. */
  pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  .pst-scrollable-table-container, .table-wrapper, div.cell_output, .output { overflow: visible !important;
    max-height: none !important; }
  table { width: 100% !important; table-layout: auto !important; font-size: 8pt; }
  td, th { overflow-wrap: break-word; padding: 0.2em 0.35em !important; }
  figure, img, tr, .math { break-inside: avoid; }
  img { max-width: 100% !important; height: auto !important; }
}
"""


def chromium() -> str | None:
    """A Chromium binary: ``$MNISTLAB_CHROMIUM``, else the first of CHROMIUM_NAMES on the PATH, else None."""
    return os.environ.get("MNISTLAB_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def toc_pages(toc_file: str | Path = "_toc.yml") -> list[str]:
    """The book's pages in reading order, as the table of contents (``_toc.yml``) lists them."""
    toc = yaml.safe_load(Path(toc_file).read_text())
    return [toc["root"], *(c["file"] for part in toc.get("parts", []) for c in part["chapters"])]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """The site in ``folder`` on a free localhost port, for as long as the context lasts."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def print_book(html: str | Path, pages: Sequence[str] | None = None, out: str | Path | None = None) -> Path:
    """Print the built site's pages (default: those of ``_toc.yml`` here) into one PDF; its path.

    Raises FileNotFoundError for a site folder without a page, and RuntimeError when no
    Chromium is found (name one with ``$MNISTLAB_CHROMIUM``).
    """
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    html = Path(html)
    pages = list(pages) if pages is not None else toc_pages()
    missing = [p for p in pages if not (html / f"{p}.html").is_file()]
    if missing:
        raise FileNotFoundError(f"{html} has no page for {', '.join(missing)}: build the book first "
                                "(jupyter-book build book/)")
    browser_path = chromium()
    if browser_path is None:
        raise RuntimeError(f"no Chromium found (looked for $MNISTLAB_CHROMIUM and {', '.join(CHROMIUM_NAMES)}): "
                           "install one, e.g. Debian's `apt-get install -y chromium`")
    out = Path(out) if out is not None else html / NAME
    writer = PdfWriter()
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            for name in pages:
                page = browser.new_page(viewport={"width": 1100, "height": 1400}, color_scheme="light")
                try:
                    page.goto(base + f"{name}.html", wait_until="load")
                    page.add_style_tag(content=PRINT_CSS)
                    title = page.evaluate(PREPARE_JS)
                    page.emulate_media(media="print", color_scheme="light")
                    pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=False,
                                   margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"})
                finally:
                    page.close()
                start = len(writer.pages)
                writer.append(PdfReader(io.BytesIO(pdf)))
                writer.add_outline_item(_heading(title), start)
        finally:
            browser.close()
    writer.add_metadata({"/Title": "Looking inside an MNIST network", "/Author": "The mnistlab authors"})
    tmp = out.with_suffix(".pdf.tmp")
    with open(tmp, "wb") as f:
        writer.write(f)
    tmp.replace(out)  # never a half-written PDF under the published name
    return out


def _heading(title: str) -> str:
    """A page's title without the site's name the theme appends ("Chapter — Book")."""
    return re.split(r"\s+[—–-]\s+", title)[0].strip() or title


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", help="the built site's folder (where index.html is), e.g. _build/html")
    parser.add_argument("--out", help=f"where to write the PDF (default: {NAME} in the site's folder)")
    args = parser.parse_args(argv)
    path = print_book(args.html, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
