"""The talk's thesis measured on the closure task: trained networks against their kernel machines.

Scalar variant of the task (:func:`jordanlab.data.make_point_task`: a curve plus a marked pixel,
target ``y = +1`` inside, ``-1`` outside), trained on ``shapes-32`` (the data layer's smallest
canvas) and tested in distribution and on the OOD suites drawn on a 32-pixel canvas (``large-2x``:
64×64). On one training set we compare

(a) kernel regression ``f*(x) = K(x, X) (K(X, X) + λI)^{-1} y`` with the infinite-width NTK of a
    ReLU MLP (flattened image) and of a ReLU CNN with a flatten readout (CNTK-V; CNTK-GAP too with
    ``cntk_gap=True``: it needs a (H·W)² pixel-pair tensor per pair, too slow on two cores);
(b) finite dense networks of the learning issue read as point classifiers: the network maps the
    boundary (channel 0) to a logit map and ``f(x) = Σ_pixels logits · marker`` is the logit at the
    marked pixel (:class:`PointReadout`). A U-Net (``norm="none"``, global receptive field) and the
    learned row scan ``scan`` (tanh gate: the parity rule is expressible exactly), trained with
    minibatch Adam on the logistic loss until they fit the training set;
(c) kernel regression with each trained network's final tangent kernel (on the scalar readout)
    and with its *checkpoint* path kernel ``Σ_c η_c ∇f(w_c, x)·∇f(w_c, x')`` over ``checkpoints``
    weights along the Adam run (:func:`jordanlab.kernels.checkpoint_path_kernel`, TracInCP-style,
    η_c = lr × steps per checkpoint). This is an approximation of Domingos' path kernel: the exact
    decomposition needs plain (S)GD, and Adam's update is not ``−lr ∇L``.

Accuracy is ``mean(sign f(x) == y)``; ``agreement`` is the fraction of test points where a kernel
machine and its network give the same sign. Kernels need same-size inputs, so kernel machines have
no ``large-2x`` entry; the networks run on any canvas.

:func:`arora_check` checks Arora et al.'s theorem (a wide network trained by GD equals the NTK
predictor) on the same data; :func:`infinite_check` writes it with the width-convergence tables.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .infinite import cnn_kernels, mlp_kernels, ntk_mlp, width_convergence
from .regression import kernel_regression
from .tangent import tangent_kernel
from jordanlab._atomic import save_figure, write_json

__all__ = ["ThesisConfig", "PointReadout", "run_thesis", "arora_check", "infinite_check"]

IN_DIST = "shapes-32"
SUITES = ("multi-2", "multi-3", "nested", "spiral", "polygon", "randomwalk", "thick", "large-2x")


@dataclasses.dataclass(frozen=True)
class ThesisConfig:
    """Sizes and hyperparameters of :func:`run_thesis`.

    ``networks`` holds ``(label, registry name, ((keyword, value), ...))`` triples; every model is
    built with ``in_channels=1`` (and ``norm="none"`` where it has the option) and trained for
    ``steps`` minibatch Adam steps on the logistic loss of the point readout.

    Measured (loaded 2-core CPU, 1 thread): the defaults take 4.6 min wall (247 s CPU: U-Net
    training 69 s and its 4-checkpoint path kernel 58 s, CNTK 58 s, row scan 44 s); ``QUICK``
    about 30 s. Both networks reach train accuracy 1.0.
    """

    n_train: int = 256  # training images of shapes-32 (point task)
    n_test: int = 64  # test images per suite (and in distribution)
    suites: tuple[str, ...] = SUITES
    depth: int = 3  # hidden layers of the closed-form NTK kernels
    networks: tuple[tuple[str, str, tuple[tuple[str, object], ...]], ...] = (
        ("unet", "unet", (("width", 8), ("depth", 3))),
        ("scan", "scan", (("width", 8), ("encoder_depth", 2), ("head_width", 8))),
    )
    steps: int = 400  # Adam steps (100 epochs of 256 at batch 64)
    batch_size: int = 64
    lr: float = 3e-3
    checkpoints: int = 4  # weights along the run for the checkpoint path kernel (0: none)
    ridge: float = 1e-8  # λ = ridge · trace(K)/N, raised ×100 until K + λI is invertible
    cntk_gap: bool = False
    path_kernel: bool = True
    seed: int = 0


QUICK = ThesisConfig(n_train=32, n_test=8, suites=("nested", "spiral", "large-2x"), depth=2, steps=120,
                     batch_size=32, checkpoints=2)


# --------------------------------------------------------------------------- helpers


def _regress(k_tt: torch.Tensor, k_st: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, float]:
    """Kernel regression with the smallest relative ridge ≥ ``ridge`` (×100 steps) that is invertible."""
    k_tt = (k_tt + k_tt.T) / 2
    scale = float(torch.diagonal(k_tt).mean())
    r = ridge
    while True:
        try:
            return kernel_regression(k_st, k_tt, y, ridge=r * scale), r
        except ValueError:
            if r >= 1e-2:
                raise
            r *= 100


def _accuracy(f: torch.Tensor, y: torch.Tensor) -> float:
    return float((torch.sign(f) == torch.sign(y)).double().mean())


def _point_data(cfg: ThesisConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    from jordanlab.data import make_point_task

    def conv(xy: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = xy
        return torch.from_numpy(x).double(), torch.from_numpy(y).double() * 2 - 1

    x, y = conv(make_point_task(IN_DIST, "train", cfg.n_train, cfg.seed))
    tests = {"in-dist": conv(make_point_task(IN_DIST, "test", cfg.n_test, cfg.seed))}
    for s in cfg.suites:
        tests[s] = conv(make_point_task(s, "test", cfg.n_test, cfg.seed, size=32))
    return x, y, tests


class PointReadout(nn.Module):
    """A dense network read at the marked pixel: ``f(x) = Σ_pixels net(x[:, :1]) · x[:, 1]``.

    ``x`` is ``(N, 2, H, W)`` (boundary, one-hot marker) as :func:`jordanlab.data.make_point_task`
    returns it; the output is ``(N,)``, the logit of the marked pixel. The dense network never sees
    the marker, so it runs on any canvas it supports.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x[:, :1]) * x[:, 1:2]).sum(dim=(1, 2, 3))


