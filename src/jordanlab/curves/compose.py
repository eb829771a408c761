"""Compositions of shapes: a single "simple" shape, disjoint shapes, nested rings, textures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from jordanlab.curves._common import MARGIN, canvas, check_rng, inner_radius, place
from jordanlab.curves.blob import blob, blobs
from jordanlab.curves.polygon import polygon, polygons

__all__ = ["simple_shape", "simple_shapes", "multi", "nested", "texture", "GAP"]

GAP = 3.0  # minimal continuous distance between two curves: keeps their pixels >= 2 apart (L-inf)

ShapeFn = Callable[..., np.ndarray]


def simple_shape(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    center: Sequence[float] | None = None,
    radius: float | None = None,
) -> np.ndarray:
    """The training family "one shape": a :func:`blob` or a :func:`polygon`, each with probability 1/2."""
    rng = check_rng(rng)
    if rng.random() < 0.5:
        return blob(rng, size, center=center, radius=radius)
    return polygon(rng, size, center=center, radius=radius)


def simple_shapes(rng: np.random.Generator, centers: np.ndarray, radii: np.ndarray) -> list[np.ndarray]:
    """Vectorized :func:`simple_shape` for given centres ``(M, 2)`` and circumradii ``(M,)``."""
    rng = check_rng(rng)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    radii = np.asarray(radii, dtype=np.float64).reshape(-1)
    is_blob = rng.random(len(radii)) < 0.5
    out: list[np.ndarray] = [np.empty((0, 2))] * len(radii)
    ib, ip = np.flatnonzero(is_blob), np.flatnonzero(~is_blob)
    for j, c in zip(ib, blobs(rng, centers[ib], radii[ib])):
        out[j] = c
    for j, c in zip(ip, polygons(rng, centers[ip], radii[ip])):
        out[j] = c
    return out


def _disjoint_discs(
    rng: np.random.Generator,
    h: int,
    w: int,
    radii: np.ndarray,
    *,
    gap: float,
    margin: float,
    attempts: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Place discs (largest first) at uniform positions, rejecting overlaps; skips those that never fit.

    Returns centres ``(M, 2)`` and radii ``(M,)`` of the placed discs.
    """
    radii = np.sort(np.asarray(radii, dtype=np.float64))[::-1]
    radii = radii[(w - 1 - 2 * (margin + radii) > 0) & (h - 1 - 2 * (margin + radii) > 0)]
    n = len(radii)
    u = rng.random((n, attempts, 2))
    lo = margin + radii
    cand = np.empty_like(u)
    cand[..., 0] = lo[:, None] + u[..., 0] * (w - 1 - 2 * lo)[:, None]
    cand[..., 1] = lo[:, None] + u[..., 1] * (h - 1 - 2 * lo)[:, None]
    pc = np.empty((n, 2))
    pr = np.empty(n)
    cnt = 0
    for i in range(n):
        ci = cand[i]
        if cnt:
            d2 = ((ci[:, None, :] - pc[None, :cnt, :]) ** 2).sum(-1)
            need = pr[:cnt] + (radii[i] + gap)
            ok = np.flatnonzero((d2 >= need * need).all(axis=1))
            if not ok.size:
                continue
            pc[cnt] = ci[ok[0]]
        else:
            pc[cnt] = ci[0]
        pr[cnt] = radii[i]
        cnt += 1
    return pc[:cnt], pr[:cnt]


def multi(
    rng: np.random.Generator,
    size: int | Sequence[int],
    k: int,
    *,
    shape: ShapeFn = simple_shape,
    radius: tuple[float, float] | None = None,
    gap: float = GAP,
    max_attempts: int = 50,
) -> list[np.ndarray]:
    """``k`` disjoint shapes, each inside its own disc; discs are at least ``gap`` apart.

    Radii are drawn from ``U(radius)`` (default ``(0.5, 1) * 0.42 min(H, W) / sqrt(k)``) and discs are
    placed largest first by rejection; the whole draw is repeated (from the same ``rng``) if fewer
    than ``k`` fit.

    Raises
    ------
    RuntimeError
        If ``k`` discs cannot be placed in ``max_attempts`` draws.
    """
    rng = check_rng(rng)
    h, w = canvas(size)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if radius is None:
        top = 0.42 * min(h, w) / np.sqrt(k)
        radius = (max(3.0, 0.5 * top), max(3.0, top))
    for _ in range(max_attempts):
        radii = rng.uniform(radius[0], radius[1], size=k)
        centers, rr = _disjoint_discs(rng, h, w, radii, gap=gap, margin=MARGIN, attempts=64)
        if len(rr) == k:
            if shape is simple_shape:
                return simple_shapes(rng, centers, rr)
            return [shape(rng, (h, w), center=c, radius=r) for c, r in zip(centers, rr)]
    raise RuntimeError(f"could not place {k} disjoint shapes on a {h}x{w} canvas in {max_attempts} attempts")


