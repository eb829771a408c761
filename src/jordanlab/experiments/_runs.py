"""Every read of a ``jordanlab train`` run directory that the experiments make, in one place.

The run directory's layout belongs to :class:`jordanlab.train.run.Run`; the experiments only ask it for
the saved config, the initial weights w₀, the trained model and the run's data splits, through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

__all__ = ["initial_model", "run_config", "run_images", "trained_model"]


def run_config(run_dir: str | os.PathLike[str]) -> Any:
    """The run's resolved config (:attr:`jordanlab.train.run.Run.config`)."""
    from jordanlab.train.run import Run

    return Run.open(run_dir).config


def trained_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
    """``(model, config)`` of the run's newest good checkpoint."""
    from jordanlab.train.run import Run

    run = Run.open(run_dir)
    return run.load_model(), run.config


def initial_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
    """``(w₀ model, config)``: the run's initial model, rebuilt from config and seed as the loop built it."""
    from jordanlab.train.run import Run

    run = Run.open(run_dir)
    return run.initial_model(), run.config


def run_images(config: Any, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(boundaries, masks, where)``: the first ``n`` images of the run's ``split`` ("train" or "test").

    From the run's dataset directory ``config.data.dir`` when it has one, else regenerated from the
    preset with ``config.data.seed`` (image ``i`` depends on ``(seed, split, i)`` only, so these are
    the images ``RUN/data/`` holds). ``where`` names the source, e.g. ``"shapes-32"``.
    """
    from jordanlab import data

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if config.data.dir is not None:
        if not (Path(config.data.dir) / "manifest.json").is_file():
            raise ValueError(f"config key 'data.dir': {config.data.dir} is not a dataset directory (moved or deleted?)")
        b, m = data.load_dataset(config.data.dir, split)[:2]
        return (b, m, str(config.data.dir)) if n is None else (b[:n], m[:n], str(config.data.dir))
    b, m = data.make(config.data.preset, split, n=n, seed=config.data.seed)
    return b, m, config.data.preset
