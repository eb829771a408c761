"""Self-describing, hash-checked checkpoints.

A checkpoint is one dict::

    {format_version, config, model, optimizer, epoch, step, rng, metrics}

``model`` is the ``state_dict`` of the unwrapped module (no ``module.``/``_orig_mod.`` prefix),
``config`` the fully resolved :class:`~jordanlab.train.config.Config` as plain dicts, ``rng``
the Python, NumPy, torch and CUDA generator states. ``RUN/ckpt-000012.pt`` is written atomically
(temporary file + ``os.replace``) and ``RUN/ckpt-000012.pt.sha256`` holds its SHA-256; a file
whose hash is missing or differs is never unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import warnings
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Config, ModelConfig, config_from_dict, config_to_dict

__all__ = [
    "FORMAT_VERSION",
    "CheckpointWarning",
    "CorruptCheckpointError",
    "checkpoint_path",
    "list_checkpoints",
    "save_checkpoint",
    "load_checkpoint",
    "latest_good_checkpoint",
    "build_model",
    "unwrap_model",
    "load_model",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d{6,})\.pt$")


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (corrupted or unverifiable) while looking for the latest good one."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file does not match its stored SHA-256 (or has none); it was not loaded."""


def checkpoint_path(run_dir: str | os.PathLike[str], epoch: int) -> Path:
    """``RUN/ckpt-{epoch:06d}.pt``."""
    if epoch < 0:
        raise ValueError(f"epoch: expected >= 0, got {epoch}")
    return Path(run_dir) / f"ckpt-{epoch:06d}.pt"


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every ``ckpt-*.pt`` in ``run_dir``, oldest first (not verified)."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU) and CUDA generator states, as tensors and plain values.

    Stored without NumPy objects so that :func:`load_checkpoint` can use
    ``torch.load(weights_only=True)``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored when CUDA is available).

    The state's tensors may sit on any device: ``load_checkpoint(..., map_location="cuda")`` (the
    loop resumes so on CUDA) moves them there, but NumPy and both torch generators read CPU bytes.
    A checkpoint from a machine with more GPUs restores the first ``torch.cuda.device_count()`` states.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under ``DistributedDataParallel``/``DataParallel``/``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    *,
    config: Config,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    step: int,
    metrics: dict[str, Any] | None = None,
    rng: dict[str, Any] | None = None,
) -> Path:
    """Write ``RUN/ckpt-{epoch:06d}.pt`` and its ``.sha256`` atomically; return the ``.pt`` path.

    The ``.pt`` is replaced first and the hash second: a crash in between leaves a checkpoint
    without a valid hash, which :func:`latest_good_checkpoint` skips.
    """
    path = checkpoint_path(run_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "config": config_to_dict(config),
        "model": {k: v.detach().cpu() for k, v in unwrap_model(model).state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "rng": rng if rng is not None else capture_rng_state(),
        "metrics": dict(metrics or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    _atomic_write_bytes(path, data)
    _atomic_write_bytes(path.with_name(path.name + ".sha256"), f"{_sha256(data)}  {path.name}\n".encode())
    return path


def _verified_bytes(p: Path) -> bytes:
    """The bytes of checkpoint ``p`` after checking them against ``p.sha256``."""
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist")
    hash_file = p.with_name(p.name + ".sha256")
    if not hash_file.is_file():
        raise CorruptCheckpointError(
            f"checkpoint {str(p)!r} has no hash file {hash_file.name!r} (interrupted write?); refusing to load it"
        )
    parts = hash_file.read_text(encoding="utf-8", errors="replace").split()
    expected = parts[0] if parts else ""
    data = p.read_bytes()
    actual = _sha256(data)
    if actual != expected:
        raise CorruptCheckpointError(
            f"checkpoint {str(p)!r} is corrupted: its SHA-256 is {actual[:16]}... but "
            f"{hash_file.name} records {expected[:16] or '(nothing)'}...; refusing to load it"
        )
    return data


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify ``path`` against ``path.sha256`` and load it (``torch.load(weights_only=True)``).

    Raises
    ------
    FileNotFoundError
        No such checkpoint.
    CorruptCheckpointError
        The hash file is missing or unreadable, or the SHA-256 of the bytes differs; the file is
        not unpickled.
    ValueError
        The ``format_version`` is not one this code reads.
    """
    p = Path(path)
    data = _verified_bytes(p)
    ckpt = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {str(p)!r}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    return ckpt


def latest_good_checkpoint(run_dir: str | os.PathLike[str], *, warn: bool = True) -> Path | None:
    """The newest checkpoint in ``run_dir`` whose hash verifies, or ``None``.

    Corrupted ones (hash missing or wrong) are skipped and, with ``warn``, named in a
    :class:`CheckpointWarning`.
    """
    for epoch, path in reversed(list_checkpoints(run_dir)):
        try:
            _verified_bytes(path)
        except (CorruptCheckpointError, OSError) as exc:
            if warn:
                warnings.warn(f"skipping checkpoint of epoch {epoch}: {exc}", CheckpointWarning, stacklevel=2)
            continue
        return path
    return None


def build_model(config: ModelConfig) -> torch.nn.Module:
    """``jordanlab.models.build(config.name, **config.kwargs)``; a bad name or keyword names the config key."""
    from jordanlab import models

    from .config import ConfigError, ConfigTypeError

    try:
        return models.build(config.name, **dict(config.kwargs))
    except TypeError as exc:  # an unknown or ill-typed keyword
        raise ConfigTypeError(f"config key 'model.kwargs': {exc}") from None
    except ValueError as exc:
        key = "model.name" if config.name not in models.MODELS else "model.kwargs"
        raise ConfigError(f"config key {key!r}: {exc}") from None


def load_model(
    run_dir: str | os.PathLike[str], *, checkpoint: str | os.PathLike[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, Config]:
    """The model of a run (or shipped model name) at ``checkpoint`` (default: newest good), and its config.

    Rebuilt from the checkpoint's own config alone; returned in ``eval()`` mode. A shorthand for
    ``Run.open(run_dir).load_model(checkpoint)`` (see :class:`jordanlab.train.run.Run`).
    """
    from .run import Run

    run = Run.open(run_dir)
    return run.load_model(checkpoint, map_location=map_location), run.config
