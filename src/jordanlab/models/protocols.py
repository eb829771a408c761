"""The interfaces a model may offer beyond ``forward``, as runtime-checkable protocols.

The trainer, the evaluator and the kernel recorders ask ``isinstance(model, Protocol)``; a model
offers an interface by defining its methods (no base class to inherit):

- :class:`RecurrentModel`: ``init_state(x) -> s₀``, ``step(x, s) -> s'``, ``readout(s) -> logits``
  (weight-tied iteration; :class:`~jordanlab.models.RecurrentNet`). The progressive loss unrolls it and
  prediction halts when the mask stops changing (:func:`~jordanlab.models.run_until_stable`).
- :class:`GatedModel`: ``gates(x) -> a``, ``readout(x, a) -> logits``, ``gate_penalty(a) -> scalar``
  with ``forward(x) = readout(x, gates(x))`` (:class:`~jordanlab.models.ParityScanNet`,
  :class:`~jordanlab.models.AutomatonScanNet`, :class:`~jordanlab.models.CrossingDepthNet`); the
  standard objective adds ``λ · gate_penalty(gates(x))`` when ``train.gate_penalty > 0``.
- :class:`FixedPointModel`: ``forward_with_rounds(x, *, max_rounds=None) -> (logits, rounds)``, a model
  that iterates to a fixed point and reports the rounds each image used
  (:class:`~jordanlab.models.CrossingDepthNet`).

``isinstance`` checks that the methods exist, not their signatures; the docstrings here are the
contract.

Examples
--------
>>> from jordanlab.models import build
>>> isinstance(build("recurrent", width=4), RecurrentModel), isinstance(build("unet", width=4), GatedModel)
(True, False)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["FixedPointModel", "GatedModel", "RecurrentModel"]


@runtime_checkable
class RecurrentModel(Protocol):
    """A weight-tied iteration: ``logits = readout(step(x, … step(x, init_state(x))))``."""

    def init_state(self, x: torch.Tensor) -> Any:
        """The state before the first iteration (a tensor or a nest of tensors)."""
        ...

    def step(self, x: torch.Tensor, state: Any) -> Any:
        """One iteration: the next state, of the same structure as ``state``."""
        ...

    def readout(self, state: Any) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` of a state."""
        ...


@runtime_checkable
class GatedModel(Protocol):
    """``forward(x) = readout(x, gates(x))`` with a penalty on the gates that the objective may add."""

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """The gates ``a`` of images ``x``."""
        ...

    def readout(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` of images ``x`` with gates ``a``."""
        ...

    def gate_penalty(self, a: torch.Tensor) -> torch.Tensor:
        """A scalar penalty ``P(a)`` (0-d tensor) on the gates."""
        ...


@runtime_checkable
class FixedPointModel(Protocol):
    """A model that iterates to a fixed point and reports the rounds it used per image."""

    def forward_with_rounds(self, x: torch.Tensor, *, max_rounds: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, 1, H, W)`` and the rounds each image used, ``(N,)`` int (at most ``max_rounds``)."""
        ...
