"""Smooth random blobs: a random Fourier series for the radius."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import check_rng, place

__all__ = ["blob", "blobs"]


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
        Polygon vertices; default one per two pixels of circumference (at least 24).

    Returns
    -------
    ndarray of shape (K, 2), float64
    """
    rng = check_rng(rng)
    c, r = place(rng, size, center, radius)
    return blobs(
        rng, c[None], np.array([r]), n_harmonics=n_harmonics, amplitude=amplitude, decay=decay,
        min_ratio=min_ratio, n_vertices=n_vertices,
    )[0]


def blobs(
    rng: np.random.Generator,
    centers: np.ndarray,
    radii: np.ndarray,
    *,
    n_harmonics: int = 6,
    amplitude: float = 0.35,
    decay: float = 1.3,
    min_ratio: float = 0.4,
    n_vertices: int | None = None,
) -> list[np.ndarray]:
    """Many blobs at once (vectorized): blob ``j`` has centre ``centers[j]`` and circumradius ``radii[j]``.

    Same law as :func:`blob`; see there for the parameters.
    """
    rng = check_rng(rng)
    if n_harmonics < 1:
        raise ValueError(f"n_harmonics must be >= 1, got {n_harmonics}")
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio}")
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    m = len(radii)
    if m == 0:
        return []
    k = np.arange(2, n_harmonics + 2)
    a = rng.uniform(-1.0, 1.0, size=(m, len(k))) * amplitude / k**decay
    phi = rng.uniform(0.0, 2 * np.pi, size=(m, len(k)))
    rot = rng.uniform(0.0, 2 * np.pi, size=m)
    if n_vertices is not None:
        counts = np.full(m, int(n_vertices), dtype=np.int64)
    else:
        counts = np.maximum(24, np.ceil(np.pi * radii)).astype(np.int64)
    owner = np.repeat(np.arange(m), counts)
    first = np.cumsum(counts) - counts
    j = np.arange(len(owner)) - first[owner]
    theta = 2 * np.pi * j / counts[owner] + rot[owner]
    wave = (a[owner] * np.cos(k[None, :] * theta[:, None] + phi[owner])).sum(1)
    # Shrink each wave until min/max >= min_ratio: (1 + s m) / (1 + s M) >= q  <=>  s <= (1 - q) / (q M - m).
    lo = np.minimum.reduceat(wave, first)
    hi = np.maximum.reduceat(wave, first)
    denom = min_ratio * hi - lo
    scale = np.where(denom <= 0, 1.0, np.minimum(1.0, (1.0 - min_ratio) / np.where(denom <= 0, 1.0, denom)))
    rho = 1.0 + scale[owner] * wave
    rho_max = 1.0 + scale * hi
    rad = radii[owner] * rho / rho_max[owner]
    xy = np.stack([centers[owner, 0] + rad * np.cos(theta), centers[owner, 1] + rad * np.sin(theta)], axis=1)
    return np.split(xy, first[1:])
