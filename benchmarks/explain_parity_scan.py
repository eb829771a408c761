"""Issue 5: which training examples carry parity-scan's out-of-distribution predictions?

Replays ``runs/parity-scan`` (the real Adam run) with :class:`jordanlab.kernels.AdamPathRecorder` and writes
``docs/figures/explain-parity-scan-<name>.{png,json}`` plus ``explain-parity-scan-summary.json``.

Queries (picked by rule, before the replay, and checked to be predicted correctly by the run's model):

- ``spiral-in`` / ``spiral-out``: spiral (64x64) test[0], the figure / background pixel (not on the curve) most
  deeply nested in its row (the most mask changes on the shorter of its two horizontal rays), ties broken by the
  largest distance to the curve;
- ``nested-hole``: nested rings (64x64) test[0], the background pixel most deeply nested in its row (a hole);
- ``large-256``: large-4x at base 64 (a 256x256 canvas, 8x the training side) test[0], the figure pixel farthest
  from the curve;
- ``test-in``: the training preset's test[0] (in distribution), the figure pixel farthest from the curve.

Run (about 10-20 minutes on one contended CPU core)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/explain_parity_scan.py
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from jordanlab.kernels.adam_path import Query, explain_adam_run, load_query_image
from jordanlab.train import load_config, load_model


def changes_to_the_right(mask: np.ndarray) -> np.ndarray:
    """Number of mask changes on the ray from each pixel to the right border (beyond the canvas: background)."""
    padded = np.concatenate([mask, np.zeros((mask.shape[0], 1), mask.dtype)], axis=1).astype(int)
    change = (np.diff(padded, axis=1) != 0).astype(int)
    return np.cumsum(change[:, ::-1], axis=1)[:, ::-1]


def row_depth(mask: np.ndarray) -> np.ndarray:
    """min(changes on the ray to the right, changes on the ray to the left): how deeply nested a pixel is in its row."""
    return np.minimum(changes_to_the_right(mask), changes_to_the_right(mask[:, ::-1])[:, ::-1])


def pick(boundary: np.ndarray, mask: np.ndarray, label: int, rule: str) -> tuple[int, int]:
    """A non-curve pixel of ``label``: the most changes to the right (``"depth"``) or farthest from the curve."""
    dist = distance_transform_edt(boundary == 0)
    ok = (boundary == 0) & (mask == label)
    score = dist.copy()
    if rule == "depth":
        score = row_depth(mask) * 1000.0 + dist
    score[~ok] = -np.inf
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(r), int(c)


def analyse(out: Path, replay: Path, names: list[str]) -> dict:
    """Which examples carry the queries? Correlations of a_i across queries and with simple example features.

    Features of training image i (un-augmented original): curve length (boundary pixels), figure area, the number
    of curve crossings of its rows (mask changes along rows: the parity rule's evidence), and whether its figure
    covers the query pixel (only for queries on the 32x32 training canvas).
    """
    from scipy.stats import spearmanr

    from jordanlab._atomic import write_json
    from jordanlab.data import load_dataset

    b, m = load_dataset(replay / "data" / "train", "train")
    feats = {
        "curve_length": b.reshape(len(b), -1).sum(1).astype(float),
        "area": m.reshape(len(m), -1).sum(1).astype(float),
        "row_crossings": (np.diff(m.astype(int), axis=2) != 0).reshape(len(m), -1).sum(1).astype(float),
    }
    reports = {n: json.loads((out / f"explain-parity-scan-{n}.json").read_text()) for n in names}
    vecs = {n: np.array(r["contributions"]) for n, r in reports.items()}
    result: dict = {"spearman_between_queries": {}, "spearman_with_features": {}, "cover_the_pixel": {},
                    "top50_overlap": {}}
    for i, a in enumerate(names):
        for bq in names[i + 1:]:
            result["spearman_between_queries"][f"{a}|{bq}"] = float(spearmanr(vecs[a], vecs[bq])[0])
            ta = set(np.argsort(-np.abs(vecs[a]))[:50].tolist())
            tb = set(np.argsort(-np.abs(vecs[bq]))[:50].tolist())
            result["top50_overlap"][f"{a}|{bq}"] = len(ta & tb)
        result["spearman_with_features"][a] = {k: float(spearmanr(vecs[a], f)[0]) for k, f in feats.items()}
        r, c = reports[a]["pixel"]
        if reports[a]["shape"] == list(m.shape[1:]):
            cover = m[:, r, c] > 0
            result["cover_the_pixel"][a] = {"n_cover": int(cover.sum()), "mean_a_cover": float(vecs[a][cover].mean()),
                                            "mean_a_not": float(vecs[a][~cover].mean())}
    write_json(out / "explain-parity-scan-analysis.json", result)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/parity-scan")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--replay", default="runs/kb-replay-parity-scan")
    ap.add_argument("--quadrature", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="delete the replay directory first")
    ap.add_argument("--analyse-only", action="store_true", help="only (re)write explain-parity-scan-analysis.json")
    args = ap.parse_args()
    config = load_config(Path(args.run) / "config.toml")
    model, _ = load_model(args.run)
    model.eval()
    plan = [("spiral-in", "spiral:0", 64, 1, "depth"), ("spiral-out", "spiral:0", 64, 0, "depth"),
            ("nested-hole", "nested:0", 64, 0, "depth"), ("large-256", "large-4x:0", 64, 1, "far"),
            ("test-in", "0", None, 1, "far")]
    queries = []
    for name, spec, size, label, rule in plan:
        b, m, source = load_query_image(spec, config, size=size)
        r, c = pick(b, m, label, rule)
        with torch.no_grad():
            z = model(torch.as_tensor(b, dtype=torch.float32)[None, None])[0, 0]
        perfect = bool(((z > 0).numpy() == (m > 0)).all())
        print(f"{name}: {source} {b.shape} pixel ({r},{c}) label {label} logit {float(z[r, c]):+.3f} "
              f"changes-to-right {int(changes_to_the_right(m)[r, c])} image perfect {perfect}")
        if (float(z[r, c]) > 0) != bool(label):
            raise SystemExit(f"{name}: the run's model gets the query pixel wrong; pick another")
        queries.append(Query(name, b, m, (r, c), source))
    if args.analyse_only:
        print(analyse(Path(args.out), Path(args.replay), [q.name for q in queries]))
        return
    if args.fresh:
        shutil.rmtree(args.replay, ignore_errors=True)
    summary = explain_adam_run(args.run, queries, args.out, replay_dir=args.replay, quadrature=args.quadrature,
                               prefix="explain-parity-scan-")
    for key, value in summary.items():
        if key not in ("queries", "contribution_correlation"):
            print(f"{key}: {value}")
    for q in summary["queries"]:
        print(q)
    print("correlation of the contribution vectors:\n", np.array(summary["contribution_correlation"]).round(3))
    print(analyse(Path(args.out), Path(args.replay), [q.name for q in queries]))


if __name__ == "__main__":
    main()
