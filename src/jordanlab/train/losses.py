r"""The per-pixel losses, defined once for the trainer and the kernel decompositions.

For a logit :math:`f` and a target :math:`y \in \{0, 1\}` (or ``[0, 1]``):

- ``"bce"``: binary cross-entropy on logits, :math:`\ell = \log(1 + e^{f}) - y f`,
  :math:`\partial\ell/\partial f = \sigma(f) - y`;
- ``"mse"``: squared error of the probability, :math:`\ell = (\sigma(f) - y)^2`,
  :math:`\partial\ell/\partial f = 2(\sigma(f) - y)\,\sigma(f)(1 - \sigma(f))` (the trainer's ``mse``);
- ``"mse-logits"``: squared error of the raw output, :math:`\ell = (f - y)^2`,
  :math:`\partial\ell/\partial f = 2(f - y)` (Domingos' and the NTK literature's squared loss; not a
  training loss of ``jordanlab train``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "TRAIN_LOSSES", "elementwise_loss", "loss_derivative", "pixel_loss"]

#: Every loss :func:`elementwise_loss` knows.
LOSSES = ("bce", "mse", "mse-logits")
#: The losses ``train.loss`` may name.
TRAIN_LOSSES = ("bce", "mse")


def _check_kind(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {kind!r}")


def elementwise_loss(outputs: torch.Tensor, targets: torch.Tensor, kind: str, *, reduction: str = "none") -> torch.Tensor:
    """ℓ(f, y) of every element, in the inputs' dtype; ``reduction="mean"`` averages them (one torch reduction).

    Examples
    --------
    >>> f, y = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
    >>> elementwise_loss(f, y, "mse-logits").tolist(), elementwise_loss(f, y, "mse").tolist()[0]
    ([1.0, 1.0], 0.25)
    """
    _check_kind(kind)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(outputs, targets, reduction=reduction)
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(outputs), targets, reduction=reduction)
    return F.mse_loss(outputs, targets, reduction=reduction)


def loss_derivative(outputs: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """∂ℓ/∂f of every element (see the module docstring), in the inputs' dtype.

    Examples
    --------
    >>> loss_derivative(torch.tensor([0.0]), torch.tensor([1.0]), "mse").tolist()  # 2 (0.5 − 1) · 0.25
    [-0.25]
    """
    _check_kind(kind)
    if kind == "bce":
        return torch.sigmoid(outputs) - targets
    if kind == "mse":
        p = torch.sigmoid(outputs)
        return 2.0 * (p - targets) * p * (1.0 - p)
    return 2.0 * (outputs - targets)


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    r"""Mean per-pixel loss of ``logits`` (N, 1, H, W) against a {0, 1} ``target`` of the same shape, in float32.

    :func:`elementwise_loss` with ``reduction="mean"`` after casting both to float32 (the trainer's loss):
    ``bce`` :math:`\mathrm{mean}\,[\max(z,0) - z y + \log(1 + e^{-|z|})]`, ``mse``
    :math:`\mathrm{mean}\,(\sigma(z) - y)^2`.
    """
    if logits.shape != target.shape:
        raise ValueError(f"logits/target: shapes differ, {tuple(logits.shape)} vs {tuple(target.shape)}")
    if kind not in TRAIN_LOSSES:
        raise ValueError(f"kind: unknown loss {kind!r}; expected bce or mse")
    return elementwise_loss(logits.float(), target.float(), kind, reduction="mean")
