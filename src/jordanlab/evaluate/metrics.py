"""Scores of predicted figure masks against exact ones, per image and aggregated (NumPy and torch).

For a predicted mask :math:`P` and the exact mask :math:`T` (sets of figure pixels):

- IoU of the figure :math:`|P \\cap T| / |P \\cup T|`, defined as 1 when both are empty;
- pixel accuracy: the share of pixels where :math:`P` and :math:`T` agree;
- perfect: every pixel agrees (:math:`P = T`), the measure that tells an algorithm from an
  approximation.

Aggregates are plain means over images: ``mean_iou``, ``pixel_accuracy``, ``perfect_rate``.
The per-image scores are defined once, in :mod:`jordanlab.train.metrics` (the training loop's
validation uses them too), and re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from jordanlab.train.metrics import per_image_scores

__all__ = ["per_image_scores", "aggregate_scores", "score_masks"]


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
