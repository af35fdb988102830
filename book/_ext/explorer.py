"""Sphinx extension: the unit explorer's script and style (static/explorer.js, explorer.css).

The explorer page (book/explorer.md) computes its data while the book builds and embeds
it as JSON; the script draws a card from it for the unit a reader picks. Both files are
added to every page and do nothing where there is no explorer.
"""

from pathlib import Path

STATIC = Path(__file__).parent / "static"


def _static(app):
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _static)
    app.add_js_file("explorer.js")
    app.add_css_file("explorer.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
