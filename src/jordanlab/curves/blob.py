"""Smooth random blobs: a random Fourier series for the radius."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import check_rng, place, polar

__all__ = ["blob"]


def blob(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    n_harmonics: int = 6,
    amplitude: float = 0.35,
    decay: float = 1.3,
    min_ratio: float = 0.4,
    n_vertices: int | None = None,
) -> np.ndarray:
    """A smooth random blob, star-shaped about its centre.

    The radius is :math:`r(\\theta) = r_0 (1 + \\sum_{k=2}^{n} a_k \\cos(k\\theta + \\varphi_k))`
    with :math:`a_k \\sim U(-1, 1)\\,\\mathrm{amplitude}/k^{\\mathrm{decay}}` and uniform phases;
    the amplitudes are shrunk until :math:`\\min r / \\max r \\ge` ``min_ratio`` and :math:`r_0` is set so
    that :math:`\\max r` equals ``radius`` (the circumradius about ``center``).

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or (H, W)
        Canvas; the blob fits inside it with a 2-pixel margin.
    center, radius : optional
        ``(x, y)`` and circumradius; drawn at random (radius ~ U(0.25, 0.45) min(H, W)) when None.
    n_harmonics, amplitude, decay, min_ratio : shape parameters (see above).
    n_vertices : int, optional
        Polygon vertices; default about one per pixel of circumference (at least 32).

    Returns
    -------
    ndarray of shape (K, 2), float64
    """
    rng = check_rng(rng)
    if n_harmonics < 1:
        raise ValueError(f"n_harmonics must be >= 1, got {n_harmonics}")
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio}")
    c, r = place(rng, size, center, radius)
    k = np.arange(2, n_harmonics + 2)
    a = rng.uniform(-1.0, 1.0, size=len(k)) * amplitude / k**decay
    phi = rng.uniform(0.0, 2 * np.pi, size=len(k))
    n = int(n_vertices) if n_vertices is not None else max(32, int(np.ceil(2 * np.pi * r)))
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False) + rng.uniform(0.0, 2 * np.pi)
    wave = (a[None, :] * np.cos(k[None, :] * theta[:, None] + phi[None, :])).sum(1)
    # Shrink the wave until min/max >= min_ratio: (1 + s m) / (1 + s M) >= q  <=>  s <= (1 - q) / (q M - m).
    m, mx = wave.min(), wave.max()
    denom = min_ratio * mx - m
    s = 1.0 if denom <= 0 else min(1.0, (1.0 - min_ratio) / denom)
    rho = 1.0 + s * wave
    return polar(c, theta, r * rho / rho.max())
