"""Star-like random polygons ("polar" curves of the insideness study)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import check_rng, place

__all__ = ["polygon", "polygons"]


def polygon(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    n_vertices: int | tuple[int, int] = (5, 12),
    r_min: float = 0.45,
    jitter: float = 0.5,
) -> np.ndarray:
    """A star-shaped polygon with random radii at sorted random angles.

    Vertex :math:`i` of :math:`N` sits at angle :math:`2\\pi i / N + \\theta_0 + \\epsilon_i` with
    :math:`\\epsilon_i \\sim U(-1/2, 1/2)\\,\\mathrm{jitter}\\,2\\pi/N` (so angles stay sorted for
    ``jitter < 1``) and radius ``radius * U(r_min, 1)``.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or (H, W)
    center, radius : optional
        Centre ``(x, y)`` and circumradius; drawn at random when None.
    n_vertices : int or (low, high)
        Number of vertices, or an inclusive range to draw it from.
    r_min : float
        Smallest radius as a fraction of ``radius``.
    jitter : float in [0, 1)
        Angular jitter as a fraction of the angular step.

    Returns
    -------
    ndarray of shape (N, 2), float64
    """
    rng = check_rng(rng)
    c, r = place(rng, size, center, radius)
    return polygons(rng, c[None], np.array([r]), n_vertices=n_vertices, r_min=r_min, jitter=jitter)[0]


def polygons(
    rng: np.random.Generator,
    centers: np.ndarray,
    radii: np.ndarray,
    *,
    n_vertices: int | tuple[int, int] = (5, 12),
    r_min: float = 0.45,
    jitter: float = 0.5,
) -> list[np.ndarray]:
    """Many star polygons at once (vectorized), polygon ``j`` at ``centers[j]`` with circumradius ``radii[j]``.

    Same law as :func:`polygon`; see there for the parameters.
    """
    rng = check_rng(rng)
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if not 0.0 < r_min <= 1.0:
        raise ValueError(f"r_min must be in (0, 1], got {r_min}")
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    m = len(radii)
    if m == 0:
        return []
    if isinstance(n_vertices, tuple):
        counts = rng.integers(n_vertices[0], n_vertices[1] + 1, size=m)
    else:
        counts = np.full(m, int(n_vertices))
    if counts.min() < 3:
        raise ValueError(f"n_vertices must be >= 3, got {n_vertices}")
    owner = np.repeat(np.arange(m), counts)
    first = np.cumsum(counts) - counts
    j = np.arange(len(owner)) - first[owner]
    step = 2 * np.pi / counts[owner]
    offset = rng.uniform(0, 2 * np.pi, size=m)
    theta = j * step + offset[owner] + rng.uniform(-0.5, 0.5, len(owner)) * jitter * step
    rad = radii[owner] * rng.uniform(r_min, 1.0, len(owner))
    xy = np.stack([centers[owner, 0] + rad * np.cos(theta), centers[owner, 1] + rad * np.sin(theta)], axis=1)
    return np.split(xy, first[1:])
