"""Tests of jordanlab.topology.validate: each failure is named, with its pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jordanlab.topology import InvalidBoundaryError, fill, validate


def ring(h: int = 7, w: int = 7, top: int = 1, left: int = 1, size: int = 5) -> np.ndarray:
    b = np.zeros((h, w), np.uint8)
    b[top, left : left + size] = b[top + size - 1, left : left + size] = 1
    b[top : top + size, left] = b[top : top + size, left + size - 1] = 1
    return b


def test_valid_ring_passes_and_is_a_value_error_subclass() -> None:
    validate(ring())
    validate(ring().astype(bool))
    validate(ring().astype(np.float32))  # 0.0 / 1.0 are binary
    validate(torch.from_numpy(ring()))
    validate(np.stack([ring(), ring()]))
    assert issubclass(InvalidBoundaryError, ValueError)


def test_four_dimensional_input() -> None:
    with pytest.raises(InvalidBoundaryError, match=r"shape \(H, W\) or \(N, H, W\), got 4-D shape \(1, 1, 7, 7\)"):
        validate(ring()[None, None])
    with pytest.raises(InvalidBoundaryError, match=r"got 1-D"):
        validate(np.ones(5, np.uint8))


def test_not_binary_names_the_pixel_and_value() -> None:
    b = ring() * 2
    with pytest.raises(InvalidBoundaryError, match=r"not binary: pixel \(row=1, col=1\) has value 2 .*16 pixels"):
        validate(b)
    batch = np.stack([ring(), ring()])
    batch[1, 3, 4] = 7
    with pytest.raises(InvalidBoundaryError, match=r"pixel \(row=3, col=4\) of image 1 has value 7"):
        validate(batch)
    with pytest.raises(InvalidBoundaryError, match=r"value 0.5"):
        validate(ring() * 0.5 + (ring() == 0))


def test_empty() -> None:
    with pytest.raises(InvalidBoundaryError, match=r"boundary is empty: it has no curve pixel"):
        validate(np.zeros((6, 6), np.uint8))
    with pytest.raises(InvalidBoundaryError, match=r"boundary image 1 is empty"):
        validate(np.stack([ring(), np.zeros((7, 7), np.uint8)]))


def test_open_curve_line_segment_reports_an_end() -> None:
    b = np.zeros((8, 8), np.uint8)
    b[3, 2:6] = 1
    with pytest.raises(InvalidBoundaryError, match=r"open curve: pixel \(row=3, col=2\) is an end"):
        validate(b)


def test_open_curve_ring_with_a_gap() -> None:
    b = ring(9, 9, 1, 1, 7)
    b[1, 4] = 0  # a gap in the top side: pixels (1, 3) and (1, 5) are the ends
    with pytest.raises(InvalidBoundaryError, match=r"open curve: pixel \(row=1, col=3\) is an end"):
        validate(b)
    batch = np.stack([ring(9, 9, 1, 1, 7), b])
    with pytest.raises(InvalidBoundaryError, match=r"pixel \(row=1, col=3\) of image 1"):
        validate(batch)


def test_open_filled_blob_has_no_inside() -> None:
    b = np.zeros((6, 6), np.uint8)
    b[1:5, 1:5] = 1
    with pytest.raises(InvalidBoundaryError, match=r"the curve through pixel \(row=1, col=1\) does not enclose"):
        validate(b)


def test_dangling_branch_on_a_closed_curve() -> None:
    b = ring(9, 9, 2, 2, 5)
    b[1, 4] = b[0, 4] = 1  # a spur sticking up from the top side
    with pytest.raises(InvalidBoundaryError, match=r"pixel \(row=0, col=4\) is the end of a dangling branch"):
        validate(b)


def test_two_touching_curves_report_the_contact() -> None:
    b = np.zeros((7, 11), np.uint8)
    b[1:6, 1:6] = ring(5, 5, 0, 0, 5)
    b[1:6, 5:10] |= ring(5, 5, 0, 0, 5)  # shares column 5
    with pytest.raises(InvalidBoundaryError, match=r"curves touch at pixel \(row=(1|2), col=5\).*bounds 3 background regions"):
        validate(b)


def test_diagonally_touching_curves() -> None:
    b = np.zeros((12, 12), np.uint8)
    b[:6, :6] = ring(6, 6, 1, 1, 4)
    b[5:11, 5:11] |= ring(6, 6, 0, 0, 5)  # (4, 4) and (5, 5) are diagonal neighbours
    with pytest.raises(InvalidBoundaryError, match=r"curves touch at pixel \(row=(4|5), col=(4|5)\)"):
        validate(b)


def test_nested_curves_touching() -> None:
    b = ring(11, 11, 1, 1, 9)
    b[3:6, 2:5] |= ring(3, 3, 0, 0, 3)  # inner ring touches the outer's left side
    with pytest.raises(InvalidBoundaryError, match=r"curves touch at pixel \(row=[2-6], col=[1-4]\)"):
        validate(b)


def test_curve_touching_itself_figure_eight() -> None:
    b = ring(7, 11, 1, 1, 5)
    b |= ring(7, 11, 1, 5, 5)
    with pytest.raises(InvalidBoundaryError, match=r"curves touch .* bounds 3 background regions"):
        validate(b)


def test_thick_and_border_touching_curves_are_valid() -> None:
    b = np.zeros((8, 8), np.uint8)
    b[:, :] = 1
    b[2:6, 2:6] = 0  # a 2-pixel-thick frame along the image border
    validate(b)
    assert fill(b).all()


@settings(max_examples=30)
@given(st.integers(5, 20), st.integers(5, 20), st.data())
def test_rings_anywhere_are_valid_and_removing_a_side_pixel_opens_them(h: int, w: int, data: st.DataObject) -> None:
    size = data.draw(st.integers(3, min(h, w)))
    top = data.draw(st.integers(0, h - size))
    left = data.draw(st.integers(0, w - size))
    b = ring(h, w, top, left, size)
    validate(b)
    corners = {(top, left), (top, left + size - 1), (top + size - 1, left), (top + size - 1, left + size - 1)}
    sides = [tuple(int(v) for v in p) for p in np.argwhere(b) if tuple(int(v) for v in p) not in corners]
    r, c = data.draw(st.sampled_from(sides))
    b[r, c] = 0  # (a corner can go: its two neighbours are diagonal neighbours, the ring stays closed)
    with pytest.raises(InvalidBoundaryError, match=r"open curve"):
        validate(b)
