"""Repair a hand-drawn boundary: fill pinholes, close small gaps, thin; say what was done.

A drawing made with a thick pen is rarely a valid boundary image (:func:`jordanlab.topology.validate`):
a stroke that crosses itself leaves *pinholes* (background pixels enclosed by the stroke), the last
stroke ends a pixel or two short of the first (an *open* curve), and stray dots enclose nothing.
:func:`repair` applies, in this order and only as far as needed:

1. **pinholes**: every background 4-component of at most ``max_hole`` pixels that does not touch the
   image border becomes curve;
2. if the image is still invalid, **gaps**: the strokes are thinned to one-pixel lines that keep their
   end pixels (a curve pixel with exactly one 8-neighbour); every two end pixels at Chebyshev distance
   ``d`` with ``2 <= d <= max_gap + 1`` (``max_gap`` missing pixels) are joined by a digital straight
   segment, nearest pairs first, each end used once;
3. **thin**: the topology-preserving thinning of :mod:`jordanlab.topology._thinning` (which also removes
   dangling branches), then components that enclose no background (dots, unclosed scribbles, which thin
   to single pixels) are removed.

The result need not be valid (two curves drawn across each other stay touching); validate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ._thinning import SIMPLE_POINT_TABLE, _NEIGHBOURS8, _SUBFIELDS, thin
from ._validate import InvalidBoundaryError, validate

__all__ = ["Repair", "repair"]

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)])
#: Simple pixels that are not end pixels: deleting them thins a stroke but keeps its ends.
_KEEP_ENDS_TABLE = SIMPLE_POINT_TABLE & (_POPCOUNT != 1)


@dataclass(frozen=True)
class Repair:
    """A repaired boundary and what was changed.

    Attributes
    ----------
    boundary : ndarray of shape (H, W), uint8 in {0, 1}
    steps : list of str
        One sentence per change, e.g. ``"filled 2 pinholes (3 pixels)"``.
    added, removed : ndarray of shape (H, W), bool
        Pixels that became curve / background.
    valid : bool
        Whether ``boundary`` passes :func:`~jordanlab.topology.validate`.
    problem : str or None
        The validation message when it does not.
    """

    boundary: np.ndarray
    steps: list[str] = field(default_factory=list)
    added: np.ndarray | None = None
    removed: np.ndarray | None = None
    valid: bool = True
    problem: str | None = None


def _problem(b: np.ndarray) -> str | None:
    try:
        validate(b)
    except InvalidBoundaryError as exc:
        return str(exc)
    return None


def _fill_pinholes(b: np.ndarray, max_hole: int) -> tuple[np.ndarray, int, int]:
    regions, n = ndimage.label(~b, structure=_FOUR)
    if n == 0:
        return b, 0, 0
    sizes = np.bincount(regions.ravel(), minlength=n + 1)
    border = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    small = np.flatnonzero(sizes <= max_hole)
    small = small[(small > 0) & ~np.isin(small, border)]
    hole = np.isin(regions, small)
    return b | hole, int(small.size), int(hole.sum())


def _thin_keep_ends(b: np.ndarray) -> np.ndarray:
    """Delete simple non-end pixels sub-field by sub-field until none is left (dense, one image)."""
    h, w = b.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = b
    changed = True
    while changed:
        changed = False
        for a, c in _SUBFIELDS:
            centre = p[1 + a:h + 1:2, 1 + c:w + 1:2]
            code = np.zeros(centre.shape, dtype=np.int64)
            for k, (dr, dc) in enumerate(_NEIGHBOURS8):
                code |= p[1 + a + dr:h + 1 + dr:2, 1 + c + dc:w + 1 + dc:2].astype(np.int64) << k
            delete = centre & _KEEP_ENDS_TABLE[code]
            if delete.any():
                p[1 + a:h + 1:2, 1 + c:w + 1:2] = centre & ~delete
                changed = True
    return p[1:-1, 1:-1].copy()


def _ends(b: np.ndarray) -> np.ndarray:
    counts = ndimage.convolve(b.astype(np.uint8), _EIGHT.astype(np.uint8), mode="constant") - b
    return np.argwhere(b & (counts == 1))


def _segment(p: np.ndarray, q: np.ndarray) -> list[tuple[int, int]]:
    """Pixels of the digital straight segment from ``p`` to ``q`` (8-connected, Chebyshev steps)."""
    steps = int(np.abs(q - p).max())
    return [tuple(int(v) for v in np.rint(p + (q - p) * t / steps)) for t in range(steps + 1)]


def _close_gaps(b: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    ends = _ends(b)
    if len(ends) < 2:
        return b, 0
    d = np.abs(ends[:, None, :] - ends[None, :, :]).max(axis=2)
    pairs = sorted((int(d[i, j]), i, j) for i in range(len(ends)) for j in range(i + 1, len(ends))
                   if 2 <= d[i, j] <= max_gap + 1)
    used: set[int] = set()
    out = b.copy()
    joined = 0
    for _, i, j in pairs:
        if i in used or j in used:
            continue
        used.update((i, j))
        for r, c in _segment(ends[i], ends[j]):
            out[r, c] = True
        joined += 1
    return out, joined


def _drop_empty(b: np.ndarray) -> tuple[np.ndarray, int]:
    """Remove curve components that enclose no background (their complement is one 4-region)."""
    curves, n = ndimage.label(b, structure=_EIGHT)
    out = b.copy()
    dropped = 0
    for lab in range(1, n + 1):
        comp = curves == lab
        _, k = ndimage.label(~np.pad(comp, 1), structure=_FOUR)
        if k < 2:
            out &= ~comp
            dropped += 1
    return out, dropped


def repair(boundary: np.ndarray, *, max_hole: int = 4, max_gap: int = 2) -> Repair:
    """Make a hand-drawn boundary ``(H, W)`` valid where small defects are the only problem.

    Parameters
    ----------
    boundary : array of shape (H, W), nonzero = curve pixel
    max_hole : int
        Largest pinhole (background pixels not reaching the border) that is filled.
    max_gap : int
        Most missing pixels between two stroke ends that are joined (``1``: one-pixel gaps only).

    Returns
    -------
    Repair
        An already valid image is returned unchanged with ``steps == []``.

    Examples
    --------
    >>> b = np.zeros((9, 9), np.uint8)
    >>> b[2, 2:7] = b[6, 2:7] = b[2:7, 2] = 1
    >>> b[2:5, 6] = 1                         # the right side stops one pixel short
    >>> r = repair(b)
    >>> r.valid, r.steps
    (True, ['joined 1 gap (1 pixel)', 'thinned the strokes to one-pixel curves (4 pixels removed)'])
    """
    arr = np.asarray(boundary)
    if arr.ndim != 2:
        raise ValueError(f"boundary: expected shape (H, W), got {arr.shape}")
    for name, v in (("max_hole", max_hole), ("max_gap", max_gap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {v!r}")
    b0 = arr != 0
    b = b0.copy()
    steps: list[str] = []
    if b.any() and _problem(b.astype(np.uint8)) is None:
        return Repair(b.astype(np.uint8), [], np.zeros_like(b), np.zeros_like(b), True, None)
    b, holes, hole_px = _fill_pinholes(b, int(max_hole))
    if holes:
        steps.append(f"filled {holes} pinhole{'s' * (holes != 1)} ({hole_px} pixel{'s' * (hole_px != 1)})")
    if _problem(b.astype(np.uint8)) is not None and b.any():
        skeleton = _thin_keep_ends(b)
        joined_img, joined = _close_gaps(skeleton, int(max_gap))
        if joined:
            added = int((joined_img & ~skeleton).sum())
            steps.append(f"joined {joined} gap{'s' * (joined != 1)} ({added} pixel{'s' * (added != 1)})")
        b_new = thin(joined_img[None])[0] if joined else thin(b[None])[0]
        b_new, dropped = _drop_empty(b_new)
        if dropped:
            steps.append(f"removed {dropped} stray mark{'s' * (dropped != 1)} that enclose nothing")
        thinned = int((b & ~b_new).sum())
        if thinned:
            steps.append(f"thinned the strokes to one-pixel curves ({thinned} pixel{'s' * (thinned != 1)} removed)")
        b = b_new
    out = b.astype(np.uint8)
    problem = _problem(out) if out.any() else "boundary is empty: it has no curve pixel (value 1)"
    return Repair(out, steps, b & ~b0, b0 & ~b, problem is None, problem)
