"""Tests of jordanlab.topology.fill: exact masks, parity == flood == binary_fill_holes, kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path
from scipy import ndimage

from jordanlab.topology import FillMethod, InvalidBoundaryError, fill, validate
from jordanlab.topology._thinning import SIMPLE_POINT_TABLE, has_redundant_pixels, thin

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)
METHODS = list(FillMethod)


def img(text: str) -> np.ndarray:
    """Parse a picture: '#' curve, '.' background, 'o' background expected inside (-> 0 here)."""
    rows = [r.strip() for r in text.strip().splitlines()]
    return np.array([[ch == "#" for ch in r] for r in rows], dtype=np.uint8)


def expected(text: str) -> np.ndarray:
    rows = [r.strip() for r in text.strip().splitlines()]
    return np.array([[ch in "#o" for ch in r] for r in rows], dtype=np.uint8)


# ------------------------------------------------------------------------------------------------
# Hand-built curves with exact masks.
# ------------------------------------------------------------------------------------------------

PICTURES = {
    "square": """
        .......
        .#####.
        .#ooo#.
        .#ooo#.
        .#####.
        .......
    """,
    "diamond": """
        .........
        ....#....
        ...#o#...
        ..#ooo#..
        .#ooooo#.
        ..#ooo#..
        ...#o#...
        ....#....
        .........
    """,
    "nested_rings": """
        ...........
        .#########.
        .#ooooooo#.
        .#o#####o#.
        .#o#...#o#.
        .#o#...#o#.
        .#o#####o#.
        .#ooooooo#.
        .#########.
        ...........
    """,
    "ring_in_ring_in_ring": """
        .............
        .###########.
        .#ooooooooo#.
        .#o#######o#.
        .#o#.....#o#.
        .#o#.###.#o#.
        .#o#.#o#.#o#.
        .#o#.###.#o#.
        .#o#.....#o#.
        .#o#######o#.
        .#ooooooooo#.
        .###########.
        .............
    """,
    "side_by_side": """
        ............
        .####..###..
        .#oo#..#o#..
        .####..#o#..
        .......###..
        ............
    """,
    # A U: rows 1-3 cross the two arms through horizontal tangent runs of the top edges.
    "u_shape": """
        ..............
        .####....####.
        .#oo#....#oo#.
        .#oo######oo#.
        .#oooooooooo#.
        .############.
        ..............
    """,
    "diagonal_u": """
        ...........
        ..#.....#..
        .#o#...#o#.
        .#oo#.#oo#.
        .#ooo#ooo#.
        .#ooooooo#.
        ..#######..
        ...........
    """,
    "thick_ring": """
        ..........
        .########.
        .########.
        .##oooo##.
        .##oooo##.
        .##oooo##.
        .########.
        .########.
        ..........
    """,
    "thick_nested": """
        ..............
        .############.
        .############.
        .##oooooooo##.
        .##o######o##.
        .##o######o##.
        .##o##..##o##.
        .##o######o##.
        .##o######o##.
        .##oooooooo##.
        .############.
        .############.
        ..............
    """,
    "touches_image_border": """
        #####..
        #ooo#..
        #ooo#..
        #####..
    """,
    "peaks_and_valleys": """
        ...............
        ...#.....#.....
        ..#o#...#o#....
        .#ooo#.#ooo#...
        .#oooo#ooooo#..
        .#ooooooooooo#.
        ..###########..
        ...............
    """,
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", sorted(PICTURES))
def test_hand_built_exact_mask(name: str, method: FillMethod) -> None:
    boundary, want = img(PICTURES[name]), expected(PICTURES[name])
    validate(boundary)
    got = fill(boundary, method=method)
    assert got.dtype == np.uint8 and got.shape == boundary.shape
    np.testing.assert_array_equal(got, want)


def test_string_method_and_default_equal_enum() -> None:
    boundary = img(PICTURES["nested_rings"])
    np.testing.assert_array_equal(fill(boundary), fill(boundary, method="parity"))
    np.testing.assert_array_equal(fill(boundary, method="flood"), fill(boundary, method=FillMethod.FLOOD))


def test_unknown_method_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown fill method 'scan'.*'parity', 'flood'"):
        fill(img(PICTURES["square"]), method="scan")


def test_float_input_is_refused() -> None:
    with pytest.raises(TypeError, match=r"boundary must have a bool or integer dtype, got float32"):
        fill(img(PICTURES["square"]).astype(np.float32))


def test_wrong_ndim_is_refused() -> None:
    with pytest.raises(ValueError, match=r"4-D shape \(1, 1, 6, 7\)"):
        fill(img(PICTURES["square"])[None, None])


def test_empty_and_degenerate_shapes() -> None:
    for method in METHODS:
        assert fill(np.zeros((0, 5, 5), np.uint8), method=method).shape == (0, 5, 5)
        np.testing.assert_array_equal(fill(np.zeros((4, 4), np.uint8), method=method), 0)
        one_row = np.array([[0, 1, 1, 0]], np.uint8)  # not a valid boundary, but must not crash
        np.testing.assert_array_equal(fill(one_row, method=method), one_row)


def test_input_not_mutated_and_bool_equals_uint8() -> None:
    boundary = img(PICTURES["thick_nested"])
    before = boundary.copy()
    for method in METHODS:
        out = fill(boundary.astype(bool), method=method)
        np.testing.assert_array_equal(out, fill(boundary, method=method))
        np.testing.assert_array_equal(boundary, before)


def test_nonzero_values_count_as_curve() -> None:
    boundary = img(PICTURES["diamond"])
    np.testing.assert_array_equal(fill(boundary * 255), fill(boundary))


# ------------------------------------------------------------------------------------------------
# Random valid boundaries: polygons rasterized here by point-in-polygon, and jordanlab.curves.
# ------------------------------------------------------------------------------------------------


def blob_region(rng: np.random.Generator, h: int, w: int, cx: float, cy: float, r0: float) -> np.ndarray:
    """Pixels whose centre is inside a smooth random star-shaped polygon (Fourier radius)."""
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 5):
        radius += rng.uniform(-0.2, 0.2) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    poly = np.c_[cx + r0 * radius * np.cos(theta), cy + r0 * radius * np.sin(theta)]
    yy, xx = np.mgrid[0:h, 0:w]
    return Path(poly).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(h, w)


def contour(region: np.ndarray, thickness: int) -> np.ndarray:
    """The pixels of ``region`` within ``thickness`` 4-steps of its complement."""
    return region & ~ndimage.binary_erosion(region, FOUR, iterations=thickness, border_value=0)


@st.composite
def nested_boundaries(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(boundary, expected figure) for 1-3 nested blobs with strokes 1-3 px."""
    seed = draw(st.integers(0, 2**32 - 1))
    levels = draw(st.integers(1, 3))
    thickness = draw(st.integers(1, 3))
    size = draw(st.integers(24, 72))
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(size * 0.4, size * 0.6, 2)
    boundary = np.zeros((size, size), bool)
    figure = np.zeros((size, size), bool)
    r0 = size * 0.38
    for level in range(levels):
        region = blob_region(rng, size, size, cx, cy, r0)
        if level:  # keep well inside the previous interior
            region &= ndimage.binary_erosion(inner, EIGHT, iterations=thickness + 2)
        stroke = contour(region, thickness)
        inner = region & ~stroke
        boundary |= stroke
        figure = (figure | stroke | inner) if level % 2 == 0 else ((figure & ~inner) | stroke)
        r0 = r0 * 0.55
    return boundary.astype(np.uint8), figure.astype(np.uint8)


