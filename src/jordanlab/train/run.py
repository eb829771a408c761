"""The run directory, and the one module that knows its layout.

``train``, ``eval``, ``predict``, the kernel lens and ``reproduce`` all read and write runs through
:class:`Run`. A run directory holds::

    .jordanlab               marker: jordanlab wrote this directory (nothing else is ever deleted)
    .lock                    held (flock) by the one process writing the run; holds its pid
    config.toml              the resolved config
    run.json                 identity, versions, device and determinism flags
    ckpt-000001.pt(.sha256)  checkpoints (see :mod:`jordanlab.train.checkpoint`)
    metrics.jsonl            one JSON line per epoch
    data/train, data/test    the generated dataset, unless ``[data] dir`` names one
    eval.json                the last evaluation, with what it scored (see :mod:`jordanlab.evaluate`)
    figures/, tb/            figures; TensorBoard events when asked

A run is determined by its config's **identity**: the SHA-256 of every key that changes the
weights, i.e. all keys but :data:`SAFE_TO_CHANGE` (``train.epochs`` too when the learning-rate
schedule does not depend on the total number of steps). It is stored in ``run.json`` and, through
the config, in every checkpoint, and compared on every resume, before the first checkpoint too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jordanlab._atomic import write_json, write_text
from jordanlab._owned import MARKER, check_replaceable, mark, marked_kind

from .checkpoint import (
    build_model,
    capture_rng_state,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
)
from .config import Config, config_from_dict, config_to_dict, config_to_toml, load_config

__all__ = ["Run", "RunError", "RunLockedError", "SAFE_TO_CHANGE", "config_identity", "config_diff",
           "initial_model", "resolve_run"]

CONFIG = "config.toml"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
EVAL = "eval.json"
LOCK = ".lock"
#: The temporary files of jordanlab's atomic writers (``mkstemp(prefix=".NAME.", suffix=".tmp[.EXT]")``).
_ATOMIC_TMP = re.compile(r"^\.[^/]+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")

#: Keys that may change between a run and its resumption: they do not change the weights.
#: ``train.epochs`` joins them when ``optim.schedule`` is ``constant`` (the rate then does not depend
#: on the total number of steps, so more epochs continue the same run).
SAFE_TO_CHANGE = frozenset({"description", "train.device", "train.num_workers", "train.keep_checkpoints",
                            "train.checkpoint_every", "train.tensorboard"})


class RunError(ValueError):
    """A run directory is missing, not a run, or refuses this use (another config, a moved dataset)."""


class RunLockedError(RunError):
    """Another process is writing the run directory."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not (prefix == "model." and k == "kwargs"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _safe_keys(config: Config) -> frozenset[str]:
    return SAFE_TO_CHANGE | ({"train.epochs"} if config.optim.schedule == "constant" else frozenset())


def config_identity(config: Config) -> str:
    """SHA-256 (hex) of the config's keys that change the weights (all but :data:`SAFE_TO_CHANGE`)."""
    safe = _safe_keys(config)
    flat = {k: v for k, v in _flatten(config_to_dict(config)).items() if k not in safe}
    return hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()


def config_diff(old: Config, new: Config) -> list[str]:
    """``"key: old -> new"`` for every key that changes the weights and differs."""
    a, b = _flatten(config_to_dict(old)), _flatten(config_to_dict(new))
    safe = _safe_keys(old) & _safe_keys(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in safe and a.get(k) != b.get(k)]


