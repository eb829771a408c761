"""The one parser of query-image specs for ``jordanlab kernel explain`` and ``kernel explain-adam``.

A spec names a boundary image:

- ``INDEX`` (e.g. ``"3"``): image 3 of the run's own test split;
- ``NAME:INDEX`` (e.g. ``"spiral:2"``): test image 2 of a suite, drawn at the run's training canvas
  (or ``size``), or of a preset (its own canvas; ``size`` does not apply), with ``seed``;
- a path to a boundary PNG (any canvas): an existing file, or any spec ending in ``.png``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._runs import run_images

__all__ = ["QueryImage", "parse_image_spec"]


@dataclass(frozen=True)
class QueryImage:
    """A boundary image ``(H, W)`` in {0, 1}, its exact mask (``None`` for a PNG) and where it came from."""

    boundary: np.ndarray
    mask: np.ndarray | None
    source: str


def parse_image_spec(spec: str | os.PathLike[str], config: Any, *, size: int | None = None,
                     seed: int = 0) -> QueryImage:
    """The image that ``spec`` (``INDEX``, ``NAME:INDEX`` or a PNG path) names for a run with ``config``.

    Parameters
    ----------
    spec : str or path
        See the module docstring. A path-like object is always read as a PNG.
    config : jordanlab.train.Config
        The run's config: its test split (``INDEX``) and training canvas (suites).
    size : int, optional
        Base canvas of a suite image (default: the run's training canvas).
    seed : int
        Seed of ``NAME:INDEX`` images (the run's own split uses ``config.data.seed``).

    Raises
    ------
    ValueError
        A malformed spec, an unknown ``NAME`` or an index outside the split, naming the spec.
    FileNotFoundError
        A PNG path that does not exist.
    """
    from jordanlab import data

    if isinstance(spec, os.PathLike):
        return _png(Path(spec))
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"image spec must be INDEX, NAME:INDEX or a PNG path, got {spec!r}")
    if spec.isdigit():
        i = int(spec)
        b, m, where = run_images(config, "test", None if config.data.dir else i + 1)
        if i >= len(b):
            raise ValueError(f"image spec {spec!r}: index {i} is outside the run's test split of {len(b)} images")
        return QueryImage(b[i], m[i], f"{where} test[{i}]")
    name, sep, index = spec.rpartition(":")
    if Path(spec).is_file() or spec.lower().endswith(".png") or not sep:
        if not spec.lower().endswith(".png") and not Path(spec).is_file():
            raise ValueError(f"image spec must be INDEX, NAME:INDEX or a PNG path, got {spec!r}")
        return _png(Path(spec))
    if not index.isdigit() or not name:
        raise ValueError(f"image spec must be INDEX, NAME:INDEX or a PNG path, got {spec!r}")
    i = int(index)
    if name in data.PRESETS:
        b, m = data.make(name, "test", n=i + 1, seed=seed)
        return QueryImage(b[i], m[i], f"{name} test[{i}] seed {seed}")
    if name not in data.SUITES:
        raise ValueError(f"image spec {spec!r}: unknown preset or suite {name!r}; "
                         f"valid: {', '.join([*data.PRESETS, *data.SUITES])}")
    if size is None:
        from jordanlab.evaluate import run_canvas

        size = run_canvas(config)
    b, m = data.make(name, "test", n=i + 1, seed=seed, size=size)
    return QueryImage(b[i], m[i], f"{name} (size {size}) test[{i}] seed {seed}")


def _png(path: Path) -> QueryImage:
    from jordanlab import data

    return QueryImage(np.asarray(data.read_boundary_png(path), dtype=np.uint8), None, str(path))
