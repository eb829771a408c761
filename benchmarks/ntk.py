"""Pixel-level tangent kernel of the U-Net: jordanlab.kernels.tangent_kernel vs the torch.func NTK tutorial.

The tutorial recipe (pytorch/tutorials intermediate_source/neural_tangent_kernels.py, "Jacobian
contraction") computes ``vmap(jacrev(fnet_single), (None, 0))`` over the whole output, flattens each
parameter's Jacobian and contracts with ``einsum('Naf,Mbf->NMab')``. For a dense (N, 1, H, W) model that is a
Jacobian over H·W outputs (16384 at 128×128): H·W vector-Jacobian products per image. ``tangent_kernel``
with ``pixels=`` differentiates only the chosen outputs (one VJP per chosen pixel per image).

Both give the kernel K[n, a, m, b] = ∇f(x1_n)[pixel a] · ∇f(x2_m)[pixel b]; the script checks equality.
When the full tutorial Jacobian would take longer than ``--budget`` seconds, its time is measured on
``--rows`` output rows (a random subset that contains the chosen pixels) and extrapolated linearly to all
H·W rows (vector-Jacobian products are chunked, so cost is linear in rows); the output says so.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ntk.py --size 128``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.func import functional_call, jacrev, vmap

from jordanlab.kernels import tangent_kernel
from jordanlab.models import build


def tutorial_kernel(model, x1, x2, rows: torch.Tensor | None, chunk: int):
    """The tutorial's Jacobian contraction over ``rows`` of the flattened output (None: all outputs)."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def fnet_single(p, x):
        out = functional_call(model, p, (x.unsqueeze(0),)).squeeze(0).reshape(-1)
        return out if rows is None else out[rows]

    def jac(x):
        j = vmap(jacrev(fnet_single, chunk_size=chunk), (None, 0))(params, x)
        return [t.flatten(2) for t in j.values()]

    j1, j2 = jac(x1), jac(x2)
    return sum(torch.einsum("Naf,Mbf->NaMb", a, b) for a, b in zip(j1, j2))


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return (statistics.median(times) if times else float("nan")), times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=int, default=2, help="U-Net width (channels at the finest scale)")
    ap.add_argument("--depth", type=int, default=2, help="U-Net poolings")
    ap.add_argument("--n", type=int, default=2, help="images in x1 and in x2")
    ap.add_argument("--pixels", type=int, default=8, help="chosen output pixels")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=256, help="tutorial rows timed when extrapolating")
    ap.add_argument("--chunk", type=int, default=256, help="jacrev chunk_size of the tutorial recipe")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds allowed for one full tutorial run")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = build("unet", width=args.width, depth=args.depth, norm="none").to(dtype).eval()
    g = torch.Generator().manual_seed(1)
    x1 = (torch.rand(args.n, 1, args.size, args.size, generator=g) > 0.9).to(dtype)
    x2 = (torch.rand(args.n, 1, args.size, args.size, generator=g) > 0.9).to(dtype)
    flat = torch.randperm(args.size * args.size, generator=g)[: args.pixels]
    pixels = [(int(i) // args.size, int(i) % args.size) for i in flat]
    n_out = args.size * args.size

    tangent_kernel(model, x1[:1], x2[:1], pixels=pixels[:1])  # warm-up (first torch.func use), not timed
    t_ours, runs_ours, k_ours = timed(lambda: tangent_kernel(model, x1, x2, pixels=pixels), args.repeats)

    # Probe the tutorial's cost on args.rows rows to decide between a full run and an extrapolation.
    rest = torch.tensor([i for i in torch.randperm(n_out, generator=g).tolist() if i not in set(flat.tolist())])
    rows = torch.cat([flat, rest[: max(0, args.rows - args.pixels)]])
    t_probe, _, k_probe = timed(lambda: tutorial_kernel(model, x1, x2, rows, args.chunk), 1)
    estimate_full = t_probe * n_out / rows.numel()
    if estimate_full <= args.budget:
        t_tut, runs_tut, k_full = timed(lambda: tutorial_kernel(model, x1, x2, None, args.chunk), args.baseline_repeats)
        k_tut = k_full[:, flat][:, :, :, flat]
        how = "measured (full Jacobian over all outputs)"
    else:
        _, more, k_rows = timed(lambda: tutorial_kernel(model, x1, x2, rows, args.chunk), args.baseline_repeats - 1)
        runs_tut = [t_probe] + more
        t_rows = statistics.median(runs_tut)
        k_rows = k_probe if k_rows is None else k_rows
        t_tut = t_rows * n_out / rows.numel()
        k_tut = k_rows[:, : args.pixels][:, :, :, : args.pixels]
        how = f"extrapolated from {rows.numel()} of {n_out} Jacobian rows (median {t_rows:.3f} s) × {n_out / rows.numel():.1f}"
    err = float((k_ours - k_tut).abs().max() / k_tut.abs().max())
    report = {
        "model": f"unet(width={args.width}, depth={args.depth}, norm='none')",
        "params": sum(p.numel() for p in model.parameters()),
        "input": [args.n, 1, args.size, args.size], "pixels": args.pixels, "dtype": args.dtype,
        "ours_median_s": t_ours, "ours_runs_s": runs_ours,
        "tutorial_s": t_tut, "tutorial_how": how, "tutorial_runs_s": runs_tut,
        "speedup": t_tut / t_ours, "max_relative_difference": err,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
