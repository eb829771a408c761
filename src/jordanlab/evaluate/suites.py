"""Evaluate a run on the preset's test split and every out-of-distribution suite: ``RUN/eval.json``.

``eval.json`` is ``{"checkpoint": str, "checkpoint_sha256": str, "epoch": int, "epochs_planned": int,
"finished": bool, "config_identity": str, "settings": {...}, "suites": {NAME: {"n", "mean_iou",
"pixel_accuracy", "perfect_rate", "canvas", "source", "seconds", ...}}}``; recurrent models add
``iters_mean``, ``iters_max`` and ``halted_rate`` (share of images that converged before the iteration
budget). Each entry's ``source`` says what it scored: a suite (name, seed, canvas) or a dataset directory
(its path and the SHA-256 of its manifest).

An evaluation recomputes what is stale and nothing else: an entry is reused only when the checkpoint
(by SHA-256), the settings (``n``, ``seed``, ``max_iters``, ``patience``) and its source are unchanged.
Entries of another checkpoint or other settings are dropped, so one ``eval.json`` never mixes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jordanlab.train.checkpoint import load_checkpoint
from jordanlab.train.distributed import resolve_device
from jordanlab.train.run import Run

from .model_eval import score_images
from .predict import model_certificate, predict_masks

__all__ = ["TEST_SUITE", "default_suites", "run_canvas", "evaluate_run", "stale_suites", "format_table"]

#: Name under which the run's own preset's test split is reported.
TEST_SUITE = "test"


def default_suites() -> list[str]:
    """``["test"]`` followed by every OOD suite of ``jordanlab.data.SUITES``."""
    from jordanlab.data import SUITES

    return [TEST_SUITE, *SUITES]


def run_canvas(run: Any) -> int:
    """The training canvas side of a run, or of a run's config (see :attr:`jordanlab.train.run.Run.canvas`)."""
    if not isinstance(run, (Run, str, os.PathLike)):  # a Config, or anything with its [data] table
        return Run(Path(), run, readonly=True).canvas
    return (run if isinstance(run, Run) else Run.open(run)).canvas


