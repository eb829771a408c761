"""Rasterization of continuous closed curves into simple closed 8-curves.

A continuous curve is a ``float64`` array ``(K, 2)`` of vertices ``(x, y)``, closed implicitly.
Pixel ``(row, col)`` has its centre at ``(x=col, y=row)``, so a point is digitized to
``(floor(y + 1/2), floor(x + 1/2))``.

The digital curve is built in three vectorized steps:

1. sample every edge with steps shorter than half a pixel (L-infinity), round to pixels, and drop
   consecutive repeats: consecutive pixels are then 8-adjacent (``|a - b| < 1`` implies
   ``|floor(a) - floor(b)| <= 1``);
2. remove redundant "L corner" pixels: pixel ``p[i]`` is redundant when ``p[i-1]`` and ``p[i+1]`` are
   already 8-adjacent; non-consecutive redundant pixels are removed together, until none is left;
3. check that the result is a *simple closed 8-curve* (Rosenfeld): at least 4 distinct pixels, each
   with exactly two 8-neighbours in the union of all curves. A union of such curves with distinct
   pixels is a disjoint union of simple closed 8-curves that do not touch each other, so its
   4-connected background has exactly ``1 + number of curves`` components.

Curves that fail step 3 (self-touching, touching another curve, spikes, or leaving the canvas with
its one-pixel margin) raise :class:`RasterError`; generators catch it and resample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["RasterError", "digitize", "rasterize", "rasterize_paths", "as_curve"]

# 8-neighbourhood offsets (drow, dcol), centre excluded.
_OFFSETS8 = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)])
_MAX_STEP = 0.45  # sampling step along edges, in pixels (L-infinity), strictly below 1/2


class RasterError(ValueError):
    """The digitized curves are not disjoint, non-touching simple closed 8-curves inside the canvas."""


def as_curve(curve: np.ndarray, *, name: str = "curve") -> np.ndarray:
    """Validate and return a curve as a ``float64`` array ``(K, 2)`` with ``K >= 3`` finite vertices."""
    arr = np.asarray(curve, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (K, 2) of (x, y) vertices, got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise ValueError(f"{name} must have at least 3 vertices, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite vertices")
    return arr


def _shape2(shape: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(shape, (int, np.integer)):
        h = w = int(shape)
    else:
        if len(shape) != 2:
            raise ValueError(f"shape must be an int or (H, W), got {shape!r}")
        h, w = int(shape[0]), int(shape[1])
    if h < 4 or w < 4:
        raise ValueError(f"shape must be at least (4, 4), got ({h}, {w})")
    return h, w


def _cyclic_neighbours(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For curves concatenated with the given lengths: (curve id, first index, prev, next) per element."""
    n = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    cid = np.repeat(np.arange(len(lengths)), lengths)
    pos = np.arange(n) - first[cid]
    ln = lengths[cid]
    prev = first[cid] + (pos - 1) % ln
    nxt = first[cid] + (pos + 1) % ln
    return cid, first, prev, nxt


