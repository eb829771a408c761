"""Every read of a ``jordanlab train`` run directory that the experiments make, in one place.

The run directory's layout belongs to the training layer; the experiments only ask it for the
saved config, the initial weights w₀, the trained model and the run's data splits. Keeping those
reads here (and nowhere else in ``experiments/``) leaves one module to switch when the run
directory gets a single owner.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["initial_model", "run_config", "run_images", "trained_model"]


def run_config(run_dir: str | os.PathLike[str]) -> Any:
    """The run's resolved config, read from ``RUN/config.toml``."""
    from jordanlab.train import load_config

    return load_config(Path(run_dir) / "config.toml")


def trained_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
    """``(model, config)`` of the run's newest good checkpoint (:func:`jordanlab.train.load_model`)."""
    from jordanlab.train import load_model

    return load_model(run_dir)


def initial_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, Any]:
    """Rebuild w₀ of a ``jordanlab train`` run from the config of its newest good checkpoint.

    The model is built after seeding Python, NumPy and torch with ``config.train.seed``, as the
    training loop does; the global RNG states are saved and restored around the rebuild.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` holds no checkpoint whose hash verifies.
    """
    from jordanlab.train import build_model, latest_good_checkpoint, load_checkpoint
    from jordanlab.train.config import config_from_dict

    path = latest_good_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"run_dir {str(run_dir)!r} holds no good checkpoint (ckpt-*.pt with a valid .sha256)")
    config = config_from_dict(load_checkpoint(path)["config"], source=str(path))
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            seed = config.train.seed
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            model = build_model(config.model)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return model, config


def run_images(config: Any, split: str, n: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(boundaries, masks, where)``: the first ``n`` images of the run's ``split`` ("train" or "test").

    From the run's dataset directory ``config.data.dir`` when it has one, else regenerated from the
    preset with ``config.data.seed`` (image ``i`` depends on ``(seed, split, i)`` only, so these are
    the images ``RUN/data/`` holds). ``where`` names the source, e.g. ``"shapes-32"``.
    """
    from jordanlab import data

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if config.data.dir is not None and (Path(config.data.dir) / "manifest.json").is_file():
        b, m = data.load_dataset(config.data.dir, split)[:2]
        return (b, m, str(config.data.dir)) if n is None else (b[:n], m[:n], str(config.data.dir))
    b, m = data.make(config.data.preset, split, n=n, seed=config.data.seed)
    return b, m, config.data.preset
