"""Figures of a run: best and worst images of a suite (input / prediction / errors) and training curves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from jordanlab._atomic import save_figure

__all__ = ["error_map", "rank_images", "suite_figure", "training_curves"]

_FIGURE = np.array([0.95, 0.71, 0.35])  # correct figure: orange (blue and red are reserved for errors)
_FALSE_POS = np.array([0.90, 0.20, 0.15])  # predicted figure, truly background: red
_FALSE_NEG = np.array([0.15, 0.35, 0.90])  # missed figure: blue


def error_map(pred: np.ndarray, target: np.ndarray, boundary: np.ndarray | None = None) -> np.ndarray:
    """RGB ``(H, W, 3)`` float image: correct figure orange, false positives red, false negatives blue.

    The boundary, if given, is drawn in black on top.
    """
    p, t = np.asarray(pred) != 0, np.asarray(target) != 0
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(f"pred/target: expected equal (H, W) shapes, got {p.shape} and {t.shape}")
    rgb = np.ones(p.shape + (3,))
    rgb[p & t] = _FIGURE
    rgb[p & ~t] = _FALSE_POS
    rgb[~p & t] = _FALSE_NEG
    if boundary is not None:
        rgb[np.asarray(boundary) != 0] = 0.0
    return rgb


def rank_images(per_image: dict[str, Any]) -> np.ndarray:
    """Image indices from best to worst: by IoU (descending), ties broken by fewer wrong pixels, then index."""
    iou = np.asarray(per_image["iou"], dtype=np.float64)
    errors = np.asarray(per_image["errors"], dtype=np.int64)
    return np.lexsort((np.arange(len(iou)), errors, -iou))


def suite_figure(
    boundaries: np.ndarray,
    masks: np.ndarray,
    preds: np.ndarray,
    per_image: dict[str, Any],
    out_png: str | os.PathLike[str],
    *,
    k: int = 3,
    title: str = "",
) -> Path:
    """A PNG with the ``k`` best and ``k`` worst images: columns input, prediction, error map.

    Rows are labelled with the image index, its IoU and its number of wrong pixels.
    """
    from matplotlib.figure import Figure

    n = len(boundaries)
    if not (len(masks) == len(preds) == n) or n == 0:
        raise ValueError(f"boundaries/masks/preds: expected the same non-zero length, got {n}, {len(masks)}, {len(preds)}")
    order = rank_images(per_image)
    k = max(1, min(k, (n + 1) // 2))
    picks = [("best", i) for i in order[:k]] + [("worst", i) for i in order[::-1][:k]]
    fig = Figure(figsize=(6.3, 2.1 * len(picks)), layout="constrained")  # no empty band under the title
    axes = fig.subplots(len(picks), 3, squeeze=False)
    iou = np.asarray(per_image["iou"])
    err = np.asarray(per_image["errors"])
    for row, (kind, i) in enumerate(picks):
        b, m, p = boundaries[i], masks[i], preds[i]
        axes[row, 0].imshow(1 - b, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[row, 1].imshow(1 - p, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[row, 2].imshow(error_map(p, m, b), interpolation="nearest")
        axes[row, 0].set_ylabel(f"{kind} #{i}\nIoU {iou[i]:.3f}, {err[i]} wrong", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], ("input", "prediction", "errors: red false figure,\nblue missed figure")):
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(out_png), dpi=110, bbox_inches="tight")


def training_curves(run_dir: str | os.PathLike[str], out_png: str | os.PathLike[str] | None = None) -> Path:
    """Loss and IoU per epoch from ``RUN/metrics.jsonl`` into ``RUN/figures/training.png`` (or ``out_png``)."""
    from matplotlib.figure import Figure

    run = Path(run_dir)
    f = run / "metrics.jsonl"
    if not f.is_file():
        raise FileNotFoundError(f"run_dir {str(run)!r} has no metrics.jsonl")
    rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{str(f)!r} holds no epochs")
    ep = [r["epoch"] for r in rows]
    fig = Figure(figsize=(9, 3.2))
    a1, a2 = fig.subplots(1, 2)
    a1.plot(ep, [r["loss"] for r in rows], label="train loss")
    a1.set_xlabel("epoch")
    a1.set_yscale("log")
    a1.legend()
    for key, label in (("train_iou", "train IoU"), ("val_iou", "val IoU"), ("val_perfect_rate", "val perfect")):
        if all(key in r for r in rows):
            a2.plot(ep, [r[key] for r in rows], label=label)
    a2.set_xlabel("epoch")
    a2.set_ylim(0, 1.02)
    a2.legend()
    fig.tight_layout()
    return save_figure(fig, Path(out_png) if out_png else run / "figures" / "training.png", dpi=110, bbox_inches="tight")
