"""The ranking comparison of issue 12 §3: exact a_i of a replayed run against TracInCP and the old SGD copy.

For each query pixel already explained exactly (``kernel explain-adam``'s JSON: all N contributions a_i of
the run's own logit), :func:`compare_rankings` computes

- TracInCP (:func:`jordanlab.kernels.tracin_cp`) over the run's per-epoch checkpoints, taken from a
  retraining of the same config that keeps every checkpoint (``--set train.keep_checkpoints=E``; its weights
  are checked bit for bit against the checkpoints the run kept), η_c = the learning rate of epoch c, every
  checkpoint in eval mode (BatchNorm on its running statistics): ``tracin`` with the un-augmented training
  images z_i, ``tracin_seen`` with, at checkpoint c, the augmented image the run trained on in epoch c
  (``FillDataset.set_epoch(c)``; differs from z_i when the run augments);
- the SGD-copy contributions (:func:`~jordanlab.experiments.explain_from_run` with ``kernel explain
  --method sgd-copy``'s defaults, :data:`SGD_COPY`), which cover the first ``n_train`` training images only;

and writes the Spearman rank correlations (``scipy.stats.spearmanr``) and top-10 overlaps
(:func:`ranking_agreement`) to ``OUT/<prefix>summary.json``, one JSON with all scores per query and one figure
per query (:func:`plot_comparison`). Run as ``python -m jordanlab.experiments.explain_compare``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from jordanlab._atomic import save_figure, write_json

from ._runs import run_config, run_images

__all__ = ["SGD_COPY", "compare_rankings", "plot_comparison", "ranking_agreement", "top_overlap"]

#: ``kernel explain --method sgd-copy``'s defaults (:func:`~jordanlab.experiments.explain_run`).
SGD_COPY = {"n_train": 64, "lr": 0.05, "steps": 200, "batch_size": 16, "seed": 0, "quadrature": 3}


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 10, *, sign: int = 0) -> int:
    """How many of ``a``'s top-``k`` examples are in ``b``'s top-``k``.

    ``sign=0``: by |score|; ``+1``: the most positive; ``-1``: the most negative.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    key_a, key_b = (np.abs(a), np.abs(b)) if sign == 0 else (sign * a, sign * b)
    ta = set(np.argsort(-key_a, kind="stable")[:k].tolist())
    tb = set(np.argsort(-key_b, kind="stable")[:k].tolist())
    return len(ta & tb)


def ranking_agreement(a: np.ndarray, b: np.ndarray, k: int = 10) -> dict[str, float]:
    """Spearman ρ (and its p-value) of two score vectors, plus top-``k`` overlaps of ``a``'s top-k in ``b``'s."""
    from scipy.stats import spearmanr

    res = spearmanr(a, b)
    return {"spearman": float(res.statistic), "p_value": float(res.pvalue), "n": int(len(a)),
            f"top{k}_abs": top_overlap(a, b, k), f"top{k}_pos": top_overlap(a, b, k, sign=1),
            f"top{k}_neg": top_overlap(a, b, k, sign=-1)}


def _checkpoint_models(run_dir: Path, ckpt_dir: Path) -> tuple[list, list[float], dict]:
    """Every checkpoint of ``ckpt_dir`` (a retraining of ``run_dir`` that kept them all), their η_c, the check."""
    from jordanlab.train import load_checkpoint
    from jordanlab.train.run import Run

    run, full = Run.open(run_dir), Run.open(ckpt_dir)
    if run.identity != full.identity:
        raise ValueError(f"checkpoint run {str(ckpt_dir)!r} has config identity {full.identity[:12]}, not the run's "
                         f"{run.identity[:12]}: retrain {str(run_dir)!r}'s config.toml changing safe keys only")
    epochs = full.checkpoints()
    if [e for e, _ in epochs] != list(range(1, run.config.train.epochs + 1)):
        raise ValueError(f"checkpoint run {str(ckpt_dir)!r} holds epochs {[e for e, _ in epochs]}, not 1..."
                         f"{run.config.train.epochs} (train it with --set train.keep_checkpoints="
                         f"{run.config.train.epochs})")
    check = {}
    theirs = dict(run.checkpoints())
    for e, path in epochs:
        if e in theirs:
            a, b = load_checkpoint(theirs[e])["model"], load_checkpoint(path)["model"]
            same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            check[str(e)] = same
            if not same:
                raise ValueError(f"checkpoint run {str(ckpt_dir)!r}: epoch {e} differs from {theirs[e]} (not the run)")
    lr = {int(m["epoch"]): float(m["lr"]) for m in full.read_metrics() if "lr" in m and "epoch" in m}
    lrs = [lr[e] for e, _ in epochs]
    return [full.load_model(p) for _, p in epochs], lrs, {"bit_identical_epochs": check, "epochs": len(epochs)}


