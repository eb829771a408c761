"""Rejection sampling of valid boundary images from a curve generator."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jordanlab.curves._common import canvas, check_rng
from jordanlab.curves.raster import RasterError, _digitize_batch, rasterize_paths

__all__ = ["sample_boundary"]

Sampler = Callable[[np.random.Generator, tuple[int, int]], "np.ndarray | list[np.ndarray]"]


def sample_boundary(
    rng: np.random.Generator,
    sampler: Sampler,
    size: int | Sequence[int],
    *,
    thickness: int = 1,
    max_attempts: int = 200,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Draw curves with ``sampler(rng, (H, W))`` until they rasterize to a valid boundary image.

    Every draw consumes the same ``rng``, so the accepted result is a deterministic function of the
    generator's initial state. A draw is rejected when :func:`~jordanlab.curves.rasterize` raises
    :class:`~jordanlab.curves.RasterError` (touching, too small, leaving the canvas) or the sampler
    raises ``RuntimeError`` (could not place its shapes).

    Returns
    -------
    curves : list of ndarray (K_i, 2)
    boundary : ndarray of shape (H, W), uint8

    Raises
    ------
    RuntimeError
        After ``max_attempts`` rejected draws, with the last reason.
    """
    rng = check_rng(rng)
    h, w = canvas(size)
    last = ""
    for _ in range(max_attempts):
        try:
            curves = sampler(rng, (h, w))
        except RuntimeError as exc:
            last = str(exc)
            continue
        if isinstance(curves, np.ndarray):
            curves = [curves]
        try:
            pix, lengths = _digitize_batch(curves)
            paths = np.split(pix, np.cumsum(lengths)[:-1])
            return list(curves), rasterize_paths(paths, (h, w), thickness=thickness)
        except RasterError as exc:
            last = str(exc)
    raise RuntimeError(f"no valid boundary image after {max_attempts} attempts (last rejection: {last})")