def _suite_arrays(name: str, *, run: Run, n: int | None, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    from jordanlab.data import SUITES, make

    config = run.config
    if name == TEST_SUITE:
        if config.data.dir is not None:
            from jordanlab.data import load_dataset

            b, m = load_dataset(run.data_dir(), "test")[:2]
            return (b[:n], m[:n]) if n is not None else (b, m)
        return make(config.data.preset, "test", n=n, seed=config.data.seed)
    if name in SUITES:
        return make(name, "test", n=n, seed=seed, size=size)
    raise ValueError(f"suites: unknown suite {name!r}; valid: {', '.join(default_suites())}")


def _score_suite(model: Any, boundaries: np.ndarray, masks: np.ndarray, *, batch_size: int, device: Any,
                 max_iters: int | None, patience: int) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    entry, per, preds, _ = score_images(model, boundaries, masks, batch_size=batch_size, device=device,
                                        max_iters=max_iters, patience=patience)
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

    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    result, stale = _plan(run, suites=suites, data_dirs=data_dirs, n=n, seed=seed, max_iters=max_iters,
                          patience=patience)
    if not stale:
        return result
    model = run.load_model(run.path / result["checkpoint"])
    dev = resolve_device(device)
    size = run.canvas
    certificate = model_certificate(model, size=size)  # crossing-depth: on which canvases it is provably exact
    if certificate is not None:
        result["certificate"] = certificate

    from tqdm.auto import tqdm

    with run.lock() if not run.readonly else _no_lock():
        for name, source, path in tqdm(stale, desc="eval", unit="suite", disable=not progress):
            if path is None:
                b, m = _suite_arrays(name, run=run, n=n, seed=seed, size=size)
            else:
                counts = data.read_manifest(path).get("counts", {})
                b, m = data.load_dataset(path, "test" if counts.get("test", 0) > 0 else "train")[:2]
                if n is not None:
                    b, m = b[:n], m[:n]
            entry, per, preds = _score_suite(model, b, m, batch_size=batch_size, device=dev,
                                             max_iters=max_iters, patience=patience)
            entry["source"] = source
            result["suites"][name] = entry
            if figures and not run.readonly:
                from .figures import suite_figure

                suite_figure(b, m, preds, per, run.figures_dir / f"suite-{name}.png",
                             title=f"{name} (epoch {result['epoch']})")
        if not run.readonly:
            run.write_eval(result)
            if figures and stale and run.metrics_path.is_file():
                from .figures import training_curves

                training_curves(run.path)
    return result


def stale_suites(run_dir: str | os.PathLike[str] | Run, *, suites: Sequence[str] | None = None,
                 data_dirs: Sequence[str | os.PathLike[str]] = (), n: int | None = None, seed: int = 0,
                 max_iters: int | None = None, patience: int = 10) -> list[str]:
    """The names :func:`evaluate_run` with these arguments would (re)compute; ``[]`` when eval.json is fresh."""
    run = run_dir if isinstance(run_dir, Run) else Run.open(run_dir)
    return [name for name, _, _ in _plan(run, suites=suites, data_dirs=data_dirs, n=n, seed=seed,
                                          max_iters=max_iters, patience=patience)[1]]


def _plan(run: Run, *, suites: Sequence[str] | None, data_dirs: Sequence[str | os.PathLike[str]], n: int | None,
          seed: int, max_iters: int | None, patience: int) -> tuple[dict[str, Any], list[tuple[str, dict, Path | None]]]:
    """The result so far (fresh entries of eval.json kept) and the ``(name, source, dir)`` jobs still stale."""
    from jordanlab import data

    ckpt_path = run.require_checkpoint()
    epoch = int(load_checkpoint(ckpt_path)["epoch"])
    names = default_suites() if suites is None else list(suites)
    for name in names:
        if name != TEST_SUITE and name not in data.SUITES:
            raise ValueError(f"suites: unknown suite {name!r}; valid: {', '.join(default_suites())}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected an integer >= 1 images per suite, got {n!r}")
    size = run.canvas
    jobs = [(name, _suite_source(name, run, seed, size), None) for name in names]
    jobs += _dir_jobs(data_dirs, taken=set(names))

    planned = run.config.train.epochs
    settings = {"n": n, "seed": seed, "max_iters": max_iters, "patience": patience}
    result: dict[str, Any] = {
        "checkpoint": ckpt_path.name, "checkpoint_sha256": _checkpoint_sha256(ckpt_path),
        "epoch": epoch, "epochs_planned": planned, "finished": epoch >= planned,
        "config_identity": run.identity, "settings": settings, "suites": {},
    }
    old = run.read_eval() or {}
    fresh = old.get("checkpoint_sha256") == result["checkpoint_sha256"] and old.get("settings") == settings
    old_suites = old.get("suites") if fresh and isinstance(old.get("suites"), dict) else {}
    result["suites"].update(old_suites)  # same checkpoint and settings: earlier entries stay valid
    if fresh and "certificate" in old:  # a property of the checkpoint's weights
        result["certificate"] = old["certificate"]
    stale = [job for job in jobs if not (job[0] in old_suites and old_suites[job[0]].get("source") == job[1])]
    return result, stale


@contextlib.contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _checkpoint_sha256(path: Path) -> str:
    """The SHA-256 a checkpoint's ``.sha256`` file records (verified when the checkpoint was loaded)."""
    return path.with_name(path.name + ".sha256").read_text(encoding="utf-8").split()[0]


def _suite_source(name: str, run: Run, seed: int, size: int) -> dict[str, Any]:
    if name == TEST_SUITE:
        dc = run.config.data
        if dc.dir is not None:
            return {"test_split_of": str(run.data_dir().resolve()), "manifest_sha256": _manifest_sha256(run.data_dir())}
        return {"test_split_of": dc.preset, "seed": dc.seed}
    return {"suite": name, "seed": seed, "canvas": size}


def _manifest_sha256(d: Path) -> str:
    return hashlib.sha256((Path(d) / "manifest.json").read_bytes()).hexdigest()


def _dir_jobs(data_dirs: Sequence[str | os.PathLike[str]], *, taken: set[str]) -> list[tuple[str, dict, Path]]:
    """``(name, source, path)`` of each dataset directory: its name, or its path where the name is taken."""
    from jordanlab import data

    jobs = []
    for d in data_dirs:
        p = Path(d)
        if not (p / "manifest.json").is_file():
            raise ValueError(f"--data: {str(p)!r} is not a dataset directory (no manifest.json)")
        data.read_manifest(p)
        name = p.resolve().name
        if name in taken or name in data.SUITES or name == TEST_SUITE:
            name = str(p.resolve())  # never overwrite a suite's (or another directory's) entry
        taken.add(name)
        jobs.append((name, {"data_dir": str(p.resolve()), "manifest_sha256": _manifest_sha256(p)}, p))
    return jobs


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
