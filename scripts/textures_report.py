"""The talk's second experiment, judged per image: IoU distribution and failures of a textures-256 run.

The talk shows the U-Net trained on textures-256 "performs better now … but it's still not perfect",
with failure examples at IoU 51 % and 85 %. This script scores a run's newest checkpoint on the
preset's 1,000 test images (the same images `jordanlab eval RUN` scores as `test`), beside a second
model on the very same images (default: the shipped `crossing-depth`, trained on thin 32² blobs), and
writes

- ``OUT/textures256-iou.json``: per model the epoch and checkpoint it came from, mean IoU, perfect
  rate, the share of images below 85 % and below 51 % IoU, and every per-image IoU;
- ``OUT/textures256-iou-hist.png``: the IoU distribution of both models;
- ``OUT/textures256-failures.png``: the run's images nearest 85 % and 51 % IoU and its worst ones
  (boundary, exact mask, prediction, error map).

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/textures_report.py runs/talk-textures256-unet --out docs/figures
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _score(model, b: np.ndarray, m: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    from jordanlab.evaluate.model_eval import score_images

    _, per, preds, _ = score_images(model, b, m, batch_size=batch_size, device="cpu")
    return np.asarray(per["iou"], dtype=np.float64), preds


def _summary(iou: np.ndarray) -> dict:
    return {"n": int(iou.size), "mean_iou": float(iou.mean()), "perfect_rate": float((iou >= 1.0).mean()),
            "below_85": float((iou < 0.85).mean()), "below_51": float((iou < 0.51).mean()),
            "median_iou": float(np.median(iou)), "min_iou": float(iou.min())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a textures-256 run directory (or a shipped model name)")
    parser.add_argument("--other", default="crossing-depth", help="second model on the same images (default: shipped crossing-depth)")
    parser.add_argument("--n", type=int, default=1000, help="test images (default: all 1,000)")
    parser.add_argument("--out", default="docs/figures", help="output directory (default: docs/figures)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jordanlab._atomic import save_figure, write_json
    from jordanlab.data import make
    from jordanlab.evaluate.figures import error_map
    from jordanlab.train.run import Run

    run = Run.open(args.run)
    cfg = run.config
    status = run.status()
    ckpt = run.checkpoints()[-1][1]
    b, m = make(cfg.data.preset, "test", n=args.n, seed=cfg.data.seed)[:2]
    model = run.load_model(ckpt).eval()
    iou, preds = _score(model, b, m, args.batch_size)
    other = Run.open(args.other)
    other_iou, _ = _score(other.load_model(other.checkpoints()[-1][1]).eval(), b, m, args.batch_size)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "images": f"{cfg.data.preset} test[0:{args.n}] (seed {cfg.data.seed})",
        "run": {"path": str(args.run), "model": cfg.model.name, "checkpoint": ckpt.name, **status,
                **_summary(iou), "iou": [round(float(v), 6) for v in iou]},
        "other": {"path": str(args.other), "model": other.config.model.name, **_summary(other_iou),
                  "iou": [round(float(v), 6) for v in other_iou]},
    }
    write_json(out / "textures256-iou.json", report)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    run_label = f"{cfg.model.name}, {status['epochs_done']} epoch(s)"
    other_label = f"{other.config.model.name} (32² blobs)"
    bins = np.linspace(0, 1, 41)
    ax.hist(iou, bins=bins, alpha=0.75, label=run_label)
    ax.hist(other_iou, bins=bins, alpha=0.6, label=other_label)
    for x, txt in ((0.85, "85 %"), (0.51, "51 %")):
        ax.axvline(x, color="k", lw=0.8, ls="--")
        ax.text(x, ax.get_ylim()[1] * 0.9, txt, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("per-image IoU")
    ax.set_ylabel("images (log)")
    ax.set_title(f"textures-256 test, {iou.size} images")
    ax.legend(fontsize=8)
    rank = np.arange(1, iou.size + 1)
    ax2.plot(rank, np.sort(iou), label=f"{run_label}: {int((iou >= 1).sum())} perfect")
    ax2.plot(rank, np.sort(other_iou), label=f"{other_label}: {int((other_iou >= 1).sum())} perfect")
    ax2.set_ylim(max(0.0, min(iou.min(), other_iou.min()) - 0.01), 1.002)
    ax2.set_xlabel("image rank (worst first)")
    ax2.set_ylabel("IoU")
    ax2.set_title("every image, sorted")
    ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save_figure(fig, out / "textures256-iou-hist.png", dpi=110)
    plt.close(fig)

    picks: list[tuple[str, int]] = []
    for label, i in [("≈85 %", int(np.argmin(np.abs(iou - 0.85)))), ("≈51 %", int(np.argmin(np.abs(iou - 0.51)))),
                     *((f"rank {r + 1}", int(j)) for r, j in enumerate(np.argsort(iou)[:3]))]:
        if i not in {p for _, p in picks} and len(picks) < 3:
            picks.append((label, i))
    fig, axes = plt.subplots(len(picks), 4, figsize=(9, 2.3 * len(picks)), squeeze=False)
    for row, (label, i) in zip(axes, picks):
        for ax, img, title in zip(row, (b[i], m[i], preds[i], error_map(preds[i], m[i], b[i])),
                                  ("boundary", "exact fill", "prediction", "errors")):
            ax.imshow(img, cmap=None if img.ndim == 3 else "gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if row is axes[0] else "", fontsize=9)
        row[0].set_ylabel(f"test[{i}]\n{label}: IoU {iou[i]:.2f}", fontsize=8)
    fig.suptitle(f"{cfg.model.name} on textures-256, {ckpt.name}", fontsize=10)
    save_figure(fig, out / "textures256-failures.png", dpi=90)
    plt.close(fig)
    for k in ("run", "other"):
        s = report[k]
        print(f"{k}: {s['model']}: mean IoU {s['mean_iou']:.3f}, perfect {s['perfect_rate']:.3f}, "
              f"< 85 %: {s['below_85']:.3f}, < 51 %: {s['below_51']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
