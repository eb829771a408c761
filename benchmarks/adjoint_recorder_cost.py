"""Cost of the adjoint (disk) exact decomposition of Q query pixels on the quick U-Net, per training step.

A plain step is zero_grad + forward + BCE + backward + ``pytorch_optimizer.Ranger`` step on a float32 batch
of 32 shapes-32 images (U-Net width 8, depth 5, BatchNorm in training mode: 1.95M parameters). A recorded
step adds ``AdjointPathRecorder.before_step``/``after_step``: the float64 batch gradient (the one aggregate
share row), the segment average ḡ_t of each query's gradient (kink-split or fixed nodes), the write of
u_t, w_{t−1} and the batch to the scratch directory. The backward sweep then costs, per step, one read of
u_t and w_{t−1} and Q float64 jvps of the batch's per-example losses: reported per step as ``sweep_step_s``.
Plain and recorded models are stepped alternately on the same batches (machine load hits both alike);
medians after one warm-up step. The forward recorder's (N + 1) P shares (twice for Ranger) are printed for
comparison; the adjoint needs T (Q + 1) P floats on disk instead (u_t in float64, w_{t−1} as trained).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/adjoint_recorder_cost.py --json out.json``
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from _timing import alternate, bce_step, shapes32
from pytorch_optimizer import Ranger

from jordanlab.kernels import AdjointPathRecorder
from jordanlab.models import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--kinks", choices=["on", "off", "both"], default="both")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--quadrature", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--gradient-dtype", choices=["float64", "float32"], default="float64",
                    help="precision of the recomputed batch gradient and of the sweep's jvps (the pipeline: float64)")
    ap.add_argument("--scratch", default=None, help="parent of the scratch directories (default: a temporary one)")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()

    x, y = shapes32(args.n_train)
    torch.manual_seed(0)
    base = build("unet", width=args.width, depth=args.depth, norm="batch")
    params = sum(p.numel() for p in base.parameters())
    parent = Path(args.scratch or tempfile.mkdtemp(prefix="adjoint-cost-"))
    results = []
    for kinks in ([True, False] if args.kinks == "both" else [args.kinks == "on"]):
        for q in args.queries:
            plain_net, rec_net = copy.deepcopy(base).train(), copy.deepcopy(base).train()
            plain_opt, rec_opt = Ranger(plain_net.parameters(), lr=args.lr), Ranger(rec_net.parameters(), lr=args.lr)
            pixels = [(4 + (7 * i) % 24, 4 + (11 * i) % 24) for i in range(q)]
            rec = AdjointPathRecorder([x[i % args.n_train] for i in range(q)], pixels, args.n_train,
                                      scratch=parent / f"q{q}-kinks{int(kinks)}", kinks=kinks,
                                      quadrature=args.quadrature, gradient_dtype=getattr(torch, args.gradient_dtype))
            rec.bind(rec_net, rec_opt)

            def recorded(idx):
                rec.before_step(idx, x[idx], y[idx])
                bce_step(rec_net, rec_opt, x[idx], y[idx])
                rec.after_step()

            t = alternate(lambda idx: bce_step(plain_net, plain_opt, x[idx], y[idx]), recorded, n=args.n_train,
                          batch=args.batch, steps=args.steps)
            r = rec.result()
            disk = r.disk_bytes
            rec.close()
            plain = t["plain_step_s"]
            sweep = r.sweep_seconds / r.path.steps
            row = {"queries": q, "kinks": kinks, "gradient_dtype": args.gradient_dtype, "plain_step_s": plain,
                   "recorded_step_s": t["recorded_step_s"], "forward_factor": t["factor"], "sweep_step_s": sweep,
                   "sweep_factor": sweep / plain, "total_factor": (t["recorded_step_s"] + sweep) / plain,
                   "bound": 3 + 1.5 * q, "disk_mb_per_step": disk / r.path.steps / 1e6,
                   "pieces_per_step_mean": float(r.path.pieces.double().mean()) if r.path.pieces is not None else None,
                   "relative_residual_max": float(r.path.relative_residual.max()),
                   "adjoint_residual_max": float(r.adjoint_residual.abs().max())}
            results.append(row)
            print(json.dumps(row), flush=True)
    shares = 2 * (args.n_train + 1) * params * 8
    report = {"model": f"unet(width={args.width}, depth={args.depth}, norm='batch')", "params": params,
              "gradient_dtype": args.gradient_dtype,
              "batch": args.batch, "n_train": args.n_train, "lr": args.lr, "quadrature": args.quadrature,
              "threads": torch.get_num_threads(), "results": results, "forward_shares_gb": shares / 1e9}
    print(json.dumps({k: v for k, v in report.items() if k != "results"}))
    if args.json:
        from jordanlab._atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
