"""Evaluate any model object (built-in or your own ``nn.Module``) on the suites, without a run directory.

:func:`evaluate_model` is the Python twin of ``jordanlab eval RUN``: the same images
(``jordanlab.data.make``), the same halting rule (:func:`~jordanlab.evaluate.predict_masks`) and the
same scores (:func:`~jordanlab.evaluate.aggregate_scores`), for a model held in memory.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from .metrics import aggregate_scores, per_image_scores
from .predict import default_max_iters, predict_masks

__all__ = ["evaluate_model", "suite_images", "mask_sha256"]


def mask_sha256(mask: np.ndarray) -> str:
    """SHA-256 of a binary mask ``(H, W)`` as C-ordered uint8 bytes (a fingerprint tests compare exactly)."""
    return hashlib.sha256(np.ascontiguousarray(np.asarray(mask, dtype=np.uint8)).tobytes()).hexdigest()


def suite_images(name: str, *, canvas: int, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boundaries and exact masks of a suite at base canvas ``canvas``, or of a preset's test split.

    A suite (``multi-2`` ... ``large-4x``) is drawn at ``canvas`` (``large-kx`` at ``k * canvas``) with
    ``seed``; a preset name (``shapes-32`` ...) gives its own test split and canvas (``seed`` is the
    preset's data seed), as ``jordanlab eval`` does for a run's ``test`` suite.
    """
    from jordanlab.data import PRESETS, SUITES, make

    if name in PRESETS:
        return make(name, "test", n=n, seed=seed)
    if name in SUITES:
        return make(name, "test", n=n, seed=seed, size=canvas)
    raise ValueError(f"suites: unknown suite {name!r}; valid: {', '.join([*SUITES, *PRESETS])}")


def score_images(model: nn.Module, boundaries: np.ndarray, masks: np.ndarray, *, batch_size: int = 32,
                 device: Any = "cpu", max_iters: int | None = None, patience: int = 10
                 ) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, np.ndarray | None]:
    """One suite's entry (aggregate scores, iterations of iterated models, canvas, seconds), the per-image
    scores, the predicted masks ``(N, H, W)`` and the iterations ``(N,)`` (``None`` for one-pass models)."""
    t0 = time.perf_counter()
    preds, iters = predict_masks(model, boundaries, batch_size=batch_size, device=device, max_iters=max_iters,
                                 patience=patience)
    per = per_image_scores(preds, masks)
    entry: dict[str, Any] = dict(aggregate_scores(per))
    if iters is not None:
        budget = default_max_iters(*boundaries.shape[1:]) if max_iters is None else int(max_iters)
        entry.update(iters_mean=float(iters.mean()), iters_max=int(iters.max()), iters_budget=budget,
                     halted_rate=float((iters < budget).mean()))
    entry["canvas"] = int(boundaries.shape[-1])
    entry["seconds"] = time.perf_counter() - t0
    return entry, per, preds, iters


def evaluate_model(
    model: nn.Module,
    *,
    suites: Sequence[str] | None = None,
    canvas: int = 32,
    n: int | None = 20,
    seed: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
    max_iters: int | None = None,
    patience: int = 10,
    per_image: bool = False,
) -> dict[str, Any]:
    """Score ``model`` (``(N, 1, H, W)`` floats -> ``(N, 1, H, W)`` logits) on suites of exact images.

    The predicted mask is ``logits > 0``; per image, IoU = |P ∩ T| / |P ∪ T| (1 when both are empty),
    accuracy = 1 − (wrong pixels) / (H W), perfect = no wrong pixel; a suite reports their means
    (``mean_iou``, ``pixel_accuracy``, ``perfect_rate``) over its ``n`` images.

    Parameters
    ----------
    model : nn.Module
        Evaluated in ``eval()`` mode (its mode is restored). Recurrent models (``init_state/step/readout``)
        and models with ``forward_with_rounds`` halt as in :func:`~jordanlab.evaluate.predict_masks`.
    suites : sequence of str, optional
        Suite names of ``jordanlab.data.SUITES`` and/or preset names (their test split). Default: every suite.
    canvas : int
        Base canvas of the suites (``large-2x`` is ``2 canvas``); at least 32.
    n : int or None
        Images per suite (the first ``n``; ``None``: the suite's own count, 200).
    seed : int
        Seed of the suites.
    batch_size, device, max_iters, patience
        As for :func:`~jordanlab.evaluate.predict_masks`.
    per_image : bool
        Also return, per suite, ``images``: lists ``iou``, ``perfect``, ``mask_sha256`` (and ``iters``).

    Returns
    -------
    dict
        ``{"canvas": canvas, "suites": {NAME: {"n", "mean_iou", "pixel_accuracy", "perfect_rate",
        "canvas", "seconds"[, "iters_mean", "iters_max", "iters_budget", "halted_rate"][, "images"]}}}``,
        the entries laid out as in ``eval.json``.

    Examples
    --------
    >>> from jordanlab.models import build
    >>> r = evaluate_model(build("programmed-scan"), suites=["nested"], canvas=32, n=2)
    >>> r["suites"]["nested"]["perfect_rate"]
    1.0
    """
    from jordanlab.data import SUITES

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < 32:
        raise ValueError(f"canvas: expected an int >= 32, got {canvas!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n: expected >= 1 images per suite or None, got {n!r}")
    names = list(SUITES) if suites is None else list(suites)
    if isinstance(suites, str):
        raise TypeError("suites: expected a sequence of names, got a str (wrap it in a list)")
    result: dict[str, Any] = {"canvas": canvas, "suites": {}}
    for name in names:
        b, m = suite_images(name, canvas=canvas, n=n, seed=seed)
        entry, per, preds, iters = score_images(model, b, m, batch_size=batch_size, device=device,
                                                max_iters=max_iters, patience=patience)
        if per_image:
            images: dict[str, Any] = {"iou": [float(v) for v in per["iou"]],
                                      "perfect": [bool(v) for v in per["perfect"]],
                                      "mask_sha256": [mask_sha256(p) for p in preds]}
            if iters is not None:
                images["iters"] = [int(v) for v in iters]
            entry["images"] = images
        result["suites"][name] = entry
    return result
