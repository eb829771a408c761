"""Issue 14: the learned algorithms against the exact fill, on the same images, one thread.

For each family (blobs, nested rings, thick strokes, spiral bands of the ``spiral`` suite, i.e. as many
turns as fit) and canvas (256², 512², 1024², 2048²) one image is drawn; on it we time, median of
``--repeats`` runs on one thread:

- ``jordanlab.topology.fill`` (the exact bit-packed parity fill),
- ``crossing-depth`` through :func:`jordanlab.evaluate.predict_masks` with its default budget,
- ``parity-scan`` the same way (with ``--scan RUN``),

and record whether each learned mask equals the exact fill, the rounds crossing-depth used and the
time ratio to the fill. A single run slower than ``--slow`` seconds is not repeated. ``--clock cpu``
times with this thread's CPU time (``time.thread_time``) instead of the wall clock: on a shared machine
it leaves out the time other processes hold the core (everything here runs on one thread). Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learned_vs_exact.py --depth runs/crossing-depth \
        --scan runs/parity-scan --out runs/bench-learned-vs-exact.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from jordanlab.curves import blob, rasterize
from jordanlab.data import make
from jordanlab.evaluate import predict_masks
from jordanlab.topology import fill
from jordanlab.train.checkpoint import load_model

FAMILIES = ("blob", "nested", "thick", "spiral")


def image(family: str, size: int, seed: int = 0) -> np.ndarray:
    """One ``size``² boundary image of ``family`` (uint8, 1 on the curve)."""
    if family == "blob":
        rng = np.random.default_rng(seed)
        return rasterize(blob(rng, size), size).astype(np.uint8)
    suite = {"nested": "nested", "thick": "thick", "spiral": "spiral"}[family]
    return make(suite, "test", n=1, size=size)[0][0]


def timed(fn, repeats: int, slow: float, clock=time.perf_counter) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls of ``fn`` (one call if the first is slower than ``slow`` s) and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = clock()
        out = fn()
        times.append(clock() - t0)
        if times[0] > slow:
            break
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", required=True, help="a crossing-depth run directory")
    ap.add_argument("--scan", help="a parity-scan run directory")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slow", type=float, default=10.0, help="do not repeat a run slower than this (s)")
    ap.add_argument("--skip", nargs="*", default=[], help="FAMILY:SIZE pairs to skip for crossing-depth")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter; cpu: this thread's CPU time (time.thread_time)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    torch.set_num_threads(1)
    depth, _ = load_model(args.depth)
    scan = load_model(args.scan)[0] if args.scan else None
    rows = []
    for family in args.families:
        for size in args.sizes:
            b = image(family, size)
            t_fill, exact = timed(lambda: fill(b), max(args.repeats, 20), args.slow, clock)
            row = dict(family=family, size=size, curve_px=int(b.sum()), fill_ms=1e3 * t_fill)
            if f"{family}:{size}" not in args.skip:
                t_d, (m, it) = timed(lambda: predict_masks(depth, b[None]), args.repeats, args.slow, clock)
                row.update(depth_ms=1e3 * t_d, depth_ratio=t_d / t_fill, depth_rounds=int(it[0]),
                           depth_exact=bool(np.array_equal(m[0], exact)),
                           depth_wrong_px=int((m[0] != exact).sum()))
            if scan is not None:
                t_s, (m, _) = timed(lambda: predict_masks(scan, b[None]), args.repeats, args.slow, clock)
                row.update(scan_ms=1e3 * t_s, scan_ratio=t_s / t_fill, scan_exact=bool(np.array_equal(m[0], exact)))
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    out = dict(depth=args.depth, scan=args.scan, repeats=args.repeats, clock=args.clock, rows=rows)
    if args.out is not None:
        from jordanlab._atomic import write_text

        write_text(args.out, json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
