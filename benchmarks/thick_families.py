"""Issue 5: thick strokes on every family, not only the single shapes of the ``thick`` suite.

The ``thick`` suite draws one blob with 2-3 px strokes. This script draws the other OOD families (several
shapes, nested rings, polygons, random walks) with 2-3 px strokes at 64×64 (and blobs at 256×256),
labels them with the exact fill (spirals are left out: the generator's spiral corridors are too narrow
for 3 px strokes, which would close them off), and scores each given run on them (perfect-image rate; iterations for
models that report them). Writes ``OUT/thick-families.json`` and prints a markdown table.

Run (a few minutes per run on one CPU core)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/thick_families.py runs/crossing-depth runs/auto-reset-s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jordanlab.data import Spec, generate_images
from jordanlab.evaluate import predict_masks
from jordanlab.train.checkpoint import load_model

FAMILIES = [("multi-3", 64), ("multi-5", 64), ("nested", 64), ("polygon", 64),
            ("randomwalk", 64), ("shape", 256)]


def thick_set(family: str, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of ``family`` with 2-3 px strokes on a ``size``² canvas, and their exact fills."""
    spec = Spec(f"thick-{family}-{size}", size, family, 0, n, thickness=(2, 3), kind="suite")
    b, m, _, _ = generate_images(spec, "test", range(n), seed=seed, workers=1)
    return b, m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories")
    ap.add_argument("--n", type=int, default=100, help="images per family")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/figures")
    args = ap.parse_args()
    sets = {f"thick {fam} {size}²": thick_set(fam, size, args.n, args.seed) for fam, size in FAMILIES}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for run in args.runs:
        model, _ = load_model(run)
        result[run] = {}
        for name, (b, m) in sets.items():
            pred, iters = predict_masks(model, b)
            entry = {"perfect": float((pred == m).reshape(len(m), -1).all(1).mean())}
            if iters is not None:
                entry.update(iters_mean=float(iters.mean()), iters_max=int(iters.max()))
            result[run][name] = entry
            print(run, name, entry, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "thick-families.json").write_text(json.dumps(dict(n=args.n, seed=args.seed, results=result), indent=2))
    print("| set | " + " | ".join(args.runs) + " |")
    print("|---|" + "---:|" * len(args.runs))
    for name in sets:
        print(f"| {name} | " + " | ".join(f"{result[r][name]['perfect']:.2f}" for r in args.runs) + " |")


if __name__ == "__main__":
    main()
