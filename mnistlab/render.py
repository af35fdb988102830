"""A figure as the book shows it: one PNG for the light page, one for the dark, and where its text is.

The book's theme has a light and a dark colour mode. A figure drawn for a white page
loses its black text on a dark one, and its white background glares there. So every
figure the book glues is drawn twice (:func:`render`):

* **light** — as drawn, on white;
* **dark** — on the dark page's background (:data:`DARK`), with the figure's ink
  (text, axes, black lines) in the dark page's text colour and every colour map that
  is white at one end or in the middle swapped for its dark-page counterpart
  (:data:`DARK_CMAPS`); data colours stay as they are.

In both, every piece of text is made legible against what lies under it *in that
rendering* (a cell of a heat map, a box, the background): the figure is first drawn
without its text, the colour under each text is read from that drawing, and a text
whose contrast with it is below :data:`MIN_CONTRAST` (WCAG's ratio) is darkened or
lightened, keeping its hue, until it passes. Under a mid-tone no colour passes (black and
white both stop near 4.6:1 on a grey of luminance 0.18), so such a text is drawn on a
small backdrop of the page's background: which cells of a heat map are mid-tones is a
matter of the data, and the data differ from run to run.

The light PNG carries the dark one and the pixel boxes of its text in PNG text chunks
(:data:`DARK_KEY`, :data:`TEXT_KEY`), so a notebook shows the light figure as usual and
the book's Sphinx extension (``book/_ext/figuremodes.py``) gives the page both, chosen
by the page's mode. The browser test reads the boxes to check the contrast of every
text in the screenshots of both modes.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.text
import numpy as np
from matplotlib.colors import Colormap, to_hex, to_rgba
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image
from PIL.PngImagePlugin import PngInfo

# PNG text chunks of a rendered figure.
DARK_KEY = "mnistlab:dark"  # the dark rendering, a base64 PNG (in the light PNG only)
TEXT_KEY = "mnistlab:text"  # JSON: [{"box": [x0, y0, x1, y1], "color": "#rrggbb"}, ...], pixels from the top left

BACKDROP = "_mnistlab_backdrop"  # marks a text given a backdrop by this module
MIN_CONTRAST = 7.0  # WCAG's enhanced level for text: anti-aliasing and scaling then leave it above 4.5


@dataclass(frozen=True)
class Mode:
    """A page's colour mode: its background and the colour of its text."""

    name: str
    background: str
    ink: str


LIGHT = Mode("light", "#ffffff", "#000000")
DARK = Mode("dark", "#121212", "#ced6dd")  # sphinx-book-theme's dark background, pydata's text colour

# A colour map light at an end or in the middle glares on a dark page; these keep the
# meaning (which end is which) with a dark middle or a dark low end.
DARK_CMAPS = {
    "RdBu_r": "berlin",
    "RdBu": "berlin_r",
    "gray_r": "gray",
    "Greys": "Greys_r",
    "Blues": "Blues_r",
}


