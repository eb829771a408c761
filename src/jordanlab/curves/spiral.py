"""Spirals: a thin closed band wound several turns (long corridors)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jordanlab.curves._common import check_rng, place, polar

__all__ = ["spiral"]


def spiral(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    turns: float | None = None,
    width: float = 3.0,
    gap: float = 3.0,
) -> np.ndarray:
    """A closed band around an Archimedean spiral: two parallel arms joined at both ends.

    The band's centre line is :math:`r(\\theta) = a + b\\theta`, :math:`0 \\le \\theta \\le 2\\pi T`
    (``T = turns``), with pitch :math:`2\\pi b` = ``width + gap``; the curve runs out along
    :math:`r + w/2` and back along :math:`r - w/2`. Adjacent turns of the band are ``gap`` apart and
    its inside is a corridor of width ``width`` and length about :math:`\\pi T (2a + 2\\pi b T)`.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int or (H, W)
    center, radius : optional
        Centre and outer radius (default: centred, radius ~ U(0.38, 0.46) min(H, W)).
    turns : float, optional
        Number of turns; default the largest that fits minus U(0, 0.5) turn.
    width, gap : float
        Corridor width and distance between turns, in pixels (each >= 2.5 for a clean raster).

    Returns
    -------
    ndarray of shape (K, 2), float64

    Raises
    ------
    ValueError
        If not even one turn fits in ``radius``.
    """
    rng = check_rng(rng)
    if width < 2.0 or gap < 2.0:
        raise ValueError(f"width and gap must be >= 2 pixels, got width={width}, gap={gap}")
    c, r = place(rng, size, center, radius, frac=(0.38, 0.46))
    pitch = width + gap
    a = width / 2 + 1.5
    t_max = (r - a - width / 2) / pitch
    if turns is None:
        turns = max(1.0, t_max - rng.uniform(0.0, 0.5))
    if turns < 1.0 or turns > t_max + 1e-9:
        raise ValueError(f"turns={turns:.2f} must be in [1, {t_max:.2f}] for radius {r:.1f}, width {width}, gap {gap}")
    b = pitch / (2 * np.pi)
    big = 2 * np.pi * turns
    n = max(64, int(np.ceil(big * (a + b * big) / 0.8)))
    theta = np.linspace(0.0, big, n)
    rc = a + b * theta
    sign = 1.0 if rng.random() < 0.5 else -1.0
    phase = rng.uniform(0.0, 2 * np.pi)
    ang = sign * theta + phase
    outer = polar(c, ang, rc + width / 2)
    inner = polar(c, ang, rc - width / 2)[::-1]
    return np.concatenate([outer, inner], axis=0)
