"""Scores of predicted figure masks against exact ones, per image and aggregated (NumPy and torch).

For a predicted mask :math:`P` and the exact mask :math:`T` (sets of figure pixels):

- IoU of the figure :math:`|P \\cap T| / |P \\cup T|`, defined as 1 when both are empty;
- pixel accuracy: the share of pixels where :math:`P` and :math:`T` agree;
- perfect: every pixel agrees (:math:`P = T`), the measure that tells an algorithm from an
  approximation.

Aggregates are plain means over images: ``mean_iou``, ``pixel_accuracy``, ``perfect_rate``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["per_image_scores", "aggregate_scores", "score_masks"]


def _check_pair(pred: Any, target: Any) -> None:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"pred/target: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (2, 3, 4):
        raise ValueError(f"pred: expected shape (H, W), (N, H, W) or (N, 1, H, W), got {tuple(pred.shape)}")


def _flat_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(images, pixels per image) of a (H, W), (N, H, W) or (N, 1, H, W) shape."""
    if len(shape) == 2:
        return 1, shape[0] * shape[1]
    return shape[0], int(np.prod(shape[1:]))


def per_image_scores(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Per-image IoU of the figure, pixel accuracy and perfect flag.

    Parameters
    ----------
    pred, target : ndarray or Tensor of shape (N, H, W), (N, 1, H, W) or (H, W)
        Binary masks (nonzero = figure). Both NumPy or both torch.

    Returns
    -------
    dict with ``iou`` (float64, (N,)), ``accuracy`` (float64, (N,)), ``perfect`` (bool, (N,)) and
    ``errors`` (int64, (N,): wrong pixels); NumPy arrays for NumPy input, tensors for torch input.

    Examples
    --------
    >>> t = np.array([[1, 1], [0, 0]], np.uint8)
    >>> p = np.array([[1, 0], [0, 0]], np.uint8)
    >>> s = per_image_scores(p, t)
    >>> float(s["iou"][0]), float(s["accuracy"][0]), bool(s["perfect"][0])
    (0.5, 0.75, False)
    """
    _check_pair(pred, target)
    if isinstance(pred, torch.Tensor) != isinstance(target, torch.Tensor):
        raise TypeError("pred/target: expected both numpy arrays or both torch tensors")
    if isinstance(pred, torch.Tensor):
        p = (pred != 0).reshape(_flat_shape(tuple(pred.shape)))
        t = (target != 0).reshape(p.shape)
        inter = (p & t).sum(1, dtype=torch.int64)
        union = (p | t).sum(1, dtype=torch.int64)
        errors = (p != t).sum(1, dtype=torch.int64)
        iou = torch.where(union > 0, inter.double() / union.clamp_min(1).double(), torch.ones_like(union, dtype=torch.float64))
        acc = 1.0 - errors.double() / p.shape[1]
        return {"iou": iou, "accuracy": acc, "perfect": errors == 0, "errors": errors}
    pa, ta = np.asarray(pred), np.asarray(target)
    p = (pa != 0).reshape(_flat_shape(pa.shape))
    t = (ta != 0).reshape(p.shape)
    inter = (p & t).sum(1, dtype=np.int64)
    union = (p | t).sum(1, dtype=np.int64)
    errors = (p != t).sum(1, dtype=np.int64)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float64)
    acc = 1.0 - errors / p.shape[1]
    return {"iou": iou, "accuracy": acc, "perfect": errors == 0, "errors": errors}


def aggregate_scores(per_image: dict[str, Any]) -> dict[str, float | int]:
    """``{"n", "mean_iou", "pixel_accuracy", "perfect_rate"}``: means over the images of :func:`per_image_scores`.

    ``pixel_accuracy`` is the mean of per-image accuracies (equal to the pooled pixel accuracy,
    since every image of a suite has the same size).
    """
    iou = per_image["iou"]
    n = int(iou.shape[0])
    if n == 0:
        raise ValueError("per_image: no images to aggregate")

    def mean(v: Any) -> float:
        return float(v.double().mean()) if isinstance(v, torch.Tensor) else float(np.mean(v, dtype=np.float64))

    return {"n": n, "mean_iou": mean(iou), "pixel_accuracy": mean(per_image["accuracy"]),
            "perfect_rate": mean(per_image["perfect"])}


def score_masks(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> dict[str, float | int]:
    """:func:`aggregate_scores` of :func:`per_image_scores` (``n``, ``mean_iou``, ``pixel_accuracy``, ``perfect_rate``)."""
    return aggregate_scores(per_image_scores(pred, target))