def _seen_images(run_dir: Path, config, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per epoch c = 1..E, the (augmented) training inputs and targets the run drew in epoch c, float64."""
    from jordanlab import data
    from jordanlab.train.run import Run

    ds = data.FillDataset(Run.open(run_dir).data_dir(), "train", augment=config.data.augment, seed=config.data.seed)
    if len(ds) != n:
        raise ValueError(f"{run_dir}: the training split holds {len(ds)} images, the config says {n}")
    out = []
    for epoch in range(1, config.train.epochs + 1):
        ds.set_epoch(epoch)
        pairs = [ds.arrays(i) for i in range(n)]
        out.append((torch.as_tensor(np.stack([b for b, _ in pairs]), dtype=torch.float64)[:, None],
                    torch.as_tensor(np.stack([m for _, m in pairs]), dtype=torch.float64)[:, None]))
    return out


def _sgd_copy(run_dir: Path, q, out: Path, prefix: str) -> dict:
    """The SGD-copy contributions of query ``q`` (cached in ``OUT/<prefix>sgd-copy-<name>.json``)."""
    from .explain import explain_from_run

    cache = out / f"{prefix}sgd-copy-{q.name}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    config = run_config(run_dir)
    b, m, _ = run_images(config, "train", SGD_COPY["n_train"])
    x = torch.as_tensor(np.asarray(b), dtype=torch.float64)[:, None]
    y = torch.as_tensor(np.asarray(m), dtype=torch.float64)[:, None]
    t0 = time.perf_counter()
    e = explain_from_run(run_dir, torch.as_tensor(q.boundary, dtype=torch.float64)[None], q.pixel, x, y, k=8,
                         lr=SGD_COPY["lr"], steps=SGD_COPY["steps"], batch_size=SGD_COPY["batch_size"],
                         seed=SGD_COPY["seed"], quadrature=SGD_COPY["quadrature"], progress=False)
    rep = {"name": q.name, "initial": e.initial, "final": e.final, "run_final": e.run_final, "residual": e.residual,
           "contributions": [float(v) for v in e.contributions.tolist()], "sgd": SGD_COPY, "notes": e.notes,
           "seconds": time.perf_counter() - t0}
    write_json(cache, rep)
    return rep


def compare_rankings(run_dir: str | os.PathLike[str], ckpt_dir: str | os.PathLike[str],
                     queries: Sequence[tuple[str, tuple[int, int], str | os.PathLike[str]]],
                     out_dir: str | os.PathLike[str], *, prefix: str = "explain-quick-unet-compare-",
                     k: int = 10, sgd_copy: bool = True, augmented: bool = False, batch_size: int = 64) -> dict:
    """Exact a_i (from ``kernel explain-adam`` JSONs) against TracInCP and the SGD copy, per query.

    ``queries``: ``(image spec, pixel, exact JSON)`` triples; the spec and pixel must name the JSON's query.
    ``ckpt_dir``: the run retrained with every checkpoint kept (module docstring); ``augmented``: also
    ``tracin_seen`` (twice the cost). Writes per query
    ``OUT/<prefix><name>.json`` (all scores) and ``.png``, and ``OUT/<prefix>summary.json``.
    """
    from scipy.stats import spearmanr

    from jordanlab.kernels import tracin_cp

    from .explain_adam import concentration, query_from_spec

    run_dir, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = run_config(run_dir)
    models, lrs, check = _checkpoint_models(run_dir, Path(ckpt_dir))
    train_b, train_m, _ = run_images(config, "train", config.data.n_train)
    n = len(train_b)
    x = torch.as_tensor(np.asarray(train_b), dtype=torch.float64)[:, None]
    y = torch.as_tensor(np.asarray(train_m), dtype=torch.float64)[:, None]
    seen = _seen_images(run_dir, config, n) if augmented else None
    summary = {"run": str(run_dir), "checkpoints": str(ckpt_dir), **check, "lrs": lrs, "n_train": n,
               "tracin": {"f": "logit at the query pixel", "loss": config.train.loss + " (mean over pixels)",
                          "batchnorm": "eval mode (running statistics of each checkpoint)", "dtype": "float64",
                          "train_images": "tracin: un-augmented originals; tracin_seen: epoch c's augmentation at checkpoint c",
                          "eta_c": "lr of epoch c"},
               "sgd_copy": SGD_COPY if sgd_copy else None, "queries": []}
    prepared = []  # TracInCP of every query first, then the SGD copies (cached, possibly computed elsewhere)
    for spec, pixel, exact_json in queries:
        exact = json.loads(Path(exact_json).read_text())
        q = query_from_spec(spec, pixel, config)
        if q.name != exact["name"] or list(q.pixel) != list(exact["pixel"]):
            raise ValueError(f"{exact_json}: query {exact['name']} {exact['pixel']} is not {spec} at {tuple(pixel)}")
        a = np.asarray(exact["contributions"], dtype=float)
        if exact.get("train_indices", list(range(n))) != list(range(n)) or a.size != n:
            raise ValueError(f"{exact_json}: contributions must cover training images 0..{n - 1}")
        t0 = time.perf_counter()
        xq = torch.as_tensor(q.boundary, dtype=torch.float64)[None]
        cache = out / f"{prefix}tracin-{q.name}.npy"  # scores of this run's checkpoints, reused by a rerun
        if cache.is_file():
            tr = np.load(cache)
        else:
            tr = tracin_cp(models, lrs, xq, q.pixel, x, y, loss=config.train.loss, batch_size=batch_size,
                           dtype=torch.float64).numpy()
            np.save(cache, tr)
        seconds = time.perf_counter() - t0
        ts = None
        if seen is not None:
            ts = sum(tracin_cp([mod], [eta], xq, q.pixel, xs, ys, loss=config.train.loss, batch_size=batch_size,
                               dtype=torch.float64) for mod, eta, (xs, ys) in zip(models, lrs, seen)).numpy()
        prepared.append((q, exact, a, tr, ts, seconds))
    for q, exact, a, tr, ts, seconds in prepared:
        rep = {"name": q.name, "source": q.source, "pixel": list(q.pixel), "label": exact.get("label"),
               "f0": exact["f0"], "fT": exact["fT"], "sum_a": exact["sum_a"], "a_bn": exact.get("a_bn"),
               "sum_tracin": float(tr.sum()), "tracin_seconds": seconds,
               "exact_vs_tracin": ranking_agreement(a, tr, k),
               "concentration": {"exact": concentration(torch.as_tensor(a)), "tracin": concentration(torch.as_tensor(tr))}}
        if ts is not None:
            rep.update(sum_tracin_seen=float(ts.sum()), exact_vs_tracin_seen=ranking_agreement(a, ts, k),
                       tracin_vs_tracin_seen=ranking_agreement(tr, ts, k))
            rep["concentration"]["tracin_seen"] = concentration(torch.as_tensor(ts))
        label = train_m[:, q.pixel[0], q.pixel[1]] if q.boundary.shape == train_m.shape[1:] else None
        scores = {"exact": a, "tracin": tr} | ({} if ts is None else {"tracin_seen": ts})
        sgd = None
        if sgd_copy:
            try:
                sgd = _sgd_copy(run_dir, q, out, prefix)
            except ValueError as exc:  # e.g. a query canvas unlike the training canvas: the copy cannot read it
                rep["sgd_copy_error"] = str(exc)
        if sgd is not None:
            s = np.asarray(sgd["contributions"], dtype=float)
            m = s.size
            scores["sgd_copy"] = s
            rep.update(sgd_copy={key: sgd[key] for key in ("initial", "final", "run_final", "residual", "seconds")},
                       exact_vs_tracin_first=ranking_agreement(a[:m], tr[:m], k),
                       exact_vs_sgd_copy=ranking_agreement(a[:m], s, k),
                       tracin_vs_sgd_copy=ranking_agreement(tr[:m], s, k), n_sgd_copy=m)
        if label is not None:  # is the query pixel inside the shape of the top training images (same canvas)?
            rep["inside_at_pixel"] = {}
            for key, v in scores.items():
                order = np.argsort(v)
                lab = label[: v.size]
                rep["inside_at_pixel"][key] = {
                    f"top{k}_positive": float(lab[order[::-1][:k]].mean()),
                    f"top{k}_negative": float(lab[order[:k]].mean()),
                    "all": float(lab.mean()),
                    "spearman_with_label": float(spearmanr(v, lab).statistic) if lab.std() > 0 else float("nan")}
        summary["queries"].append(rep)
        write_json(out / f"{prefix}{q.name}.json", {**rep, "tracin": [float(v) for v in tr],
                                                     "tracin_seen": None if ts is None else [float(v) for v in ts],
                                                     "exact": [float(v) for v in a],
                                                     "sgd_copy_contributions": None if sgd is None else sgd["contributions"]})
        plot_comparison(q, scores, train_b, train_m, rep, out / f"{prefix}{q.name}.png",
                        title=f"{run_dir.name}: {q.source}, pixel {tuple(q.pixel)}")
    write_json(out / f"{prefix}summary.json", summary)
    return summary


def plot_comparison(query, scores: dict[str, np.ndarray], train_b: np.ndarray, train_m: np.ndarray, rep: dict,
                    path: str | os.PathLike[str], *, title: str = "", k: int = 4) -> None:
    """Scatter of exact a_i against TracInCP (and the SGD copy), and the top-``k`` ± images of each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"exact": "exact a_i (run)", "tracin": "TracInCP", "tracin_seen": "TracInCP (as seen)",
             "sgd_copy": "SGD copy (first 64)"}
    methods = list(scores)
    fig = plt.figure(figsize=(13.5, 1.45 * len(methods) + 1.6))
    gs = fig.add_gridspec(len(methods), 2 * k + 3, width_ratios=[3.2, 0.15] + [1] * (2 * k + 1))
    a, tr = scores["exact"], scores["tracin"]
    ax = fig.add_subplot(gs[:, 0])
    ax.scatter(tr, a, s=4, alpha=0.5, color="gray", label="all 1,024")
    if "sgd_copy" in scores:
        m = scores["sgd_copy"].size
        ax.scatter(tr[:m], a[:m], s=8, color="C1", label=f"first {m} (SGD copy's)")
    ax.axhline(0, lw=0.5, color="k")
    ax.axvline(0, lw=0.5, color="k")
    ev = rep["exact_vs_tracin"]
    ax.set_xlabel("TracInCP score", fontsize=8)
    ax.set_ylabel("exact a_i", fontsize=8)
    ax.tick_params(labelsize=7)
    text = f"Spearman {ev['spearman']:+.2f}\ntop-10 |·| overlap {ev['top10_abs']}/10"
    if "exact_vs_tracin_seen" in rep:
        es = rep["exact_vs_tracin_seen"]
        text += f"\nTracInCP (as seen): {es['spearman']:+.2f}, {es['top10_abs']}/10"
    if "exact_vs_sgd_copy" in rep:
        text += f"\nexact vs SGD copy (64): {rep['exact_vs_sgd_copy']['spearman']:+.2f}"
    ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=7.5)
    ax.legend(fontsize=6.5, loc="lower right")

    def show(ax, b, mk):
        img = np.where(b > 0, 0.0, np.where(mk > 0, 0.75, 1.0)) if mk is not None else 1.0 - b
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])

    r, c = query.pixel
    for row, key in enumerate(methods):
        v = scores[key]
        order = np.argsort(v)
        qa = fig.add_subplot(gs[row, 2])
        show(qa, query.boundary, query.mask)
        qa.plot([c], [r], marker="o", color="red", markersize=5, markerfacecolor="none", markeredgewidth=1.5)
        qa.set_title(names[key], fontsize=7)
        for j, i in enumerate(list(order[::-1][:k]) + list(order[:k])):
            axi = fig.add_subplot(gs[row, 3 + j])
            show(axi, train_b[i], train_m[i])
            axi.plot([c], [r], marker="+", color="red", markersize=4) if train_b.shape[1:] == query.boundary.shape else None
            axi.set_title(f"#{i} {v[i]:+.2g}", fontsize=6.5, color="darkred" if j < k else "navy")
    fig.suptitle(f"{title}: f {rep['f0']:.2f} → {rep['fT']:.2f}; top {k} positive (red) and negative (blue) "
                 "training images per method (mask grey, + the query pixel)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jordanlab.experiments.explain_compare RUN CKPT_RUN --query SPEC R,C EXACT_JSON ... --out DIR``."""
    p = argparse.ArgumentParser(prog="python -m jordanlab.experiments.explain_compare", description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("checkpoints", help="the run retrained with --set train.keep_checkpoints=EPOCHS")
    p.add_argument("--query", nargs=3, action="append", required=True, metavar=("SPEC", "R,C", "EXACT_JSON"))
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="explain-quick-unet-compare-")
    p.add_argument("--no-sgd-copy", action="store_true")
    p.add_argument("--augmented", action="store_true", help="also TracInCP on the augmentations the run drew")
    args = p.parse_args(argv)
    queries = [(s, tuple(int(v) for v in px.split(",")), j) for s, px, j in args.query]
    summary = compare_rankings(args.run, args.checkpoints, queries, args.out, prefix=args.prefix,
                               sgd_copy=not args.no_sgd_copy, augmented=args.augmented)
    print(json.dumps({k: v for k, v in summary.items() if k != "queries"}, indent=2, default=str))
    for rep in summary["queries"]:
        print(rep["name"], json.dumps({k: v for k, v in rep.items() if k.startswith(("exact_vs", "tracin_vs"))}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
