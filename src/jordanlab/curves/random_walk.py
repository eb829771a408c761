"""Random-walk loops: the boundary of the cells visited by a lattice random walk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from jordanlab.curves._common import check_rng, place

__all__ = ["random_walk"]

_STEPS = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])


def _close_animal(cells: np.ndarray) -> np.ndarray:
    """Fill holes and diagonal pinches until the cell set is simply connected with a simple boundary."""
    cells = ndimage.binary_fill_holes(cells)
    for _ in range(100):
        a, b = cells[:-1, :-1], cells[:-1, 1:]
        c, d = cells[1:, :-1], cells[1:, 1:]
        pinch1 = a & d & ~b & ~c  # diagonal "\" contact only
        pinch2 = b & c & ~a & ~d  # diagonal "/" contact only
        if not (pinch1.any() or pinch2.any()):
            return cells
        i, j = np.nonzero(pinch1)
        cells[i, j + 1] = True
        i, j = np.nonzero(pinch2)
        cells[i, j] = True
        cells = ndimage.binary_fill_holes(cells)
    raise RuntimeError("could not remove diagonal pinches from the random-walk animal")  # pragma: no cover


def _boundary_polygon(cells: np.ndarray) -> np.ndarray:
    """Vertices ``(X, Y)`` (cell-corner units) of the boundary of a simply connected cell set.

    Directed unit edges keep the inside on one side; without pinches each corner has exactly one
    outgoing edge, so following them visits the whole boundary once. Collinear corners are dropped.
    """
    g = np.pad(cells, 1)
    h, w = g.shape
    inside = g[1:-1, 1:-1]
    ii, jj = np.nonzero(inside)
    ii, jj = ii + 1, jj + 1
    starts, ends = [], []
    # (neighbour offset, start corner, end corner) with corners as (X, Y) offsets from cell (j, i).
    for (di, dj), s, e in (((-1, 0), (0, 0), (1, 0)), ((0, 1), (1, 0), (1, 1)), ((1, 0), (1, 1), (0, 1)), ((0, -1), (0, 1), (0, 0))):
        m = ~g[ii + di, jj + dj]
        starts.append(np.stack([jj[m] + s[0], ii[m] + s[1]], 1))
        ends.append(np.stack([jj[m] + e[0], ii[m] + e[1]], 1))
    start = np.concatenate(starts)
    end = np.concatenate(ends)
    key = start[:, 1] * (w + 1) + start[:, 0]
    nxt_of = np.full((h + 1) * (w + 1), -1, dtype=np.int64)
    nxt_of[key] = np.arange(len(start))
    endkey = end[:, 1] * (w + 1) + end[:, 0]
    succ = nxt_of[endkey]
    order = np.empty(len(start), dtype=np.int64)
    e = 0
    for k in range(len(start)):
        order[k] = e
        e = succ[e]
    if e != 0 or len(np.unique(order)) != len(order):  # pragma: no cover - guarded by _close_animal
        raise RuntimeError("random-walk boundary is not a single loop")
    pts = start[order].astype(np.float64) - 1.0
    dprev = pts - np.roll(pts, 1, axis=0)
    dnext = np.roll(pts, -1, axis=0) - pts
    turn = dprev[:, 0] * dnext[:, 1] - dprev[:, 1] * dnext[:, 0] != 0
    return pts[turn]


def random_walk(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    cell: int | None = None,
    n_steps: int | None = None,
    rotate: bool = True,
) -> np.ndarray:
    """A closed loop around the cells visited by a random walk on a coarse square lattice.

    A walk of ``n_steps`` unit steps on a grid of ``cell``-pixel squares (reflected at the grid's
    edge) visits a 4-connected "lattice animal"; holes and diagonal-only contacts are filled, and the
    boundary of the union of squares is returned (optionally rotated by a random angle about
    ``center``). Parallel boundary edges are at least one cell apart.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or (H, W)
    center, radius : optional
        The loop lies in the disc of this radius about ``center``.
    cell : int, optional
        Lattice spacing in pixels (default 3 for radius < 20, else 4).
    n_steps : int, optional
        Walk length (default: the number of cells of the grid).
    rotate : bool
        Rotate by a uniform random angle.

    Returns
    -------
    ndarray of shape (K, 2), float64
    """
    rng = check_rng(rng)
    c, r = place(rng, size, center, radius, frac=(0.3, 0.45))
    if cell is None:
        cell = 3 if r < 20 else 4
    half = int(np.floor(r / (cell * np.sqrt(2)))) if rotate else int(np.floor(r / cell))
    g = 2 * half
    if g < 3:
        raise ValueError(f"radius {r:.1f} is too small for a random walk with cell={cell}")
    if n_steps is None:
        n_steps = g * g
    moves = _STEPS[rng.integers(0, 4, size=n_steps)]
    pos = np.empty((n_steps + 1, 2), dtype=np.int64)
    pos[0] = (half, half)
    p0, p1 = half, half
    for k in range(n_steps):  # reflecting walk on [0, g-1]^2
        q0, q1 = p0 + moves[k, 0], p1 + moves[k, 1]
        p0 = q0 if 0 <= q0 < g else p0 - moves[k, 0]
        p1 = q1 if 0 <= q1 < g else p1 - moves[k, 1]
        pos[k + 1] = (p0, p1)
    cells = np.zeros((g, g), dtype=bool)
    cells[pos[:, 0], pos[:, 1]] = True
    cells = _close_animal(cells)
    corners = _boundary_polygon(cells)
    xy = (corners - half) * cell  # centred on the grid middle, in pixels
    if rotate:
        phi = rng.uniform(0.0, 2 * np.pi)
        rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
        xy = xy @ rot.T
    return xy + np.round(c)
