"""Curve families, compositions, affine distortion and rejection sampling."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from scipy import ndimage

import jordanlab.curves as C
from jordanlab.curves._common import fits
from jordanlab.topology import fill

FOUR = ndimage.generate_binary_structure(2, 1)
SINGLE = {
    "blob": C.blob,
    "polygon": C.polygon,
    "spiral": C.spiral,
    "random_walk": C.random_walk,
    "simple_shape": C.simple_shape,
}
COMPOSED = {
    "multi-3": partial(C.multi, k=3),
    "nested": C.nested,
    "texture": C.texture,
}


@pytest.mark.parametrize("name", sorted(SINGLE))
@pytest.mark.parametrize("size", [32, 64, (48, 80)])
def test_single_families_fit_canvas_and_are_deterministic(name, size):
    f = SINGLE[name]
    a = f(np.random.default_rng([7, 1]), size)
    b = f(np.random.default_rng([7, 1]), size)
    c = f(np.random.default_rng([7, 2]), size)
    assert a.dtype == np.float64 and a.ndim == 2 and a.shape[1] == 2
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert fits([a], size)


@pytest.mark.parametrize("name", sorted(SINGLE) + sorted(COMPOSED))
@pytest.mark.parametrize("size", [32, 64])
def test_every_family_rasterizes_to_valid_boundaries(name, size):
    f = {**SINGLE, **COMPOSED}[name]
    if name == "texture" and size == 32:
        size = 48
    for i in range(6):
        curves, b = C.sample_boundary(np.random.default_rng([3, i]), f, size)
        nb = ndimage.convolve(b.astype(int), np.ones((3, 3), int), mode="constant")[b == 1] - 1
        assert (nb == 2).all()
        _, n_bg = ndimage.label(b == 0, structure=FOUR)
        assert n_bg == 1 + len(curves)
        np.testing.assert_array_equal(fill(b), fill(b, method="flood"))


def test_blob_radius_ratio_and_circumradius():
    for i in range(20):
        rng = np.random.default_rng(i)
        c = C.blob(rng, 100, center=(50, 50), radius=30, min_ratio=0.6)
        r = np.hypot(c[:, 0] - 50, c[:, 1] - 50)
        assert r.max() == pytest.approx(30)
        assert r.min() / r.max() >= 0.6 - 1e-12


def test_polygon_vertices_sorted_by_angle_and_radii_in_range():
    rng = np.random.default_rng(0)
    p = C.polygon(rng, 100, center=(50, 50), radius=40, n_vertices=9, r_min=0.5)
    assert len(p) == 9
    r = np.hypot(p[:, 0] - 50, p[:, 1] - 50)
    assert (r >= 20 - 1e-9).all() and (r <= 40 + 1e-9).all()
    ang = np.unwrap(np.arctan2(p[:, 1] - 50, p[:, 0] - 50))
    assert (np.diff(ang) > 0).all() or (np.diff(ang) < 0).all()


def test_spiral_corridor_is_one_long_region():
    rng = np.random.default_rng(5)
    curve = C.spiral(rng, 64, turns=3.0)
    b = C.rasterize(curve, 64)
    inside = fill(b) & (1 - b)
    lab, n = ndimage.label(inside, structure=FOUR)
    assert n == 1
    # The corridor is long: its 4-connected geodesic extent dwarfs the canvas.
    assert inside.sum() > 3 * 64
    with pytest.raises(ValueError, match="turns"):
        C.spiral(rng, 64, turns=20.0)
    with pytest.raises(ValueError, match="width and gap"):
        C.spiral(rng, 64, width=1.0)


def test_random_walk_is_rectilinear_on_the_lattice_without_rotation():
    c = C.random_walk(np.random.default_rng(2), 64, cell=4, rotate=False)
    d = np.roll(c, -1, 0) - c
    assert ((d[:, 0] == 0) ^ (d[:, 1] == 0)).all()  # axis-aligned edges, no zero-length edges
    assert np.allclose(np.abs(d) % 4, 0)
    assert np.allclose(c, np.round(c))


def test_multi_places_k_disjoint_shapes():
    for k in (2, 3, 5):
        curves = C.multi(np.random.default_rng(k), 64, k)
        assert len(curves) == k
        b = C.rasterize(curves, 64)
        _, n_bg = ndimage.label(b == 0, structure=FOUR)
        assert n_bg == 1 + k
    with pytest.raises(RuntimeError, match="could not place"):
        C.multi(np.random.default_rng(0), 16, 40, max_attempts=3)


def test_nested_levels_are_strictly_inside_each_other():
    found_deep = False
    for i in range(10):
        curves = C.nested(np.random.default_rng(i), 64)
        assert len(curves) >= 2
        fills = [fill(C.rasterize(c, 64)).astype(bool) for c in curves]
        for outer, inner, cin in zip(fills, fills[1:], curves[1:]):
            interior = outer & ~ndimage.binary_dilation(~outer, structure=np.ones((3, 3)))
            assert (inner <= interior).all()
        depth = np.sum(fills, axis=0)
        found_deep |= depth.max() >= 3
        b = C.rasterize(curves, 64)
        # Even-odd rule: a pixel inside j curves (not on one) is figure iff j is odd.
        mask = fill(b)
        np.testing.assert_array_equal(mask[b == 0], (depth[b == 0] % 2 == 1).astype(np.uint8))
    assert found_deep


def test_texture_has_many_shapes_and_some_nesting():
    counts, nested_any = [], False
    for i in range(8):
        curves = C.texture(np.random.default_rng(i), 128, nest_prob=0.5)
        counts.append(len(curves))
        fills = np.sum([fill(C.rasterize(c, 128)) for c in curves], axis=0)
        nested_any |= fills.max() >= 2
    assert min(counts) >= 3 and max(counts) >= 8
    assert nested_any


def test_affine_is_exact_linear_map_and_keeps_inputs():
    rng = np.random.default_rng(0)
    curve = C.blob(rng, 64)
    before = curve.copy()
    a = C.random_affine_matrix(rng)
    out = C.apply_affine([curve], a, (1.5, -2.0))[0]
    np.testing.assert_allclose(out, curve @ a.T + [1.5, -2.0])
    np.testing.assert_array_equal(curve, before)
    for i in range(20):
        moved = C.affine([curve], np.random.default_rng(i), 64)
        assert fits(moved, 64)
        assert not np.allclose(moved[0], curve)
    with pytest.raises(ValueError, match="scale"):
        C.random_affine_matrix(rng, scale=(0.0, 1.0))


def test_affine_determinant_matches_its_parts():
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = C.random_affine_matrix(rng, scale=(0.8, 1.2), shear=0.3)
        det = np.linalg.det(a)
        assert 0.8**2 - 1e-9 <= det <= 1.2**2 + 1e-9  # rotation and shear have determinant 1


def test_sample_boundary_is_deterministic_and_gives_up_clearly():
    a = C.sample_boundary(np.random.default_rng(4), C.texture, 96)
    b = C.sample_boundary(np.random.default_rng(4), C.texture, 96)
    np.testing.assert_array_equal(a[1], b[1])

    def touching(rng, size):
        sq = np.array([[2.0, 2.0], [8.0, 2.0], [8.0, 8.0], [2.0, 8.0]])
        return [sq, sq + [7.0, 0.0]]

    with pytest.raises(RuntimeError, match="no valid boundary image after 5 attempts"):
        C.sample_boundary(np.random.default_rng(0), touching, 32, max_attempts=5)


def test_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        C.blob(0, 32)
    with pytest.raises(ValueError, match="size"):
        C.polygon(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="jitter"):
        C.polygon(np.random.default_rng(0), 32, jitter=1.5)
    with pytest.raises(ValueError, match="k must be"):
        C.multi(np.random.default_rng(0), 32, 0)
