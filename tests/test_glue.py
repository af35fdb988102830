"""What the book glues: floats rounded so stored outputs do not change with float noise."""

import math

import numpy as np

from mnistlab import glue


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


def test_value_and_figure_return_nothing_for_a_cell_to_display():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert glue.value("x", 0.123456789) is None
    assert glue.figure("f", plt.figure()) is None
