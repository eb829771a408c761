"""Trained models shipped inside the package: ``names()``, ``path(name)``, ``info(name)``, ``verify(name)``.

Each shipped model is a read-only run directory ``jordanlab/models/pretrained/NAME/`` holding what
``jordanlab train`` wrote for ``configs/quick-NAME.toml`` and ``jordanlab eval RUN --n 20`` scored:

- ``config.toml``, ``metrics.jsonl``, ``run.json``: the run's config, per-epoch metrics, platform;
- ``ckpt-EPOCH.pt`` and ``ckpt-EPOCH.pt.sha256``: the final checkpoint, written by
  ``jordanlab.train.save_checkpoint`` with the model weights, config, epoch, step, RNG state and
  metrics of the run, without the optimizer state (which only resuming needs; it would triple the
  U-Net's file);
- ``eval.json``: the scores on 20 images of the test split and of every suite (seed 0);
- ``check.json``: what the tests recompute: per-image IoU and the SHA-256 of the predicted masks of
  the first images of every suite, and the SHA-256 of the weights after the first epoch of training.

``MANIFEST.json`` beside this file records the SHA-256 and size of every shipped file, the parameter
count and the source config of each model; :func:`verify` checks a model's files against it.
``tools/pack_pretrained.py`` (in the repository) writes all of this from finished runs.

This module only finds files; loading is ``jordanlab.train.load_model(path(name))``.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "names", "path", "resolve", "info", "verify", "is_shipped", "weights_sha256", "platform"]

_HERE = Path(__file__).resolve().parent
#: The checksum manifest's file name (beside this module).
MANIFEST = "MANIFEST.json"


@lru_cache(maxsize=1)
def _manifest() -> dict[str, Any]:
    p = _HERE / MANIFEST
    if not p.is_file():
        return {"models": {}}
    return json.loads(p.read_text(encoding="utf-8"))


def names() -> list[str]:
    """Names of the shipped models, sorted (e.g. ``['crossing-depth', 'local-cnn', ...]``).

    Examples
    --------
    >>> 'crossing-depth' in names()
    True
    """
    return sorted(_manifest()["models"])


def is_shipped(name: object) -> bool:
    """``True`` when ``name`` is the name of a shipped model."""
    return isinstance(name, str) and name in _manifest()["models"]


def path(name: str) -> Path:
    """The shipped run directory of model ``name`` (read-only: do not write into it).

    Raises
    ------
    ValueError
        ``name`` is not a shipped model; the message lists the valid names.

    Examples
    --------
    >>> (path('crossing-depth') / 'config.toml').is_file()
    True
    """
    if not is_shipped(name):
        raise ValueError(f"unknown pretrained model {name!r}; valid names: {', '.join(names())}")
    return _HERE / name


def resolve(run: str | os.PathLike[str]) -> Path:
    """A command's ``RUN``: an existing path as given, else the directory of the shipped model of that name.

    A name that is neither comes back as a path, for the caller to report as missing. The one resolver:
    :meth:`jordanlab.train.run.Run.open` (and through it every command taking ``RUN``) calls it.
    """
    p = Path(run)
    if p.exists() or not is_shipped(str(run)):
        return p
    return path(str(run))


def info(name: str) -> dict[str, Any]:
    """What the manifest records of ``name``: ``parameters``, ``bytes`` (all files), ``config`` (the source
    config), ``checkpoint``, ``files`` ({file: {sha256, bytes}}), plus ``perfect`` ({suite: perfect rate})
    and ``n`` (images per suite) from its ``eval.json``."""
    entry = dict(_manifest()["models"][path(name).name])
    ev = json.loads((path(name) / "eval.json").read_text(encoding="utf-8"))
    entry["perfect"] = {s: e["perfect_rate"] for s, e in ev["suites"].items()}
    entry["n"] = {s: e["n"] for s, e in ev["suites"].items()}
    return entry


def verify(name: str) -> None:
    """Check every file of ``name`` against the manifest's SHA-256 and size.

    Raises
    ------
    ValueError
        A file is missing, has another size or another hash, or the directory holds a file the
        manifest does not list; the message names the file.
    """
    d = path(name)
    files = _manifest()["models"][name]["files"]
    present = {p.name for p in d.iterdir() if p.is_file() and not p.name.startswith(".")}
    extra = sorted(present - set(files))
    if extra:
        raise ValueError(f"pretrained model {name!r}: unlisted file(s) {', '.join(extra)} in {d}")
    for fname, meta in files.items():
        p = d / fname
        if not p.is_file():
            raise ValueError(f"pretrained model {name!r}: file {fname!r} is missing from {d}")
        data = p.read_bytes()
        if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise ValueError(f"pretrained model {name!r}: file {fname!r} does not match {MANIFEST} (corrupted?)")


def weights_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of a ``state_dict``: for each key in sorted order, the key, dtype, shape and C-ordered bytes.

    Two state dicts have the same hash iff (up to SHA-256 collisions) they hold the same tensors bit for bit.
    """
    import numpy as np
    import torch

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key]
        t = t.detach().cpu().contiguous() if isinstance(t, torch.Tensor) else torch.as_tensor(t)
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(np.ascontiguousarray(t.reshape(-1).view(torch.uint8).numpy()).tobytes())
    return h.hexdigest()


def platform() -> dict[str, Any]:
    """What decides whether float32 training repeats bit for bit: torch, its CPU kernels and the CPU itself.

    Two machines with the same torch and ``cpu_capability`` (e.g. AVX512) can still run other MKL /
    oneDNN code paths (chosen by CPU model, cache and instruction set extensions such as AMX), and one
    epoch of training then differs in the last bits. So the CPU's vendor, family, model and a digest of
    its feature flags (from ``/proc/cpuinfo`` where there is one) are part of the platform. A shipped
    model's ``check.json`` records the platform it was trained on; the tests check bitwise reproduction
    there and agreement to rounding elsewhere.
    """
    import platform as _platform

    import torch

    cpu: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "model name", "flags") and key not in cpu:
                cpu[key] = value.strip()
            if not line.strip() and cpu:
                break  # the first processor is enough
    except OSError:
        pass
    flags = hashlib.sha256(" ".join(sorted(cpu.pop("flags", "").split())).encode()).hexdigest()[:16]
    name = cpu.get("model name", _platform.processor())
    model = " ".join(cpu.get(k, "?") for k in ("vendor_id", "cpu family", "model")) + f" ({name})"
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": _platform.machine(), "cpu": model, "cpu_flags": flags}
