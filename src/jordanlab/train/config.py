"""Typed, strict training configuration read from TOML.

A :class:`Config` is four frozen tables, ``[data]``, ``[model]``, ``[optim]`` and ``[train]``,
plus a free-text ``description``. Every key has a default (the talk's setting where the talk
gives one). :func:`load_config` reads a TOML file and applies dotted ``key=value`` overrides;
both go through the same checks, so an unknown key, a wrong type or a value out of range fails
before any training starts, with an error that names the key and the file (or override).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from jordanlab._atomic import write_text

__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "save_config",
]


class ConfigError(ValueError):
    """A configuration key is unknown, or its value is out of range."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value has the wrong type."""


@dataclass(frozen=True)
class DataConfig:
    """Where the training images come from.

    ``preset`` names a ``jordanlab.data`` preset (``shapes-32`` ... ``textures-256``).
    ``dir`` is an existing dataset directory; ``None`` generates the preset into ``RUN/data``.
    ``n_train`` images are generated (``None``: the preset's size); ``n_val`` images of the
    test split are scored after every epoch. ``augment`` applies the preset's augmentation.
    """

    preset: str = "shapes-128"
    dir: str | None = None
    n_train: int | None = None
    n_val: int = 64
    seed: int = 0
    augment: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """A ``jordanlab.models.build(name, **kwargs)`` call."""

    name: str = "unet"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    ``name`` is ``ranger`` (RAdam + Lookahead, from ``pytorch_optimizer``; the talk's choice),
    ``adam`` or ``sgd``. ``betas`` are Adam's/Ranger's moment decays, ``momentum`` is SGD's.
    ``schedule`` is ``constant`` or ``cosine`` (after ``warmup_steps`` of linear warm-up,
    decaying to ``min_lr_ratio * lr``) or ``onecycle`` (cosine warm-up from ``lr / 25`` to ``lr``
    over ``warmup_steps``, then cosine decay to ``min_lr_ratio * lr``: PyTorch's ``OneCycleLR``
    learning rate, without its momentum cycle). ``grad_clip`` > 0 clips the global gradient norm.
    """

    name: str = "ranger"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.95, 0.999)
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The loop: the talk's defaults are 150 epochs, batch 32, binary cross-entropy.

    ``batch_size`` is the global batch (split across ranks under ``torchrun``). ``num_workers``
    DataLoader processes prepare (augment) the next batches while the model steps. The default 0
    suits a busy CPU (at 128x128 the affine augmentation is ~3 % of a U-Net step; a worker process
    competing for the same cores cost more than it hid); use 2-8 on a GPU machine. Items depend on
    ``(seed, epoch, index)`` only, so the worker count never changes the results.
    ``device`` is ``cpu``, ``cuda`` or ``auto``; ``amp`` (bf16 autocast) and ``channels_last``
    apply on CUDA only. ``loss`` is the per-pixel loss (``bce`` on logits, or ``mse`` on
    sigmoid probabilities). ``objective`` is ``standard`` (loss of ``model(x)``) or
    ``progressive`` (Bansal et al. 2022, for models with ``init_state/step/readout``):
    ``L = (1 - progressive_alpha) L(max_iters) + progressive_alpha L_progressive``.
    ``sync_batchnorm`` converts BatchNorm to SyncBatchNorm under DDP on CUDA (PyTorch's
    SyncBatchNorm has no CPU kernel: on CPU the statistics stay per rank, with a warning).
    A checkpoint is written every ``checkpoint_every`` epochs; the newest ``keep_checkpoints``
    are kept. ``gate_penalty`` > 0 adds ``w(step) * model.gate_penalty(a)`` for models that expose
    gates a (``gates``/``readout``/``gate_penalty``, e.g. ``parity-scan``; the unit-modulus penalty
    mean(1 - a^2) pushes |a| to 1), with ``w`` ramped linearly from 0 at optimizer step
    ``gate_penalty_start`` to ``gate_penalty`` at step ``gate_penalty_full`` (steps, not fractions:
    the objective sees only the step). ``tensorboard`` writes TensorBoard events into ``RUN/tb`` (needs the
    ``tensorboard`` extra: ``pip install 'jordanlab[tensorboard]'``).
    """

    epochs: int = 150
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    num_workers: int = 0
    loss: str = "bce"
    objective: str = "standard"
    progressive_alpha: float = 0.5
    progressive_max_iters: int = 20
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    sync_batchnorm: bool = True
    gate_penalty: float = 0.0
    gate_penalty_start: int = 0
    gate_penalty_full: int = 0
    tensorboard: bool = False


@dataclass(frozen=True)
class Config:
    """A whole training run: ``[data]``, ``[model]``, ``[optim]``, ``[train]``."""

    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_TABLES: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "optim.name": ("ranger", "adam", "sgd"),
    "optim.schedule": ("constant", "cosine", "onecycle"),
    "train.device": ("cpu", "cuda", "auto"),
    "train.loss": ("bce", "mse"),
    "train.objective": ("standard", "progressive"),
}

