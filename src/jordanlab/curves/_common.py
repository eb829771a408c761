"""Small shared helpers for the curve families (canvas parsing, placement, radii)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MARGIN = 2.0  # distance (pixels) kept between a curve and the canvas border; rasterization needs >= 1.5


def canvas(size: int | Sequence[int]) -> tuple[int, int]:
    """Parse ``size`` (int or ``(H, W)``) into ``(H, W)``, raising ValueError naming the argument."""
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or (H, W), got {size!r}") from None
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8 x 8 pixels, got ({h}, {w})")
    return h, w


def check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def place(
    rng: np.random.Generator,
    size: int | Sequence[int],
    center: Sequence[float] | None,
    radius: float | None,
    *,
    frac: tuple[float, float] = (0.25, 0.45),
    margin: float = MARGIN,
) -> tuple[np.ndarray, float]:
    """Choose a centre ``(x, y)`` and circumradius so that the disc fits the canvas with ``margin``.

    ``radius=None`` draws ``radius ~ U(frac) * min(H, W)``, capped at what fits; ``center=None``
    draws the centre uniformly among positions where the disc fits.
    """
    h, w = canvas(size)
    rmax = (min(h, w) - 1) / 2.0 - margin
    if radius is None:
        radius = float(rng.uniform(*frac)) * min(h, w)
    radius = float(min(radius, rmax))
    if radius < 2.0:
        raise ValueError(f"radius {radius:.2f} is too small (< 2 px) for canvas ({h}, {w})")
    if center is None:
        cx = rng.uniform(margin + radius, w - 1 - margin - radius) if w - 1 - 2 * (margin + radius) > 0 else (w - 1) / 2
        cy = rng.uniform(margin + radius, h - 1 - margin - radius) if h - 1 - 2 * (margin + radius) > 0 else (h - 1) / 2
        center = (cx, cy)
    c = np.asarray(center, dtype=np.float64)
    if c.shape != (2,):
        raise ValueError(f"center must be (x, y), got {center!r}")
    return c, radius


def polar(center: np.ndarray, theta: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Vertices ``center + r (cos theta, sin theta)`` as a ``(K, 2)`` array."""
    return np.stack([center[0] + r * np.cos(theta), center[1] + r * np.sin(theta)], axis=1)


def inner_radius(curve: np.ndarray, center: Sequence[float]) -> float:
    """Distance from ``center`` to the closed polygon ``curve`` (min over its edges).

    For a curve star-shaped about ``center`` the open disc of this radius lies inside the curve.
    """
    c = np.asarray(center, dtype=np.float64)
    a = curve - c
    b = np.roll(curve, -1, axis=0) - c
    d = b - a
    t = np.clip(-(a * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
    p = a + t[:, None] * d
    return float(np.sqrt((p * p).sum(1)).min())


def fits(curves: Sequence[np.ndarray], size: int | Sequence[int], margin: float = MARGIN) -> bool:
    """Whether every vertex lies in ``[margin, W - 1 - margin] x [margin, H - 1 - margin]``."""
    h, w = canvas(size)
    v = np.concatenate(list(curves))
    return bool(v[:, 0].min() >= margin and v[:, 1].min() >= margin and v[:, 0].max() <= w - 1 - margin and v[:, 1].max() <= h - 1 - margin)
