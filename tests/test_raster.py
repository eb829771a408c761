"""Rasterization into simple closed 8-curves: hand-made cases, rejections, hypothesis invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from jordanlab.curves import RasterError, digitize, rasterize
from jordanlab.topology import fill

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def neighbour_counts(img: np.ndarray) -> np.ndarray:
    """Number of 8-neighbours that are curve pixels, at every curve pixel."""
    p = np.pad(img.astype(int), 1)
    s = sum(np.roll(np.roll(p, dr, 0), dc, 1) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
    return s[1:-1, 1:-1][img == 1]


def assert_simple_curves(img: np.ndarray, n_curves: int) -> None:
    assert img.dtype == np.uint8 and set(np.unique(img)) <= {0, 1}
    nb = neighbour_counts(img)
    assert nb.min() == 2 and nb.max() == 2, f"neighbour counts {np.unique(nb)}"
    _, n_bg = ndimage.label(img == 0, structure=FOUR)
    assert n_bg == 1 + n_curves
    _, n_fg = ndimage.label(img, structure=EIGHT)
    assert n_fg == n_curves
    assert not img[0].any() and not img[-1].any() and not img[:, 0].any() and not img[:, -1].any()


def test_axis_aligned_square_exact_pixels():
    # The 4-connected outline's corner pixels would have 3 curve neighbours: a simple 8-curve cuts them.
    square = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    img = rasterize(square, (9, 9))
    expected = np.zeros((9, 9), np.uint8)
    expected[2, 3:6] = expected[6, 3:6] = expected[3:6, 2] = expected[3:6, 6] = 1
    np.testing.assert_array_equal(img, expected)


def test_diamond_has_no_redundant_corner_pixels():
    # A diamond: rounding a dense sampling gives 4-connected staircases; only the diagonal must stay.
    diamond = np.array([[5.0, 1.0], [9.0, 5.0], [5.0, 9.0], [1.0, 5.0]])
    img = rasterize(diamond, (11, 11))
    assert int(img.sum()) == 16
    assert_simple_curves(img, 1)
    path = digitize(diamond)
    assert len(path) == 16


def test_digitize_path_is_closed_8_path_without_redundant_pixels():
    theta = np.linspace(0, 2 * np.pi, 37, endpoint=False)
    curve = np.stack([20 + 13.3 * np.cos(theta), 20 + 9.7 * np.sin(theta)], 1)
    p = digitize(curve)
    step = np.abs(np.roll(p, -1, 0) - p).max(1)
    assert (step == 1).all()
    skip = np.abs(np.roll(p, -1, 0) - np.roll(p, 1, 0)).max(1)
    assert (skip == 2).all()


def test_union_equals_curves_rasterized_one_by_one():
    from jordanlab.curves import texture

    for i in range(5):
        curves = texture(np.random.default_rng(i), 128)
        try:
            union = rasterize(curves, 128)
        except RasterError:
            continue
        single = np.max([rasterize(c, 128) for c in curves], axis=0)
        np.testing.assert_array_equal(union, single)
        for c in curves:
            np.testing.assert_array_equal(digitize(c), digitize(c.copy()))


def test_touching_curves_are_rejected():
    a = np.array([[2.0, 2.0], [8.0, 2.0], [8.0, 8.0], [2.0, 8.0]])
    b = a + [7.0, 0.0]  # left edge one pixel right of a's right edge
    with pytest.raises(RasterError, match="8-neighbours"):
        rasterize([a, b], (12, 20))
    with pytest.raises(RasterError, match="overlap"):
        rasterize([a, a + [6.0, 0.0]], (12, 20))
    img = rasterize([a, a + [8.0, 0.0]], (12, 20))  # one background column between them
    assert_simple_curves(img, 2)


def test_self_touching_curve_is_rejected():
    # A U-shape whose arms come within one pixel of each other.
    u = np.array([[2, 2], [12, 2], [12, 5], [8, 5], [8, 4], [3, 4], [3, 8], [12, 8], [12, 12], [2, 12]], float)
    with pytest.raises(RasterError):
        rasterize(u, (16, 16))


def test_margin_and_size_errors():
    sq = np.array([[0.0, 2.0], [5.0, 2.0], [5.0, 6.0], [0.0, 6.0]])
    with pytest.raises(RasterError, match="leaves the canvas"):
        rasterize(sq, (10, 10))
    tiny = np.array([[3.0, 3.0], [3.4, 3.0], [3.2, 3.3]])
    with pytest.raises(RasterError, match="needs >= 4"):
        rasterize(tiny, (10, 10))


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.zeros((4, 3)), ValueError, r"shape \(K, 2\)"),
        (np.array([[1.0, 1.0], [2.0, 2.0]]), ValueError, "at least 3"),
        (np.array([[1.0, np.nan], [5.0, 1.0], [5.0, 5.0]]), ValueError, "non-finite"),
    ],
)
def test_bad_curve_input(bad, err, match):
    with pytest.raises(err, match=match):
        rasterize(bad, (10, 10))


def test_bad_options():
    sq = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    with pytest.raises(ValueError, match="thickness"):
        rasterize(sq, (10, 10), thickness=0)
    with pytest.raises(ValueError, match="shape"):
        rasterize(sq, (10, 10, 3))
    with pytest.raises(ValueError, match="at least one"):
        rasterize([], (10, 10))


@pytest.mark.parametrize("t", [2, 3])
def test_thick_strokes_dilate_thin_curve(t):
    theta = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    c = np.stack([16 + 9 * np.cos(theta), 16 + 8 * np.sin(theta)], 1)
    thin = rasterize(c, 32)
    thick = rasterize(c, 32, thickness=t)
    assert (thick >= thin).all() and thick.sum() > thin.sum()
    # Every thick pixel is within the t x t square of a thin pixel.
    lo, hi = -((t - 1) // 2), t // 2
    expected = np.zeros_like(thin)
    r, c = np.nonzero(thin)
    for dr in range(lo, hi + 1):
        for dc in range(lo, hi + 1):
            expected[r + dr, c + dc] = 1
    np.testing.assert_array_equal(thick, expected)
    _, n_bg = ndimage.label(thick == 0, structure=FOUR)
    assert n_bg == 2
    np.testing.assert_array_equal(fill(thick, method="flood"), fill(thin) | thick)


def test_thick_strokes_that_touch_are_rejected():
    a = np.array([[2.0, 2.0], [8.0, 2.0], [8.0, 8.0], [2.0, 8.0]])
    ok = rasterize([a, a + [8.0, 0.0]], (12, 20))  # fine when thin
    assert ok.sum() > 0
    with pytest.raises(RasterError, match="touch"):
        rasterize([a, a + [8.0, 0.0]], (12, 20), thickness=3)


@st.composite
def star_polygons(draw):
    n = draw(st.integers(3, 14))
    angles = np.sort(np.array(draw(st.lists(st.floats(0, 2 * np.pi, allow_nan=False), min_size=n, max_size=n, unique=True))))
    radii = np.array(draw(st.lists(st.floats(2.0, 13.0), min_size=n, max_size=n)))
    cx = draw(st.floats(15.0, 17.0))
    cy = draw(st.floats(15.0, 17.0))
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


@settings(max_examples=150)
@given(star_polygons())
def test_random_polygons_give_simple_closed_8_curves_or_rejection(curve):
    path = digitize(curve)
    if len(path) >= 2:
        assert (np.abs(np.roll(path, -1, 0) - path).max(1) <= 1).all()  # closed 8-path
    try:
        img = rasterize(curve, (32, 32))
    except RasterError:
        return
    assert_simple_curves(img, 1)
    np.testing.assert_array_equal(fill(img), fill(img, method="flood"))
    np.testing.assert_array_equal(fill(img), ndimage.binary_fill_holes(img).astype(np.uint8))


@given(st.integers(0, 2**32 - 1))
def test_random_circles_always_rasterize(seed):
    # Round, well-separated circles never need rejection: a deterministic positive case.
    rng = np.random.default_rng(seed)
    r = rng.uniform(3.0, 12.0)
    theta = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    c = np.stack([16 + r * np.cos(theta), 16 + r * np.sin(theta)], 1) + rng.uniform(-1, 1, 2)
    assert_simple_curves(rasterize(c, 32), 1)
