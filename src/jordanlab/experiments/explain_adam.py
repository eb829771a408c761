"""``jordanlab kernel explain-adam``: a real Adam or Ranger run replayed with the exact recorder, one figure per query.

The run is retrained from its saved config into a fresh replay directory with an
:class:`jordanlab.kernels.AdamPathRecorder` (``optim.name = "adam"``) or
:class:`jordanlab.kernels.RangerPathRecorder` (``"ranger"``; BatchNorm's running statistics are the
reported term ``a_bn``) as a step hook (same config and seed, hence the same
batches, augmentations and weights), and each query pixel is written as a JSON report
(f₀, f_T, Σ_i a_i, a_reg, residual, the most positive and negative training images) and a figure.

Memory: the forward recorders keep (N + 1) × P per-example shares in RAM (two such buffers for Ranger);
``memory="disk"`` (chosen by ``"auto"`` when those would take more than half the available RAM) uses
:class:`jordanlab.kernels.AdjointPathRecorder` instead: the same a_i by a backward sweep over the steps,
stored in a scratch directory ``OUT/adjoint-scratch`` (O(T (Q + 1) P) bytes, deleted afterwards), with the
per-example gradients recomputed in float64 (``gradient_dtype``). On disk the sweep also splits each top
example's a_i over the pixels of its presentations (``kernels.PixelMaps``; all examples' maps when they take
at most :data:`MAP_BUDGET` bytes, then the whole training set's split by pixel class and distance to the
curve too, ``experiments.explain_maps``), drawn as ``OUT/<prefix><name>-maps.png``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from jordanlab._atomic import save_figure, write_json
from jordanlab.kernels import AdamPathDecomposition, AdamPathRecorder, AdjointPathRecorder, PixelMaps, RangerPathRecorder

from ._runs import run_config, run_images, trained_model
from .explain_maps import (CLASSES, OFFSET_BINS, distance_labels, map_summary, plot_pixel_maps, split_by_class,
                           split_by_distance, split_by_offset)
from .images import parse_image_spec

__all__ = ["MEMORY_MODES", "Query", "concentration", "explain_adam_run", "plot_adam_explanation", "queries_from_specs",
           "query_from_spec", "share_bytes"]

#: ``memory`` of :func:`explain_adam_run`: per-example shares in RAM, the adjoint sweep on disk, or by size.
MEMORY_MODES = ("auto", "ram", "disk")
#: Bytes of per-pixel maps the disk sweep keeps for every example at once; above it, a second sweep keeps the top ±k.
MAP_BUDGET = 1 << 30


def share_bytes(n_train: int, n_params: int, optimizer: str, dtype: torch.dtype = torch.float64) -> int:
    """RAM of the forward recorder's per-example shares: (N + 1) × P floats, twice for Ranger (M and F).

    Examples
    --------
    >>> round(share_bytes(1024, 1_946_249, "ranger") / 1e9, 1)  # the quick U-Net
    31.9
    """
    return (2 if optimizer == "ranger" else 1) * (n_train + 1) * n_params * torch.empty((), dtype=dtype).element_size()


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Query:
    """One query pixel: ``name`` (used in file names), boundary image ``(H, W)`` in {0, 1}, its exact mask, pixel."""

    name: str
    boundary: np.ndarray
    mask: np.ndarray | None
    pixel: tuple[int, int]
    source: str


def query_from_spec(spec: str, pixel: tuple[int, int], config: object, *, size: int | None = None,
                    seed: int = 0) -> Query:
    """The :class:`Query` of image ``spec`` (:func:`~jordanlab.experiments.parse_image_spec`) at ``pixel``.

    Its name, used in file names, is the spec with ``:`` replaced by ``-`` (a PNG: its file stem) and the
    pixel, e.g. ``spiral-2-r10c12``.
    """
    img = parse_image_spec(spec, config, size=size, seed=seed)
    r, c = (int(v) for v in pixel)
    h, w = img.boundary.shape
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"pixel ({r}, {c}) is outside the {h}x{w} image {img.source}")
    stem = Path(spec).stem if img.mask is None else spec.replace(":", "-")
    return Query(f"{stem}-r{r}c{c}", img.boundary, img.mask, (r, c), img.source)


def concentration(contributions: Tensor, fractions: Sequence[float] = (0.5, 0.9)) -> dict[str, int]:
    """How many examples (largest |a_i| first) carry each fraction of Σ_i |a_i|.

    Examples
    --------
    >>> concentration(torch.tensor([3.0, -1.0, 0.5, 0.5]))
    {'n_50': 1, 'n_90': 3}
    """
    mag = contributions.abs().sort(descending=True).values
    cum = mag.cumsum(0) / mag.sum().clamp_min(torch.finfo(mag.dtype).tiny)
    return {f"n_{round(100 * f)}": int((cum < f).sum()) + 1 for f in fractions}


def explain_adam_run(
    run_dir: str | os.PathLike[str],
    queries: Sequence[Query],
    out_dir: str | os.PathLike[str],
    *,
    replay_dir: str | None = None,
    quadrature: int = 2,
    k: int = 6,
    prefix: str = "explain-",
    progress: bool = True,
    memory: str = "auto",
    kinks: bool = True,
    gradient_dtype: torch.dtype | None = None,
) -> dict:
    """Replay the training run ``run_dir`` with an exact path recorder and write one figure + JSON per query.

    The run is retrained from its saved ``config.toml`` into ``replay_dir`` (default ``OUT/replay``, which must
    hold no checkpoint): same config and seed, hence the same batches, augmentations and weights; the final
    weights are compared with ``run_dir``'s newest checkpoint (``weights_max_abs_diff`` in the summary), and
    each query's f_T with the run's own logit (``run_logit``: its checkpoint in eval mode, float32 and float64).
    ``memory`` is one of :data:`MEMORY_MODES` (module docstring); ``kinks=False`` integrates each step with
    ``quadrature`` fixed nodes (the kink error then stays in the reported residual); ``gradient_dtype``:
    precision of the recomputed per-example gradients (default: the run's own, float64 with ``"disk"``).
    Writes ``OUT/<prefix><name>.png`` and ``OUT/<prefix><name>.json`` per query and ``OUT/<prefix>summary.json``.
    """
    from jordanlab import data
    from jordanlab.train import build_objective, train
    from jordanlab.train.run import Run

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:  # before a replay of minutes, not after it
        raise ValueError(f"k must be a positive int (top +k and -k training images in each figure), got {k!r}")
    run_dir, out = Path(run_dir), Path(out_dir)
    config = run_config(run_dir)
    if config.train.objective != "standard":
        raise ValueError(f"run {str(run_dir)!r} uses train.objective={config.train.objective!r}; the recorder handles "
                         "the standard objective (mean per-pixel loss plus an optional gate penalty) only")
    replay = Path(replay_dir) if replay_dir is not None else out / "replay"
    if Run.for_training(replay, config).checkpoints():
        raise ValueError(f"replay_dir {str(replay)!r} already holds checkpoints; the recording needs a fresh run")
    n_train = config.data.n_train or data.resolve(config.data.preset).count("train")
    objective = build_objective(config.train)
    ranger = config.optim.name == "ranger"
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {MEMORY_MODES}, got {memory!r}")
    original, _ = trained_model(run_dir)
    n_params = sum(p.numel() for p in original.parameters() if p.requires_grad)
    need = share_bytes(n_train, n_params, config.optim.name)
    if memory == "auto":
        memory = "disk" if need > _available_ram() // 2 else "ram"
    kwargs = dict(loss=config.train.loss, grad_clip=config.optim.grad_clip,
                  penalty_weight=objective.penalty_weight if config.train.gate_penalty > 0 else None,
                  quadrature=quadrature, kinks=kinks)
    images = [torch.as_tensor(q.boundary, dtype=torch.float32)[None] for q in queries]
    scratch = out / "adjoint-scratch"
    if memory == "disk":
        rec = AdjointPathRecorder(images, [q.pixel for q in queries], n_train, scratch=scratch,
                                  gradient_dtype=gradient_dtype or torch.float64, **kwargs)
    else:
        recorder = RangerPathRecorder if ranger else AdamPathRecorder  # Ranger: RAdam + Lookahead, term for term
        rec = recorder(images, [q.pixel for q in queries], n_train, gradient_dtype=gradient_dtype, **kwargs)
    t0 = time.perf_counter()
    adjoint = maps = None
    try:
        train(config, replay, progress=progress, step_hooks=[rec])
        seconds = time.perf_counter() - t0
        if memory == "disk":
            h, w = _train_shape(config)
            all_maps = len(queries) * rec.steps * config.train.batch_size * h * w * 8 <= MAP_BUDGET
            adjoint = rec.result(maps=all_maps)
            result = adjoint.path
            top = sorted({int(i) for j in range(len(queries)) for i in _top(result.contributions[j], k)})
            maps = adjoint.maps if all_maps else rec.pixel_maps(top)
        else:
            result = rec.result()
    finally:
        if memory == "disk":
            rec.close()
    replayed, _ = trained_model(replay)
    diff = max(float((a - b).abs().max()) for a, b in zip(original.state_dict().values(), replayed.state_dict().values()))
    train_b, train_m, _ = run_images(config, "train", n_train)  # the un-augmented originals
    summary = {
        "run": str(run_dir), "replay": str(replay), "seconds": seconds, "steps": result.steps,
        "quadrature": quadrature, "weights_max_abs_diff_vs_run": diff,
        "step_residual_max": float(result.step_residuals.max()),
        "step_residual_median": float(result.step_residuals.median()),
        "step_residual_p99": float(result.step_residuals.quantile(0.99)),
        "step_residual_aggregate": float(result.step_errors.sum() / result.update_norms.sum()),
        "step_residual_max_at": int(result.step_residuals.argmax()),
        "lr_at_max_step_residual": result.lrs[int(result.step_residuals.argmax())],
        "bookkeeping_output_max": float(result.bookkeeping.abs().max()),
        "momentum_residual_max": float(result.momentum_residuals.max()),
        "gradient_residual_max": float(np.nanmax(result.gradient_residuals.numpy())),
        "clipped_steps": int((result.clip_factors < 1).sum()),
        "optimizer": config.optim.name, "memory": memory, "share_bytes_in_ram": need, "kinks": kinks,
        "n_train": n_train, "n_params": n_params, "queries": [],
    }
    if adjoint is not None:
        summary.update(disk_bytes=adjoint.disk_bytes, sweep_seconds=adjoint.sweep_seconds, forward_seconds=seconds,
                       seconds=seconds + adjoint.sweep_seconds,
                       gradient_dtype=str(gradient_dtype or torch.float64).replace("torch.", ""),
                       maps_of="all examples" if maps is not None and all_maps else f"top ±{k} of each query")
    if ranger:
        summary.update(replay_residual=result.replay_residual, slow_residual_max=float(result.slow_residuals.max()),
                       rectified_steps=int(result.rectified.sum()), lookahead_syncs=int(result.synced.sum()))
    if result.pieces is not None:
        summary.update(pieces_per_step_mean=float(result.pieces.double().mean()), unresolved_pieces=result.unresolved)
    contrib = result.contributions.cpu()
    summary["contribution_correlation"] = torch.corrcoef(contrib).tolist() if len(queries) > 1 else [[1.0]]
    for j, q in enumerate(queries):
        report = _query_report(result, j, q, k)
        report.update(_run_logit(original, q))
        if adjoint is not None:
            report.update(aggregate_forward=float(adjoint.aggregate[j]),
                          adjoint_residual=float(adjoint.adjoint_residual[j]))
            report["quadrature_residual"] = report["residual"] + report["adjoint_residual"] - report["bookkeeping"]
        if result.pieces is not None:
            report["pieces_per_step_mean"] = float(result.pieces[:, j].double().mean())
        if maps is not None:
            _add_maps(report, maps, j, q.pixel, all_maps)
        quad = getattr(result, "quadrature_residuals", None)
        if quad is not None and quad.numel():
            steps_q = quad[:, j].cpu()
            worst = int(steps_q.abs().argmax())
            report["quadrature_steps"] = {"sum": float(steps_q.sum()), "sum_abs": float(steps_q.abs().sum()),
                                          "first_10_steps": float(steps_q[:10].sum()),
                                          "max_abs": float(steps_q[worst].abs()), "max_abs_at_step": worst + 1,
                                          "per_step": [float(v) for v in steps_q.tolist()]}
        summary["queries"].append({key: report[key] for key in (
            "name", "f0", "fT", "run_logit", "run_logit_float64", "sum_a", "a_reg", "a_bn", "residual",
            "relative_residual", "bookkeeping", "n_50", "n_90", *(("adjoint_residual", "quadrature_residual")
                                                                   if adjoint is not None else ()))})
        write_json(out / f"{prefix}{q.name}.json", {**report, "run": str(run_dir), "steps": result.steps,
                                                     "quadrature": quadrature})
        kind = f"{run_dir.name} (real {'Ranger' if ranger else 'Adam'} run, exact path decomposition)"
        plot_adam_explanation(report, q, train_b, train_m, out / f"{prefix}{q.name}.png", title=f"{kind}: {q.source}")
        if maps is not None:
            plot_pixel_maps(report, q.boundary, q.mask, q.pixel, maps, j, out / f"{prefix}{q.name}-maps.png",
                            title=f"{kind}, per-pixel maps of the top training images: {q.source}")
    write_json(out / f"{prefix}summary.json", summary)
    return summary


def _train_shape(config: object) -> tuple[int, int]:
    from jordanlab import data

    size = data.resolve(config.data.preset).size
    return size, size


def _top(a: Tensor, k: int) -> list[int]:
    order = torch.argsort(a.cpu())
    return order[:k].tolist() + order.flip(0)[:k].tolist()


def _add_maps(report: dict, maps: PixelMaps, j: int, pixel: tuple[int, int], all_examples: bool) -> None:
    """The per-pixel split of the query's top ±k examples (and, with every example's maps, of Σ_i a_i)."""
    tops = [item["index"] for item in report["top_positive"] + report["top_negative"]]
    summary = {item["index"]: item for item in map_summary(maps, j, tops, pixel)}
    for item in report["top_positive"] + report["top_negative"]:
        item.update({key: v for key, v in summary[item["index"]].items() if key != "index"})
    if all_examples:
        one = PixelMaps(maps.examples, maps.steps, maps.inputs, maps.targets, maps.maps[j:j + 1])
        report["map_classes"] = dict(zip(CLASSES, split_by_class(one)[0].tolist()))
        report["map_distance"] = dict(zip(distance_labels(), split_by_distance(one)[0].tolist()))
        report["map_offset"] = dict(zip(distance_labels(OFFSET_BINS), split_by_offset(one, pixel)[0].tolist()))
        report["map_sum"] = float(one.maps.sum())  # = Σ_i a_i to rounding


def _query_report(result: AdamPathDecomposition, j: int, q: Query, k: int) -> dict:
    a = result.contributions[j].cpu()
    order = torch.argsort(a)
    f0, ft = float(result.initial[j]), float(result.final[j])
    return {
        "name": q.name, "source": q.source, "pixel": list(q.pixel), "shape": list(q.boundary.shape),
        "label": None if q.mask is None else int(q.mask[q.pixel]),
        "f0": f0, "fT": ft, "change": ft - f0, "sum_a": float(a.sum()), "a_reg": float(result.regulariser[j]),
        "a_bn": float(result.batchnorm[j]) if hasattr(result, "batchnorm") else 0.0,
        "residual": float(result.residual[j]), "relative_residual": float(result.relative_residual[j]),
        "bookkeeping": float(result.bookkeeping[j]),
        "sum_positive": float(a.clamp_min(0).sum()), "sum_negative": float(a.clamp_max(0).sum()),
        "sum_abs": float(a.abs().sum()), "n_positive": int((a > 0).sum()), "n_negative": int((a < 0).sum()),
        **concentration(a),
        "top_positive": [{"index": int(i), "a": float(a[i])} for i in order.flip(0)[:k].tolist()],
        "top_negative": [{"index": int(i), "a": float(a[i])} for i in order[:k].tolist()],
        "contributions": [float(v) for v in a.tolist()],
        "train_indices": list(range(a.numel())),
    }


def _run_logit(model: torch.nn.Module, q: Query) -> dict:
    """The run's own output at the query pixel: its checkpoint in eval mode, as trained (float32) and in float64."""
    import copy

    x = torch.as_tensor(q.boundary, dtype=torch.float32)[None, None]
    r, c = q.pixel
    out = {}
    for key, dt in (("run_logit", torch.float32), ("run_logit_float64", torch.float64)):
        net = copy.deepcopy(model).to(dt).eval()
        with torch.no_grad():
            out[key] = float(net(x.to(dt))[0, 0, r, c])
    return out


