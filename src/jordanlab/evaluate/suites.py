"""Evaluate a run on the preset's test split and every out-of-distribution suite: ``RUN/eval.json``.

``eval.json`` is ``{"checkpoint": str, "epoch": int, "suites": {NAME: {"n", "mean_iou",
"pixel_accuracy", "perfect_rate", "seconds", ...}}}``; recurrent models add ``iters_mean``,
``iters_max`` and ``halted_rate`` (share of images that converged before the iteration budget).
A later evaluation of the same checkpoint adds or replaces suites; a new checkpoint starts afresh.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jordanlab.train.checkpoint import latest_good_checkpoint, load_checkpoint, load_model
from jordanlab._atomic import write_json
from jordanlab.train.distributed import resolve_device

from .metrics import aggregate_scores, per_image_scores
from .predict import model_certificate, predict_masks

__all__ = ["TEST_SUITE", "default_suites", "run_canvas", "evaluate_run", "format_table"]

#: Name under which the run's own preset's test split is reported.
TEST_SUITE = "test"


def default_suites() -> list[str]:
    """``["test"]`` followed by every OOD suite of ``jordanlab.data.SUITES``."""
    from jordanlab.data import SUITES

    return [TEST_SUITE, *SUITES]


def run_canvas(config: Any) -> int:
    """The training canvas side of a run: its preset's size, or its dataset directory's image width."""
    from jordanlab.data import PRESETS, read_manifest

    if config.data.dir is not None and (Path(config.data.dir) / "manifest.json").is_file():
        return int(read_manifest(config.data.dir)["image_shape"][1])
    if config.data.preset not in PRESETS:
        raise ValueError(f"config key 'data.preset': unknown preset {config.data.preset!r}")
    return int(PRESETS[config.data.preset].size)


def _suite_arrays(name: str, *, config: Any, n: int | None, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from jordanlab.data import SUITES, make

    if name == TEST_SUITE:
        if config.data.dir is not None and (Path(config.data.dir) / "manifest.json").is_file():
            from jordanlab.data import load_dataset

            b, m = load_dataset(config.data.dir, "test")[:2]
            return (b[:n], m[:n]) if n is not None else (b, m)
        return make(config.data.preset, "test", n=n, seed=config.data.seed)
    if name in SUITES:
        return make(name, "test", n=n, seed=seed, size=size)
    raise ValueError(f"suites: unknown suite {name!r}; valid: {', '.join(default_suites())}")


def _score_suite(model: Any, boundaries: np.ndarray, masks: np.ndarray, *, batch_size: int, device: Any,
                 max_iters: int | None, patience: int) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    t0 = time.perf_counter()
    preds, iters = predict_masks(model, boundaries, batch_size=batch_size, device=device,
                                 max_iters=max_iters, patience=patience)
    per = per_image_scores(preds, masks)
    entry: dict[str, Any] = dict(aggregate_scores(per))
    if iters is not None:
        from .predict import default_max_iters

        budget = default_max_iters(*boundaries.shape[1:]) if max_iters is None else int(max_iters)
        entry.update(iters_mean=float(iters.mean()), iters_max=int(iters.max()), iters_budget=budget,
                     halted_rate=float((iters < budget).mean()))
    entry["canvas"] = int(boundaries.shape[-1])
    entry["seconds"] = time.perf_counter() - t0
    return entry, per, preds


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    suites: Sequence[str] | None = None,
    data_dirs: Sequence[str | os.PathLike[str]] = (),
    n: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    max_iters: int | None = None,
    patience: int = 10,
    figures: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Score the run's newest good checkpoint per suite and write ``RUN/eval.json`` atomically.

    Parameters
    ----------
    run_dir : path-like
        A run written by :func:`jordanlab.train.train`.
    suites : sequence of str, optional
        ``"test"`` (the preset's test split, same seed as training) and OOD suite names
        (``multi-2`` ... ``large-4x``), generated at the run's canvas size by
        ``jordanlab.data.make``. Default: all of them (:func:`default_suites`). Pass ``()`` to
        evaluate only ``data_dirs``.
    data_dirs : sequence of path-like
        Dataset directories (foundation format); each is scored on its ``test`` split (its
        ``train`` split if it has no test split) and reported under the directory's name.
    n : int, optional
        Images per suite (default: the suite's own count, 200 for OOD suites).
    seed : int
        Seed of the OOD suites.
    batch_size, device
        Inference batch and device (``cpu``, ``cuda``, ``auto``).
    max_iters, patience
        Halting rule of recurrent models (see :func:`predict_masks`).
    figures : bool
        Also write best/worst panels per suite and the training curves to ``RUN/figures/``.
    progress : bool
        Show a progress bar over suites.

    Returns
    -------
    dict
        The content of ``eval.json``.
    """
    from jordanlab import data

    run = Path(run_dir)
    ckpt_path = latest_good_checkpoint(run)
    if ckpt_path is None:
        raise FileNotFoundError(f"run_dir {str(run)!r} holds no good checkpoint to evaluate")
    model, config = load_model(run, checkpoint=ckpt_path)
    epoch = int(load_checkpoint(ckpt_path)["epoch"])
    dev = resolve_device(device)
    size = run_canvas(config)
    names = default_suites() if suites is None else list(suites)
    for name in names:
        if name != TEST_SUITE and name not in data.SUITES:
            raise ValueError(f"suites: unknown suite {name!r}; valid: {', '.join(default_suites())}")
    if n is not None and n < 1:
        raise ValueError(f"n: expected >= 1 images per suite, got {n}")
    jobs: list[tuple[str, Any]] = [(name, None) for name in names]
    for d in data_dirs:
        p = Path(d)
        if not (p / "manifest.json").is_file():
            raise ValueError(f"data_dirs: {str(p)!r} is not a dataset directory (no manifest.json)")
        jobs.append((p.resolve().name, p))

    out_path = run / "eval.json"
    result: dict[str, Any] = {"checkpoint": ckpt_path.name, "epoch": epoch, "suites": {}}
    certificate = model_certificate(model, size=size)  # crossing-depth: on which canvases it is provably exact
    if certificate is not None:
        result["certificate"] = certificate
    if out_path.is_file():
        try:
            old = json.loads(out_path.read_text(encoding="utf-8"))
            if old.get("checkpoint") == ckpt_path.name:
                result["suites"].update(old.get("suites", {}))
        except json.JSONDecodeError:
            pass

    from tqdm.auto import tqdm

    for name, path in tqdm(jobs, desc="eval", unit="suite", disable=not progress):
        if path is None:
            b, m = _suite_arrays(name, config=config, n=n, seed=seed, size=size)
        else:
            counts = data.read_manifest(path).get("counts", {})
            b, m = data.load_dataset(path, "test" if counts.get("test", 0) > 0 else "train")[:2]
            if n is not None:
                b, m = b[:n], m[:n]
        entry, per, preds = _score_suite(model, b, m, batch_size=batch_size, device=dev,
                                         max_iters=max_iters, patience=patience)
        result["suites"][name] = entry
        if figures:
            from .figures import suite_figure

            suite_figure(b, m, preds, per, run / "figures" / f"suite-{name}.png", title=f"{name} (epoch {epoch})")
    write_json(out_path, result)
    if figures and (run / "metrics.jsonl").is_file():
        from .figures import training_curves

        training_curves(run)
    return result


def format_table(eval_dict: dict[str, Any]) -> str:
    """A markdown table of ``eval_dict["suites"]``: suite, n, mean IoU, pixel accuracy, perfect rate (and iterations)."""
    if not isinstance(eval_dict, dict) or not isinstance(eval_dict.get("suites"), dict):
        raise ValueError("eval_dict: expected {'suites': {NAME: {...}}} as written to eval.json")
    rows = eval_dict["suites"]
    with_iters = any("iters_mean" in e for e in rows.values())
    head = ["suite", "n", "mean IoU", "pixel acc.", "perfect"] + (["iters mean/max", "halted"] if with_iters else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, e in rows.items():
        cells = [name, str(e["n"]), f"{e['mean_iou']:.4f}", f"{e['pixel_accuracy']:.4f}", f"{100 * e['perfect_rate']:.1f} %"]
        if with_iters:
            if "iters_mean" in e:
                cells += [f"{e['iters_mean']:.1f}/{e['iters_max']}", f"{100 * e['halted_rate']:.0f} %"]
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