def nested(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    levels: int | None = None,
    center: Sequence[float] | None = None,
    radius: float | None = None,
    gap: float = GAP,
    min_radius: float = 3.5,
) -> list[np.ndarray]:
    """Rings in rings: a chain of ``levels`` blobs, each strictly inside the previous one.

    Level ``j + 1`` is a blob whose circumscribed disc lies in the inscribed disc of level ``j``
    (radius :func:`inner_radius` minus ``gap``), with its centre shifted at random inside the room
    left. A pixel inside ``j`` curves is in the figure iff ``j`` is odd (even-odd rule).

    Parameters
    ----------
    levels : int, optional
        Number of curves in the chain (default uniform in {2, 3, 4}); the chain stops early when
        the room left is below ``min_radius``.

    Returns
    -------
    list of ndarray (K_i, 2), outermost first.
    """
    rng = check_rng(rng)
    h, w = canvas(size)
    if levels is None:
        levels = int(rng.integers(2, 5))
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    c, r = place(rng, (h, w), center, radius, frac=(0.3, 0.45))
    out = [blob(rng, (h, w), center=c, radius=r, amplitude=0.2, min_ratio=0.7)]
    for _ in range(levels - 1):
        room = inner_radius(out[-1], c) - gap
        if room < min_radius:
            break
        r = float(rng.uniform(0.7, 0.95)) * room
        r = max(r, min(min_radius, room))
        slack = room - r
        ang = rng.uniform(0, 2 * np.pi)
        c = c + rng.uniform(0, slack) * np.array([np.cos(ang), np.sin(ang)])
        out.append(blob(rng, (h, w), center=c, radius=r, amplitude=0.2, min_ratio=0.7))
    return out


def texture(
    rng: np.random.Generator,
    size: int | Sequence[int],
    *,
    n_shapes: int | None = None,
    radius: tuple[float, float] | None = None,
    nest_prob: float = 0.3,
    shape: ShapeFn = simple_shape,
    gap: float = GAP,
) -> list[np.ndarray]:
    """Many shapes of varied sizes, some of them nested, in the spirit of abstract textures.

    Radii follow a log-uniform law on ``radius`` (default ``(3.5, 0.3 min(H, W))`` px); discs are
    placed largest first by rejection (``n_shapes`` tries, default ``U{12..35} * min(H,W)/256``
    rounded, at least 3). A placed disc of radius >= 12 px becomes a nested chain
    (:func:`nested`, 2 or 3 levels) with probability ``nest_prob``, otherwise one shape.

    Returns
    -------
    list of ndarray (K_i, 2)
    """
    rng = check_rng(rng)
    h, w = canvas(size)
    s = min(h, w)
    if radius is None:
        radius = (3.5, max(4.0, 0.3 * s))
    if n_shapes is None:
        n_shapes = max(3, int(round(rng.integers(12, 36) * (s / 256) ** 1.0)))
    radii = np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]), size=n_shapes))
    centers, rr = _disjoint_discs(rng, h, w, radii, gap=gap, margin=MARGIN, attempts=32)
    nest = (rr >= 12.0) & (rng.random(len(rr)) < nest_prob)
    out: list[np.ndarray] = []
    for j in np.flatnonzero(nest):
        out.extend(nested(rng, (h, w), levels=int(rng.integers(2, 4)), center=centers[j], radius=rr[j], gap=gap))
    single = np.flatnonzero(~nest)
    if shape is simple_shape:
        out.extend(simple_shapes(rng, centers[single], rr[single]))
    else:
        out.extend(shape(rng, (h, w), center=centers[j], radius=rr[j]) for j in single)
    return out
