"""Cost of recording the path decomposition inside an SGD loop, relative to a plain training step.

Target (issue 4): recording Q queries costs at most (1 + 1.5·Q) times a plain step. A plain step is
zero_grad + forward + BCE + backward + SGD step on a batch; a recorded step adds
``PathRecorder.before_step``/``after_step`` (exact mode: Gauss–Legendre nodes per step, each one
query-gradient per query; plus the query-by-batch contraction). Medians over ``--steps`` steps after warm-up,
plain and recorded steps interleaved so that machine load affects both alike.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recorder_cost.py``
"""

from __future__ import annotations

import argparse
import json

import torch
from _timing import alternate, shapes32

from jordanlab.kernels import PathRecorder, per_example_loss
from jordanlab.models import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="local-cnn")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--mode", choices=["exact", "tangent"], default="exact")
    ap.add_argument("--quadrature", type=int, default=3)
    ap.add_argument("--contraction", choices=["auto", "jvp", "per-example"], default="auto")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()

    x, y = shapes32(4 * args.batch)
    n = x.shape[0]
    torch.manual_seed(0)
    model = build(args.model, width=args.width, depth=args.depth, norm="none")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def plain(idx):
        opt.zero_grad()
        per_example_loss(model(x[idx]).flatten(1), y[idx].flatten(1), "bce").mean().backward()
        opt.step()

    results = []
    for q in args.queries:
        rec = PathRecorder(model, x[:q], n, pixels=[(8 + i % 16, 4 + 2 * i % 24) for i in range(q)], optimizer=opt,
                           mode=args.mode, quadrature=args.quadrature, contraction=args.contraction)

        def recorded(idx):
            rec.before_step(idx, x[idx], y[idx])
            plain(idx)
            rec.after_step()

        t = alternate(plain, recorded, n=n, batch=args.batch, steps=args.steps, warmup=2)
        factor = t["factor"]
        row = {"queries": q, **t, "bound": 1 + 1.5 * q, "within_bound": factor <= 1 + 1.5 * q,
               "contraction": rec._rec.contraction.value}
        results.append(row)
        print(json.dumps(row))
    report = {"model": f"{args.model}(width={args.width}, depth={args.depth}, norm='none')",
              "params": sum(p.numel() for p in model.parameters()), "batch": args.batch, "mode": args.mode,
              "quadrature": args.quadrature, "input": "shapes-32 (32x32)", "threads": torch.get_num_threads(),
              "results": results}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
