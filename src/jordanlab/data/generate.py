"""Generation of exactly labelled images: ``make(name, split, n, seed)``."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from jordanlab.curves import rasterize, sample_boundary
from jordanlab.curves.raster import _dilate
from jordanlab.data.specs import FAMILIES, Spec, image_rng, resolve
from jordanlab.topology import fill

__all__ = ["make", "generate_images", "label"]

_CHUNK = 128  # images per work item


def label(boundary: np.ndarray, *, thin: np.ndarray | None = None) -> np.ndarray:
    """The exact figure mask: ``fill(boundary)``, or ``fill(thin) | boundary`` for thick strokes.

    For a stroke of width >= 2 obtained by dilating the simple closed 8-curves ``thin`` (whose
    dilation splits no background region, see :func:`jordanlab.curves.rasterize`), the figure is the
    stroke plus the inside of the thin curves.
    """
    if thin is None:
        return np.asarray(fill(boundary), dtype=np.uint8)
    return (np.asarray(fill(thin), dtype=np.uint8) | boundary).astype(np.uint8)


def _one(spec: Spec, split: str, seed: int, i: int) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray], int]:
    """Image ``i``: (boundary, thin boundary or None, curves, thickness)."""
    rng = image_rng(seed, spec, split, i)
    lo, hi = spec.thickness
    t = int(rng.integers(lo, hi + 1)) if hi > lo else lo
    curves, boundary = sample_boundary(rng, FAMILIES[spec.family], spec.size, thickness=t)
    thin = None
    if t > 1:
        thin = rasterize(curves, spec.size)
        assert np.array_equal(_dilate(thin, t), boundary)
    return boundary, thin, curves, t


def _chunk(args: tuple[Spec, str, int, int, int]) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]], np.ndarray]:
    """Images ``start..stop-1`` as bit-packed (boundaries, masks), curves and thickness."""
    spec, split, seed, start, stop = args
    n = stop - start
    b = np.zeros((n, spec.size, spec.size), dtype=np.uint8)
    thin = np.zeros_like(b)
    curves: list[list[np.ndarray]] = []
    thick = np.ones(n, dtype=np.uint8)
    for j, i in enumerate(range(start, stop)):
        bj, tj, cj, t = _one(spec, split, seed, i)
        b[j] = bj
        thin[j] = bj if tj is None else tj
        curves.append(cj)
        thick[j] = t
    m = np.asarray(fill(thin), dtype=np.uint8) | b
    return np.packbits(b, axis=-1), np.packbits(m, axis=-1), curves, thick


def _die_with_parent(parent: int) -> None:
    """Pool initializer: the worker gets SIGKILL when its parent dies (Linux), so a killed
    ``data make`` leaves no sleeping workers; elsewhere it exits if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _workers(workers: int | None, n_chunks: int) -> int:
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return max(1, min(int(workers), n_chunks))


def generate_images(
    spec: Spec,
    split: str,
    indices: Sequence[int] | range,
    *,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]], np.ndarray]:
    """Generate images ``indices`` (a contiguous ``range``) of ``spec``/``split``.

    Returns
    -------
    boundaries, masks : ndarray of shape (N, H, W), uint8
    curves : list (length N) of lists of ``(K, 2)`` vertex arrays
    thickness : ndarray of shape (N,), uint8
    """
    if not isinstance(indices, range) or indices.step != 1:
        raise ValueError("indices must be a contiguous range")
    start, stop = indices.start, indices.stop
    n = stop - start
    s = spec.size
    boundaries = np.zeros((n, s, s), dtype=np.uint8)
    masks = np.zeros((n, s, s), dtype=np.uint8)
    curves: list[list[np.ndarray]] = []
    thickness = np.zeros(n, dtype=np.uint8)
    jobs = [(spec, split, int(seed), a, min(a + _CHUNK, stop)) for a in range(start, stop, _CHUNK)]
    nw = _workers(workers, len(jobs))
    bar = tqdm(total=n, desc=f"{spec.name}/{split}", unit="img", disable=not progress)

    def _store(job: tuple, res: tuple) -> None:
        a, z = job[3] - start, job[4] - start
        boundaries[a:z] = np.unpackbits(res[0], axis=-1, count=s)
        masks[a:z] = np.unpackbits(res[1], axis=-1, count=s)
        curves.extend(res[2])
        thickness[a:z] = res[3]
        bar.update(z - a)

    try:
        if nw == 1:
            for job in jobs:
                _store(job, _chunk(job))
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(max_workers=nw, mp_context=ctx, initializer=_die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                for job, res in zip(jobs, pool.map(_chunk, jobs)):
                    _store(job, res)
    finally:
        bar.close()
    return boundaries, masks, curves, thickness


def make(
    name: str,
    split: str = "test",
    n: int | None = None,
    seed: int = 0,
    *,
    size: int | None = None,
    workers: int | None = 1,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Boundary images and their exact figure masks for a preset or suite.

    Image ``i`` is drawn from ``numpy.random.default_rng([seed, crc32("name|split|size"), i])`` and
    rejected/resampled from that generator until its curves rasterize to non-touching simple closed
    8-curves; the mask is :func:`jordanlab.topology.fill` of the boundary (even-odd rule), so the
    result is identical for the same arguments on any machine and any number of workers.

    Parameters
    ----------
    name : str
        A preset (``shapes-32``, ``shapes-64``, ``shapes-128``, ``textures-256``) or a suite
        (``multi-2``, ``multi-3``, ``multi-5``, ``nested``, ``spiral``, ``polygon``, ``randomwalk``,
        ``thick``, ``large-2x``, ``large-4x``); see :mod:`jordanlab.data.specs`.
    split : {"train", "test"}
        Suites have only ``"test"``.
    n : int, optional
        Number of images (the first ``n``); default the preset's/suite's count.
    seed : int
    size : int, optional
        Base canvas of a suite (default 64; ``large-kx`` use ``k * size``). Not for presets.
    workers : int, optional
        Processes (None: all CPUs). Does not change the result.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    boundaries, masks : ndarray of shape (N, H, W), uint8 in {0, 1}

    Examples
    --------
    >>> b, m = make("shapes-32", n=2)
    >>> b.shape, m.dtype.name, bool((m >= b).all())
    ((2, 32, 32), 'uint8', True)
    """
    spec = resolve(name, size=size)
    if split not in spec.splits():
        raise ValueError(f"split must be one of {list(spec.splits())} for {name!r}, got {split!r}")
    if n is None:
        n = spec.count(split)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    b, m, _, _ = generate_images(spec, split, range(int(n)), seed=seed, workers=workers, progress=progress)
    return b, m
