"""Issue 5: which training examples carry parity-scan's out-of-distribution predictions?

Replays ``runs/parity-scan`` (the real Adam run) with :class:`jordanlab.kernels.AdamPathRecorder` and writes
``docs/figures/explain-parity-scan-<name>.{png,json}`` plus ``explain-parity-scan-{summary,analysis}.json``.
The queries and the analysis are :func:`jordanlab.experiments.parity_scan.explain_parity_scan`'s.

Run (about 10-20 minutes on one contended CPU core)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python scripts/explain_parity_scan.py
"""

from __future__ import annotations

import argparse

import numpy as np

from jordanlab.experiments.parity_scan import explain_parity_scan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/parity-scan")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--replay", default="runs/kb-replay-parity-scan")
    ap.add_argument("--quadrature", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="delete the replay run directory first")
    ap.add_argument("--analyse-only", action="store_true", help="only (re)write explain-parity-scan-analysis.json")
    args = ap.parse_args()
    res = explain_parity_scan(args.run, args.out, args.replay, quadrature=args.quadrature, fresh=args.fresh,
                              analyse_only=args.analyse_only)
    summary = res["summary"]
    if summary is not None:
        for key, value in summary.items():
            if key not in ("queries", "contribution_correlation"):
                print(f"{key}: {value}")
        for q in summary["queries"]:
            print(q)
        print("correlation of the contribution vectors:\n", np.array(summary["contribution_correlation"]).round(3))
    print(res["analysis"])


if __name__ == "__main__":
    main()
