"""Thick strokes on every family, not only the single shapes of the ``thick`` suite (README, issue 5).

The ``thick`` suite draws one blob with 2-3 px strokes. :func:`thick_families` draws the other OOD
families (several shapes, nested rings, polygons, random walks) with 2-3 px strokes at 64×64 (and
blobs at 256×256), labels them with the exact fill (spirals are left out: the generator's spiral
corridors are too narrow for 3 px strokes, which would close them off), and scores each run on them
(perfect-image rate; iterations for models that report them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jordanlab._atomic import write_json

from ._runs import trained_model

__all__ = ["THICK_FAMILIES", "thick_families", "thick_set"]

#: ``(family, canvas)`` of each thick set.
THICK_FAMILIES = (("multi-3", 64), ("multi-5", 64), ("nested", 64), ("polygon", 64), ("randomwalk", 64), ("shape", 256))


def thick_set(family: str, size: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of ``family`` with 2-3 px strokes on a ``size``² canvas, and their exact fills."""
    from jordanlab.data import Spec, generate_images

    spec = Spec(f"thick-{family}-{size}", size, family, 0, n, thickness=(2, 3), kind="suite")
    b, m, _, _ = generate_images(spec, "test", range(n), seed=seed, workers=1)
    return b, m


def thick_families(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None, *,
                   n: int = 100, seed: int = 0, families: Sequence[tuple[str, int]] = THICK_FAMILIES,
                   log=print) -> dict:
    """Perfect-image rate of each run on each thick set; ``{"n", "seed", "results": {run: {set: entry}}}``.

    With ``out``, also written to ``OUT/thick-families.json``.
    """
    from jordanlab.evaluate import predict_masks

    sets = {f"thick {fam} {size}²": thick_set(fam, size, n, seed) for fam, size in families}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for run in runs:
        model, _ = trained_model(run)
        result[str(run)] = {}
        for name, (b, m) in sets.items():
            pred, iters = predict_masks(model, b)
            entry = {"perfect": float((pred == m).reshape(len(m), -1).all(1).mean())}
            if iters is not None:
                entry.update(iters_mean=float(iters.mean()), iters_max=int(iters.max()))
            result[str(run)][name] = entry
            log(f"{run} {name} {entry}")
    report = dict(n=n, seed=seed, results=result)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json(Path(out) / "thick-families.json", report)
    return report