@settings(max_examples=60)
@given(nested_boundaries())
def test_random_nested_thick_parity_equals_flood_equals_construction(case: tuple[np.ndarray, np.ndarray]) -> None:
    boundary, figure = case
    try:
        validate(boundary)
    except InvalidBoundaryError:
        return  # the construction touched or pinched; validate's own tests cover the message
    np.testing.assert_array_equal(fill(boundary, method="flood"), figure)
    np.testing.assert_array_equal(fill(boundary, method="parity"), figure)


@settings(max_examples=30)
@given(nested_boundaries())
def test_fill_commutes_with_flips_and_transpose(case: tuple[np.ndarray, np.ndarray]) -> None:
    """The scan runs rightwards along rows; the figure does not depend on that choice."""
    boundary, _ = case
    try:
        validate(boundary)
    except InvalidBoundaryError:
        return
    want = fill(boundary)
    np.testing.assert_array_equal(fill(boundary[:, ::-1]), want[:, ::-1])
    np.testing.assert_array_equal(fill(boundary[::-1]), want[::-1])
    np.testing.assert_array_equal(fill(boundary.T), want.T)  # non-contiguous input too
    np.testing.assert_array_equal(fill(np.asfortranarray(boundary)), want)


@settings(max_examples=40)
@given(nested_boundaries())
def test_single_curve_agrees_with_binary_fill_holes(case: tuple[np.ndarray, np.ndarray]) -> None:
    boundary, _ = case
    labels, n = ndimage.label(boundary, EIGHT)
    outer = (labels == labels[boundary.nonzero()][0]).astype(np.uint8)  # the first curve only
    try:
        validate(outer)
    except InvalidBoundaryError:
        return
    holes = ndimage.binary_fill_holes(outer, FOUR).astype(np.uint8)  # 4-connected background
    np.testing.assert_array_equal(fill(outer), holes)
    np.testing.assert_array_equal(fill(outer, method="flood"), holes)


