"""Atomic writes, shared by every layer: write beside the target, then ``os.replace``.

A reader never sees a half-written file, and an interrupted write leaves the previous file (or none).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The temporary file gets the mode an ordinary ``open(path, "w")`` would give (``mkstemp`` files are
    private) and keeps the target's suffix, so writers that infer the format from it still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


#: Extra formats every figure is also written in, beside its PNG (``jordanlab --figure-formats svg,pdf``).
FIGURE_FORMATS_ENV = "JORDANLAB_FIGURE_FORMATS"
_VECTOR_FORMATS = ("svg", "pdf")


def extra_figure_formats(value: str | None = None) -> list[str]:
    """The formats named in ``value`` (default ``$JORDANLAB_FIGURE_FORMATS``): comma-separated, among svg and pdf."""
    text = os.environ.get(FIGURE_FORMATS_ENV, "") if value is None else value
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in _VECTOR_FORMATS]
    if bad:
        raise ValueError(f"{FIGURE_FORMATS_ENV}: unknown figure format(s) {bad}; choose among {list(_VECTOR_FORMATS)}")
    return names


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kw: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically (format taken from the suffix), plus each extra format asked for.

    With ``JORDANLAB_FIGURE_FORMATS=svg,pdf`` a figure ``x.png`` is also written as ``x.svg`` and ``x.pdf``.
    """
    target = Path(path)
    for out in [target] + [target.with_suffix(f".{f}") for f in extra_figure_formats() if f".{f}" != target.suffix]:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", **savefig_kw)
    return target
