"""Issue 5: thick strokes on every family, not only the single shapes of the ``thick`` suite.

Scores each run on 2-3 px strokes of several shapes, nested rings, polygons, random walks (64×64) and blobs
(256×256) with :func:`jordanlab.experiments.thick.thick_families`; writes ``OUT/thick-families.json`` and
prints a markdown table.

Run (a few minutes per run on one CPU core)::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/thick_families.py runs/crossing-depth runs/auto-reset-s0
"""

from __future__ import annotations

import argparse

from jordanlab.experiments.thick import thick_families


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--n", type=int, default=100, help="images per family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args()
    report = thick_families(args.runs, args.out, n=args.n, seed=args.seed, log=lambda s: print(s, flush=True))
    results = report["results"]
    names = list(next(iter(results.values())))
    print("| set | " + " | ".join(args.runs) + " |")
    print("|---|" + "---:|" * len(args.runs))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[r][name]['perfect']:.2f}" for r in args.runs) + " |")


if __name__ == "__main__":
    main()