def _curves_family_batch(family: str, n: int, size: int, thickness: int, seed: int) -> np.ndarray:
    curves = pytest.importorskip("jordanlab.curves")
    samplers = {
        "blob": curves.blob,
        "polygon": curves.polygon,
        # thick strokes need wider corridors than the spiral's defaults
        "spiral": lambda rng, size: curves.spiral(rng, size, gap=(3, 5, 7)[thickness - 1], width=(3, 5, 7)[thickness - 1]),
        "random_walk": curves.random_walk,
        "multi-3": lambda rng, size: curves.multi(rng, size, 3),
        "nested": curves.nested,
        "texture": curves.texture,
    }
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        _, boundary = curves.sample_boundary(rng, samplers[family], size, thickness=thickness)
        out.append(boundary)
    return np.stack(out)


@pytest.mark.parametrize("thickness", [1, 2, 3])
@pytest.mark.parametrize("family", ["blob", "polygon", "spiral", "random_walk", "multi-3", "nested", "texture"])
def test_curves_families_parity_equals_flood(family: str, thickness: int) -> None:
    batch = _curves_family_batch(family, 6, 64, thickness, seed=7)
    if (family, thickness) != ("texture", 3):
        # curves.texture with 3-px strokes sometimes covers the whole inside of a small shape (a
        # filled blob, refused by validate as "does not enclose any background"); the two fills
        # must still agree on it.
        validate(batch)
    parity, flood = fill(batch), fill(batch, method="flood")
    np.testing.assert_array_equal(parity, flood)
    assert parity.sum() > batch.sum()  # something is inside
    if family in ("blob", "polygon", "spiral", "random_walk"):
        holes = np.stack([ndimage.binary_fill_holes(b, FOUR) for b in batch]).astype(np.uint8)
        np.testing.assert_array_equal(parity, holes)


# ------------------------------------------------------------------------------------------------
# Batches and torch.
# ------------------------------------------------------------------------------------------------


def _mixed_batch() -> np.ndarray:
    names = sorted(PICTURES)
    h = max(img(PICTURES[n]).shape[0] for n in names)
    w = max(img(PICTURES[n]).shape[1] for n in names)
    batch = np.zeros((len(names), h, w), np.uint8)
    for i, n in enumerate(names):
        b = img(PICTURES[n])
        batch[i, : b.shape[0], : b.shape[1]] = b
    return batch


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_per_image(method: FillMethod) -> None:
    batch = _mixed_batch()
    whole = fill(batch, method=method)
    for i in range(len(batch)):
        np.testing.assert_array_equal(whole[i], fill(batch[i], method=method))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.int64])
def test_torch_cpu_matches_numpy(method: FillMethod, dtype: torch.dtype) -> None:
    batch = _mixed_batch()
    out = fill(torch.from_numpy(batch).to(dtype), method=method)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.device.type == "cpu"
    np.testing.assert_array_equal(out.numpy(), fill(batch, method=method))
    single = fill(torch.from_numpy(batch[0]).to(dtype), method=method)
    assert single.shape == batch[0].shape


def test_torch_native_path_matches_numpy() -> None:
    """The device path (pure torch ops, used on CUDA) run on CPU tensors against the packed numpy."""
    from jordanlab.topology._fill import _crossing_parity_torch_native

    for batch in (_mixed_batch(), _curves_family_batch("texture", 3, 48, 2, seed=11)):
        got = _crossing_parity_torch_native(torch.from_numpy(batch).bool())
        np.testing.assert_array_equal(got.to(torch.uint8).numpy(), fill(batch))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_torch_cuda_matches_numpy(method: FillMethod) -> None:
    batch = np.concatenate([_curves_family_batch("texture", 4, 64, t, seed=5) for t in (1, 2, 3)])
    out = fill(torch.from_numpy(batch).cuda(), method=method)
    assert out.is_cuda and out.dtype == torch.uint8
    np.testing.assert_array_equal(out.cpu().numpy(), fill(batch, method=method))


