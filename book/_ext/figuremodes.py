"""Sphinx extension: every figure in the rendering for the page's colour mode.

``mnistlab.glue.figure`` glues each figure as a light PNG that carries its dark
rendering in a PNG text chunk (``mnistlab.render``). While a page is read, this
extension writes that dark PNG beside the light one and places it next to it in the
page, the light image marked ``only-light`` and the dark one ``only-dark``:
pydata-sphinx-theme shows exactly one of them, by the page's mode. Both keep the
figure's alt text. ``static/figuremodes.css`` takes away what the theme does to images
in dark mode (a light box behind them, a dimming filter): the dark rendering is drawn
for the dark page already.

A PNG without the chunk (an image from elsewhere) is left as it is.
"""

from pathlib import Path

from docutils import nodes

from mnistlab import render

STATIC = Path(__file__).parent / "static"


def _source_file(app, uri: str) -> Path | None:
    """The file an image node points at (myst-nb writes "/path/relative/to/srcdir")."""
    path = Path(app.srcdir) / uri.lstrip("/") if uri.startswith("/") else None
    return path if path is not None and path.suffix == ".png" and path.is_file() else None


def _both_modes(app, doctree) -> None:
    for image in list(doctree.findall(nodes.image)):
        light = _source_file(app, image.get("uri", ""))
        dark_bytes = render.dark_png(light.read_bytes()) if light is not None else None
        if dark_bytes is None:
            continue
        dark = light.with_name(f"{light.stem}-dark.png")
        if not dark.is_file() or dark.read_bytes() != dark_bytes:
            dark.write_bytes(dark_bytes)
        twin = image.deepcopy()
        twin["uri"] = image["uri"].rsplit("/", 1)[0] + "/" + dark.name
        if "candidates" in twin:
            del twin["candidates"]
        # One wrapper for both, so a figure's caption never follows an .only-* image
        # directly (the theme hides a caption that follows an image of the other mode).
        wrapper = nodes.container()
        image.replace_self(wrapper)
        wrapper["classes"] = ["mnistlab-modes"]  # replace_self copied the image's classes
        wrapper["ids"] = []
        image["classes"] = [*image.get("classes", []), "only-light", "mnistlab-figure"]
        twin["classes"] = [*twin.get("classes", []), "only-dark", "mnistlab-figure"]
        wrapper += image
        wrapper += twin


def _static(app):
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _static)
    # Before Sphinx's image collector (priority 500) registers the page's images.
    app.connect("doctree-read", _both_modes, priority=400)
    app.add_css_file("figuremodes.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
