"""Validation of boundary images: say precisely what is wrong, and where."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

__all__ = ["InvalidBoundaryError", "validate"]

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
_PINHOLE = 2  # a region of at most this many pixels bounded by a curve that bounds 3+ regions: a pinhole


class InvalidBoundaryError(ValueError):
    """A boundary image is not a set of non-touching closed digital curves (see :func:`validate`).

    Attributes
    ----------
    problem : str or None
        ``"shape"``, ``"not-binary"``, ``"empty"``, ``"open"``, ``"touch"``, ``"pinhole"`` (curves touch
        and one of the regions has one or two pixels: likely a pinhole in a thick stroke; ``pixel`` is in it) or ``"dangling"``.
    pixel : (row, col) or None
        The pixel the message names, if any.
    image : int or None
        The image index in a batch, if any.
    """

    __module__ = "jordanlab.topology"

    def __init__(self, message: str, *, problem: str | None = None, pixel: tuple[int, int] | None = None,
                 image: int | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.pixel = None if pixel is None else (int(pixel[0]), int(pixel[1]))
        self.image = image


def _where(image: int | None, r: int, c: int) -> str:
    return f"pixel (row={r}, col={c})" + ("" if image is None else f" of image {image}")


def _as_numpy(boundary: Any) -> np.ndarray:
    if isinstance(boundary, torch.Tensor):
        return boundary.detach().cpu().numpy()
    return np.asarray(boundary)


def _check_binary(arr: np.ndarray, batched: bool) -> None:
    if arr.dtype == np.bool_:
        return
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidBoundaryError(f"boundary must hold numbers 0 and 1, got dtype {arr.dtype}", problem="not-binary")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        image, (r, c) = (idx[0], idx[1:]) if batched else (None, idx)
        raise InvalidBoundaryError(
            f"boundary is not binary: {_where(image, r, c)} has value {arr[idx].item()!r} "
            f"(expected 0 = background or 1 = curve; {int(bad.sum())} pixels are neither)",
            problem="not-binary", pixel=(r, c), image=image,
        )


def _end_pixel(curve: np.ndarray) -> tuple[int, int] | None:
    """First pixel (raster order) of ``curve`` with at most one 8-neighbour in ``curve``, if any."""
    counts = ndimage.convolve(curve.astype(np.uint8), _EIGHT.astype(np.uint8), mode="constant") - 1
    ends = np.argwhere(curve & (counts <= 1))
    return (int(ends[0, 0]), int(ends[0, 1])) if len(ends) else None


def _meeting_pixel(curve: np.ndarray, regions: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """A pixel of ``curve`` near which three of the background regions ``labels`` meet.

    Each region is dilated (8-neighbourhood) one step at a time; the first curve pixel covered by
    three or more dilated regions is returned (raster order). In padded coordinates.
    """
    rows, cols = np.nonzero(curve)
    r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, curve.shape[0])
    c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, curve.shape[1])
    box_curve = curve[r0:r1, c0:c1]
    grown = [regions[r0:r1, c0:c1] == lab for lab in labels]
    for _ in range(max(r1 - r0, c1 - c0)):
        grown = [ndimage.binary_dilation(g, _EIGHT) for g in grown]
        cover = np.sum(grown, axis=0) * box_curve
        if cover.max() >= 3:
            r, c = np.argwhere(cover == cover.max())[0]
            return int(r) + r0, int(c) + c0
    r, c = np.argwhere(box_curve)[0]  # not reached for 3 or more adjacent regions
    return int(r) + r0, int(c) + c0


def _validate_image(b: np.ndarray, image: int | None) -> None:
    if not b.any():
        where = "" if image is None else f"image {image} "
        raise InvalidBoundaryError(f"boundary {where}is empty: it has no curve pixel (value 1)", problem="empty",
                                   image=image)
    padded = np.pad(b, 1)
    curves, n_curves = ndimage.label(padded, structure=_EIGHT)
    regions, _ = ndimage.label(~padded, structure=_FOUR)
    # Region-curve adjacency through 4-adjacent pixel pairs (a diagonal contact between a region
    # and a curve implies a 4-contact through one of the two pixels sharing the corner).
    pairs = []
    for a, bb in (
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ):
        for cu, re in ((curves[a], regions[bb]), (curves[bb], regions[a])):
            hit = (cu > 0) & (re > 0)
            pairs.append(np.stack([cu[hit], re[hit]], axis=1))
    adjacency = np.unique(np.concatenate(pairs), axis=0)
    n_regions = np.bincount(adjacency[:, 0], minlength=n_curves + 1)
    counts = ndimage.convolve(padded.astype(np.uint8), _EIGHT.astype(np.uint8), mode="constant") - 1
    ends = padded & (counts <= 1)
    # The first problematic curve in raster order (labels follow the raster order of first pixels).
    problems = np.flatnonzero(n_regions[1:] != 2) + 1
    if ends.any():
        problems = np.concatenate([problems, curves[ends]])
    if problems.size == 0:
        return
    lab = int(problems.min())
    curve = curves == lab
    end = _end_pixel(curve)
    if n_regions[lab] < 2:
        if end is not None:
            r, c = end[0] - 1, end[1] - 1
            raise InvalidBoundaryError(
                f"open curve: {_where(image, r, c)} is an end of the curve (at most one "
                "8-neighbour on it); a closed curve separates an inside from the outside",
                problem="open", pixel=(r, c), image=image,
            )
        first = np.argwhere(curve)[0] - 1
        raise InvalidBoundaryError(
            f"open curve: the curve through {_where(image, int(first[0]), int(first[1]))} does "
            "not enclose any background (its complement is connected): it is open or filled",
            problem="open", pixel=(int(first[0]), int(first[1])), image=image,
        )
    if n_regions[lab] > 2:
        labels = adjacency[adjacency[:, 0] == lab, 1]
        r, c = _meeting_pixel(curve, regions, labels)
        message = (f"curves touch at {_where(image, r - 1, c - 1)}: the 8-connected curve there bounds "
                   f"{int(n_regions[lab])} background regions instead of 2 (two curves, or two parts "
                   "of one curve, are 8-adjacent)")
        sizes = np.bincount(regions.ravel())[labels]
        if sizes.min() <= _PINHOLE:
            # a tiny region: most likely a pinhole left inside a thick hand-drawn stroke
            hole = np.argwhere(regions == labels[int(np.argmin(sizes))])[0]
            hr, hc = int(hole[0]) - 1, int(hole[1]) - 1
            raise InvalidBoundaryError(
                f"{message}; the region at {_where(None, hr, hc)} has only {int(sizes.min())} pixel(s): "
                "a pinhole in a thick stroke? (fill it, or draw thinner)",
                problem="pinhole", pixel=(hr, hc), image=image,
            )
        raise InvalidBoundaryError(message, problem="touch", pixel=(r - 1, c - 1), image=image)
    assert end is not None  # a closed curve listed among the problems has an end pixel
    r, c = end[0] - 1, end[1] - 1
    raise InvalidBoundaryError(
        f"open curve: {_where(image, r, c)} is the end of a dangling branch (at most one "
        "8-neighbour on the curve)",
        problem="dangling", pixel=(r, c), image=image,
    )


def validate(boundary: Any) -> None:
    """Raise :class:`InvalidBoundaryError` unless ``boundary`` is a valid boundary image.

    Parameters
    ----------
    boundary : ndarray or Tensor of shape (H, W) or (N, H, W)

    Raises
    ------
    InvalidBoundaryError
        With a message naming the problem and, where there is one, the pixel ``(row, col)`` and
        the image index.

    Notes
    -----
    A *valid boundary* is exactly this (each point is checked, in this order):

    1. a 2-D ``(H, W)`` or 3-D ``(N, H, W)`` array or tensor;
    2. binary: every value is 0 (background) or 1 (curve pixel), any bool, integer or float dtype;
    3. every image has at least one curve pixel;
    4. every *curve* -- an 8-connected component of curve pixels -- is closed and touches nothing:
       its complement has exactly two 4-connected components, the outside and the inside, where
       the area outside the image counts as background (a curve may touch the image border).
       Equivalently, in the adjacency graph of curves and 4-connected background regions, every
       curve is adjacent to exactly two regions. One region: the curve is open (a pixel reported
       is an end pixel when there is one). Three or more: two curves, or two parts of one curve,
       touch (8-adjacent), and a pixel near which three regions meet is reported;
    5. no curve pixel has fewer than two 8-neighbours on its curve (no dangling end).

    Thickness is free: a stroke 2-3 pixels wide is a valid curve. These conditions make the
    region-curve adjacency graph a tree in which regions alternate with curves, so the even-odd
    depth of :func:`jordanlab.topology.fill` is well defined, and both fill methods agree.

    Examples
    --------
    >>> import numpy as np
    >>> segment = np.zeros((5, 5), np.uint8)
    >>> segment[2, 1:4] = 1
    >>> validate(segment)
    Traceback (most recent call last):
    ...
    jordanlab.topology.InvalidBoundaryError: open curve: pixel (row=2, col=1) is an end of the curve (at most one 8-neighbour on it); a closed curve separates an inside from the outside
    """
    arr = _as_numpy(boundary)
    if arr.ndim not in (2, 3):
        raise InvalidBoundaryError(
            f"boundary must have shape (H, W) or (N, H, W), got {arr.ndim}-D shape {arr.shape}", problem="shape"
        )
    batched = arr.ndim == 3
    _check_binary(arr, batched)
    b = arr.astype(bool)
    if batched:
        for i in range(b.shape[0]):
            _validate_image(b[i], i)
    else:
        _validate_image(b, None)