def plot_adam_explanation(report: dict, query: Query, train_b: np.ndarray, train_m: np.ndarray,
                          path: str | os.PathLike[str], *, title: str = "") -> None:
    """Query (pixel circled) and its top ±k training images (un-augmented originals, mask shaded), saved atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(report["top_positive"])
    fig, axes = plt.subplots(2, k + 1, figsize=(1.8 * (k + 1), 4.3), squeeze=False)

    def show(ax, b, m):
        img = np.where(b > 0, 0.0, np.where(m > 0, 0.75, 1.0)) if m is not None else 1.0 - b
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")

    r, c = query.pixel
    show(axes[0, 0], query.boundary, query.mask)
    axes[0, 0].plot([c], [r], marker="o", color="red", markersize=7, markerfacecolor="none", markeredgewidth=2)
    axes[0, 0].set_title(f"{query.name} ({r},{c})\nf: {report['f0']:.2f} → {report['fT']:.2f}", fontsize=8)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.0, 0.5,
                    f"Σa_i = {report['sum_a']:+.2f}\na_reg = {report['a_reg']:+.2f}\n"
                    + (f"a_BN = {report['a_bn']:+.2f}\n" if report.get("a_bn") else "") +
                    f"rel. residual {report['relative_residual']:.1e}\n"
                    f"Σ|a_i| = {report['sum_abs']:.1f}\n50% of Σ|a|: {report['n_50']} ex.\n90%: {report['n_90']} ex.\n"
                    f"top row: +, bottom: −", fontsize=7.5, va="center")
    for row, key in ((0, "top_positive"), (1, "top_negative")):
        for col, item in enumerate(report[key]):
            ax = axes[row, col + 1]
            show(ax, train_b[item["index"]], train_m[item["index"]])
            ax.set_title(f"#{item['index']}: {item['a']:+.3f}", fontsize=8, color="darkred" if row == 0 else "navy")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def queries_from_specs(run_dir: str | os.PathLike[str], specs: Sequence[str], pixels: Sequence[tuple[int, int]], *,
                       size: int | None = None, seed: int = 0) -> list[Query]:
    """One :func:`query_from_spec` per ``(spec, pixel)`` pair, for the run ``run_dir``."""
    if len(specs) != len(pixels):
        raise ValueError(f"specs and pixels must come in pairs, got {len(specs)} and {len(pixels)}")
    config = run_config(run_dir)
    return [query_from_spec(s, p, config, size=size, seed=seed) for s, p in zip(specs, pixels)]
