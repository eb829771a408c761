"""Star-like random polygons ("polar" curves of the insideness study)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import check_rng, place, polar

__all__ = ["polygon"]


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
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if not 0.0 < r_min <= 1.0:
        raise ValueError(f"r_min must be in (0, 1], got {r_min}")
    c, r = place(rng, size, center, radius)
    if isinstance(n_vertices, tuple):
        n = int(rng.integers(n_vertices[0], n_vertices[1] + 1))
    else:
        n = int(n_vertices)
    if n < 3:
        raise ValueError(f"n_vertices must be >= 3, got {n}")
    step = 2 * np.pi / n
    theta = np.arange(n) * step + rng.uniform(0, 2 * np.pi) + rng.uniform(-0.5, 0.5, n) * jitter * step
    rad = r * rng.uniform(r_min, 1.0, n)
    return polar(c, theta, rad)