def _build(name: str, kwargs: dict) -> PointReadout:
    import inspect

    from jordanlab.models import MODELS, build

    kw = dict(kwargs)
    if "norm" in inspect.signature(MODELS[name]).parameters:
        kw.setdefault("norm", "none")  # no BatchNorm: a function of the weights alone (tangent kernels)
    return PointReadout(build(name, in_channels=1, **kw))


def _train(model: PointReadout, x: torch.Tensor, y: torch.Tensor, cfg: ThesisConfig, seed: int,
           progress: bool) -> tuple[list[dict[str, torch.Tensor]], list[float], list[float]]:
    """Minibatch Adam on the logistic loss ``log(1 + exp(−y f(x)))``; returns checkpoints.

    Batches are consecutive slices of a fresh permutation every epoch (a trailing partial batch
    is dropped). Checkpoints are the weights at the start of each of ``cfg.checkpoints`` equal segments of the
    run (the first is the initialization), with η_c = lr × (steps in the segment) / batch size;
    also the loss history (every 10 steps).
    """
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = x.shape[0]
    xf, yf = x.float(), y.float()
    c = max(cfg.checkpoints, 0)
    marks = sorted({int(round(k * cfg.steps / c)) for k in range(c)}) if c else []
    ckpts, etas, losses = [], [], []
    bounds = marks + [cfg.steps]
    it = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="thesis train", leave=False)
    for step in it:
        if step in marks:
            ckpts.append(copy.deepcopy(model.state_dict()))
            k = marks.index(step)
            etas.append(cfg.lr * (bounds[k + 1] - bounds[k]) / min(cfg.batch_size, n))
        b = min(cfg.batch_size, n)
        if step % (n // b) == 0:  # a new epoch: reshuffle (full batch when batch_size >= n)
            perm = torch.randperm(n, generator=g)
        j = step % (n // b)
        idx = perm[j * b:(j + 1) * b]
        loss = nn.functional.softplus(-yf[idx] * model(xf[idx])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            losses.append(loss.item())
    return ckpts, etas, losses


def _checkpoint_kernel(ckpts: list[dict[str, torch.Tensor]], etas: list[float], arch: str, kw: dict,
                       xq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """TracInCP path kernel ``Σ_c η_c ∇f(w_c, xq)·∇f(w_c, x)`` ``(Q, N)``, float64.

    The same kernel as :func:`jordanlab.kernels.checkpoint_path_kernel` (tested), computed with one
    :func:`tangent_kernel` per checkpoint: that function recomputes the query gradients for every
    chunk of training examples, several times slower here.
    """
    total = None
    for state, eta in zip(ckpts, etas):
        m = _build(arch, kw)
        m.load_state_dict(state)
        m = m.eval().double()
        k = eta * tangent_kernel(m, xq, x, dtype=torch.float64)
        total = k if total is None else total + k
    assert total is not None
    return total


# --------------------------------------------------------------------------- the thesis


def run_thesis(
    out_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    config: ThesisConfig | None = None,
    progress: bool = True,
) -> dict:
    """Train and compare kernel machines and networks on the point task; write ``thesis.json``/``.png``.

    Parameters
    ----------
    out_dir : path
        Created if missing; receives ``thesis.json`` (config, per-method per-suite accuracy and
        agreement, ridges, training details, timings) and ``thesis.png`` (accuracy bars and
        agreement with the network).
    quick : bool
        Tiny sizes (``QUICK``), well under a minute; ignored when ``config`` is given.
    config : ThesisConfig, optional
    progress : bool

    Returns
    -------
    dict
        The content of ``thesis.json``; ``accuracy[method][suite]`` (``None`` where a method
        does not apply: a kernel machine on ``large-2x``), ``agreement_with_network[method][suite]``
        for the kernel machines of a network (``"<net>/tangent-final"``, ``"<net>/path-checkpoint"``).
    """
    cfg = config if config is not None else (QUICK if quick else ThesisConfig())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    x, y, tests = _point_data(cfg)
    n = x.shape[0]
    same = {s: v for s, v in tests.items() if v[0].shape[2:] == x.shape[2:]}
    xq = torch.cat([x] + [v[0] for v in same.values()])
    spans, o = {}, n
    for s, v in same.items():
        spans[s] = slice(o, o + v[0].shape[0])
        o += v[0].shape[0]
    acc: dict[str, dict[str, float | None]] = {}
    agree: dict[str, dict[str, float | None]] = {}
    ridges: dict[str, float] = {}
    extra: dict[str, object] = {}
    timing: dict[str, float] = {}
    inside: dict[str, dict[str, float | None]] = {}

    def score(name: str, fq: torch.Tensor, ref: dict[str, torch.Tensor] | None = None) -> None:
        acc[name], agree[name], inside[name] = {}, {}, {}
        for s in tests:
            if s not in spans:
                acc[name][s] = agree[name][s] = inside[name][s] = None
                continue
            f = fq[spans[s]]
            acc[name][s] = _accuracy(f, tests[s][1])
            inside[name][s] = float((f > 0).double().mean())
            agree[name][s] = None if ref is None else _accuracy(f, torch.sign(ref[s]))
        if ref is not None:
            extra[f"{name}/train_accuracy"] = _accuracy(fq[:n], y)

    # (a) infinite-width NTK regression
    infinite = [("ntk-mlp", lambda a, b: mlp_kernels(a.flatten(1), None if b is None else b.flatten(1), cfg.depth)[1]),
                ("ntk-cnn-flatten", lambda a, b: cnn_kernels(a, b, cfg.depth, readout="flatten")[1])]
    if cfg.cntk_gap:
        infinite.append(("ntk-cnn-gap", lambda a, b: cnn_kernels(a, b, cfg.depth, readout="gap",
                                                                progress=progress)[1]))
    for name, kfn in infinite:
        t0 = time.perf_counter()
        k_tt = kfn(x, None)
        k_st = kfn(xq, x)
        f, ridges[name] = _regress(k_tt, k_st, y, cfg.ridge)
        score(name, f)
        extra[f"{name}/train_accuracy"] = _accuracy(f[:n], y)
        timing[name] = time.perf_counter() - t0

    # (b) finite dense networks read at the marker, (c) their kernel machines
    for k, (name, arch, kw) in enumerate(cfg.networks):
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
            torch.manual_seed(cfg.seed * 1_000_003 + k)
            model = _build(arch, dict(kw))
        ckpts, etas, losses = _train(model, x, y, cfg, cfg.seed * 1_000_003 + k, progress)
        model.eval()
        extra[f"{name}/parameters"] = sum(p.numel() for p in model.parameters())
        extra[f"{name}/loss_every_10_steps"] = losses
        md = copy.deepcopy(model).double()
        with torch.no_grad():
            fq = md(xq)
            f_big = {s: md(v[0]) for s, v in tests.items() if s not in spans}
        extra[f"{name}/train_accuracy"] = _accuracy(fq[:n], y)
        score(name, fq)
        for s, f in f_big.items():  # a dense network runs on any canvas
            acc[name][s] = _accuracy(f, tests[s][1])
            inside[name][s] = float((f > 0).double().mean())
        ref = {s: fq[spans[s]] for s in spans}
        timing[name] = time.perf_counter() - t0

        t0 = time.perf_counter()
        kq = tangent_kernel(md, xq, x, dtype=torch.float64)
        f, ridges[f"{name}/tangent-final"] = _regress(kq[:n], kq, y, cfg.ridge)
        score(f"{name}/tangent-final", f, ref)
        timing[f"{name}/tangent-final"] = time.perf_counter() - t0
        if cfg.path_kernel and ckpts:
            t0 = time.perf_counter()
            kp = _checkpoint_kernel(ckpts, etas, arch, dict(kw), xq, x)
            f, ridges[f"{name}/path-checkpoint"] = _regress(kp[:n], kp, y, cfg.ridge)
            score(f"{name}/path-checkpoint", f, ref)
            extra[f"{name}/checkpoint_etas"] = etas
            timing[f"{name}/path-checkpoint"] = time.perf_counter() - t0

    result = {
        "table": _table(acc, agree),
        "config": dataclasses.asdict(cfg),
        "task": f"make_point_task('{IN_DIST}') train; suites at size 32 (large-2x: 64); y = +1 inside, -1 outside",
        "path_kernel_note": "path-checkpoint = TracInCP sum over Adam checkpoints: an approximation, not Domingos' exact path kernel",
        "n_train": n,
        "n_test": {s: int(v[0].shape[0]) for s, v in tests.items()},
        "accuracy": acc,
        "agreement_with_network": agree,
        "fraction_predicted_inside": inside,
        "ridge_relative": ridges,
        "details": extra,
        "seconds": timing,
        "total_seconds": time.perf_counter() - t_start,
    }
    write_json(out / "thesis.json", result)
    _plot_thesis(result, out / "thesis.png")
    return result


def _table(acc: dict[str, dict[str, float | None]], agree: dict[str, dict[str, float | None]]) -> list[dict]:
    """Rows ``{"method", <suite>: accuracy, ..., agreement in-dist, agreement OOD}`` for reports."""
    rows = []
    for m, row in acc.items():
        r: dict[str, object] = {"method": m}
        r.update({s: (float("nan") if v is None else v) for s, v in row.items()})
        a = agree.get(m, {})
        r["sign agreement with net (in-dist)"] = float("nan") if a.get("in-dist") is None else a["in-dist"]
        ood = [v for s, v in a.items() if s != "in-dist" and v is not None]
        r["sign agreement with net (OOD mean)"] = float(np.mean(ood)) if ood else float("nan")
        rows.append(r)
    return rows


def _plot_thesis(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc, agree = result["accuracy"], result["agreement_with_network"]
    methods = list(acc)
    suites = list(next(iter(acc.values())))
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(max(9, 1.3 * len(suites)), 8), sharex=True)
    w = 0.8 / len(methods)
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for i, m in enumerate(methods):
        pos = np.arange(len(suites)) + (i - (len(methods) - 1) / 2) * w
        ax.bar(pos, [acc[m][s] if acc[m][s] is not None else np.nan for s in suites], w, label=m, color=cmap(i))
        if any(v is not None for v in agree[m].values()):
            bx.bar(pos, [agree[m][s] if agree[m][s] is not None else np.nan for s in suites], w, label=m,
                   color=cmap(i))
    for a in (ax, bx):
        a.axhline(0.5, color="k", lw=0.8, ls="--")
        a.set_ylim(0, 1)
    ax.set_ylabel("accuracy (marked pixel inside?)")
    bx.set_ylabel("sign agreement with its network")
    bx.set_xticks(np.arange(len(suites)), suites, rotation=30, ha="right")
    ax.set_title(f"point task, trained on {IN_DIST} (n = {result['n_train']}); "
                 "kernel machines have no large-2x entry")
    # legends beside the axes, not over the bars
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- Arora et al.'s theorem


class _Antisymmetric(nn.Module):
    """``f(x) = (g_θ(x) − g_θ'(x)) / √2`` with θ' = θ at init: f_0 ≡ 0, same NTK as ``g``."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        import copy

        self.a, self.b = g, copy.deepcopy(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.a(x) - self.b(x)) / math.sqrt(2.0)


def _discrete_gd(k_tt: torch.Tensor, k_st: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> torch.Tensor:
    """Linearized discrete GD on ½Σ(f − y)² from f_0 = 0: ``K(x,X) V diag((1 − (1 − ηλ)^T)/λ) Vᵀ y``."""
    lam, v = torch.linalg.eigh((k_tt + k_tt.T) / 2)
    tol = lam.shape[0] * torch.finfo(lam.dtype).eps * float(lam.abs().max())
    gain = torch.where(lam > tol, (1 - (1 - lr * lam) ** steps) / torch.where(lam > tol, lam, 1.0), lr * steps)
    return k_st @ (v @ (gain * (v.T @ y)))


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
    f_lin = _discrete_gd(k_tt, k_st, y, lr, steps)
    f_inf, ridge = _regress(k_tt, k_st, y, 0.0)
    rows = []
    for width in widths:
        gaps, gaps_inf, accs = [], [], []
        for s in range(seeds):
            g = torch.Generator().manual_seed(seed * 1_000_003 + 31 * int(width) + s)
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


def infinite_check(out_dir: str | os.PathLike[str], *, quick: bool = False, progress: bool = True) -> dict:
    """Width-convergence tables (MLP, CNN flatten, CNN GAP) and the Arora check.

    Writes ``infinite_check.json`` with ``width_convergence`` (see
    :func:`jordanlab.kernels.infinite.width_convergence`), ``arora`` (see :func:`arora_check`)
    and ``table``/``arora_table`` rows for reports.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if quick:
        jobs = [
            lambda: width_convergence("mlp", [64, 256, 1024], depth=2, seeds=3),
            lambda: width_convergence("cnn", [8, 32, 128], depth=2, readout="flatten", image_size=(4, 4), seeds=3),
            lambda: width_convergence("cnn", [8, 32, 128], depth=2, readout="gap", image_size=(4, 4), seeds=3),
            lambda: arora_check(widths=(64, 256, 1024), n_train=16, n_test=16, steps=100, seeds=1),
        ]
    else:
        jobs = [
            lambda: width_convergence("mlp", [64, 256, 1024, 4096], depth=2, seeds=8),
            lambda: width_convergence("cnn", [8, 32, 128, 512], depth=3, readout="flatten", image_size=(6, 6), seeds=6),
            lambda: width_convergence("cnn", [8, 32, 128, 512], depth=3, readout="gap", image_size=(6, 6), seeds=6),
            lambda: arora_check(widths=(64, 256, 1024, 4096), n_train=32, n_test=32, steps=200, seeds=2),
        ]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="infinite-check")
    *conv, arora = [job() for job in jobs]
    table = [
        {"network": f"{c['kind']} depth {c['depth']}" + (f" {c['readout']}" if c["readout"] else ""),
         **{f"width {w}": e for w, e in zip(c["widths"], c["errors"])}, "log-log slope": c["slope"]}
        for c in conv
    ]
    result = {"table": table, "arora_table": arora["rows"], "width_convergence": conv, "arora": arora,
              "seconds": time.perf_counter() - t0}
    write_json(out / "infinite_check.json", result)
    return result
