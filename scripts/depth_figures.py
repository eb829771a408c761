"""Issue 5: what the learned crossing-depth network computes, in pictures.

Loads a trained ``crossing-depth`` run and writes:

- ``docs/figures/crossing-depth-maps.png``: per row one test image (spiral 64² and 128², thick 64² and 256²,
  nested 64², several shapes 64²): the boundary, the learned depth d (least number of crossings to the border,
  computed to its fixed point), the predicted figure, and its difference from the exact fill, with the rounds
  used;
- ``docs/figures/crossing-depth-costs.png``: the learned cost of each move (background/stroke pair, 4 directions);
- ``docs/figures/crossing-depth-rounds.png``: rounds to the fixed point against the steps local propagation
  (``programmed-propagation``, one pixel per step) needs on the same images;
- ``docs/figures/crossing-depth-summary.json``: the numbers behind them;
- with ``--ablation RUN`` (e.g. the 3×3-window run), ``docs/figures/crossing-depth-ablation-thick.png``: thick
  images that run gets wrong, with its depth and its errors.

Run (about a minute on one CPU core)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/depth_figures.py --run runs/crossing-depth \
        --ablation runs/crossing-depth-w33
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jordanlab.data import make  # noqa: E402
from jordanlab.models.depth import DIRECTIONS  # noqa: E402
from jordanlab.topology import fill  # noqa: E402
from jordanlab.topology.programmed import propagation_steps  # noqa: E402
from jordanlab.train.checkpoint import load_model  # noqa: E402

CASES = [("spiral", 64), ("spiral", 128), ("thick", 64), ("thick", 256), ("nested", 64), ("multi-5", 64)]
PAIRS = [("bg→bg", 0, 0), ("bg→stroke", 0, 1), ("stroke→bg", 1, 0), ("stroke→stroke", 1, 1)]


@torch.no_grad()
def _depth(model, boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = torch.from_numpy(boundaries.astype(np.float32))[:, None]
    d, rounds = model.depth(model.gates(x))
    logits = model.depth_readout(x, d)
    return d.numpy(), (logits[:, 0] > 0).numpy(), rounds.numpy()


def _ablation_figure(run: str, path: Path, rows: int = 3) -> dict:
    """The first ``rows`` thick (64²) test images ``run`` gets wrong: boundary, depth, prediction, errors."""
    model, config = load_model(run)
    model.eval()
    b, m = make("thick", "test", n=50, size=64)
    d, pred, rounds = _depth(model, b)
    wrong = np.flatnonzero((pred != m.astype(bool)).reshape(len(m), -1).any(1))
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for row, i in zip(axes, wrong[:rows]):
        shown = np.where(b[i] == 0, d[i], np.nan)
        row[0].imshow(b[i], cmap="gray_r", interpolation="nearest")
        row[0].set_title(f"thick 64² test[{i}]")
        im = row[1].imshow(shown, cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=row[1], fraction=0.046)
        row[1].set_title("learned depth d")
        row[2].imshow(pred[i], cmap="gray_r", interpolation="nearest")
        row[2].set_title(f"prediction ({int(rounds[i])} rounds)")
        row[3].imshow(pred[i] != m[i].astype(bool), cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
        row[3].set_title(f"errors: {int((pred[i] != m[i].astype(bool)).sum())} px")
        for a in row:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(f"{run} (window {config.model.kwargs.get('window')}): thick strokes")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return dict(run=run, wrong=int(len(wrong)), of=len(m))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/crossing-depth")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--n", type=int, default=50, help="images per suite for the rounds plot")
    ap.add_argument("--ablation", default=None, help="a run whose thick-stroke failures to draw")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(args.run)
    model.eval()
    summary: dict = {"run": args.run, "maps": [], "rounds": {}}

    fig, axes = plt.subplots(len(CASES), 4, figsize=(12, 3 * len(CASES)))
    for row, (suite, size) in zip(axes, CASES):
        b, m = make(suite, "test", n=1, size=size)
        d, pred, rounds = _depth(model, b)
        exact = fill(b)
        wrong = int((pred != exact.astype(bool)).sum())
        bg = b[0] == 0
        shown = np.where(bg, d[0], np.nan)
        row[0].imshow(b[0], cmap="gray_r", interpolation="nearest")
        row[0].set_title(f"{suite} {size}² boundary")
        im = row[1].imshow(shown, cmap="viridis", interpolation="nearest")
        row[1].set_title(f"learned depth d (max {np.nanmax(shown):.3f})")
        fig.colorbar(im, ax=row[1], fraction=0.046)
        row[2].imshow(pred[0], cmap="gray_r", interpolation="nearest")
        row[2].set_title(f"prediction ({int(rounds[0])} rounds)")
        row[3].imshow(pred[0] != exact[0].astype(bool), cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
        row[3].set_title(f"≠ exact fill: {wrong} px")
        for a in row:
            a.set_xticks([])
            a.set_yticks([])
        off_integer = float(np.abs(d[0][bg] - np.round(d[0][bg])).max())
        summary["maps"].append(dict(suite=suite, size=size, rounds=int(rounds[0]), wrong_pixels=wrong,
                                    max_depth=float(np.nanmax(shown)), max_distance_to_integer=off_integer))
    fig.tight_layout()
    fig.savefig(out / "crossing-depth-maps.png", dpi=80)
    plt.close(fig)

    costs = torch.sigmoid(model.table.detach()).numpy()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    grid = np.array([[costs[k, p, q] for (_, p, q) in PAIRS] for k in range(len(DIRECTIONS))])
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.1e}" if grid[i, j] < 0.01 else f"{grid[i, j]:.3f}", ha="center",
                    va="center", color="white" if grid[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(PAIRS)), [p[0] for p in PAIRS])
    ax.set_yticks(range(len(DIRECTIONS)), [f"from {name}" for name, _ in DIRECTIONS])
    ax.set_title("learned cost of entering a pixel (predecessor → pixel)")
    fig.tight_layout()
    fig.savefig(out / "crossing-depth-costs.png", dpi=100)
    plt.close(fig)
    summary["costs"] = {name: {p[0]: float(costs[k, p[1], p[2]]) for p in PAIRS}
                        for k, (name, _) in enumerate(DIRECTIONS)}

    fig, ax = plt.subplots(figsize=(6, 4))
    for suite, size in [("shapes-32", None), ("spiral", 32), ("spiral", 64), ("spiral", 128), ("thick", 64),
                        ("nested", 64)]:
        kw = {} if size is None else {"size": size}
        b, _ = make(suite, "test", n=args.n, **kw)
        _, _, rounds = _depth(model, b)
        steps = propagation_steps(b).numpy()
        label = suite if size is None else f"{suite} {size}²"
        ax.scatter(steps, rounds, s=10, label=label, alpha=0.7)
        summary["rounds"][label] = dict(rounds_mean=float(rounds.mean()), rounds_max=int(rounds.max()),
                                        propagation_steps_mean=float(steps.mean()),
                                        propagation_steps_max=int(steps.max()))
    ax.set_xlabel("steps of local propagation (programmed-propagation)")
    ax.set_ylabel("rounds of crossing-depth (4 sweeps each)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("iterations to the fixed point")
    fig.tight_layout()
    fig.savefig(out / "crossing-depth-rounds.png", dpi=100)
    plt.close(fig)

    if args.ablation:
        summary["ablation"] = _ablation_figure(args.ablation, out / "crossing-depth-ablation-thick.png")
    (out / "crossing-depth-summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
