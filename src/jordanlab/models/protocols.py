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
- :class:`HeldRoundsModel`: ``sweep_rounds(x) -> (N,)`` and a ``rounds_under_vmap`` attribute, a model
  whose forward loops a value-dependent number of rounds. ``torch.func.vmap`` lets no value steer a loop,
  so a vmapped call runs inside :func:`held_rounds`, which counts the rounds of the batch on its plain
  values first (:class:`~jordanlab.models.CrossingDepthNet`; the kernel recorders do it for every model).

``isinstance`` checks that the methods exist, not their signatures; the docstrings here are the
contract.

Examples
--------
>>> from jordanlab.models import build
>>> isinstance(build("recurrent", width=4), RecurrentModel), isinstance(build("unet", width=4), GatedModel)
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["FixedPointModel", "GatedModel", "HeldRoundsModel", "RecurrentModel", "held_rounds"]


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


@runtime_checkable
class HeldRoundsModel(Protocol):
    """A fixed-point iteration whose round count can be counted on plain values and then held fixed."""

    #: Rounds every call runs while set (``None``: as many as the values need).
    rounds_under_vmap: int | None

    def sweep_rounds(self, x: torch.Tensor, *, max_rounds: int | None = None) -> torch.Tensor:
        """The rounds ``(N,)`` the forward pass runs on each image of ``x`` (a batch runs their maximum)."""
        ...


class _SweepRounds(nn.Module):
    """``forward = model.sweep_rounds``, so that ``functional_call`` can count rounds at given weights."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.m = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.sweep_rounds(x)


@contextmanager
def held_rounds(model: nn.Module, tensors: Mapping[str, torch.Tensor] | None, x: torch.Tensor) -> Iterator[int | None]:
    """Hold ``model``'s round count at what the batch ``x`` needs, for a ``torch.func.vmap`` over it.

    ``tensors`` are the weights (and buffers) the vmapped call passes to ``functional_call`` (``None``:
    the model's own); ``x`` is the plain batch the vmap runs over, ``(B, C, H, W)``. The rounds are
    counted without gradient at exactly those weights, so the vmapped examples run the rounds their
    batch runs in one plain forward pass (per-example gradients then sum to the batch gradient). Yields
    the held count, or ``None`` (and does nothing) for a model that is not a :class:`HeldRoundsModel`.

    Examples
    --------
    >>> from torch.func import vmap
    >>> from jordanlab.models import build
    >>> _ = torch.manual_seed(0)
    >>> net = build("crossing-depth").double()
    >>> x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    >>> x[:, 0, 2, 2:6] = x[:, 0, 5, 2:6] = x[:, 0, 2:6, 2] = x[:, 0, 2:6, 5] = 1
    >>> params = dict(net.named_parameters())
    >>> with held_rounds(net, params, x) as rounds:
    ...     out = vmap(lambda xi: functional_call(net, params, (xi[None],))[0])(x)
    >>> rounds == int(net.sweep_rounds(x).max()), bool(torch.equal(out, net(x))), net.rounds_under_vmap is None
    (True, True, True)
    """
    if not isinstance(model, HeldRoundsModel):
        yield None
        return
    before = model.rounds_under_vmap
    model.rounds_under_vmap = None  # count what the values need, not an outer hold
    try:
        with torch.no_grad():
            if tensors is None:
                counted = model.sweep_rounds(x)
            else:
                counted = functional_call(_SweepRounds(model), {f"m.{k}": v for k, v in tensors.items()}, (x,))
        model.rounds_under_vmap = int(counted.max())
        yield model.rounds_under_vmap
    finally:
        model.rounds_under_vmap = before