# ------------------------------------------------------------------------------------------------
# Widths that are not multiples of 64 (bit packing) and thinning internals.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [5, 8, 63, 64, 65, 128, 130, 256])
def test_packing_widths(width: int) -> None:
    rng = np.random.default_rng(width)
    h = 20
    boundary = np.zeros((h, width), np.uint8)
    # A rectangle whose right edge is the last column, and random row runs elsewhere.
    boundary[2, 1:width] = boundary[h - 3, 1:width] = 1
    boundary[2 : h - 2, 1] = boundary[2 : h - 2, width - 1] = 1
    np.testing.assert_array_equal(fill(boundary), fill(boundary, method="flood"))
    np.testing.assert_array_equal(fill(boundary)[3 : h - 3, 2 : width - 1], 1)
    del rng


def test_simple_point_table_known_cases() -> None:
    bits = {(-1, 0): 0, (-1, 1): 1, (0, 1): 2, (1, 1): 3, (1, 0): 4, (1, -1): 5, (0, -1): 6, (-1, -1): 7}

    def code(*cells: tuple[int, int]) -> int:
        return sum(1 << bits[c] for c in cells)

    assert not SIMPLE_POINT_TABLE[code()]  # isolated pixel: deleting it removes a component
    assert SIMPLE_POINT_TABLE[code((0, 1))]  # end pixel
    assert not SIMPLE_POINT_TABLE[code((0, -1), (0, 1))]  # middle of a line: would cut it
    assert not SIMPLE_POINT_TABLE[code((-1, -1), (1, 1))]  # middle of a diagonal line
    assert SIMPLE_POINT_TABLE[code((-1, 0), (0, 1))]  # redundant L corner
    assert not SIMPLE_POINT_TABLE[code(*bits)]  # interior pixel: would open a hole
    assert SIMPLE_POINT_TABLE[code((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1))]  # border of a block


@pytest.mark.parametrize("name", ["thick_ring", "thick_nested", "square", "nested_rings"])
def test_thinning_keeps_topology_and_gives_simple_curves(name: str) -> None:
    b = img(PICTURES[name]).astype(bool)
    thinned = thin(b[None])[0]
    assert (thinned <= b).all()
    assert not has_redundant_pixels(thinned[None]).any()
    degree = ndimage.convolve(thinned.astype(int), EIGHT.astype(int), mode="constant") - 1
    assert (degree[thinned] == 2).all()  # simple closed 8-curves
    assert ndimage.label(thinned, EIGHT)[1] == ndimage.label(b, EIGHT)[1]
    assert ndimage.label(~thinned, FOUR)[1] == ndimage.label(~b, FOUR)[1]
    torch_thinned = thin(torch.from_numpy(b)[None])[0].numpy()
    np.testing.assert_array_equal(torch_thinned, thinned)


# ------------------------------------------------------------------------------------------------
# Every preset and suite of jordanlab.data: validate, parity == flood == the stored masks.
# ------------------------------------------------------------------------------------------------


def _dataset_names() -> list[str]:
    try:
        from jordanlab.data import PRESETS, SUITES
    except ImportError:  # pragma: no cover - data layer not there
        return []
    return sorted(PRESETS) + sorted(SUITES)


@pytest.mark.parametrize("name", _dataset_names())
def test_every_preset_and_suite_parity_equals_flood(name: str) -> None:
    from jordanlab.data import PRESETS, make

    split = "train" if name in PRESETS else "test"
    boundaries, masks = make(name, split=split, n=24, seed=1)
    validate(boundaries)
    parity, flood = fill(boundaries), fill(boundaries, method="flood")
    np.testing.assert_array_equal(parity, flood)
    # data labels thick strokes as fill(thin centre curves) | stroke: independent of our thinning
    np.testing.assert_array_equal(parity, masks)


@pytest.mark.parametrize("as_torch", [False, True])
def test_sparse_thinning_equals_dense_reference(as_torch: bool) -> None:
    from jordanlab.topology._thinning import _thin_dense

    rng = np.random.default_rng(5)
    noise = rng.random((6, 24, 24)) < 0.45  # arbitrary sets, not only curves
    batch = np.concatenate([noise, _curves_family_batch("texture", 3, 24 * 2, 3, seed=2)[:, :24, :24].astype(bool)])
    x = torch.from_numpy(batch) if as_torch else batch
    sparse, dense = thin(x), _thin_dense(x)
    np.testing.assert_array_equal(np.asarray(sparse), np.asarray(dense))
    for got, b in zip(np.asarray(sparse), batch):  # topology kept on arbitrary sets too
        assert ndimage.label(got, EIGHT)[1] == ndimage.label(b, EIGHT)[1]
        assert ndimage.label(np.pad(~got, 1, constant_values=True), FOUR)[1] == ndimage.label(
            np.pad(~b, 1, constant_values=True), FOUR
        )[1]
