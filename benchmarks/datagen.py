"""Time full generation of the shapes-128 and textures-256 presets (all splits).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/datagen.py [--repeats 3] [--workers 2] [--names shapes-128 textures-256]

Generation = drawing every image's curves (with rejection), rasterizing them to simple closed
8-curves and labelling with ``jordanlab.topology.fill``: exactly what ``jordanlab.data.make`` does,
for the train and test splits. Targets (issue 2): shapes-128 < 5 s, textures-256 < 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from jordanlab.data import PRESETS, make

TARGETS = {"shapes-128": 5.0, "textures-256": 60.0}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def time_preset(name: str, workers: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process plus its finished worker processes)."""
    c0, t0 = _cpu(), time.perf_counter()
    for split in PRESETS[name].splits():
        make(name, split, workers=workers)
    return time.perf_counter() - t0, _cpu() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--names", nargs="+", default=list(TARGETS))
    args = ap.parse_args(argv)
    rows = []
    for name in args.names:
        spec = PRESETS[name]
        n = spec.n_train + spec.n_test
        runs = [time_preset(name, args.workers) for _ in range(args.repeats)]
        times = [r[0] for r in runs]
        cpu = statistics.median(r[1] for r in runs)
        med = statistics.median(times)
        rows.append((name, n, spec.size, med, min(times), max(times), n / med, cpu, TARGETS.get(name)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"command: {' '.join(['python'] + sys.argv)}  (workers={args.workers}, repeats={args.repeats}, "
          f"cpus={os.cpu_count()}, load average at end={load:.1f})")
    print("| preset | images | canvas | median wall s | min s | max s | images/s | median CPU s | target s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, s, med, lo, hi, rate, cpu, target in rows:
        tgt = f"< {target:.0f}" if target else "-"
        print(f"| {name} | {n} | {s}x{s} | {med:.2f} | {lo:.2f} | {hi:.2f} | {rate:.0f} | {cpu:.1f} | {tgt} |")
    print("CPU s = user + system time of the main process and its workers; on an otherwise idle machine the "
          "wall time approaches CPU s / workers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