def luminance(color) -> float:
    """Relative luminance (WCAG 2) of a matplotlib colour."""
    rgb = np.asarray(to_rgba(color)[:3], dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def contrast(a, b) -> float:
    """WCAG contrast ratio of two colours, from 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def legible(color, background, minimum: float = MIN_CONTRAST) -> tuple[float, float, float, float]:
    """``color`` mixed toward black or white just enough to reach ``minimum`` contrast with ``background``.

    A colour that already passes comes back unchanged; one that cannot pass in either
    direction becomes black or white, whichever contrasts more.
    """
    rgba = np.asarray(to_rgba(color), dtype=float)
    if contrast(rgba, background) >= minimum:
        return tuple(rgba)
    best = None
    for end in (np.zeros(3), np.ones(3)):
        for t in np.linspace(0.05, 1.0, 20):
            mixed = np.append((1 - t) * rgba[:3] + t * end, rgba[3])
            if contrast(mixed, background) >= minimum:
                if best is None or t < best[0]:
                    best = (t, mixed)
                break
    if best is None:
        ends = (np.array([0, 0, 0, rgba[3]]), np.array([1, 1, 1, rgba[3]]))
        return tuple(max(ends, key=lambda e: contrast(e, background)))
    return tuple(best[1])


def _is_ink(color) -> bool:
    """Black or nearly: the figure's own ink (text, spines, ticks, reference lines)."""
    r, g, b, a = to_rgba(color)
    return a > 0 and max(r, g, b) < 0.2 and max(r, g, b) - min(r, g, b) < 0.05


def _is_paper(color) -> bool:
    """White or nearly: the figure's background, legend frames."""
    r, g, b, a = to_rgba(color)
    return a > 0 and min(r, g, b) > 0.95


def _swap(color, mode: Mode):
    """A colour of the light figure as the dark one draws it."""
    if isinstance(color, str) and color in ("none", "face", "auto"):
        return color
    rgba = to_rgba(color)
    if _is_ink(rgba):
        return to_rgba(mode.ink, rgba[3])
    if _is_paper(rgba):
        return to_rgba(mode.background, rgba[3])
    return color


def _darken(fig: Figure, mode: Mode) -> None:
    """Turn a figure drawn for a white page into one for ``mode``'s page, in place."""
    fig.set_facecolor(mode.background)
    for artist in fig.findobj():
        if isinstance(artist, matplotlib.text.Text):
            if _is_ink(artist.get_color()):  # white text sits on something dark already
                artist.set_color(mode.ink)
            bbox = artist.get_bbox_patch()
            if bbox is not None:
                bbox.set_facecolor(_swap(bbox.get_facecolor(), mode))
                bbox.set_edgecolor(_swap(bbox.get_edgecolor(), mode))
            continue
        if isinstance(artist, mpl.axes.Axes):
            artist.set_facecolor(_swap(artist.get_facecolor(), mode))
            for axis, labels in (("x", artist.get_xticklabels()), ("y", artist.get_yticklabels())):
                # Tick marks are ink; labels too, unless the figure coloured them (digit colours).
                plain = all(_is_ink(label.get_color()) for label in labels)
                artist.tick_params(axis=axis, which="both", **({"colors": mode.ink} if plain else {"color": mode.ink}))
            continue
        if isinstance(artist, mpl.spines.Spine):
            artist.set_edgecolor(_swap(artist.get_edgecolor(), mode))
            continue
        if isinstance(artist, mpl.lines.Line2D):
            artist.set_color(_swap(artist.get_color(), mode))
            artist.set_markeredgecolor(_swap(artist.get_markeredgecolor(), mode))
            artist.set_markerfacecolor(_swap(artist.get_markerfacecolor(), mode))
            continue
        if isinstance(artist, mpl.legend.Legend):
            frame = artist.get_frame()
            frame.set_facecolor(_swap(frame.get_facecolor(), mode))
            frame.set_edgecolor(_swap(frame.get_edgecolor(), mode))
            continue
        if isinstance(artist, mpl.cm.ScalarMappable):
            cmap = artist.get_cmap()
            if isinstance(cmap, Colormap) and cmap.name in DARK_CMAPS:
                artist.set_cmap(DARK_CMAPS[cmap.name])
        if isinstance(artist, mpl.collections.Collection):
            artist.set_edgecolor([_swap(c, mode) for c in artist.get_edgecolor()] or "none")
            if artist.get_array() is None:  # colours of its own, not from a colour map
                artist.set_facecolor([_swap(c, mode) for c in artist.get_facecolor()] or "none")
        if isinstance(artist, mpl.patches.Patch):
            # Bars and boxes keep their fill (data colours); only their black outlines change.
            artist.set_edgecolor(_swap(artist.get_edgecolor(), mode))


class _TextRecorder:
    """While active, every Text drawn is recorded with its window extent; with ``hide``, none is drawn."""

    def __init__(self, hide: bool):
        self.hide = hide
        self.drawn: list[tuple[matplotlib.text.Text, Bbox]] = []

    def __enter__(self):
        self._draw = matplotlib.text.Text.draw
        self._figure_draw = Figure.draw
        recorder = self

        def figure_draw(fig, renderer):
            recorder.drawn.clear()  # savefig may draw more than once: the last drawing is the PNG
            return recorder._figure_draw(fig, renderer)

        def draw(text, renderer):
            if text.get_visible() and text.get_text().strip():
                recorder.drawn.append((text, text.get_window_extent(renderer)))
            if not recorder.hide:
                recorder._draw(text, renderer)

        matplotlib.text.Text.draw = draw
        Figure.draw = figure_draw
        return self

    def __exit__(self, *exc):
        matplotlib.text.Text.draw = self._draw
        Figure.draw = self._figure_draw


def _save(fig: Figure, bbox: Bbox, hide_text: bool) -> tuple[bytes, list[tuple[matplotlib.text.Text, list[int]]]]:
    """The figure as PNG bytes cropped to ``bbox`` (inches), and each drawn text with its pixel box."""
    buffer = io.BytesIO()
    with _TextRecorder(hide_text) as recorder:
        fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches=bbox, facecolor=fig.get_facecolor())
    # While savefig draws a cropped figure, window coordinates are the crop's pixels
    # (origin bottom left); the PNG's rows run from the top.
    height = Image.open(io.BytesIO(buffer.getvalue())).height
    boxes = []
    for text, extent in recorder.drawn:
        x0, x1, y0, y1 = extent.x0, extent.x1, height - extent.y1, height - extent.y0
        boxes.append((text, [int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1))]))
    return buffer.getvalue(), boxes


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float) / 255


