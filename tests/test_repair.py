"""topology.repair: valid drawings are left alone; pinholes, small gaps and stray dots are repaired so that the
figure is the one intended; and ``jordanlab fill --repair`` does it for any image Pillow reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from jordanlab.cli import main
from jordanlab.data import make
from jordanlab.topology import InvalidBoundaryError, fill, repair, validate

THIN, _ = make("shapes-32", n=24)
THICK, THICK_M = make("thick", n=24, size=32)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 23), st.booleans())
def test_valid_drawings_are_unchanged(i: int, thick: bool) -> None:
    b = (THICK if thick else THIN)[i]
    r = repair(b)
    assert r.valid and r.steps == [] and np.array_equal(r.boundary, b)


def _plain_pixels(b: np.ndarray) -> np.ndarray:
    """Curve pixels with exactly two 8-neighbours on the curve, both 4-neighbours on a straight line."""
    p = np.pad(b, 1)
    out = []
    for r, c in np.argwhere(b):
        win = p[r:r + 3, c:c + 3]
        if win.sum() == 3 and ((win[0, 1] and win[2, 1]) or (win[1, 0] and win[1, 2])):
            out.append((r, c))
    return np.array(out)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 23), st.integers(0, 10_000))
def test_a_one_pixel_gap_is_closed_and_the_figure_is_the_intended_one(i: int, j: int) -> None:
    b = THIN[i].copy()
    plain = _plain_pixels(b)
    r0, c0 = plain[j % len(plain)]
    b[r0, c0] = 0
    with pytest.raises(InvalidBoundaryError) as info:
        validate(b)
    assert info.value.problem in ("open", "dangling") and info.value.pixel is not None
    assert max(abs(info.value.pixel[0] - r0), abs(info.value.pixel[1] - c0)) == 1  # an end of the gap
    r = repair(b)
    assert r.valid, r.problem
    assert any("gap" in s for s in r.steps)
    # away from the original curve (thinning may move it by a pixel) the figure is the original one
    m_old, m_new = fill(THIN[i]), fill(r.boundary)
    away = ~ndimage.binary_dilation(THIN[i].astype(bool), iterations=1)
    assert np.array_equal(m_old[away], m_new[away])


def test_a_pinhole_in_a_thick_stroke_is_named_and_filled() -> None:
    found = 0
    for b, m in zip(THICK, THICK_M):
        inner = np.argwhere(ndimage.convolve(b, np.ones((3, 3), np.uint8), mode="constant") == 9)
        if not len(inner):
            continue
        r0, c0 = inner[len(inner) // 2]
        holed = b.copy()
        holed[r0, c0] = 0
        with pytest.raises(InvalidBoundaryError) as info:
            validate(holed)
        assert info.value.problem == "pinhole" and info.value.pixel == (r0, c0)
        r = repair(holed)
        assert r.valid and r.steps == ["filled 1 pinhole (1 pixel)"]
        assert np.array_equal(r.boundary, b) and np.array_equal(fill(r.boundary), m)
        found += 1
    assert found >= 5


def test_stray_dots_are_removed() -> None:
    b = THIN[0].copy()
    far = np.argwhere(~ndimage.binary_dilation(b.astype(bool), iterations=3))
    r0, c0 = far[0]
    b[r0, c0] = 1
    with pytest.raises(InvalidBoundaryError):
        validate(b)
    r = repair(b)
    assert r.valid and r.boundary[r0, c0] == 0 and any("stray" in s for s in r.steps)


def test_touching_curves_stay_invalid_and_say_so() -> None:
    b = np.zeros((12, 20), np.uint8)
    b[2, 2:9] = b[8, 2:9] = b[2:9, 2] = b[2:9, 8] = 1
    b[2, 9:16] = b[8, 9:16] = b[2:9, 15] = 1  # two squares sharing a side
    r = repair(b)
    assert not r.valid and "touch" in r.problem


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="boundary"):
        repair(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="max_gap"):
        repair(THIN[0], max_gap=-1)


def test_fill_repair_reads_a_jpeg(tmp_path, capsys) -> None:
    from PIL import Image

    b = THIN[3].copy()
    plain = _plain_pixels(b)
    r0, c0 = plain[len(plain) // 2]
    b[r0, c0] = 0
    big = np.kron(1 - b, np.ones((1, 1), np.uint8)) * 255  # dark curve on white
    Image.fromarray(big.astype(np.uint8)).save(tmp_path / "drawing.jpg", quality=95)
    assert main(["fill", str(tmp_path / "drawing.jpg"), "--out", str(tmp_path / "m.png")]) == 2  # not a PNG
    capsys.readouterr()
    assert main(["fill", str(tmp_path / "drawing.jpg"), "--out", str(tmp_path / "m.png"), "--repair",
                 "--repaired-out", str(tmp_path / "fixed.png")]) == 0
    out = capsys.readouterr().out
    assert "joined 1 gap" in out
    fixed = (np.asarray(Image.open(tmp_path / "fixed.png")) > 127).astype(np.uint8)
    mask = (np.asarray(Image.open(tmp_path / "m.png")) > 127).astype(np.uint8)
    validate(fixed)
    assert np.array_equal(mask, fill(fixed))