def initial_model(config: Config) -> torch.nn.Module:
    """The model at w₀, exactly as the training loop initialises it (global seeds from ``train.seed``).

    The caller's global RNG states are restored afterwards.
    """
    saved = capture_rng_state()
    try:
        seed_globals(config.train.seed)
        return build_model(config.model)
    finally:
        restore_rng_state(saved)


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (the loop's initialisation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_run(name_or_path: str | os.PathLike[str]) -> Path:
    """A run directory: the path itself, or the shipped pretrained model of that name.

    A path that exists wins over a pretrained name, so a user's ``./unet`` is never shadowed.
    """
    from jordanlab.models import pretrained

    return pretrained.resolve(name_or_path)


@dataclass
class Run:
    """An existing or new run directory; see the module docstring for its layout.

    Use :meth:`open` for a run to read (eval, predict, explain) and :meth:`for_training` to create or
    resume one. ``config`` is read once.
    """

    path: Path
    config: Config
    readonly: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """Open an existing run (or a shipped pretrained model by name) to read.

        Raises
        ------
        RunError
            ``path`` is not a run directory (no config.toml and no checkpoint).
        """
        p = resolve_run(path)
        if not p.is_dir():
            raise RunError(f"{p} is not a run directory (it does not exist); train one with "
                           "'jordanlab train CONFIG --out DIR' or name a shipped model (jordanlab models --pretrained)")
        config = _saved_config(p)
        if config is None:
            raise RunError(f"{p} is not a run directory: it has no {CONFIG} and no checkpoint")
        return cls(p, config, readonly=not os.access(p, os.W_OK) or _is_shipped(p))

    @classmethod
    def for_training(cls, path: str | os.PathLike[str], config: Config) -> Run:
        """The run ``config`` trains into ``path``: new, or the same run resumed.

        Refuses a directory jordanlab did not write (unless empty), and a run whose saved config or
        newest checkpoint has another identity (the message names the keys that differ). Nothing is
        written here; :meth:`begin` does that under the lock.
        """
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise RunError(f"--out {p} exists and is not a directory")
        if _is_shipped(p):
            raise RunError(f"{p} is a shipped pretrained model; train into a new directory")
        if p.is_dir() and any(p.iterdir()) and marked_kind(p) != "run" and not _looks_like_legacy_run(p):
            raise RunError(f"{p} is a non-empty directory that jordanlab did not create (no {MARKER} marker); "
                           "train into a new or empty directory")
        run = cls(p, config)
        run._check_identity()
        return run

    def _check_identity(self) -> None:
        saved = _read_config_file(self.path)
        ckpt = self._newest_checkpoint_config()
        for what, other in ((CONFIG, saved), ("its newest checkpoint", ckpt)):
            if other is None:
                continue
            diff = config_diff(other, self.config)
            if diff:
                raise RunError(
                    f"{self.path} holds another run ({what} differs: {'; '.join(diff)}); "
                    "use a new --out, or rerun with the run's own config.toml to resume it")

    def _newest_checkpoint_config(self) -> Config | None:
        path = latest_good_checkpoint(self.path, warn=False)
        if path is None:
            return None
        return config_from_dict(load_checkpoint(path)["config"], source=str(path))

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's write lock (``flock`` on ``RUN/.lock``); refuse at once if another process holds it."""
        if self.readonly:
            raise RunError(f"{self.path} is read-only (a shipped model or a directory you cannot write)")
        self.path.mkdir(parents=True, exist_ok=True)
        if marked_kind(self.path) != "run":  # checked by open/for_training: empty, or a run (maybe legacy)
            mark(self.path, "run")
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise RunLockedError(f"{self.path} is being written by another jordanlab process (pid {holder}); "
                                     "wait for it to finish or stop it") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._clean_leftovers()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _clean_leftovers(self) -> None:
        """Under the lock: remove temporary files of interrupted writes and hash files of lost checkpoints."""
        for p in self.path.iterdir():
            name = p.name
            stale_tmp = bool(_ATOMIC_TMP.match(name)) and p.is_file()
            orphan_hash = (name.startswith("ckpt-") and name.endswith(".pt.sha256")
                           and not (self.path / name[: -len(".sha256")]).exists())
            if stale_tmp or orphan_hash:
                with contextlib.suppress(OSError):
                    p.unlink()

    def begin(self, run_info: dict[str, Any]) -> None:
        """Mark the directory, save the config and ``run.json`` (call under :meth:`lock`)."""
        write_text(self.path / CONFIG, config_to_toml(self.config))
        write_json(self.path / RUN_INFO, {"identity": self.identity, **run_info})

    # ------------------------------------------------------------------ what the run is
    @property
    def identity(self) -> str:
        """:func:`config_identity` of the run's config."""
        return config_identity(self.config)

    @property
    def canvas(self) -> int:
        """The training canvas side: the dataset directory's image width, or the preset's size."""
        from jordanlab.data import PRESETS, read_manifest

        if self.config.data.dir is not None:
            return int(read_manifest(self.data_dir())["image_shape"][1])
        if self.config.data.preset not in PRESETS:
            raise RunError(f"config key 'data.preset': unknown preset {self.config.data.preset!r}")
        return int(PRESETS[self.config.data.preset].size)

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(epoch, path)`` of every checkpoint, oldest first (not verified)."""
        return list_checkpoints(self.path)

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint whose SHA-256 verifies, or ``None``."""
        return latest_good_checkpoint(self.path)

    def require_checkpoint(self) -> Path:
        """:meth:`latest_checkpoint`, or a :class:`RunError` saying the run has none yet."""
        path = self.latest_checkpoint()
        if path is None:
            raise RunError(f"{self.path} holds no good checkpoint yet (train it first: rerun 'jordanlab train')")
        return path

    def status(self) -> dict[str, Any]:
        """``{"epochs_done", "epochs_planned", "finished", "checkpoint"}`` from the checkpoints on disk."""
        path = self.latest_checkpoint()
        done = dict((p, e) for e, p in self.checkpoints()).get(path, 0)  # the epoch is in the verified file's name
        planned = self.config.train.epochs
        return {"epochs_done": int(done), "epochs_planned": int(planned), "finished": done >= planned,
                "checkpoint": path.name if path is not None else None}

    def load_model(self, checkpoint: str | os.PathLike[str] | None = None, *,
                   map_location: str | torch.device = "cpu") -> torch.nn.Module:
        """The model at ``checkpoint`` (default: the newest good one), rebuilt from the config, in eval mode."""
        path = Path(checkpoint) if checkpoint is not None else self.require_checkpoint()
        ckpt = load_checkpoint(path, map_location=map_location)
        model = build_model(config_from_dict(ckpt["config"], source=str(path)).model)
        model.load_state_dict(ckpt["model"])
        return model.eval()

    def initial_model(self) -> torch.nn.Module:
        """The model at w₀ (rebuilt from config and seed, as the loop initialised it)."""
        return initial_model(self.config)

    # ------------------------------------------------------------------ data
    def data_dir(self) -> Path:
        """``[data] dir`` when set (it must still exist), else ``RUN/data/train``."""
        if self.config.data.dir is not None:
            d = Path(self.config.data.dir)
            if not (d / "manifest.json").is_file():
                raise RunError(f"config key 'data.dir' of {self.path}: {d} is not a dataset directory "
                               "(moved or deleted?); restore it, or set data.dir in a new run")
            return d
        return self.path / "data" / "train"

    def test_dir(self) -> Path | None:
        """Where the validation images live (``None`` when ``data.n_val`` is 0)."""
        if self.config.data.n_val == 0:
            return None
        if self.config.data.dir is not None:
            from jordanlab.data import read_manifest

            d = self.data_dir()
            return d if read_manifest(d)["counts"].get("test", 0) > 0 else None
        return self.path / "data" / "test"

    def ensure_data(self, *, progress: bool = True) -> None:
        """Generate the run's datasets when missing, and check that present ones match the config."""
        from jordanlab import data

        dc = self.config.data
        if dc.dir is not None:
            self.data_dir()
            return
        for split, d, n in (("train", self.data_dir(), dc.n_train), ("test", self.test_dir(), dc.n_val)):
            if d is None:
                continue
            if (d / "manifest.json").is_file():
                self._check_dataset(d, split, n)
                continue
            check_replaceable(d, "dataset", legacy=True)
            data.write_dataset(dc.preset, d, seed=dc.seed, n=n, splits=(split,), overwrite=True, progress=progress)

    def _check_dataset(self, d: Path, split: str, n: int | None) -> None:
        from jordanlab.data import PRESETS, read_manifest

        m = read_manifest(d)
        want_n = n if n is not None else PRESETS[self.config.data.preset].count(split)
        got = (m["name"], m["seed"], m["counts"].get(split))
        if got != (self.config.data.preset, self.config.data.seed, want_n):
            raise RunError(f"{d} holds {got[2]} {got[0]} images of seed {got[1]}, but the config asks for "
                           f"{want_n} {self.config.data.preset} images of seed {self.config.data.seed}")

    # ------------------------------------------------------------------ metrics and evaluations
    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def eval_path(self) -> Path:
        return self.path / EVAL

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch metrics, oldest first ([] when none)."""
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop metric lines after ``last_epoch`` (those of epochs whose checkpoint was lost)."""
        if not self.metrics_path.is_file():
            return
        keep = [m for m in self.read_metrics() if m.get("epoch", 0) <= last_epoch]
        write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in keep))

    def append_metrics(self, metrics: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(metrics) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_eval(self) -> dict[str, Any] | None:
        """The saved evaluation, or ``None`` (absent or unreadable)."""
        try:
            data = json.loads(self.eval_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_eval(self, result: dict[str, Any]) -> Path:
        return write_json(self.eval_path, result)


def _is_shipped(p: Path) -> bool:
    try:
        from jordanlab.models import pretrained
    except ImportError:
        return False
    root = Path(pretrained.__file__).resolve().parent
    with contextlib.suppress(OSError):
        return root == p.resolve() or root in p.resolve().parents
    return False


def _looks_like_legacy_run(p: Path) -> bool:
    """A run written before markers existed: it has a config.toml, or checkpoints."""
    return (p / CONFIG).is_file() or bool(list_checkpoints(p))


def _read_config_file(p: Path) -> Config | None:
    f = p / CONFIG
    return load_config(f) if f.is_file() else None


def _saved_config(p: Path) -> Config | None:
    """The run's config: ``config.toml``, else the newest good checkpoint's."""
    config = _read_config_file(p)
    if config is not None:
        return config
    path = latest_good_checkpoint(p, warn=False)
    if path is None:
        return None
    return config_from_dict(load_checkpoint(path)["config"], source=str(path))
