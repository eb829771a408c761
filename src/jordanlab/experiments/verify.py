"""``jordanlab kernel verify``: check the path-kernel decomposition on real training runs.

Writes ``DIR/verify.json``::

    {"runs": [{"mode", "optimizer", "lr", "dtype", "steps", "relative_residual", "model", "batch_size"}, ...],
     "kernel_motion": [{"width", "params", "relative_change", "steps", "lr"}, ...], "setup": {...}}

and ``DIR/verify.png`` (relative residual against lr, log-log), on a small CNN trained on ``shapes-32``.
relative_residual = max_q |residual_q| / max(max_q |final_q − initial_q|, tiny).

The plan is data: :func:`verify_plan` lists one :class:`VerifyRun` per decomposition to check, and
:func:`verify` runs whatever plan it is given.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from jordanlab._atomic import save_figure, write_json
from jordanlab.kernels import path_decomposition, tangent_kernel

__all__ = ["SmoothCNN", "VerifyRun", "kernel_motion", "verify", "verify_plan"]


class SmoothCNN(nn.Module):
    """``depth`` × (3×3 conv → tanh), then a 1×1 conv to one logit; (N, C, H, W) → (N, 1, H, W).

    ``parameterization="ntk"``: weights ~ N(0, 1) and each conv's output is scaled by 1/sqrt(fan_in)
    (Jacot et al.), so the tangent kernel has an O(1) limit as ``width`` → ∞ and the same lr trains every
    width (the lazy regime appears as width grows). ``"standard"``: PyTorch's default initialisation.
    tanh keeps f smooth along every update segment, which the exact quadrature needs.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 8, depth: int = 3, parameterization: str = "ntk") -> None:
        super().__init__()
        if parameterization not in ("ntk", "standard"):
            raise ValueError(f"parameterization must be 'ntk' or 'standard', got {parameterization!r}")
        chans = [in_channels] + [width] * depth
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))
        self.out = nn.Conv2d(width, 1, 1)
        self.ntk = parameterization == "ntk"
        if self.ntk:
            for conv in [*self.convs, self.out]:
                nn.init.normal_(conv.weight)
                nn.init.normal_(conv.bias)

    def _scale(self, conv: nn.Conv2d) -> float:
        if not self.ntk:
            return 1.0
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        return 1.0 / math.sqrt(fan_in)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = torch.tanh(conv(x) * self._scale(conv) if self.ntk else conv(x))
        return self.out(x) * self._scale(self.out) if self.ntk else self.out(x)


