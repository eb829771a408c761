"""``jordanlab kernel infinite-check``: the closed-form infinite-width kernels against finite networks.

- width convergence (:func:`jordanlab.kernels.width_convergence`): the empirical NTK of random
  finite MLPs and CNNs approaches the closed form as width grows (error ∝ width^{-1/2});
- :func:`arora_check`: Arora et al.'s theorem (a wide network trained by GD equals the NTK
  predictor) on the point task of :mod:`jordanlab.experiments.thesis`.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jordanlab._atomic import write_json
from jordanlab._seeds import torch_seed
from jordanlab.kernels import (
    discrete_gradient_descent_mse,
    kernel_regression_min_ridge,
    mlp_kernels,
    ntk_mlp,
    width_convergence,
)

from .thesis import IN_DIST, _accuracy

__all__ = ["arora_check", "infinite_check", "infinite_check_plan"]


# --------------------------------------------------------------------------- Arora et al.'s theorem


class _Antisymmetric(nn.Module):
    """``f(x) = (g_θ(x) − g_θ'(x)) / √2`` with θ' = θ at init: f_0 ≡ 0, same NTK as ``g``."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.a, self.b = g, copy.deepcopy(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.a(x) - self.b(x)) / math.sqrt(2.0)


def arora_check(
    *,
    widths: Sequence[int] = (128, 512, 2048),
    depth: int = 1,
    n_train: int = 32,
    n_test: int = 32,
    steps: int = 200,
    seeds: int = 2,
    seed: int = 0,
) -> dict:
    """A wide ReLU MLP trained by GD vs the infinite-width NTK predictor, on the point task.

    The network is antisymmetrized (``f_0 ≡ 0``) and trained by full-batch GD on
    ``½ Σ (f(x_i) − y_i)²`` with ``η = 1/λ_max(Θ_∞(X, X))`` for ``steps`` steps; the reference is
    the same discrete GD on the linear model with the fixed kernel ``Θ_∞`` (exact in closed form),
    and kernel regression (``t → ∞``). Returns ``{"rows": [{width, max_gap, rms_gap,
    max_gap_to_kernel_regression, accuracy_net, accuracy_ntk}], ...}``, gaps on the test points
    averaged (max and RMS) over ``seeds`` initializations.
    """
    from jordanlab.data import make_point_task

    xa, ya = make_point_task(IN_DIST, "train", n_train, seed)
    xb, yb = make_point_task(IN_DIST, "test", n_test, seed)
    x = torch.from_numpy(xa).double().flatten(1)
    xt = torch.from_numpy(xb).double().flatten(1)
    y = torch.from_numpy(ya).double() * 2 - 1
    yt = torch.from_numpy(yb).double() * 2 - 1
    _, k_tt = mlp_kernels(x, None, depth)
    _, k_st = mlp_kernels(xt, x, depth)
    lr = 1.0 / float(torch.linalg.eigvalsh(k_tt)[-1])
    f_lin = discrete_gradient_descent_mse(k_tt, k_st, y, lr=lr, steps=steps)
    f_inf, ridge = kernel_regression_min_ridge(k_st, k_tt, y, ridge=0.0)
    rows = []
    for width in widths:
        gaps, gaps_inf, accs = [], [], []
        for s in range(seeds):
            g = torch.Generator().manual_seed(torch_seed(seed, 31 * int(width) + s))
            net = _Antisymmetric(ntk_mlp(x.shape[1], int(width), depth, generator=g)).double()
            opt = torch.optim.SGD(net.parameters(), lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                (0.5 * ((net(x).reshape(-1) - y) ** 2).sum()).backward()
                opt.step()
            with torch.no_grad():
                f = net(xt).reshape(-1)
            gaps.append((f - f_lin).abs())
            gaps_inf.append((f - f_inf).abs())
            accs.append(_accuracy(f, yt))
        gap = torch.stack(gaps)
        rows.append(
            dict(
                width=int(width),
                max_gap=float(gap.max()),
                rms_gap=float(gap.pow(2).mean().sqrt()),
                max_gap_to_kernel_regression=float(torch.stack(gaps_inf).max()),
                accuracy_net=float(np.mean(accs)),
                accuracy_ntk=_accuracy(f_lin, yt),
            )
        )
    return {
        "depth": depth, "n_train": n_train, "n_test": n_test, "steps": steps, "lr": lr, "seeds": seeds,
        "scale_of_f_ntk": float(f_lin.abs().max()), "ridge_relative_t_inf": ridge, "rows": rows,
    }


def infinite_check_plan(quick: bool = False) -> dict:
    """The checks of :func:`infinite_check`: keyword arguments of each width-convergence table and of the Arora check.

    Examples
    --------
    >>> [c["kind"] for c in infinite_check_plan(quick=True)["width_convergence"]]
    ['mlp', 'cnn', 'cnn']
    """
    if quick:
        conv = [dict(kind="mlp", widths=[64, 256, 1024], depth=2, seeds=3),
                dict(kind="cnn", widths=[8, 32, 128], depth=2, readout="flatten", image_size=(4, 4), seeds=3),
                dict(kind="cnn", widths=[8, 32, 128], depth=2, readout="gap", image_size=(4, 4), seeds=3)]
        arora = dict(widths=(64, 256, 1024), n_train=16, n_test=16, steps=100, seeds=1)
    else:
        conv = [dict(kind="mlp", widths=[64, 256, 1024, 4096], depth=2, seeds=8),
                dict(kind="cnn", widths=[8, 32, 128, 512], depth=3, readout="flatten", image_size=(6, 6), seeds=6),
                dict(kind="cnn", widths=[8, 32, 128, 512], depth=3, readout="gap", image_size=(6, 6), seeds=6)]
        arora = dict(widths=(64, 256, 1024, 4096), n_train=32, n_test=32, steps=200, seeds=2)
    return {"width_convergence": conv, "arora": arora}


def infinite_check(out_dir: str | os.PathLike[str], *, quick: bool = False, progress: bool = True,
                   plan: dict | None = None) -> dict:
    """Width-convergence tables (MLP, CNN flatten, CNN GAP) and the Arora check.

    Runs ``plan`` (default :func:`infinite_check_plan`) and writes ``infinite_check.json`` with
    ``width_convergence`` (see :func:`jordanlab.kernels.width_convergence`), ``arora`` (see
    :func:`arora_check`) and ``table``/``arora_table`` rows for reports.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = infinite_check_plan(quick) if plan is None else plan
    jobs = [("width", kw) for kw in plan["width_convergence"]] + [("arora", plan["arora"])]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="infinite-check")
    done = [width_convergence(kw.pop("kind"), kw.pop("widths"), **kw) if what == "width" else arora_check(**kw)
            for what, kw in ((w, dict(k)) for w, k in jobs)]
    *conv, arora = done
    table = [
        {"network": f"{c['kind']} depth {c['depth']}" + (f" {c['readout']}" if c["readout"] else ""),
         **{f"width {w}": e for w, e in zip(c["widths"], c["errors"])}, "log-log slope": c["slope"]}
        for c in conv
    ]
    result = {"table": table, "arora_table": arora["rows"], "width_convergence": conv, "arora": arora,
              "seconds": time.perf_counter() - t0}
    write_json(out / "infinite_check.json", result)
    return result
