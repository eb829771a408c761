"""Which directories jordanlab wrote, and may therefore replace or clean.

jordanlab deletes or overwrites only what it can prove it wrote. Every directory it creates (a run,
a dataset) carries a marker file, ``.jordanlab``, holding ``{"kind": ..., "jordanlab_version": ...}``.
:func:`check_replaceable` is the one gate before replacing a directory: it passes an empty directory
or one marked with the expected kind, and refuses anything else with an error naming the directory.

Temporary siblings (``.NAME.tmp-PID-XXXX``, ``.NAME.old-PID-XXXX``) carry the pid of their writer, so
:func:`clean_stale_siblings` removes those of writers that are gone, and only those.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

MARKER = ".jordanlab"

__all__ = ["MARKER", "NotOursError", "mark", "marked_kind", "check_replaceable", "owned_tempdir",
           "clean_stale_siblings", "pid_alive"]


class NotOursError(FileExistsError):
    """A directory exists that jordanlab did not write; it is never replaced or deleted."""


def mark(directory: str | os.PathLike, kind: str) -> None:
    """Write the marker of ``kind`` (``"run"`` or ``"dataset"``) into ``directory``."""
    import jordanlab
    from jordanlab._atomic import write_json

    write_json(Path(directory) / MARKER, {"kind": kind, "jordanlab_version": jordanlab.__version__})


def marked_kind(directory: str | os.PathLike) -> str | None:
    """The kind recorded in ``directory``'s marker, or ``None`` when it has no readable marker."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def check_replaceable(directory: str | os.PathLike, kind: str, *, legacy: bool = False) -> None:
    """Raise :class:`NotOursError` unless ``directory`` is absent, empty, or marked as ``kind``.

    ``legacy=True`` also accepts a dataset written before markers existed: a directory holding only
    ``manifest.json`` and the shards (and their names) that manifest lists.
    """
    d = Path(directory)
    if not d.exists():
        return
    if not d.is_dir():
        raise NotOursError(f"{d} exists and is not a directory; jordanlab will not replace it")
    if not any(d.iterdir()) or marked_kind(d) == kind:
        return
    if legacy and kind == "dataset" and _is_legacy_dataset(d):
        return
    raise NotOursError(f"{d} is not a {kind} directory written by jordanlab (no {MARKER} marker); "
                       "jordanlab never deletes it: choose a new or empty directory")


def _is_legacy_dataset(d: Path) -> bool:
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        listed = set(manifest["files"]) | {"manifest.json"}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(p.name in listed and p.is_file() for p in d.iterdir())


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owned_tempdir(target: Path, tag: str) -> Path:
    """A fresh ``.TARGET.TAG-PID-XXXX`` directory beside ``target`` (mode as ``mkdir`` would give)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-{os.getpid()}-", dir=target.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    return tmp


def clean_stale_siblings(target: Path, tags: tuple[str, ...] = ("tmp", "old")) -> list[Path]:
    """Remove ``.TARGET.TAG-PID-*`` directories beside ``target`` whose writer (PID) is gone."""
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:{'|'.join(tags)})-(\d+)-")
    for p in target.parent.iterdir():
        m = pattern.match(p.name)
        if m and p.is_dir() and not pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                shutil.rmtree(p)
                removed.append(p)
    return removed