def _shapes32(n_train: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test) from ``jordanlab.data.make("shapes-32", ...)`` as float64 (N, 1, 32, 32)."""
    from jordanlab import data

    xb, ym = data.make("shapes-32", "train", n_train, seed)
    xt, _ = data.make("shapes-32", "test", 2, seed)
    to = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)[:, None]  # noqa: E731
    return to(xb), to(ym), to(xt)


def _queries(x_train: Tensor, y_train: Tensor, x_test: Tensor) -> tuple[Tensor, list[tuple[int, int]]]:
    """Four queries: an inside and an outside pixel of a training image, a boundary and an inside pixel of a
    test image."""
    ins = torch.nonzero((y_train[0, 0] > 0) & (x_train[0, 0] == 0))
    out = torch.nonzero(y_train[0, 0] == 0)
    bnd = torch.nonzero(x_test[0, 0] > 0)
    pix = [tuple(ins[len(ins) // 2].tolist()), tuple(out[0].tolist()), tuple(bnd[0].tolist()), (16, 16)]
    q = torch.stack([x_train[0], x_train[0], x_test[0], x_test[0]])
    return q, [(int(r), int(c)) for r, c in pix]


def kernel_motion(
    widths: list[int], x: Tensor, y: Tensor, probe: Tensor, pixels: list[tuple[int, int]], *, lr: float, steps: int,
    seeds: tuple[int, ...] = (0, 1, 2), depth: int = 3,
) -> list[dict[str, Any]]:
    """‖K_T − K_0‖_F / ‖K_0‖_F of the pixel tangent kernel on ``probe`` after GD, per width (NTK param.).

    K is the (P, P)-pixel kernel of ``tangent_kernel(net, probe, pixels=pixels)`` (all probe pairs); the
    change is averaged over ``seeds`` (mean and standard deviation reported).
    """
    rows = []
    for w in widths:
        changes = []
        for seed in seeds:
            torch.manual_seed(seed)
            net = SmoothCNN(width=w, depth=depth).double()
            k0 = tangent_kernel(net, probe, pixels=pixels)
            opt = torch.optim.SGD(net.parameters(), lr=lr)
            for _ in range(steps):  # full-batch GD on the mean per-pixel BCE
                opt.zero_grad()
                nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
                opt.step()
            k1 = tangent_kernel(net, probe, pixels=pixels)
            changes.append(float(torch.linalg.norm(k1 - k0) / torch.linalg.norm(k0)))
        rows.append({
            "width": w, "params": sum(p.numel() for p in net.parameters()),
            "relative_change": float(np.mean(changes)), "std": float(np.std(changes)), "seeds": len(seeds),
            "steps": steps, "lr": lr,
        })
    return rows


@dataclasses.dataclass(frozen=True)
class VerifyRun:
    """One decomposition to check: a network trained from a fixed seed while the path kernel is recorded.

    Attributes
    ----------
    mode : {"tangent", "exact"}
        ḡ_s at w_s (Domingos' tangent kernel: residual O(lr)) or averaged along each step (exact).
    optimizer : {"gd", "sgd", "adam", "ranger"}
        Full batch, or batches of ``max(2, n_train // 3)`` (SGD, and the real ``torch.optim.Adam`` and
        ``pytorch_optimizer.Ranger`` recorded by :class:`~jordanlab.kernels.AdamPathRecorder` /
        :class:`~jordanlab.kernels.RangerPathRecorder`; exact mode only).
    lr : float
    dtype : {"float32", "float64"}
    steps : int
    model : {"smooth", "local-cnn-relu", "unet-relu", "unet-bn"}
        :class:`SmoothCNN` at the plan's width and depth (NTK parameterization), or the registry's
        ``local-cnn`` (width 4, depth 4, no norm, ReLU), ``unet`` (width 4, depth 3, no norm, ReLU and
        max-pool) or ``unet`` with BatchNorm (width 2, depth 2; Ranger only: its running statistics are a
        reported term).
    kinks : bool
        Split each step's segment at the query's ReLU/max-pool kinks (``kernels._segments``); without it
        fixed Gauss–Legendre nodes straddle the kinks and the ReLU residuals stay at 1e-5…1e-3.
    """

    mode: str
    optimizer: str
    lr: float
    dtype: str
    steps: int
    model: str = "smooth"
    kinks: bool = False

    def __post_init__(self) -> None:
        for key, value, allowed in (("mode", self.mode, ("tangent", "exact")),
                                    ("optimizer", self.optimizer, ("gd", "sgd", "adam", "ranger")),
                                    ("dtype", self.dtype, ("float32", "float64")),
                                    ("model", self.model, ("smooth", "local-cnn-relu", "unet-relu", "unet-bn"))):
            if value not in allowed:
                raise ValueError(f"VerifyRun.{key} must be one of {allowed}, got {value!r}")
        if not (isinstance(self.steps, int) and self.steps > 0) or not self.lr > 0:
            raise ValueError(f"VerifyRun needs steps > 0 and lr > 0, got steps={self.steps!r}, lr={self.lr!r}")
        if self.optimizer in ("adam", "ranger") and self.mode != "exact":
            raise ValueError(f"VerifyRun.optimizer={self.optimizer!r} is recorded in exact mode only")
        if self.kinks and self.mode != "exact":
            raise ValueError("VerifyRun.kinks needs mode='exact'")
        if self.model == "unet-bn" and self.optimizer != "ranger":
            raise ValueError("VerifyRun.model='unet-bn' is checked with the Ranger recorder only")


def _training_time(quick: bool) -> float:
    """lr · steps of the tangent-mode runs (the training "time" held fixed while lr varies)."""
    return 0.8 if quick else 2.0


def verify_plan(quick: bool = False) -> list[VerifyRun]:
    """The runs of :func:`verify`.

    - tangent mode, GD, float64, at a fixed training time lr·steps (0.8 quick, 2.0 full), lr over a 10×
      range: the relative residual should fall ~linearly with lr (the approximation is first order in lr);
    - exact mode, GD and SGD, float32 and float64, lr 0.2: relative residual ≤ 1e-4 / ≤ 1e-9;
    - exact mode, the real Adam (lr 0.01) and Ranger (lr 0.01) on the smooth CNN, float64, each piece
      checked by the fundamental theorem of calculus (an Adam step is large enough that 3 fixed nodes
      leave 4e-12);
    - full plan only: exact GD on the ReLU ``local-cnn`` (lr 0.05) with fixed nodes and split at its kinks,
      on the ReLU/max-pool U-Net split at kinks, and Adam and Ranger on the ReLU ``local-cnn`` (kinks),
      Ranger on a BatchNorm U-Net (kinks; the running statistics a separate term).

    Examples
    --------
    >>> [(r.mode, r.lr, r.steps) for r in verify_plan(quick=True)][:3]
    [('tangent', 0.4, 2), ('tangent', 0.2, 4), ('tangent', 0.04, 20)]
    >>> len(verify_plan(quick=True)), len(verify_plan())
    (9, 18)
    """
    time_t = _training_time(quick)
    lrs = [0.4, 0.2, 0.04] if quick else [0.4, 0.2, 0.1, 0.04]
    exact_steps = 4 if quick else 20
    plan = [VerifyRun("tangent", "gd", lr, "float64", round(time_t / lr)) for lr in lrs]
    plan += [VerifyRun("exact", opt, 0.2, dt, exact_steps) for opt in ("gd", "sgd") for dt in ("float32", "float64")]
    plan += [VerifyRun("exact", opt, 0.01, "float64", exact_steps, kinks=True) for opt in ("adam", "ranger")]
    if not quick:
        plan += [VerifyRun("exact", "gd", 0.05, "float64", exact_steps, model="local-cnn-relu"),
                 VerifyRun("exact", "gd", 0.05, "float64", exact_steps, model="local-cnn-relu", kinks=True),
                 VerifyRun("exact", "sgd", 0.05, "float64", exact_steps, model="local-cnn-relu", kinks=True),
                 VerifyRun("exact", "gd", 0.05, "float64", exact_steps, model="unet-relu"),
                 VerifyRun("exact", "gd", 0.05, "float64", exact_steps, model="unet-relu", kinks=True),
                 VerifyRun("exact", "adam", 0.01, "float64", exact_steps, model="local-cnn-relu", kinks=True),
                 VerifyRun("exact", "ranger", 0.01, "float64", exact_steps, model="local-cnn-relu", kinks=True),
                 VerifyRun("exact", "ranger", 0.01, "float64", exact_steps, model="unet-bn", kinks=True)]
    return plan


def _network(spec: VerifyRun, width: int, depth: int) -> tuple[nn.Module, str]:
    """The seeded (``torch.manual_seed(0)``) network of ``spec`` in its dtype, and its name in ``verify.json``."""
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    torch.manual_seed(0)
    if spec.model == "local-cnn-relu":
        from jordanlab.models import build

        return build("local-cnn", width=4, depth=4, norm="none").to(dtype), "local-cnn-w4-d4-relu"
    if spec.model in ("unet-relu", "unet-bn"):
        from jordanlab.models import build

        if spec.model == "unet-bn":
            return build("unet", width=2, depth=2, norm="batch").to(dtype), "unet-w2-d2-batchnorm-relu"
        return build("unet", width=4, depth=3, norm="none").to(dtype), "unet-w4-d3-relu"
    return SmoothCNN(width=width, depth=depth).to(dtype), f"smooth-cnn-w{width}-d{depth}"


def _check(spec: VerifyRun, x: Tensor, y: Tensor, q: Tensor, pixels: list[tuple[int, int]], *, width: int,
           depth: int) -> dict[str, Any]:
    """Train ``spec``'s network while recording the decomposition; its ``verify.json`` row."""
    net, name = _network(spec, width, depth)
    dtype = next(net.parameters()).dtype
    n_train = x.shape[0]
    bs = None if spec.optimizer == "gd" else max(2, n_train // 3)
    row = {k: v for k, v in dataclasses.asdict(spec).items() if k != "model"}
    t0 = time.perf_counter()
    if spec.optimizer in ("adam", "ranger"):
        extra, initial, final, residual = _recorded(spec, net, x.to(dtype), y.to(dtype), q.to(dtype), pixels, bs)
    else:
        r = path_decomposition(net, x.to(dtype), y.to(dtype), q.to(dtype), lr=spec.lr, steps=spec.steps,
                               batch_size=bs, mode=spec.mode, pixels=pixels, kinks=spec.kinks)
        initial, final, residual = r.initial, r.final, r.residual
        extra = {} if r.pieces is None else {"pieces_per_step_max": int(r.pieces.max()),
                                             "pieces_per_step_mean": float(r.pieces.double().mean())}
    change = (final - initial).abs().max()
    rel = float(residual.abs().max() / change.clamp_min(torch.finfo(change.dtype).tiny))
    return {**row, "relative_residual": rel, "model": name, "batch_size": bs if bs is not None else n_train,
            "max_abs_change": float(change), "seconds": round(time.perf_counter() - t0, 1), **extra}


def _recorded(spec: VerifyRun, net: nn.Module, x: Tensor, y: Tensor, q: Tensor, pixels: list[tuple[int, int]],
              bs: int | None) -> tuple[dict[str, Any], Tensor, Tensor, Tensor]:
    """Train ``net`` with the real Adam or Ranger (the trainer's step: mean BCE, backward, step) under the
    matching recorder; the row's extra fields and (initial, final, residual)."""
    from jordanlab.kernels import AdamPathRecorder, RangerPathRecorder
    from jordanlab.kernels.path import _batches

    if spec.optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=spec.lr, betas=(0.9, 0.999))
        rec = AdamPathRecorder(list(q), pixels, x.shape[0], kinks=spec.kinks, quadrature=3)
    else:
        from pytorch_optimizer import Ranger

        opt = Ranger(net.parameters(), lr=spec.lr)  # as train.optim.build_optimizer: k 6, alpha 0.5, GC on
        rec = RangerPathRecorder(list(q), pixels, x.shape[0], kinks=spec.kinks, quadrature=3)
    net.train()
    rec.bind(net, opt)
    for idx in _batches(x.shape[0], bs, spec.steps, seed=0):
        rec.before_step(idx, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        nn.functional.binary_cross_entropy_with_logits(net(x[idx]), y[idx]).backward()
        opt.step()
        rec.after_step()
    r = rec.result()
    eps = torch.finfo(torch.float64).eps
    extra: dict[str, Any] = {"step_error_max_over_eps_weights": float((r.step_errors / (eps * r.weight_norms)).max())
                             if spec.optimizer == "ranger" else None,
                             "step_residual_max": float(r.step_residuals.max()),
                             "momentum_residual_max": float(r.momentum_residuals.max()),
                             "regulariser_max_abs": float(r.regulariser.abs().max())}
    if spec.optimizer == "ranger":
        extra.update(replay_residual=r.replay_residual, slow_residual_max=float(r.slow_residuals.max()),
                     rectified_steps=int(r.rectified.sum()), lookahead_syncs=int(r.synced.sum()),
                     batchnorm_max_abs=float(r.batchnorm.abs().max()))
        residual = r.residual
    else:
        residual = r.residual
    if r.pieces is not None:
        extra.update(pieces_per_step_max=int(r.pieces.max()), pieces_per_step_mean=float(r.pieces.double().mean()),
                     unresolved_pieces=r.unresolved)
    return extra, r.initial, r.final, residual


def verify(out_dir: str | os.PathLike[str], *, quick: bool = False, progress: bool = True,
           plan: Sequence[VerifyRun] | None = None) -> dict[str, Any]:
    """Run the decomposition checks of issue 4 and write ``DIR/verify.json`` and ``DIR/verify.png``.

    Every run of ``plan`` (default :func:`verify_plan`) trains its network on the first ``n_train``
    shapes-32 training images (8 quick, 16 full) with BCE and records the path decomposition of four
    query pixels; the SmoothCNN runs use width 4, depth 2 (quick) or width 8, depth 3 (full). Then the
    kernel motion: the relative change of the pixel tangent kernel between w_0 and w_T for growing width.

    Returns the dict written to ``verify.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = list(verify_plan(quick) if plan is None else plan)
    n_train = 8 if quick else 16
    x, y, xt = _shapes32(n_train, seed=0)
    q, pixels = _queries(x, y, xt)
    width, depth = (4, 2) if quick else (8, 3)
    iterator: Sequence[VerifyRun] = plan
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plan, desc="kernel verify")
    runs = [_check(spec, x, y, q, pixels, width=width, depth=depth) for spec in iterator]
    widths = [2, 16] if quick else [2, 4, 8, 16, 32, 64]
    probe = torch.cat([x[:2], xt[:2]])
    grid = [(int(r), int(c)) for r in (4, 12, 20, 28) for c in (4, 12, 20, 28)]
    motion = kernel_motion(widths, x, y, probe, grid, lr=0.5, steps=4 if quick else 10,
                           seeds=(0,) if quick else (0, 1, 2), depth=depth)
    result = {
        "runs": runs,
        "kernel_motion": motion,
        "setup": {"data": "shapes-32 train", "n_train": n_train, "queries": [list(p) for p in pixels],
                  "model": f"SmoothCNN(width={width}, depth={depth}, ntk parameterization, tanh)", "loss": "bce",
                  "quadrature_nodes": 3,
                  "tangent_training_time": _training_time(quick), "quick": quick,
                  "seconds": round(time.perf_counter() - t0, 1)},
    }
    write_json(out / "verify.json", result)
    _plot(result, out / "verify.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    tiny = 1e-18
    tan = [r for r in result["runs"] if r["mode"] == "tangent"]
    ax.loglog([r["lr"] for r in tan], [max(r["relative_residual"], tiny) for r in tan], "o-", label="tangent, GD, f64")
    if tan:
        lr0, r0 = tan[0]["lr"], tan[0]["relative_residual"]
        lrs = [r["lr"] for r in tan]
        ax.loglog(lrs, [r0 * lr / lr0 for lr in lrs], "k:", label="∝ lr")
    markers = {"gd": "s", "sgd": "^", "adam": "D", "ranger": "*"}
    for r in result["runs"]:
        if r["mode"] == "exact":
            label = (f"exact, {r['optimizer']}, {r['dtype']}" + ("" if r["model"].startswith("smooth") else
                     f" ({r['model'].split('-w')[0]} ReLU{', kinks split' if r.get('kinks') else ''})"))
            ax.loglog([r["lr"]], [max(r["relative_residual"], tiny)], markers.get(r["optimizer"], "o"), label=label)
    if tan:
        ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
        ax.minorticks_off()
    ax.set_xlabel("learning rate (training time lr·steps fixed)")
    ax.set_ylabel("relative residual")
    ax.legend(fontsize=7)
    mot = result["kernel_motion"]
    ax2.errorbar([m["width"] for m in mot], [m["relative_change"] for m in mot],
                 yerr=[m.get("std", 0.0) for m in mot], fmt="o-")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xticks([m["width"] for m in mot], [str(m["width"]) for m in mot])
    ax2.minorticks_off()
    ax2.set_xlabel("width")
    ax2.set_ylabel(r"$\|K_T - K_0\|_F \;/\; \|K_0\|_F$")
    ax2.set_title("tangent-kernel motion", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
