"""Table and learning curves of the talk's 128² local / non-local comparison, from its run directories.

    python scripts/nonlocal_report.py runs/talk-shapes128-{unet,local-cnn,cnn-gap,cnn-gc,cnn-sa} --out docs/figures

Writes OUT/talk128-nonlocal.json (per run: epochs trained of those planned, checkpoint, every eval.json suite)
and OUT/talk128-nonlocal-curves.png (validation IoU per epoch), and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jordanlab._atomic import save_figure, write_json

    table, suites = {}, None
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for run in args.runs:
        ev = json.loads((run / "eval.json").read_text())
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        name = run.name.replace("talk-shapes128-", "")
        table[name] = {"epochs": ev["epoch"], "epochs_planned": ev["epochs_planned"], "checkpoint": ev["checkpoint"],
                       "checkpoint_sha256": ev["checkpoint_sha256"],
                       "train_minutes": sum(m.get("seconds", 0.0) for m in metrics) / 60,
                       "val_iou": [m["val_iou"] for m in metrics], "suites": ev["suites"]}
        suites = suites or list(ev["suites"])
        ax.plot([m["epoch"] for m in metrics], [m["val_iou"] for m in metrics], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation IoU (64 test images)")
    ax.set_title("shapes-128, Ranger, batch 32: the first epochs", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    save_figure(fig, args.out / "talk128-nonlocal-curves.png", dpi=110)
    write_json(args.out / "talk128-nonlocal.json", table)
    names = list(table)
    print("| suite | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for s in suites:
        cells = [f"{table[n]['suites'][s]['mean_iou']:.3f} ({table[n]['suites'][s]['perfect_rate']:.2f})" for n in names]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| epochs (of planned), minutes | " + " | ".join(
        f"{table[n]['epochs']} of {table[n]['epochs_planned']}, {table[n]['train_minutes']:.0f}" for n in names) + " |")


if __name__ == "__main__":
    main()
