"""Permissions for directories created through ``tempfile`` (which makes them private)."""

from __future__ import annotations

import os


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_dir(path: str | os.PathLike) -> None:
    """Give a ``mkdtemp`` directory the mode ``os.mkdir`` would have (0777 & ~umask)."""
    os.chmod(path, 0o777 & ~_umask())
