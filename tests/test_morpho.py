"""Shape measures on synthetic strokes with known slant and thickness."""

import math

import numpy as np
import pytest

from fastinfo.morpho import measure, measure_one


def stroke(width: int, shear: float) -> np.ndarray:
    """A 20-row stroke, `width` pixels wide, whose top is shifted right by shear per row."""
    im = np.zeros((28, 28))
    for r in range(4, 24):
        c = 10 + round(shear * (23 - r))
        im[r, c : c + width] = 1.0
    return im


@pytest.mark.parametrize("width", [2, 3, 4, 5, 6])
def test_thickness_of_upright_bars(width):
    m = measure_one(stroke(width, 0.0))
    assert m["slant"] == pytest.approx(0.0, abs=1e-9)
    # an even width measures a pixel thinner: its skeleton sits half a pixel off the centre line
    assert m["thickness"] == pytest.approx(width if width % 2 else width - 1, abs=0.5)
    assert m["width"] == width and m["area"] == 20 * width


@pytest.mark.parametrize("shear", [-0.4, 0.25, 0.5])
def test_slant_of_sheared_strokes(shear):
    assert measure_one(stroke(3, shear))["slant"] == pytest.approx(math.atan(shear), abs=0.05)


def test_thicker_strokes_measure_thicker_and_blank_is_nan():
    values = measure(np.stack([stroke(w, 0.2) for w in (2, 4, 6)]))["thickness"]
    assert values[0] < values[1] < values[2]
    assert all(math.isnan(v) for v in measure_one(np.zeros((28, 28))).values())
