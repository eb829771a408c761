"""Dataset presets (training families) and out-of-distribution suites, as frozen dataclasses.

Every image is drawn from its own generator, ``numpy.random.default_rng([seed, salt, i])`` with
``salt = crc32("name|split|size")``, so image ``i`` never depends on the order, the number of workers
or the machine.

Presets
-------
``shapes-32``, ``shapes-64``  (2,000 train / 200 test), ``shapes-128`` (1,115 / 140, the talk's
set): one shape per image, a blob or a star polygon with probability 1/2 each
(:func:`jordanlab.curves.simple_shape`); random affine distortion at train time.
``strokes-32`` (2,000 / 200): the ``shapes`` family on 32x32 with a stroke width of 1, 2 or 3
pixels drawn per image (the ``thick`` suite's strokes are in training; augmentation re-rasterizes
with the image's own width).
``textures-256`` (10,000 / 1,000): :func:`jordanlab.curves.texture` compositions of many shapes,
some nested; random flips at train time.

Suites
------
Test sets probing a model trained on the ``shapes`` family; each is drawn on a canvas of ``size``
pixels (default 64, i.e. relative to ``shapes-64``; pass ``size=32`` or ``size=128`` for the models
trained on ``shapes-32`` / ``shapes-128``; at least 32), 200 images by default. ``multi-k``: ``k`` disjoint
shapes; ``nested``: rings in rings (2 to 4 levels); ``spiral``: thin bands wound several turns;
``polygon``: star polygons only, spikier than in training (3 to 20 vertices, radii down to 0.25 of
the circumradius, against 5 to 12 and 0.45); ``randomwalk``: random-walk loops; ``thick``: the training family
with 2 or 3 pixel strokes; ``large-2x``, ``large-4x``: the training family on a ``2 size`` and
``4 size`` canvas.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from functools import partial

import numpy as np

from jordanlab import curves as C
from jordanlab._seeds import numpy_rng

__all__ = ["Spec", "PRESETS", "SUITES", "SUITE_SIZE", "SUITE_COUNT", "resolve", "salt", "FAMILIES"]

SUITE_SIZE = 64  # default canvas for the OOD suites (the shapes-64 training family)
SUITE_COUNT = 200  # default number of images in a suite

#: Curve generators by family name: ``f(rng, (H, W)) -> curve or list of curves``.
FAMILIES: dict[str, Callable[..., object]] = {
    "shape": C.simple_shape,
    "texture": C.texture,
    "multi-2": partial(C.multi, k=2),
    "multi-3": partial(C.multi, k=3),
    "multi-5": partial(C.multi, k=5),
    "nested": C.nested,
    "spiral": C.spiral,
    "polygon": partial(C.polygon, n_vertices=(3, 20), r_min=0.25),
    "blob": C.blob,
    "randomwalk": C.random_walk,
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a named dataset is: its canvas, curve family, stroke, sizes and train-time augmentation.

    Attributes
    ----------
    name : preset or suite name.
    size : canvas side (images are ``size x size``).
    family : key of :data:`FAMILIES`.
    n_train, n_test : default number of images per split (``n_train = 0`` for a suite).
    augment : ``"affine"`` (re-rasterize a random affine map of the stored curves), ``"flip"``
        (random horizontal/vertical flips) or ``"none"``.
    thickness : ``(low, high)`` stroke width in pixels, drawn uniformly per image (1, 1 = thin).
    kind : ``"preset"`` or ``"suite"``.
    """

    name: str
    size: int
    family: str
    n_train: int
    n_test: int
    augment: str = "none"
    thickness: tuple[int, int] = (1, 1)
    kind: str = "preset"

    def splits(self) -> tuple[str, ...]:
        return ("train", "test") if self.n_train > 0 else ("test",)

    def count(self, split: str) -> int:
        return self.n_train if split == "train" else self.n_test


PRESETS: dict[str, Spec] = {
    "shapes-32": Spec("shapes-32", 32, "shape", 2000, 200, augment="affine"),
    "shapes-64": Spec("shapes-64", 64, "shape", 2000, 200, augment="affine"),
    "strokes-32": Spec("strokes-32", 32, "shape", 2000, 200, augment="affine", thickness=(1, 3)),
    "shapes-128": Spec("shapes-128", 128, "shape", 1115, 140, augment="affine"),
    "textures-256": Spec("textures-256", 256, "texture", 10000, 1000, augment="flip"),
}

#: Suite name -> (family, canvas multiplier, thickness range).
SUITES: dict[str, tuple[str, int, tuple[int, int]]] = {
    "multi-2": ("multi-2", 1, (1, 1)),
    "multi-3": ("multi-3", 1, (1, 1)),
    "multi-5": ("multi-5", 1, (1, 1)),
    "nested": ("nested", 1, (1, 1)),
    "spiral": ("spiral", 1, (1, 1)),
    "polygon": ("polygon", 1, (1, 1)),
    "randomwalk": ("randomwalk", 1, (1, 1)),
    "thick": ("shape", 1, (2, 3)),
    "large-2x": ("shape", 2, (1, 1)),
    "large-4x": ("shape", 4, (1, 1)),
}


def resolve(name: str, *, size: int | None = None) -> Spec:
    """The :class:`Spec` of a preset or suite; ``size`` sets a suite's base canvas (default 64).

    Raises
    ------
    ValueError
        For an unknown name (listing the valid ones) or ``size`` given for a preset.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name in PRESETS:
        spec = PRESETS[name]
        if size is not None and int(size) != spec.size:
            raise ValueError(f"size={size} applies to suites only; preset {name!r} is {spec.size}x{spec.size}")
        return spec
    if name in SUITES:
        family, mult, thick = SUITES[name]
        base = SUITE_SIZE if size is None else int(size)
        if base < 32:
            raise ValueError(f"size must be >= 32 for suite {name!r} (five shapes or a two-turn spiral need room), got {size}")
        return Spec(name, base * mult, family, 0, SUITE_COUNT, augment="none", thickness=thick, kind="suite")
    raise ValueError(f"unknown dataset name {name!r}; presets: {sorted(PRESETS)}; suites: {sorted(SUITES)}")


def salt(name: str, split: str, size: int) -> int:
    """Stable 32-bit salt of ``(name, split, size)`` (CRC-32, the same on every machine)."""
    return zlib.crc32(f"{name}|{split}|{size}".encode())


def image_rng(seed: int, spec: Spec, split: str, i: int) -> np.random.Generator:
    """The generator of image ``i``: ``default_rng([seed, salt(name, split, size), i])``."""
    return numpy_rng(seed, salt(spec.name, split, spec.size), i)
