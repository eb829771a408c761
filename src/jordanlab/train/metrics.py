"""Per-image scores of predicted figure masks, defined once for training and evaluation.

For a predicted mask :math:`P` and the exact mask :math:`T` (sets of figure pixels): the IoU of the
figure :math:`|P \\cap T| / |P \\cup T|` (1 when both are empty), the pixel accuracy (share of pixels
where they agree), the number of wrong pixels and the perfect flag (:math:`P = T`).
:mod:`jordanlab.evaluate.metrics` aggregates them over a suite; the training loop's validation
scores logits with :func:`logit_scores`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["logit_scores", "per_image_scores"]


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


def logit_scores(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU and pixel accuracy, float64 ``(N,)`` each, of the masks ``logits > 0`` against ``target > 0.5``.

    :func:`per_image_scores` of the thresholded tensors (on their device), as the training loop reports them.

    Examples
    --------
    >>> iou, acc = logit_scores(torch.tensor([[[2.0, -1.0]]]), torch.tensor([[[1.0, 1.0]]]))
    >>> iou.tolist(), acc.tolist()
    ([0.5], [0.5])
    """
    s = per_image_scores(logits.detach() > 0, target > 0.5)
    return s["iou"], s["accuracy"]
