"""Random affine distortions of the continuous geometry (applied before rasterization)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import MARGIN, canvas, check_rng

__all__ = ["random_affine_matrix", "apply_affine", "affine"]


def random_affine_matrix(
    rng: np.random.Generator,
    *,
    rotation: float = np.pi,
    scale: tuple[float, float] = (0.8, 1.2),
    shear: float = 0.25,
) -> np.ndarray:
    """A random linear map :math:`A = R(\\phi)\\,S\\,\\mathrm{diag}(s_x, s_y)`.

    :math:`\\phi \\sim U(-\\mathrm{rotation}, \\mathrm{rotation})`, :math:`s_x, s_y \\sim U(\\mathrm{scale})`
    independently (anisotropic), and :math:`S = [[1, \\sigma], [0, 1]]` with
    :math:`\\sigma \\sim U(-\\mathrm{shear}, \\mathrm{shear})`.

    Returns
    -------
    ndarray of shape (2, 2), acting on column vectors ``(x, y)``.
    """
    rng = check_rng(rng)
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    phi = rng.uniform(-rotation, rotation)
    sx, sy = rng.uniform(lo, hi, size=2)
    sh = rng.uniform(-shear, shear)
    rot = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    return rot @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])


def apply_affine(curves: Sequence[np.ndarray], matrix: np.ndarray, offset: Sequence[float]) -> list[np.ndarray]:
    """Map every vertex :math:`v \\mapsto A v + t` (new arrays; inputs untouched)."""
    a = np.asarray(matrix, dtype=np.float64)
    t = np.asarray(offset, dtype=np.float64)
    if a.shape != (2, 2) or t.shape != (2,):
        raise ValueError(f"matrix must be (2, 2) and offset (2,), got {a.shape} and {t.shape}")
    return [np.asarray(c, dtype=np.float64) @ a.T + t for c in curves]


def affine(
    curves: Sequence[np.ndarray],
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    rotation: float = np.pi,
    scale: tuple[float, float] = (0.8, 1.2),
    shear: float = 0.25,
    margin: float = MARGIN,
) -> list[np.ndarray]:
    """Apply one random affine map to all ``curves`` jointly, keeping them inside the canvas.

    The map :math:`A` of :func:`random_affine_matrix` is applied about the centre of the curves'
    bounding box; if the result is larger than the canvas minus ``margin`` it is shrunk uniformly
    (still an affine map), then translated uniformly at random among the positions where it fits.
    Rasterizing the result gives exact labels for the distorted shapes.

    Returns
    -------
    list of ndarray (K_i, 2)
    """
    rng = check_rng(rng)
    h, w = canvas(size)
    curves = [np.asarray(c, dtype=np.float64) for c in curves]
    allv = np.concatenate(curves)
    centre = (allv.min(0) + allv.max(0)) / 2
    a = random_affine_matrix(rng, rotation=rotation, scale=scale, shear=shear)
    moved = (allv - centre) @ a.T
    ext = moved.max(0) - moved.min(0)
    room = np.array([w - 1 - 2 * margin, h - 1 - 2 * margin])
    shrink = min(1.0, float(np.min(room / np.maximum(ext, 1e-9))))
    a = a * shrink
    moved = (allv - centre) @ a.T
    lo, hi = moved.min(0), moved.max(0)
    low = np.array([margin, margin]) - lo
    high = np.maximum(np.array([w - 1 - margin, h - 1 - margin]) - hi, low)  # equal up to rounding when shrunk
    tx = rng.uniform(low[0], high[0])
    ty = rng.uniform(low[1], high[1])
    return apply_affine(curves, a, np.array([tx, ty]) - a @ centre)
