"""Training objectives: the per-pixel loss (:mod:`jordanlab.train.losses`) and the progressive loss.

An objective does two things: it says which module is differentiated (``objective.module(model)``,
the thing ``DistributedDataParallel`` wraps, so gradients are all-reduced whatever the model's
interface) and it turns a batch into a loss (``objective.loss(net, x, y, step=...)``). The loop
does not know which one it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from jordanlab._seeds import torch_seed
from jordanlab.models.protocols import GatedModel, RecurrentModel

from .config import TrainConfig
from .losses import pixel_loss

__all__ = [
    "pixel_loss",
    "Objective",
    "StandardObjective",
    "GatedForward",
    "has_gates",
    "ProgressiveObjective",
    "ProgressiveUnroll",
    "build_objective",
    "is_recurrent",
]


def is_recurrent(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`~jordanlab.models.RecurrentModel` (``init_state``, ``step``, ``readout``)."""
    return isinstance(model, RecurrentModel)


def _detach(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    if isinstance(state, dict):
        return {k: _detach(v) for k, v in state.items()}
    return state


class ProgressiveUnroll(nn.Module):
    """Runs a recurrent model twice: ``max_iters`` steps, and ``n`` steps without grad then ``k`` with.

    ``forward(x, n, k) -> (logits_max_iters, logits_progressive)``. Wrapping both unrolls in one
    ``forward`` lets ``DistributedDataParallel`` see (and all-reduce) every gradient.
    """

    def __init__(self, model: nn.Module, max_iters: int) -> None:
        super().__init__()
        if not is_recurrent(model):
            raise ValueError(
                f"model: {type(model).__name__} has no init_state/step/readout, so the progressive "
                "objective cannot unroll it; use train.objective = \"standard\""
            )
        self.model = model
        self.max_iters = int(max_iters)

    def forward(self, x: torch.Tensor, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        m = self.model
        state = m.init_state(x)
        for _ in range(self.max_iters):
            state = m.step(x, state)
        out_max = m.readout(state)
        if k <= 0:
            return out_max, None
        with torch.no_grad():
            s = m.init_state(x)
            for _ in range(n):
                s = m.step(x, s)
        s = _detach(s)
        for _ in range(k):
            s = m.step(x, s)
        return out_max, m.readout(s)


class Objective(Protocol):
    """What the loop needs from a training objective."""

    def module(self, model: nn.Module) -> nn.Module: ...

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: int) -> tuple[torch.Tensor, torch.Tensor]: ...


def has_gates(model: nn.Module) -> bool:
    """Whether ``model`` is a :class:`~jordanlab.models.GatedModel` (``gates``, ``readout``, ``gate_penalty``)."""
    return isinstance(model, GatedModel)


class GatedForward(nn.Module):
    """``forward(x) -> (model.readout(x, a), model.gate_penalty(a))`` with ``a = model.gates(x)``.

    One pass computes the logits and the gate penalty; as a module it is what
    ``DistributedDataParallel`` wraps, so every gradient is all-reduced.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not has_gates(model):
            raise ValueError(
                f"model: {type(model).__name__} exposes no gates (gates/readout/gate_penalty), so "
                "train.gate_penalty cannot apply; set train.gate_penalty = 0 or use a gated model "
                "such as parity-scan"
            )
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.model.gates(x)
        return self.model.readout(x, a), self.model.gate_penalty(a)


@dataclass(frozen=True)
class StandardObjective:
    r"""``L = pixel_loss(model(x), y)``, plus an optional ramped gate penalty.

    Notes
    -----
    With ``gate_penalty`` :math:`\lambda > 0`:
    :math:`L = \mathrm{pixel\_loss} + \lambda\,\rho(s)\,P(a)` with :math:`P` the model's
    ``gate_penalty`` of its gates and the ramp :math:`\rho(s) = \mathrm{clip}((s - s_0)/(s_1 - s_0), 0, 1)`
    (a step at :math:`s_0` when :math:`s_1 = s_0`), :math:`s_0` = ``penalty_start``,
    :math:`s_1` = ``penalty_full``.
    """

    kind: str = "bce"
    gate_penalty: float = 0.0
    penalty_start: int = 0
    penalty_full: int = 0

    def module(self, model: nn.Module) -> nn.Module:
        return GatedForward(model) if self.gate_penalty > 0 else model

    def penalty_weight(self, step: int) -> float:
        r""":math:`\lambda\,\rho(s)` at optimizer step ``step``."""
        if self.gate_penalty <= 0 or step < self.penalty_start:
            return 0.0
        span = self.penalty_full - self.penalty_start
        ramp = 1.0 if span <= 0 else min(1.0, (step - self.penalty_start) / span)
        return self.gate_penalty * ramp

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.gate_penalty <= 0:
            logits = net(x)
            return pixel_loss(logits, y, self.kind), logits
        logits, penalty = net(x)
        return pixel_loss(logits, y, self.kind) + self.penalty_weight(step) * penalty.float(), logits


@dataclass(frozen=True)
class ProgressiveObjective:
    r"""The progressive loss of Bansal et al. (2022) for weight-tied recurrent models.

    Notes
    -----
    :math:`L = (1-\alpha) L(f^{(M)}(x), y) + \alpha L(f^{(n \to n+k)}(x), y)` where
    :math:`f^{(M)}` runs ``max_iters`` = M iterations with gradients, and the progressive term runs
    :math:`n \sim U\{0, \dots, M-1\}` iterations without gradients, detaches the state, then
    :math:`k \sim U\{1, \dots, M-n\}` iterations with gradients. ``n`` and ``k`` are drawn from a
    generator seeded by ``(seed, step)``: identical on every DDP rank and after a resume.

    References
    ----------
    Bansal et al., End-to-end Algorithm Synthesis with Recurrent Networks: Logical Extrapolation
    Without Overthinking, NeurIPS 2022, arXiv:2202.05826.
    """

    kind: str = "bce"
    alpha: float = 0.5
    max_iters: int = 20
    seed: int = 0

    def module(self, model: nn.Module) -> nn.Module:
        return ProgressiveUnroll(model, self.max_iters)

    def draw(self, step: int) -> tuple[int, int]:
        """``(n, k)`` for optimizer step ``step``; ``k = 0`` when ``alpha == 0``."""
        if self.alpha == 0.0:
            return 0, 0
        g = torch.Generator().manual_seed(torch_seed(self.seed, step + 7))
        n = int(torch.randint(0, self.max_iters, (1,), generator=g))
        k = int(torch.randint(1, self.max_iters - n + 1, (1,), generator=g))
        return n, k

    def loss(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, k = self.draw(step)
        out_max, out_prog = net(x, n, k)
        loss = pixel_loss(out_max, y, self.kind)
        if out_prog is not None:
            loss = (1.0 - self.alpha) * loss + self.alpha * pixel_loss(out_prog, y, self.kind)
        return loss, out_max


def build_objective(config: TrainConfig) -> StandardObjective | ProgressiveObjective:
    """The objective named by ``config.objective`` with ``config.loss`` as the per-pixel loss."""
    if config.objective == "standard":
        return StandardObjective(
            kind=config.loss, gate_penalty=config.gate_penalty,
            penalty_start=config.gate_penalty_start, penalty_full=config.gate_penalty_full,
        )
    if config.objective == "progressive":
        return ProgressiveObjective(
            kind=config.loss, alpha=config.progressive_alpha,
            max_iters=config.progressive_max_iters, seed=config.seed,
        )
    raise ValueError(f"config.objective: unknown objective {config.objective!r}; expected standard or progressive")
