"""Which training examples carry parity-scan's out-of-distribution predictions? (README, issue 5)

Replays a ``parity-scan`` run (a real Adam run) with :class:`jordanlab.kernels.AdamPathRecorder`
(:func:`~jordanlab.experiments.explain_adam_run`) for query pixels picked by rule before the replay
(:data:`PARITY_SCAN_QUERIES`), each checked to be predicted correctly by the run's model, and
correlates the contribution vectors with simple features of the training images (:func:`analyse`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from jordanlab._atomic import write_json

from ._runs import run_config, run_images, trained_model
from .explain_adam import Query, explain_adam_run
from .images import parse_image_spec

__all__ = ["PARITY_SCAN_QUERIES", "analyse", "changes_to_the_right", "explain_parity_scan", "pick", "row_depth"]

#: ``(name, image spec, suite canvas, label, rule)``: ``spiral-in``/``spiral-out`` are the figure/background
#: pixel of spiral (64²) test[0] most deeply nested in its row (:func:`row_depth`, ties: farthest from the
#: curve), ``nested-hole`` the deepest background pixel of nested rings (64²) test[0], ``large-256`` the figure
#: pixel of large-4x at base 64 (256², 8× the training side) test[0] farthest from the curve, ``test-in`` the
#: same on the training preset's test[0] (in distribution).
PARITY_SCAN_QUERIES = (
    ("spiral-in", "spiral:0", 64, 1, "depth"), ("spiral-out", "spiral:0", 64, 0, "depth"),
    ("nested-hole", "nested:0", 64, 0, "depth"), ("large-256", "large-4x:0", 64, 1, "far"),
    ("test-in", "0", None, 1, "far"),
)
PREFIX = "explain-parity-scan-"


def changes_to_the_right(mask: np.ndarray) -> np.ndarray:
    """Number of mask changes on the ray from each pixel to the right border (beyond the canvas: background).

    Examples
    --------
    >>> changes_to_the_right(np.array([[0, 1, 1, 0]])).tolist()
    [[2, 1, 1, 0]]
    """
    padded = np.concatenate([mask, np.zeros((mask.shape[0], 1), mask.dtype)], axis=1).astype(int)
    change = (np.diff(padded, axis=1) != 0).astype(int)
    return np.cumsum(change[:, ::-1], axis=1)[:, ::-1]


def row_depth(mask: np.ndarray) -> np.ndarray:
    """min(changes on the ray to the right, changes on the ray to the left): how deeply nested a pixel is in its row."""
    return np.minimum(changes_to_the_right(mask), changes_to_the_right(mask[:, ::-1])[:, ::-1])


def pick(boundary: np.ndarray, mask: np.ndarray, label: int, rule: str) -> tuple[int, int]:
    """A non-curve pixel of ``label``: the deepest in its row (``"depth"``, ties: far) or farthest from the curve."""
    from scipy.ndimage import distance_transform_edt

    if rule not in ("depth", "far"):
        raise ValueError(f"rule must be 'depth' or 'far', got {rule!r}")
    dist = distance_transform_edt(boundary == 0)
    ok = (boundary == 0) & (mask == label)
    score = dist.copy()
    if rule == "depth":
        score = row_depth(mask) * 1000.0 + dist
    score[~ok] = -np.inf
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(r), int(c)


def analyse(out: Path, config: object, names: list[str], *, prefix: str = PREFIX) -> dict:
    """Which examples carry the queries? Correlations of a_i across queries and with simple example features.

    Features of training image i (un-augmented original): curve length (boundary pixels), figure area, the number
    of curve crossings of its rows (mask changes along rows: the parity rule's evidence), and whether its figure
    covers the query pixel (only for queries on the training canvas). Writes ``OUT/<prefix>analysis.json``.
    """
    from scipy.stats import spearmanr

    reports = {n: json.loads((out / f"{prefix}{n}.json").read_text()) for n in names}
    vecs = {n: np.array(r["contributions"]) for n, r in reports.items()}
    b, m, _ = run_images(config, "train", len(next(iter(vecs.values()))))
    feats = {
        "curve_length": b.reshape(len(b), -1).sum(1).astype(float),
        "area": m.reshape(len(m), -1).sum(1).astype(float),
        "row_crossings": (np.diff(m.astype(int), axis=2) != 0).reshape(len(m), -1).sum(1).astype(float),
    }
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
    write_json(out / f"{prefix}analysis.json", result)
    return result


def _queries(run: str | os.PathLike[str], config: object, plan=PARITY_SCAN_QUERIES,
             log=print) -> list[Query]:
    """The queries of ``plan``, each checked against the run's own prediction (``ValueError`` if wrong)."""
    model, _ = trained_model(run)
    model.eval()
    queries = []
    for name, spec, size, label, rule in plan:
        img = parse_image_spec(spec, config, size=size)
        b, m = img.boundary, img.mask
        r, c = pick(b, m, label, rule)
        with torch.no_grad():
            z = model(torch.as_tensor(b, dtype=torch.float32)[None, None])[0, 0]
        perfect = bool(((z > 0).numpy() == (m > 0)).all())
        log(f"{name}: {img.source} {b.shape} pixel ({r},{c}) label {label} logit {float(z[r, c]):+.3f} "
            f"changes-to-right {int(changes_to_the_right(m)[r, c])} image perfect {perfect}")
        if (float(z[r, c]) > 0) != bool(label):
            raise ValueError(f"query {name!r}: the run's model gets pixel ({r}, {c}) of {img.source} wrong; pick another")
        queries.append(Query(name, b, m, (r, c), img.source))
    return queries


def explain_parity_scan(run: str | os.PathLike[str], out: str | os.PathLike[str], replay: str | os.PathLike[str], *,
                        quadrature: int = 2, fresh: bool = False, analyse_only: bool = False,
                        progress: bool = True, log=print) -> dict:
    """Replay ``run`` with the exact Adam recorder for :data:`PARITY_SCAN_QUERIES`; write figures, JSON, analysis.

    Writes ``OUT/explain-parity-scan-<name>.{png,json}``, ``...-summary.json`` and ``...-analysis.json``.
    ``fresh`` deletes ``replay`` first, but only a directory that holds a ``config.toml`` (a jordanlab run);
    ``analyse_only`` rewrites only the analysis from the existing reports. Returns ``{"summary", "analysis"}``.
    """
    out, replay = Path(out), Path(replay)
    config = run_config(run)
    queries = _queries(run, config, log=log)
    names = [q.name for q in queries]
    if analyse_only:
        return {"summary": None, "analysis": analyse(out, config, names)}
    if fresh and replay.exists():
        if not (replay / "config.toml").is_file():
            raise ValueError(f"replay {str(replay)!r} is not a jordanlab run directory (no config.toml); not deleting it")
        shutil.rmtree(replay)
    summary = explain_adam_run(run, queries, out, replay_dir=replay, quadrature=quadrature, prefix=PREFIX,
                               progress=progress)
    return {"summary": summary, "analysis": analyse(out, config, names)}