# key -> (lower bound, inclusive?)
_LOWER: dict[str, tuple[float, bool]] = {
    "data.n_train": (1, True),
    "data.n_val": (0, True),
    "data.seed": (0, True),
    "optim.lr": (0.0, False),
    "optim.weight_decay": (0.0, True),
    "optim.momentum": (0.0, True),
    "optim.warmup_steps": (0, True),
    "optim.min_lr_ratio": (0.0, True),
    "optim.grad_clip": (0.0, True),
    "train.epochs": (1, True),
    "train.batch_size": (1, True),
    "train.seed": (0, True),
    "train.num_workers": (0, True),
    "train.progressive_alpha": (0.0, True),
    "train.progressive_max_iters": (1, True),
    "train.checkpoint_every": (1, True),
    "train.keep_checkpoints": (1, True),
    "train.gate_penalty": (0.0, True),
    "train.gate_penalty_start": (0, True),
    "train.gate_penalty_full": (0, True),
}
_UPPER: dict[str, float] = {"optim.min_lr_ratio": 1.0, "train.progressive_alpha": 1.0}


def _where(source: str | None) -> str:
    return f" (in {source})" if source else ""


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is tuple:
        return "array of " + ", ".join(_type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "nothing (omit the key)"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: Any, hint: Any, key: str, source: str | None) -> Any:
    """Check ``value`` against the annotation ``hint``; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigTypeError:
                pass
        raise ConfigTypeError(
            f"config key {key!r}{_where(source)}: expected {_type_name(hint)}, got {value!r}"
        )
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigTypeError(
                f"config key {key!r}{_where(source)}: expected an array of {len(args)} numbers, "
                f"got {value!r}"
            )
        return tuple(_coerce(v, a, key, source) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"config key {key!r}{_where(source)}: expected a table, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigTypeError(f"config key {key!r}{_where(source)}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigTypeError(f"config key {key!r}{_where(source)}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigTypeError(f"config key {key!r}{_where(source)}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigTypeError(f"config key {key!r}{_where(source)}: expected a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported annotation {hint!r} for {key}")  # internal invariant


def _check_value(key: str, value: Any, source: str | None) -> None:
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(
            f"config key {key!r}{_where(source)}: {value!r} is not one of {', '.join(_CHOICES[key])}"
        )
    if value is None or isinstance(value, (str, bool, tuple, dict)):
        return
    if key in _LOWER:
        low, inclusive = _LOWER[key]
        if (value < low) if inclusive else (value <= low):
            rel = ">=" if inclusive else ">"
            raise ConfigError(f"config key {key!r}{_where(source)}: expected a value {rel} {low}, got {value!r}")
    if key in _UPPER and value > _UPPER[key]:
        raise ConfigError(f"config key {key!r}{_where(source)}: expected a value <= {_UPPER[key]}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r}{_where(source)}: expected a finite number, got {value!r}")


def _build_table(cls: type, name: str, table: Any, source: str | None) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigTypeError(f"config key {name!r}{_where(source)}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            raise ConfigError(
                f"unknown config key {dotted!r}{_where(source)}; valid keys of [{name}]: "
                f"{', '.join(sorted(fields))}"
            )
        values[key] = _coerce(value, hints[key], dotted, source)
        _check_value(dotted, values[key], source)
    return cls(**values)


def config_from_dict(raw: Mapping[str, Any], *, source: str | None = None) -> Config:
    """Build a checked :class:`Config` from nested dicts (the parsed TOML).

    Raises :class:`ConfigError` (a ``ValueError``) for an unknown key or a value out of range and
    :class:`ConfigTypeError` (also a ``TypeError``) for a wrong type; the message names the
    dotted key and ``source``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigTypeError(f"config{_where(source)}: expected a table, got {type(raw).__name__}")
    parts: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "description":
            parts[key] = _coerce(value, str, key, source)
        elif key in _TABLES:
            parts[key] = _build_table(_TABLES[key], key, value, source)
        else:
            raise ConfigError(
                f"unknown config key {key!r}{_where(source)}; valid top-level keys: "
                f"description, {', '.join(_TABLES)}"
            )
    cfg = Config(**parts)
    t = cfg.train
    if t.objective == "progressive" and t.progressive_max_iters < 1:
        raise ConfigError(f"config key 'train.progressive_max_iters'{_where(source)} must be >= 1")
    if t.gate_penalty_full < t.gate_penalty_start:
        raise ConfigError(
            f"config key 'train.gate_penalty_full'{_where(source)}: expected a step >= "
            f"train.gate_penalty_start = {t.gate_penalty_start}, got {t.gate_penalty_full}"
        )
    if t.gate_penalty > 0 and t.objective != "standard":
        raise ConfigError(
            f"config key 'train.gate_penalty'{_where(source)}: the gate penalty applies to the standard "
            f"objective only, got train.objective = {t.objective!r}"
        )
    return cfg


