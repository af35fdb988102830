"""Figures in two colour modes (mnistlab.render): contrast arithmetic against WCAG's, text boxes
against the pixels the text changed, and both renderings legible where each text is drawn."""

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from mnistlab import plots, render  # noqa: E402


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float) / 255


def test_contrast_matches_wcag_reference_values():
    assert render.contrast("black", "white") == pytest.approx(21.0)
    assert render.contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's classic borderline grey
    assert render.contrast("#123456", "#123456") == pytest.approx(1.0)
    assert render.contrast("red", "white") == pytest.approx(render.contrast("white", "red"))


@pytest.mark.parametrize("color", ["#bcbd22", "#999999", "#ffffff", "#08306b", "#1f77b4"])
@pytest.mark.parametrize("background", ["#ffffff", "#121212", "#7f7f7f"])
def test_legible_reaches_the_minimum_or_the_best_possible(color, background):
    got = render.legible(color, background, minimum=4.5)
    best = max(render.contrast("black", background), render.contrast("white", background))
    assert render.contrast(got, background) >= min(4.5, best) - 1e-9
    if render.contrast(color, background) >= 4.5:
        assert np.allclose(got, matplotlib.colors.to_rgba(color))


def _figure():
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.plot([0, 1, 2], [1, 3, 2], color="#000000", label="baseline")
    a.plot([0, 1, 2], [2, 1, 3], color="#bcbd22", label="olive")
    a.text(1, 2.5, "a grey note", color="#999999")
    a.legend()
    a.set(title="lines", xlabel="x")
    im = b.imshow(np.linspace(-1, 1, 28 * 28).reshape(28, 28), cmap="RdBu_r")
    b.text(14, 14, "mid", ha="center")  # dark text on the light middle of the map
    fig.colorbar(im, ax=b)
    return fig


def test_both_renderings_carry_legible_text_in_boxes_that_hold_it():
    png = render.render(_figure())
    dark = render.dark_png(png)
    assert dark is not None and render.dark_png(dark) is None
    for rendering, background in ((png, render.LIGHT.background), (dark, render.DARK.background)):
        image, boxes = pixels(rendering), render.text_boxes(rendering)
        assert len(boxes) >= 8  # title, label, legend, note, "mid", ticks ...
        for text in boxes:
            assert render.text_contrast(image, text["box"], text["color"]) >= render.MIN_CONTRAST - 1e-6, text
        corner = image[0, 0]
        assert np.allclose(corner, matplotlib.colors.to_rgb(background), atol=2 / 255)
    assert pixels(png).shape == pixels(dark).shape


def test_text_on_a_mid_tone_gets_a_backdrop_and_passes():
    """Neither black nor white reaches 7:1 on a grey of luminance 0.18 (both stop near 4.6:1)."""
    grey = 0.46  # sRGB value whose luminance is about 0.18
    assert max(render.contrast((grey,) * 3, end) for end in ("black", "white")) < render.MIN_CONTRAST
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.full((4, 4), grey), cmap="gray", vmin=0, vmax=1)
    ax.text(1.5, 1.5, "+27", ha="center", va="center", fontsize=6.5)
    ax.set_axis_off()
    png = render.render(fig)
    plt.close(fig)
    for rendering in (png, render.dark_png(png)):
        image, (text,) = pixels(rendering), render.text_boxes(rendering)
        assert render.text_contrast(image, text["box"], text["color"]) >= render.MIN_CONTRAST - 1e-6, text


def test_text_boxes_cover_every_pixel_the_text_draws():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_axis_off()
    ax.text(0.3, 0.5, "Hello", fontsize=14)
    png = render.render(fig)
    image = pixels(png)
    (text,) = render.text_boxes(png)
    x0, y0, x1, y1 = text["box"]
    ink = np.argwhere(image.min(axis=2) < 0.5)  # the text's dark pixels
    assert len(ink) > 20
    assert (ink[:, 0] >= y0 - 1).all() and (ink[:, 0] <= y1 + 1).all()
    assert (ink[:, 1] >= x0 - 1).all() and (ink[:, 1] <= x1 + 1).all()


def test_dark_rendering_swaps_ink_and_light_colour_maps_but_keeps_data_colours():
    fig, (a, b) = plt.subplots(1, 2)
    (black,) = a.plot([0, 1], [0, 1], color="#000000")
    (blue,) = a.plot([0, 1], [1, 0], color="#1f77b4")
    im = b.imshow(np.zeros((28, 28)), cmap="gray_r")
    render.render(fig)  # leaves the figure as its dark rendering
    assert matplotlib.colors.to_hex(black.get_color()) == render.DARK.ink
    assert matplotlib.colors.to_hex(blue.get_color()) == "#1f77b4"
    assert im.get_cmap().name == render.DARK_CMAPS["gray_r"]
    plt.close(fig)


def test_a_book_figure_renders_in_both_modes():
    cm = np.full((10, 10), 5) + np.diag(np.full(10, 300))
    import torch

    png = render.render(plots.confusion_matrix(torch.as_tensor(cm)))
    for rendering in (png, render.dark_png(png)):
        image = pixels(rendering)
        boxes = render.text_boxes(rendering)
        assert len(boxes) > 100  # a count in every cell, ticks, labels
        assert all(render.text_contrast(image, t["box"], t["color"]) >= render.MIN_CONTRAST - 1e-6 for t in boxes)


def test_render_rejects_what_is_not_a_figure():
    with pytest.raises(TypeError, match="matplotlib Figure"):
        render.render("not a figure")


def test_a_png_from_elsewhere_has_no_dark_rendering():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="png")
    assert render.dark_png(buffer.getvalue()) is None and render.text_boxes(buffer.getvalue()) == []


def test_text_contrast_refuses_a_box_outside_the_image():
    with pytest.raises(ValueError, match="outside"):
        render.text_contrast(np.zeros((10, 10, 3)), [20, 20, 30, 30], "white")
