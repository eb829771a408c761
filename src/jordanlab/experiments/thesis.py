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

The sizes and hyperparameters are a :class:`ThesisConfig`, loadable from TOML
(:func:`load_thesis_config`, e.g. ``configs/experiments/thesis.toml``) or a plain dict
(:meth:`ThesisConfig.from_dict`, strict: unknown keys and wrong types fail naming the key).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jordanlab._atomic import save_figure, write_json
from jordanlab._seeds import torch_seed
from jordanlab.kernels import cnn_kernels, kernel_regression_min_ridge, mlp_kernels, tangent_kernel
from jordanlab.train import OptimConfig, build_optimizer

__all__ = ["IN_DIST", "QUICK", "SUITES", "PointReadout", "ThesisConfig", "load_thesis_config", "run_thesis"]

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

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str | None = None) -> ThesisConfig:
        """A config from a plain mapping (e.g. parsed TOML); every key must be a field of the right type.

        ``networks`` is a list of ``{"label", "model", "kwargs"}`` tables (or ``[label, model, kwargs]``
        triples), ``kwargs`` a table of scalar keyword arguments. Missing keys take the defaults.

        Raises
        ------
        ValueError
            Naming the key (and ``source``, when given) of an unknown key, a wrong type or a bad value.

        Examples
        --------
        >>> ThesisConfig.from_dict({"n_train": 8, "suites": ["nested"]}).suites
        ('nested',)
        >>> ThesisConfig.from_dict({"n_trian": 8})
        Traceback (most recent call last):
        ...
        ValueError: thesis config: unknown key 'n_trian'; valid: n_train, n_test, suites, depth, networks, steps, batch_size, lr, checkpoints, ridge, cntk_gap, path_kernel, seed
        """
        where = f"thesis config{f' {source}' if source else ''}"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a table of keys, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in raw if k not in fields]
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(fields)}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            default = fields[key].default
            if key == "suites":
                values[key] = _suites(value, where)
            elif key == "networks":
                values[key] = _networks(value, where)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{where}: key {key!r} must be true or false, got {value!r}")
                values[key] = value
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{where}: key {key!r} must be an integer >= 0, got {value!r}")
                values[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                    raise ValueError(f"{where}: key {key!r} must be a number > 0, got {value!r}")
                values[key] = float(value)
        cfg = cls(**values)
        if cfg.n_train < 1 or cfg.n_test < 1 or cfg.batch_size < 1 or cfg.depth < 1:
            raise ValueError(f"{where}: n_train, n_test, batch_size and depth must be >= 1, got "
                             f"{cfg.n_train}, {cfg.n_test}, {cfg.batch_size}, {cfg.depth}")
        return cfg


def _suites(value: Any, where: str) -> tuple[str, ...]:
    from jordanlab.data import SUITES as KNOWN

    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{where}: key 'suites' must be a list of suite names, got {value!r}")
    bad = [s for s in value if s not in KNOWN]
    if bad:
        raise ValueError(f"{where}: key 'suites': unknown suite {bad[0]!r}; valid: {', '.join(KNOWN)}")
    return tuple(value)


def _networks(value: Any, where: str) -> tuple[tuple[str, str, tuple[tuple[str, object], ...]], ...]:
    from jordanlab.models import MODELS

    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: key 'networks' must be a list of {{label, model, kwargs}} tables, got {value!r}")
    out = []
    for i, net in enumerate(value):
        key = f"networks[{i}]"
        if isinstance(net, Mapping):
            extra = set(net) - {"label", "model", "kwargs"}
            if extra or not {"label", "model"} <= set(net):
                raise ValueError(f"{where}: key {key!r} must have label, model and optional kwargs, got keys {sorted(net)}")
            label, model, kwargs = net["label"], net["model"], net.get("kwargs", {})
        elif isinstance(net, (list, tuple)) and len(net) == 3:
            label, model, kwargs = net
        else:
            raise ValueError(f"{where}: key {key!r} must be a {{label, model, kwargs}} table, got {net!r}")
        kwargs = dict(kwargs) if isinstance(kwargs, Mapping) else dict(kwargs) if isinstance(kwargs, (list, tuple)) else kwargs
        if not isinstance(label, str) or not isinstance(model, str) or not isinstance(kwargs, dict):
            raise ValueError(f"{where}: key {key!r}: label and model must be strings and kwargs a table, got {net!r}")
        if model not in MODELS:
            raise ValueError(f"{where}: key {key!r}: unknown model {model!r}; valid: {', '.join(MODELS)}")
        if not all(isinstance(v, (bool, int, float, str)) for v in kwargs.values()):
            raise ValueError(f"{where}: key {key!r}: kwargs values must be scalars, got {kwargs!r}")
        out.append((label, model, tuple(kwargs.items())))
    labels = [n[0] for n in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}: key 'networks': labels must be distinct, got {labels}")
    return tuple(out)


def load_thesis_config(path: str | os.PathLike[str]) -> ThesisConfig:
    """:meth:`ThesisConfig.from_dict` of a TOML file (top-level keys are the config's fields)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"thesis config {str(p)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"thesis config {str(p)!r} is not valid TOML: {e}") from None
    return ThesisConfig.from_dict(raw, source=str(p))


QUICK = ThesisConfig(n_train=32, n_test=8, suites=("nested", "spiral", "large-2x"), depth=2, steps=120,
                     batch_size=32, checkpoints=2)


# --------------------------------------------------------------------------- helpers


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

    The optimizer is the trainer's (:func:`jordanlab.train.build_optimizer`: AdamW without weight decay,
    betas (0.9, 0.999), which is Adam); the loop is not :func:`jordanlab.train.train`, whose objective is a
    per-pixel loss on image/mask pairs: here the target is one ±1 label per image, read at the marker.

    Batches are consecutive slices of a fresh permutation every epoch (a trailing partial batch
    is dropped). Checkpoints are the weights at the start of each of ``cfg.checkpoints`` equal segments of the
    run (the first is the initialization), with η_c = lr × (steps in the segment) / batch size;
    also the loss history (every 10 steps).
    """
    g = torch.Generator().manual_seed(seed)
    opt = build_optimizer(model.parameters(), OptimConfig(name="adam", lr=cfg.lr, betas=(0.9, 0.999)))
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
    book = _Ledger(x, y, tests)
    _infinite_machines(book, cfg, progress)
    for k, network in enumerate(cfg.networks):
        _network_machines(book, cfg, k, network, progress)
    result = {
        "table": _table(book.acc, book.agree),
        "config": dataclasses.asdict(cfg),
        "task": f"make_point_task('{IN_DIST}') train; suites at size 32 (large-2x: 64); y = +1 inside, -1 outside",
        "path_kernel_note": "path-checkpoint = TracInCP sum over Adam checkpoints: an approximation, not Domingos' exact path kernel",
        "n_train": book.n,
        "n_test": {s: int(v[0].shape[0]) for s, v in tests.items()},
        "accuracy": book.acc,
        "agreement_with_network": book.agree,
        "fraction_predicted_inside": book.inside,
        "ridge_relative": book.ridges,
        "details": book.extra,
        "seconds": book.timing,
        "total_seconds": time.perf_counter() - t_start,
    }
    write_json(out / "thesis.json", result)
    _plot_thesis(result, out / "thesis.png")
    return result


class _Ledger:
    """The thesis's inputs and its growing tables (accuracy, agreement, ridges, details, timings).

    ``xq`` stacks the training images and every test set on the training canvas (the kernel machines'
    queries); ``spans[suite]`` is that suite's slice of ``xq``. Suites on another canvas have no span.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, tests: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.x, self.y, self.tests, self.n = x, y, tests, x.shape[0]
        same = {s: v for s, v in tests.items() if v[0].shape[2:] == x.shape[2:]}
        self.xq = torch.cat([x] + [v[0] for v in same.values()])
        self.spans: dict[str, slice] = {}
        o = self.n
        for s, v in same.items():
            self.spans[s] = slice(o, o + v[0].shape[0])
            o += v[0].shape[0]
        self.acc: dict[str, dict[str, float | None]] = {}
        self.agree: dict[str, dict[str, float | None]] = {}
        self.inside: dict[str, dict[str, float | None]] = {}
        self.ridges: dict[str, float] = {}
        self.extra: dict[str, object] = {}
        self.timing: dict[str, float] = {}

    def score(self, name: str, fq: torch.Tensor, ref: dict[str, torch.Tensor] | None = None) -> None:
        """Accuracy (and sign agreement with ``ref``, a network's outputs) of predictions ``fq`` on ``xq``."""
        self.acc[name], self.agree[name], self.inside[name] = {}, {}, {}
        for s in self.tests:
            if s not in self.spans:
                self.acc[name][s] = self.agree[name][s] = self.inside[name][s] = None
                continue
            f = fq[self.spans[s]]
            self.acc[name][s] = _accuracy(f, self.tests[s][1])
            self.inside[name][s] = float((f > 0).double().mean())
            self.agree[name][s] = None if ref is None else _accuracy(f, torch.sign(ref[s]))
        if ref is not None:
            self.extra[f"{name}/train_accuracy"] = _accuracy(fq[:self.n], self.y)

    def regress(self, name: str, k_query_train: torch.Tensor, k_train_train: torch.Tensor, ridge: float,
                ref: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Kernel regression on ``y`` (smallest invertible relative ridge ≥ ``ridge``), scored as ``name``."""
        f, self.ridges[name] = kernel_regression_min_ridge(k_query_train, k_train_train, self.y, ridge=ridge)
        self.score(name, f, ref)
        return f


def _infinite_machines(book: _Ledger, cfg: ThesisConfig, progress: bool) -> None:
    """(a) Kernel regression with the infinite-width NTK of a ReLU MLP and CNN (flatten; GAP with ``cntk_gap``)."""
    infinite = [("ntk-mlp", lambda a, b: mlp_kernels(a.flatten(1), None if b is None else b.flatten(1), cfg.depth)[1]),
                ("ntk-cnn-flatten", lambda a, b: cnn_kernels(a, b, cfg.depth, readout="flatten")[1])]
    if cfg.cntk_gap:
        infinite.append(("ntk-cnn-gap", lambda a, b: cnn_kernels(a, b, cfg.depth, readout="gap",
                                                                progress=progress)[1]))
    for name, kfn in infinite:
        t0 = time.perf_counter()
        k_tt = kfn(book.x, None)
        f = book.regress(name, kfn(book.xq, book.x), k_tt, cfg.ridge)
        book.extra[f"{name}/train_accuracy"] = _accuracy(f[:book.n], book.y)
        book.timing[name] = time.perf_counter() - t0


def _network_machines(book: _Ledger, cfg: ThesisConfig, k: int,
                      network: tuple[str, str, tuple[tuple[str, object], ...]], progress: bool) -> None:
    """(b) Network ``k`` trained and read at the marker, (c) its final tangent and checkpoint kernel machines."""
    name, arch, kw = network
    n, xq = book.n, book.xq
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
        torch.manual_seed(torch_seed(cfg.seed, k))
        model = _build(arch, dict(kw))
    ckpts, etas, losses = _train(model, book.x, book.y, cfg, torch_seed(cfg.seed, k), progress)
    model.eval()
    book.extra[f"{name}/parameters"] = sum(p.numel() for p in model.parameters())
    book.extra[f"{name}/loss_every_10_steps"] = losses
    md = copy.deepcopy(model).double()
    with torch.no_grad():
        fq = md(xq)
        f_big = {s: md(v[0]) for s, v in book.tests.items() if s not in book.spans}
    book.extra[f"{name}/train_accuracy"] = _accuracy(fq[:n], book.y)
    book.score(name, fq)
    for s, f in f_big.items():  # a dense network runs on any canvas
        book.acc[name][s] = _accuracy(f, book.tests[s][1])
        book.inside[name][s] = float((f > 0).double().mean())
    ref = {s: fq[book.spans[s]] for s in book.spans}
    book.timing[name] = time.perf_counter() - t0

    t0 = time.perf_counter()
    kq = tangent_kernel(md, xq, book.x, dtype=torch.float64)
    book.regress(f"{name}/tangent-final", kq, kq[:n], cfg.ridge, ref)
    book.timing[f"{name}/tangent-final"] = time.perf_counter() - t0
    if cfg.path_kernel and ckpts:
        t0 = time.perf_counter()
        kp = _checkpoint_kernel(ckpts, etas, arch, dict(kw), xq, book.x)
        book.regress(f"{name}/path-checkpoint", kp, kp[:n], cfg.ridge, ref)
        book.extra[f"{name}/checkpoint_etas"] = etas
        book.timing[f"{name}/path-checkpoint"] = time.perf_counter() - t0


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
    ax.legend(fontsize=7, ncol=3, loc="lower left")
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