def _parse_override(item: str) -> tuple[list[str], Any]:
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"override {item!r}: expected 'dotted.key=value', e.g. 'train.epochs=3'")
    key, text = item.split("=", 1)
    key = key.strip()
    path = key.split(".")
    if not key or any(not p for p in path):
        raise ConfigError(f"override {item!r}: the key {key!r} is not a dotted name like 'train.epochs'")
    try:  # a TOML value: 3, 1e-3, true, "x", [0.9, 0.99]
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()  # a bare string: data.preset=shapes-32
    return path, value


def _apply_override(raw: dict[str, Any], item: str) -> None:
    path, value = _parse_override(item)
    node = raw
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(path[: i + 1])!r} is a value, not a table")
        node = child
    node[path[-1]] = value


def load_config(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> Config:
    """Read a TOML config and apply dotted ``key=value`` overrides.

    Parameters
    ----------
    path : path-like
        A TOML file with any of the tables ``[data]``, ``[model]`` (``[model.kwargs]``),
        ``[optim]``, ``[train]``; missing keys take their defaults.
    overrides : iterable of str
        ``"train.epochs=3"``, ``"model.kwargs.width=4"``, ``"data.preset=shapes-32"``; values are
        parsed as TOML values (a bare word is a string). Applied in order, then checked with the
        file's keys.

    Returns
    -------
    Config

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ConfigError
        Unparsable TOML, an unknown key, a wrong type or a value out of range; the message names
        the key and the file (and ``--set`` if an override introduced it).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {str(p)!r} does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    overrides = list(overrides)
    for item in overrides:
        _apply_override(raw, item)
    source = str(p) + (f" with overrides {overrides}" if overrides else "")
    return config_from_dict(raw, source=source)


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts (tuples become lists), the inverse of :func:`config_from_dict`."""
    if not isinstance(config, Config):
        raise TypeError(f"config: expected a jordanlab.train.Config, got {type(config).__name__}")

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    out: dict[str, Any] = {"description": config.description}
    for name in _TABLES:
        table = getattr(config, name)
        out[name] = {f.name: plain(getattr(table, f.name)) for f in dataclasses.fields(table)}
    return out


def _toml_value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x, key) for x in v) + "]"
    if isinstance(v, Mapping):
        items = [f"{_toml_key(k)} = {_toml_value(x, key)}" for k, x in v.items() if x is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"config key {key!r}: cannot write {type(v).__name__} value {v!r} to TOML")


def _toml_string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    bare = bool(k) and k.isascii() and all(c.isalnum() or c in "-_" for c in k)
    return k if bare else _toml_string(k)


def config_to_toml(config: Config) -> str:
    """The resolved config as TOML text; ``None`` values are omitted (TOML has no null)."""
    d = config_to_dict(config)
    lines = [f"description = {_toml_value(d['description'], 'description')}"]
    for name in _TABLES:
        lines.append("")
        lines.append(f"[{name}]")
        kwargs = None
        for k, v in d[name].items():
            if name == "model" and k == "kwargs":
                kwargs = v
                continue
            if v is not None:
                lines.append(f"{_toml_key(k)} = {_toml_value(v, f'{name}.{k}')}")
        if kwargs is not None:
            lines.append("")
            lines.append("[model.kwargs]")
            for k, v in kwargs.items():
                if v is not None:
                    lines.append(f"{_toml_key(k)} = {_toml_value(v, f'model.kwargs.{k}')}")
    return "\n".join(lines) + "\n"


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` atomically as TOML (``.toml``) or JSON (``.json``) and return the path."""
    p = Path(path)
    if p.suffix == ".json":
        text = json.dumps(config_to_dict(config), indent=2) + "\n"
    elif p.suffix == ".toml":
        text = config_to_toml(config)
    else:
        raise ValueError(f"path: expected a .toml or .json file name, got {str(p)!r}")
    write_text(p, text)
    return p