def _png(fig: Figure, bbox: Bbox, mode: Mode) -> tuple[bytes, str]:
    """The figure as it stands in ``mode``, its text made legible: the PNG, and its text boxes as JSON.

    Drawn first without text: the median colour under each text's box there is what the
    text must stand out from; a text no colour can make stand out (a mid-tone under it)
    is drawn on a backdrop of the page's background. Boxes where the text changed no pixel (a tick label drawn
    outside the crop, say) are left out.
    """
    for text in fig.findobj(matplotlib.text.Text):
        if getattr(text, BACKDROP, False):  # the other mode's backdrop: measured again below
            text.set_bbox(None)
            setattr(text, BACKDROP, False)
    blank_png, boxes = _save(fig, bbox, hide_text=True)
    blank = _pixels(blank_png)
    h, w, _ = blank.shape

    def region(image, box):
        x0, y0, x1, y1 = box
        return image[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]

    for text, box in boxes:
        under = region(blank, box).reshape(-1, 3)
        if len(under):
            background = np.median(under, axis=0)
            color = legible(text.get_color(), background)
            if contrast(color, background) < MIN_CONTRAST and text.get_bbox_patch() is None:
                # A mid-tone (a heat-map cell near the middle of its range): neither black
                # nor white text reaches the contrast, so the text gets the page's backdrop.
                text.set_bbox({"facecolor": mode.background, "edgecolor": "none", "boxstyle": "square,pad=0.15"})
                setattr(text, BACKDROP, True)
                color = legible(text.get_color(), mode.background)
            text.set_color(color)
    png, boxes = _save(fig, bbox, hide_text=False)
    shown = _pixels(png)
    if shown.shape != blank.shape:
        raise RuntimeError(f"the figure drew at {shown.shape[:2]} with its text and {blank.shape[:2]} without")
    drawn = [
        {"box": box, "color": to_hex(text.get_color())}
        for text, box in boxes
        if np.abs(region(shown, box) - region(blank, box)).max(initial=0) > 0.1
    ]
    return png, json.dumps(drawn)


def render(fig: Figure) -> bytes:
    """The light PNG of ``fig``, carrying its dark rendering and both renderings' text boxes.

    The figure is changed (it ends as the dark rendering): call this last, then close it.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"render needs a matplotlib Figure, got {type(fig).__name__}")
    fig.canvas.draw()  # settle the layout before measuring where the figure's content ends
    pad = mpl.rcParams["savefig.pad_inches"]
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(pad)
    light, light_text = _png(fig, bbox, LIGHT)
    _darken(fig, DARK)
    dark, dark_text = _png(fig, bbox, DARK)
    dark = _with_chunks(dark, {TEXT_KEY: dark_text})
    return _with_chunks(light, {TEXT_KEY: light_text, DARK_KEY: base64.b64encode(dark).decode("ascii")})


def _with_chunks(png: bytes, chunks: dict[str, str]) -> bytes:
    """``png`` re-encoded once, with ``chunks`` as its text chunks."""
    image = Image.open(io.BytesIO(png))
    info = PngInfo()
    for k, v in chunks.items():
        info.add_text(k, v)
    out = io.BytesIO()
    image.save(out, format="png", pnginfo=info, optimize=True)
    return out.getvalue()


def text_contrast(pixels: np.ndarray, box, color) -> float:
    """The contrast of a text of ``color`` against what lies under it in ``pixels``.

    ``pixels`` is an (H, W, 3) RGB array in [0, 1] (a rendering, or a screenshot of one
    scaled to the rendering's size), ``box`` the text's ``[x0, y0, x1, y1]``; what lies
    under the text is the median colour of the box (a text covers a small part of it).
    The colour comes from the figure, not the pixels: the glyphs of small text are
    anti-aliased, so no pixel of them need reach the text's colour.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w, _ = pixels.shape
    region = pixels[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].reshape(-1, 3)
    if len(region) == 0:
        raise ValueError(f"text box {list(box)} lies outside the {w} × {h} image")
    return contrast(color, np.median(region, axis=0))


def text_chunks(png: bytes) -> dict[str, str]:
    """The text chunks of a PNG (empty for a PNG this module did not write)."""
    return dict(Image.open(io.BytesIO(png)).text)


def dark_png(png: bytes) -> bytes | None:
    """The dark rendering carried by a light PNG from :func:`render`, or None."""
    value = text_chunks(png).get(DARK_KEY)
    return None if value is None else base64.b64decode(value)


def text_boxes(png: bytes) -> list[dict]:
    """Where a rendered figure's text is: ``{"box": [x0, y0, x1, y1], "color": "#rrggbb"}`` per text.

    Boxes are in the PNG's pixels, origin top left, and hold only texts that were drawn.
    """
    return json.loads(text_chunks(png).get(TEXT_KEY, "[]"))


class Rendered:
    """A figure rendered for the book: shows as its light PNG in a notebook (``_repr_png_``)."""

    def __init__(self, fig: Figure):
        width, height = fig.get_size_inches() * fig.dpi
        self.description = f"<Figure size {width:g}x{height:g} with {len(fig.axes)} Axes>"
        self.png = render(fig)

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return self.description


__all__ = [
    "DARK",
    "DARK_CMAPS",
    "LIGHT",
    "MIN_CONTRAST",
    "Mode",
    "Rendered",
    "contrast",
    "dark_png",
    "legible",
    "luminance",
    "text_contrast",
    "render",
    "text_boxes",
]