def _sample_dense(verts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along each closed polygon, L-infinity step below ``_MAX_STEP``; returns (points, counts)."""
    cid, _, _, nxt = _cyclic_neighbours(lengths)
    delta = verts[nxt] - verts
    n = np.maximum(np.ceil(np.abs(delta).max(axis=1) / _MAX_STEP).astype(np.int64), 1)
    edge = np.repeat(np.arange(len(verts)), n)
    first = np.cumsum(n) - n
    t = (np.arange(int(n.sum())) - np.repeat(first, n)) / np.repeat(n, n)
    counts = np.bincount(cid, weights=n, minlength=len(lengths)).astype(np.int64)
    return verts[edge] + t[:, None] * delta[edge], counts


def _remove_redundant(pix: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop pixels whose two path neighbours are already 8-adjacent, never two consecutive at once."""
    for _ in range(256):
        if len(pix) == 0:
            break
        cid, first, prev, nxt = _cyclic_neighbours(lengths)
        d = np.abs(pix[nxt] - pix[prev]).max(axis=1)
        cand = (d == 1) & (lengths[cid] >= 4)
        if not cand.any():
            break
        idx = np.arange(len(pix))
        # Run starts are searched within each curve, so each curve is digitized as if alone.
        run_start = np.maximum.accumulate(np.where(cand & ~cand[prev], idx, first[cid]))
        remove = cand & ((idx - run_start) % 2 == 0)
        last = first + lengths - 1
        both = remove[first] & remove[last] & (lengths > 1)
        remove[last[both]] = False  # a run wrapping around the end of a curve
        keep = ~remove
        lengths = np.bincount(cid[keep], minlength=len(lengths)).astype(np.int64)
        pix = pix[keep]
    return pix, lengths


def _digitize_batch(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Digitize several closed polygons at once: concatenated pixel paths ``(M, 2)`` and their lengths."""
    lengths = np.array([len(c) for c in curves], dtype=np.int64)
    verts = np.concatenate(curves, axis=0)
    pts, counts = _sample_dense(verts, lengths)
    pix = np.floor(pts[:, ::-1] + 0.5).astype(np.int64)
    _, _, prev, _ = _cyclic_neighbours(counts)
    keep = np.any(pix != pix[prev], axis=1)
    cid = np.repeat(np.arange(len(counts)), counts)
    # A curve that collapses to one pixel keeps that pixel.
    lone = np.bincount(cid[keep], minlength=len(counts)) == 0
    if lone.any():
        keep[(np.cumsum(counts) - counts)[lone]] = True
    lengths = np.bincount(cid[keep], minlength=len(counts)).astype(np.int64)
    return _remove_redundant(pix[keep], lengths)


def digitize(curve: np.ndarray) -> np.ndarray:
    """Digitize a closed polygon into a closed 8-path of pixels without redundant corners.

    Points are sampled along every edge with an L-infinity step below 1/2 and rounded with
    ``floor(. + 1/2)``; consecutive repeats are dropped, then pixels whose predecessor and successor
    are 8-adjacent are removed (alternately within runs) until none remains.

    Parameters
    ----------
    curve : ndarray of shape (K, 2)
        Vertices ``(x, y)``, closed implicitly.

    Returns
    -------
    ndarray of shape (M, 2), int64
        Pixels ``(row, col)`` in order; consecutive pixels (and last, first) are 8-adjacent and no
        pixel ``p[i]`` has ``p[i-1]``, ``p[i+1]`` 8-adjacent. Simplicity is *not* checked here.
    """
    pix, _ = _digitize_batch([as_curve(curve)])
    return pix


def _check_paths(paths: Sequence[np.ndarray], h: int, w: int) -> np.ndarray:
    """Union image of the paths, raising RasterError unless they are disjoint simple closed 8-curves."""
    lengths = np.array([len(p) for p in paths], dtype=np.int64)
    return _check_concat(np.concatenate(paths, axis=0), lengths, h, w)


def _check_concat(allp: np.ndarray, lengths: np.ndarray, h: int, w: int) -> np.ndarray:
    small = np.flatnonzero(lengths < 4)
    if small.size:
        k = int(small[0])
        raise RasterError(f"curve {k} digitizes to {lengths[k]} pixels; a simple closed 8-curve needs >= 4")
    r, c = allp[:, 0], allp[:, 1]
    if r.min() < 1 or c.min() < 1 or r.max() > h - 2 or c.max() > w - 2:
        bad = np.flatnonzero((r < 1) | (c < 1) | (r > h - 2) | (c > w - 2))[0]
        k = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        raise RasterError(f"curve {k} leaves the canvas ({h}, {w}) with its 1-pixel margin")
    img = np.zeros((h + 2, w + 2), dtype=np.uint8)
    img[r + 1, c + 1] = 1
    if int(img.sum()) != len(allp):
        raise RasterError("curves overlap themselves or each other (repeated pixels)")
    rr, cc = r + 1, c + 1
    nb = np.zeros(len(allp), dtype=np.int64)
    for dr, dc in _OFFSETS8:
        nb += img[rr + dr, cc + dc]
    bad = np.flatnonzero(nb != 2)
    if bad.size:
        raise RasterError(
            f"pixel (row={r[bad[0]]}, col={c[bad[0]]}) has {nb[bad[0]]} curve 8-neighbours, expected 2 "
            "(curves touch themselves or each other)"
        )
    return img[1:-1, 1:-1].copy()


def _dilate(thin: np.ndarray, thickness: int) -> np.ndarray:
    """Dilate by a ``thickness x thickness`` square (offsets ``-(t-1)//2 .. t//2``)."""
    lo, hi = -((thickness - 1) // 2), thickness // 2
    out = np.zeros_like(thin)
    h, w = thin.shape
    for dr in range(lo, hi + 1):
        for dc in range(lo, hi + 1):
            src = thin[max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
            out[max(0, dr) : h - max(0, -dr), max(0, dc) : w - max(0, -dc)] |= src
    return out


_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)


def _check_thick(paths: Sequence[np.ndarray], thin: np.ndarray, thick: np.ndarray, thickness: int) -> None:
    """Thick strokes must keep the curves apart and must not split any background region."""
    h, w = thin.shape
    lo, hi = -((thickness - 1) // 2), thickness // 2
    allp = np.concatenate(paths)
    if allp[:, 0].min() + lo < 1 or allp[:, 1].min() + lo < 1 or allp[:, 0].max() + hi > h - 2 or allp[:, 1].max() + hi > w - 2:
        raise RasterError(f"thickness {thickness} strokes leave the canvas ({h}, {w}) with its 1-pixel margin")
    _, n_strokes = ndimage.label(thick, structure=_EIGHT)
    if n_strokes != len(paths):
        raise RasterError(f"thickness {thickness} strokes of different curves touch")
    thin_lab, _ = ndimage.label(thin == 0, structure=_FOUR)
    thick_lab, n_thick = ndimage.label(thick == 0, structure=_FOUR)
    # Each thick background region lies in one thin region; a thin region split in two is an error.
    firsts = ndimage.minimum(thin_lab, thick_lab, index=np.arange(1, n_thick + 1))
    if len(np.unique(firsts)) != n_thick:
        raise RasterError(f"thickness {thickness} strokes close off a background region")


def rasterize_paths(paths: Sequence[np.ndarray], shape: int | Sequence[int], *, thickness: int = 1) -> np.ndarray:
    """Union image of already digitized paths (see :func:`digitize`), checked as in :func:`rasterize`."""
    h, w = _shape2(shape)
    if not isinstance(thickness, (int, np.integer)) or thickness < 1:
        raise ValueError(f"thickness must be an int >= 1, got {thickness!r}")
    if len(paths) == 0:
        raise ValueError("curves must contain at least one curve, got none")
    thin = _check_paths(paths, h, w)
    if thickness == 1:
        return thin
    thick = _dilate(thin, int(thickness))
    _check_thick(paths, thin, thick, int(thickness))
    return thick


def rasterize(curves: np.ndarray | Sequence[np.ndarray], shape: int | Sequence[int], *, thickness: int = 1) -> np.ndarray:
    """Rasterize closed polygons into a binary boundary image of disjoint simple closed 8-curves.

    Parameters
    ----------
    curves : ndarray of shape (K, 2) or sequence of them
        Vertices ``(x, y)`` of each closed curve (pixel ``(row, col)`` centre at ``x=col, y=row``).
    shape : int or (H, W)
        Canvas size.
    thickness : int, default 1
        1 gives thin simple closed 8-curves; ``t >= 2`` dilates them by a ``t x t`` square.

    Returns
    -------
    ndarray of shape (H, W), uint8
        1 on curve pixels. For ``thickness=1`` every curve pixel has exactly two 8-neighbours and the
        4-connected background has ``1 + len(curves)`` components.

    Raises
    ------
    RasterError
        If a digitized curve touches itself or another curve, has fewer than 4 pixels, or comes
        within one pixel of the border (for ``t >= 2``: if strokes touch or close off background).

    Examples
    --------
    >>> import numpy as np
    >>> square = np.array([[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]])
    >>> img = rasterize(square, (9, 9))
    >>> int(img.sum()), int(img[2, 2]), int(img[2, 3])  # corners cut: a simple 8-curve
    (12, 0, 1)
    """
    if isinstance(curves, np.ndarray) and curves.ndim == 2:
        curves = [curves]
    checked = [as_curve(c, name=f"curves[{k}]") for k, c in enumerate(curves)]
    if not checked:
        raise ValueError("curves must contain at least one curve, got none")
    pix, lengths = _digitize_batch(checked)
    paths = np.split(pix, np.cumsum(lengths)[:-1])
    return rasterize_paths(paths, shape, thickness=thickness)
