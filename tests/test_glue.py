"""What the book glues: floats rounded so stored outputs do not change with float noise."""

import math

import numpy as np
import pytest

from mnistlab import glue, render


def test_floats_keep_four_significant_digits():
    assert glue.stored(0.7486249804496765) == 0.7486
    assert glue.stored(np.float32(1.0580151081085205)) == 1.058
    assert glue.stored(1.5543122344752192e-15) == 1.554e-15
    assert glue.stored(123456.0) == 123500.0


def test_noise_in_the_last_bits_is_gone():
    assert glue.stored(0.7668564915657043) == glue.stored(0.7668564319610596)


def test_other_values_are_glued_as_they_are():
    for v in (3, True, "four", [0.123456789]):
        assert glue.stored(v) is v
    assert math.isnan(glue.stored(float("nan")))


def test_value_hands_the_rounded_number_to_myst_nb_without_display(monkeypatch):
    calls = []
    monkeypatch.setattr(glue, "_myst_glue", lambda: lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(glue, "_glued", {})
    assert glue.value("x", 0.123456789) is None  # nothing for the cell to display
    assert calls == [(("x", 0.1235), {"display": False})]


def test_a_name_holds_one_value(monkeypatch):
    monkeypatch.setattr(glue, "_myst_glue", lambda: None)
    monkeypatch.setattr(glue, "_glued", {})
    glue.value("acc", 0.91)
    glue.value("acc", 0.91)  # a cell run again
    glue.value("nan", float("nan"))
    glue.value("nan", float("nan"))
    with pytest.raises(ValueError, match="already holds 0.91"):
        glue.value("acc", 0.92)


def test_figure_is_handed_over_displayed_and_closed(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    calls = []
    monkeypatch.setattr(glue, "_myst_glue", lambda: lambda *a, **k: calls.append((a, k)))
    fig = plt.figure()
    fig.add_subplot().set_title("a title")
    width, height = fig.get_size_inches() * fig.dpi
    assert glue.figure("f", fig) is None
    ((name, shown), options), = calls
    assert (name, options) == ("f", {"display": True})
    # Handed over as both renderings: the light PNG, carrying the dark one (mnistlab.render).
    assert isinstance(shown, render.Rendered) and render.dark_png(shown._repr_png_()) is not None
    assert repr(shown) == f"<Figure size {width:g}x{height:g} with 1 Axes>"  # as matplotlib writes it
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(TypeError, match="matplotlib Figure"):
        glue.figure("g", "not a figure")
