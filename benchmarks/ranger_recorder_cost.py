"""Cost of recording the exact Ranger decomposition (kinks split) of Q query pixels, per training step.

Target (issue 12, section 4): a recorded step costs at most 3 + 1.5·Q plain steps. A plain step is
zero_grad + forward + BCE + backward + ``pytorch_optimizer.Ranger`` step on a float32 batch of the
U-Net (BatchNorm, training mode); a recorded step adds ``RangerPathRecorder.before_step``/``after_step``
(per-example gradients of the batch, the float64 moment and displacement shares, the kink-split segment
average of each query's gradient). Two identical models and optimizers, one plain and one recorded, are
stepped alternately on the same batches (machine load hits both alike); medians after one warm-up step.
Memory of the shares: 2 (N + 1) P float64 values, printed for this run and for the quick and talk-scale U-Nets.

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/ranger_recorder_cost.py --json out.json``
"""

from __future__ import annotations

import argparse
import copy
import json

import torch
from _timing import alternate, bce_step, shapes32
from pytorch_optimizer import Ranger

from jordanlab.kernels import RangerPathRecorder
from jordanlab.models import build


def _shares_gib(n: int, p: int) -> float:
    return 2 * (n + 1) * p * 8 / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--norm", default="batch")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=64)
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()

    x, y = shapes32(args.n_train)
    torch.manual_seed(0)
    base = build("unet", width=args.width, depth=args.depth, norm=args.norm)
    params = sum(p.numel() for p in base.parameters())
    results = []
    for q in args.queries:
        plain_net, rec_net = copy.deepcopy(base).train(), copy.deepcopy(base).train()
        plain_opt, rec_opt = Ranger(plain_net.parameters(), lr=args.lr), Ranger(rec_net.parameters(), lr=args.lr)
        pixels = [(4 + (7 * i) % 24, 4 + (11 * i) % 24) for i in range(q)]
        rec = RangerPathRecorder([x[i % args.n_train] for i in range(q)], pixels, args.n_train)
        rec.bind(rec_net, rec_opt)

        def recorded(idx):
            rec.before_step(idx, x[idx], y[idx])
            bce_step(rec_net, rec_opt, x[idx], y[idx])
            rec.after_step()

        t = alternate(lambda idx: bce_step(plain_net, plain_opt, x[idx], y[idx]), recorded, n=args.n_train,
                      batch=args.batch, steps=args.steps)
        r = rec.result()
        factor = t["factor"]
        row = {"queries": q, **t, "bound": 3 + 1.5 * q, "within_bound": factor <= 3 + 1.5 * q,
               "pieces_per_step_mean": float(r.pieces.double().mean()), "kinks_per_step_mean": float(r.kinks.double().mean()),
               "relative_residual_max": float(r.relative_residual.max())}
        results.append(row)
        print(json.dumps(row), flush=True)
    report = {"model": f"unet(width={args.width}, depth={args.depth}, norm={args.norm!r})", "params": params,
              "batch": args.batch, "n_train": args.n_train, "lr": args.lr, "input": "shapes-32 (32x32)",
              "threads": torch.get_num_threads(), "results": results,
              "shares_gib_this_run": _shares_gib(args.n_train, params),
              "shares_gib_quick_unet": _shares_gib(1024, sum(p.numel() for p in build("unet", width=8, depth=5).parameters())),
              "shares_gib_talk_unet_w8": _shares_gib(1115, sum(p.numel() for p in build("unet", width=8, depth=5).parameters())),
              "shares_gib_talk_unet_w32": _shares_gib(1115, sum(p.numel() for p in build("unet", width=32, depth=5).parameters()))}
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))
    if args.json:
        from jordanlab._atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
