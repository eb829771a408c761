"""Exact path decomposition of a real Adam run over its training examples (issue 5).

Domingos' path kernel (2020) writes a gradient-descent model as Σ_i a_i K^p(x, x_i) + b. The same
bookkeeping holds for Adam, because its first moment is *linear* in the per-example gradients of
every past step. With torch.optim.Adam (or AdamW with ``weight_decay=0``) at step t = 1, 2, …

    g_t   = c_t (Σ_{i∈B_t} ∇ℓ_i(w_t) / |B_t| + λ_t ∇P(w_t))     (c_t: the gradient-clipping factor)
    m_t   = β1 m_{t−1} + (1 − β1) g_t,     v_t = β2 v_{t−1} + (1 − β2) g_t²
    Δw_t  = −(lr_t / (1 − β1^t)) · D_t ⊙ m_t,     D_t = 1 / (sqrt(v_t) / sqrt(1 − β2^t) + eps)

Keeping each example's share M_t[i] of m_t (M_t[i] = β1 M_{t−1}[i] + (1 − β1) c_t 1[i∈B_t] ∇ℓ_i / |B_t|,
plus one row for the penalty λ_t P) splits every update exactly, Δw_t = Σ_i Δw_{t,i} + Δw_{t,reg}, and
for a query pixel f(x_q) the fundamental theorem of calculus along each segment gives

    f(w_T, x_q) − f(w_0, x_q) = Σ_t ḡ_t(x_q) · Δw_t = Σ_i a_i + a_reg,
    a_i = Σ_t ḡ_t(x_q) · Δw_{t,i},   ḡ_t(x_q) = ∫_0^1 ∇f(w_t + sΔw_t, x_q) ds  (Gauss–Legendre).

This is the path kernel with Adam's preconditioner: the sum is exact, but the weights D_t depend on
the data through v_t (and c_t through the batch's gradient norm), so the "kernel" pairing x_q with x_i
is data-dependent, not a fixed function of the two inputs. a_i sums over all steps and augmented
copies of example i (keyed by its dataset index), including its effect through the momentum in the
steps after it was seen.

Two residuals are reported, never tuned: the per-step bookkeeping residual
||Σ_i Δw_{t,i} + Δw_{t,reg} − (w_{t+1} − w_t)|| / ||w_{t+1} − w_t|| (float rounding of the run itself:
~1e-7 for a float32 run, ~1e-15 in float64), and the output residual
f_T − f_0 − Σ_i a_i − a_reg (the bookkeeping part, reported separately, plus the quadrature error:
float rounding when each segment is split at the query's ReLU/max-pool kinks, ``kinks=True``, the
default; the O(kink) error of fixed nodes straddling them with ``kinks=False``). For Ranger see
``kernels.ranger_path``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from jordanlab.models.protocols import GatedModel, held_rounds
from jordanlab.train.losses import TRAIN_LOSSES, elementwise_loss

from . import _functional as F
from ._segments import SegmentQuadrature

__all__ = ["AdamPathDecomposition", "AdamPathRecorder", "check_adam", "PIXEL_LOSSES"]

#: Per-pixel losses of the trainer (``train.loss``), recomputed in the recorder's dtype.
PIXEL_LOSSES = TRAIN_LOSSES


def check_adam(optimizer: torch.optim.Optimizer) -> None:
    """Raise ``ValueError`` unless ``optimizer`` is plain Adam: torch.optim.Adam/AdamW, no weight decay, no amsgrad.

    Weight decay would add a term −lr·wd·w_t that belongs to no example (and, for Adam's coupled form,
    enters v); amsgrad replaces v_t by a running maximum; both are refused rather than approximated.
    """
    name = type(optimizer).__name__
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        raise ValueError(
            f"optimizer is {name}: the Adam path decomposition needs torch.optim.Adam or AdamW "
            "(for plain SGD use PathRecorder; Ranger's Lookahead and rectification are not handled)"
        )
    for g in optimizer.param_groups:
        bad = {k: g.get(k) for k in ("weight_decay", "amsgrad", "maximize") if g.get(k)}
        if bad:
            raise ValueError(f"optimizer {name} has {bad}: the decomposition needs weight_decay=0, amsgrad=False, "
                             "maximize=False")
    keys = {(float(g["lr"]), tuple(float(b) for b in g["betas"]), float(g["eps"])) for g in optimizer.param_groups}
    if len(keys) != 1:
        raise ValueError(f"optimizer param_groups must share lr, betas and eps, got {sorted(keys)}")


class PathResult:
    """What every recorded path decomposition derives from its fields: the steps and the relative residual."""

    lrs: list[float]
    initial: Tensor
    final: Tensor
    residual: Tensor

    @property
    def steps(self) -> int:
        return len(self.lrs)

    @property
    def relative_residual(self) -> Tensor:
        """|residual_q| / |final_q − initial_q|, shape (Q,)."""
        change = (self.final - self.initial).abs().clamp_min(torch.finfo(self.final.dtype).tiny)
        return self.residual.abs() / change


@dataclass(frozen=True)
class AdamPathDecomposition(PathResult):
    """Result of a recorded Adam run: final = initial + contributions.sum(1) + regulariser + residual.

    Attributes
    ----------
    initial, final : Tensor of shape (Q,)
        f(w_0, x_q) and f(w_T, x_q) at the query pixels.
    contributions : Tensor of shape (Q, N)
        a_i = Σ_t ḡ_t(x_q)·Δw_{t,i}, the contribution of training example i (dataset index).
    regulariser : Tensor of shape (Q,)
        a_reg = Σ_t ḡ_t(x_q)·Δw_{t,reg}, the share of the penalty term (0 without one).
    residual : Tensor of shape (Q,)
        final − initial − Σ_i a_i − a_reg = ``bookkeeping`` + quadrature error.
    bookkeeping : Tensor of shape (Q,)
        Σ_t ḡ_t·(Δw_t − Σ_i Δw_{t,i} − Δw_{t,reg}): the part of the residual due to the update split.
    step_residuals : Tensor of shape (T,)
        ||Σ_i Δw_{t,i} + Δw_{t,reg} − Δw_t|| / max(||Δw_t||, ||Σ_i Δw_{t,i} + Δw_{t,reg}||) per step. In a
        float32 run, steps whose update is below the weights' resolution (lr → 0 at the end of a one-cycle
        schedule: Δw_t rounds to 0) have a relative residual near 1 but a tiny absolute error: see
        ``step_errors`` and ``update_norms``.
    step_errors, update_norms : Tensor of shape (T,)
        ||Σ_i Δw_{t,i} + Δw_{t,reg} − Δw_t|| and ||Δw_t||.
    momentum_residuals : Tensor of shape (T,)
        ||Σ_i M_t[i] + M_t,reg − m_t|| / ||m_t|| against the optimizer's own ``exp_avg``.
    gradient_residuals : Tensor of shape (T,)
        ||g_t − p.grad|| / ||p.grad||: the recomputed (clipped) gradient against the one the optimizer used
        (nan when ``p.grad`` was not available).
    clip_factors : Tensor of shape (T,)
        c_t.
    lrs : list of float
    quadrature : int
        Gauss–Legendre nodes per step (per piece with kink splitting).
    pieces, kinks : Tensor of shape (T, Q), optional
        With kink splitting: the pieces of constant activation pattern each step's segment was split into,
        and the pattern changes located, per query (``None`` without kink splitting).
    unresolved : int
        Pieces that failed the fundamental-theorem check after every refinement (see ``kernels._segments``).
    """

    initial: Tensor
    final: Tensor
    contributions: Tensor
    regulariser: Tensor
    residual: Tensor
    bookkeeping: Tensor
    step_residuals: Tensor
    step_errors: Tensor
    update_norms: Tensor
    momentum_residuals: Tensor
    gradient_residuals: Tensor
    clip_factors: Tensor
    quadrature: int
    lrs: list[float] = field(default_factory=list)
    pieces: Tensor | None = None
    kinks: Tensor | None = None
    unresolved: int = 0



class _Penalty(nn.Module):
    """``forward(x) = model.gate_penalty(model.gates(x))``: the gate penalty as a module for functional_call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.gate_penalty(self.model.gates(x))


class AdamPathRecorder:
    """A training step hook that records the exact Adam path decomposition of query pixels.

    Usage with the real trainer (the recorded run *is* the trained model)::

        rec = AdamPathRecorder(queries, pixels, n_train=len(train_set), loss="bce",
                               grad_clip=config.optim.grad_clip,
                               penalty_weight=build_objective(config.train).penalty_weight)
        train(config, fresh_run_dir, step_hooks=[rec])
        result = rec.result()

    The trainer calls ``bind(model, optimizer)`` once, then ``before_step(indices, x, y)`` before the
    loss and ``after_step()`` after ``optimizer.step()``. The recorder recomputes, in ``dtype``, the
    per-example gradients ∇ℓ_i(w_t) (vmap), the penalty gradient and the clipping factor
    c_t = min(1, grad_clip / (||g_t|| + 1e-6)) (as ``clip_grad_norm_``), updates the per-example first
    moments M (memory (N + 1) × P), reads D_t from the optimizer's ``exp_avg_sq`` and ``step``, and
    contracts with the segment-averaged query gradients. The loss must be ``mean_i ℓ_i`` over the batch
    (images of one size) plus ``penalty_weight(t) · model.gate_penalty(model.gates(x))``.

    Parameters
    ----------
    queries : sequence of Tensor of shape (C, H, W)
        Query images; sizes may differ (fully convolutional models).
    pixels : sequence of (row, col)
        One output pixel per query.
    n_train : int
        Size of the training set (dataset indices lie in [0, n_train)).
    loss : {"bce", "mse"}
        The trainer's per-pixel loss (``train.loss``).
    grad_clip : float
        ``optim.grad_clip`` (0: no clipping).
    penalty_weight : callable, optional
        λ_t as a function of the 0-based optimizer step (``StandardObjective.penalty_weight``); ``None``: no penalty.
    quadrature : int
        Gauss–Legendre nodes per step for ḡ_t.
    dtype : torch.dtype
        Precision of the query gradients, the per-example moments and the contractions.
    kinks : bool
        Split each step's segment where the query's ReLU/max-pool pattern changes and integrate each piece
        (``kernels._segments.SegmentQuadrature``): exact across kinks; ``False``: ``quadrature`` fixed nodes.
    detect : int
        Grid intervals of the pattern search per segment (with ``kinks``).
    gradient_dtype : torch.dtype, optional
        Precision in which the per-example and penalty gradients are recomputed; ``None`` (default): the live
        model's own dtype, so that they reproduce the gradient the optimizer consumed, rounding included (in a
        float32 run, saturated tanh gates have a float32 derivative of exactly 0 where float64 gives ~1e-8; a
        float64 recomputation would then not sum to the run's gradient).
    """

    def __init__(
        self,
        queries: Sequence[Tensor],
        pixels: Sequence[Sequence[int]],
        n_train: int,
        *,
        loss: str = "bce",
        grad_clip: float = 0.0,
        penalty_weight: Callable[[int], float] | None = None,
        quadrature: int = 2,
        dtype: torch.dtype = torch.float64,
        gradient_dtype: torch.dtype | None = None,
        kinks: bool = True,
        detect: int = 2,
    ) -> None:
        if loss not in PIXEL_LOSSES:
            raise ValueError(f"loss must be one of {PIXEL_LOSSES}, got {loss!r}")
        if not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train must be a positive int, got {n_train!r}")
        if not (isinstance(grad_clip, (int, float)) and grad_clip >= 0):
            raise ValueError(f"grad_clip must be a float >= 0 (0: no clipping), got {grad_clip!r}")
        queries = list(queries)
        if not queries or len(queries) != len(pixels):
            raise ValueError(f"queries and pixels must be non-empty and of equal length, got {len(queries)} and {len(pixels)}")
        for q, (x, (r, c)) in enumerate(zip(queries, pixels)):
            if not isinstance(x, Tensor) or x.ndim != 3:
                raise ValueError(f"queries[{q}] must be a (C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
            if not (0 <= r < x.shape[-2] and 0 <= c < x.shape[-1]):
                raise ValueError(f"pixels[{q}] = ({r}, {c}) lies outside the {x.shape[-2]}x{x.shape[-1]} query")
        self.queries = [x.detach().to(dtype) for x in queries]
        self.pixels = [(int(r), int(c)) for r, c in pixels]
        self.n_train, self.loss, self.grad_clip = n_train, loss, float(grad_clip)
        self.penalty_weight = penalty_weight
        self.nodes, self.weights = F.gauss_legendre(quadrature, dtype, torch.device("cpu"))
        self.quadrature, self.dtype, self.gradient_dtype = quadrature, dtype, gradient_dtype
        self.segments = SegmentQuadrature(nodes=quadrature, detect=detect) if kinks else None
        self.model: nn.Module | None = None
        self._pending: tuple | None = None

    # -- binding -----------------------------------------------------------------------------------------
    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Attach to the loop's model and optimizer (called once by the trainer before the first step)."""
        F.check_model(model)
        check_adam(optimizer)
        self._setup(model, optimizer)

    def _setup(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Buffers and snapshots shared by the Adam and Ranger recorders (the optimizer already checked)."""
        if self.penalty_weight is not None and not isinstance(model, GatedModel):
            raise ValueError(f"penalty_weight is given but the model {type(model).__name__} is not a GatedModel "
                             "(gates/readout/gate_penalty): there is no gate penalty to record")
        if any(optimizer.state.get(p) for p in model.parameters()):
            raise ValueError("optimizer already has state (a resumed run?): the momentum history of the earlier "
                             "steps is unknown; record a fresh run in an empty run directory")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
        missing = [n for n, p in named if id(p) not in in_opt]
        if missing:
            raise ValueError(f"trainable parameters {missing} are not in the optimizer")
        self.model, self.optimizer, self.named = model, optimizer, named
        self.device = named[0][1].device
        self.copy = copy.deepcopy(model).to(self.dtype).eval()  # queries read as evaluate reads them
        self.state = {k: (v.to(self.dtype) if v.is_floating_point() else v).clone()  # never the live buffers
                      for k, v in F.frozen_state(model).items()}
        gdtype = self.gradient_dtype or named[0][1].dtype
        self.gdtype = gdtype
        self.grad_copy = copy.deepcopy(model).to(gdtype)
        self.grad_state = {k: v.to(gdtype) if v.is_floating_point() else v for k, v in F.frozen_state(model).items()}
        self.penalty_net = _Penalty(self.grad_copy) if self.penalty_weight is not None else None
        self.sizes = [p.numel() for _, p in named]
        n_params = sum(self.sizes)
        rows = self._share_rows()
        self.moments = torch.zeros(rows, n_params, dtype=self.dtype, device=self.device)
        self.moment_reg = torch.zeros(n_params, dtype=self.dtype, device=self.device)
        q = len(self.queries)
        self.queries = [x.to(self.device) for x in self.queries]
        self.contrib = torch.zeros(q, rows, dtype=self.dtype, device=self.device)
        self.reg = torch.zeros(q, dtype=self.dtype, device=self.device)
        self.book = torch.zeros(q, dtype=self.dtype, device=self.device)
        self.initial = self.query_values(self._weights())
        self.t = 0
        self.lrs: list[float] = []
        self.step_res: list[float] = []
        self.step_err: list[float] = []
        self.step_norm: list[float] = []
        self.mom_res: list[float] = []
        self.grad_res: list[float] = []
        self.clips: list[float] = []
        self.pieces: list[list[int]] = []
        self.kinks: list[list[int]] = []
        self.unresolved = 0

    def _share_rows(self) -> int:
        """Rows of the moment shares M: one per training example (the adjoint recorder keeps one, their sum)."""
        return self.n_train

    def _rows(self, idx: Tensor) -> Tensor:
        """The rows of M that the batch ``idx`` (dataset indices) adds its per-example gradients to."""
        return idx

    def _centralize(self, rows: Tensor) -> Tensor:
        """The optimizer's gradient transform applied to each row (B, P): the identity for Adam (GC for Ranger)."""
        return rows

    def _record(self, *, coef: Tensor, gbar: Tensor, synced: bool, alpha: float, beta1: float, clip: float,
                w0: dict[str, Tensor], idx: Tensor, xb: Tensor, yb: Tensor) -> None:
        """Called once per step with Δw_{t,i} = coef ⊙ M_t[i] (Lookahead: α coef ⊙ M_t[i] − (1 − α) F[i] at a
        sync) and ḡ_t; a no-op here (the adjoint recorder stores them for its backward sweep)."""

    def _weights(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        return {n: p.detach().to(dtype or self.dtype).clone() for n, p in self.named}

    def _unflat(self, vec: Tensor) -> dict[str, Tensor]:
        parts = torch.split(vec, self.sizes)
        return {n: v.reshape(p.shape) for (n, p), v in zip(self.named, parts)}

    # -- model evaluations -------------------------------------------------------------------------------
    def _f(self, w: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.copy, {**w, **self.state}, (x,))

    def query_values(self, w: dict[str, Tensor]) -> Tensor:
        """f(w, x_q) at each query pixel, shape (Q,)."""
        with torch.no_grad():
            return torch.stack([self._f(w, x[None])[0, 0, r, c] for x, (r, c) in zip(self.queries, self.pixels)])

    def _query_grads(self, w: dict[str, Tensor]) -> Tensor:
        """∇_w f(w, x_q)[pixel] for every query, shape (Q, P)."""
        rows = []
        for x, (r, c) in zip(self.queries, self.pixels):
            g = grad(lambda p, x=x, r=r, c=c: self._f(p, x[None])[0, 0, r, c])(w)
            rows.append(F.flatten(g, 0))
        return torch.stack(rows)

    def _segment_grads(self, w0: dict[str, Tensor], step: dict[str, Tensor]) -> Tensor:
        """ḡ_t(x_q) = ∫_0^1 ∇f(w_t + sΔw_t, x_q) ds for every query, shape (Q, P): kink-split or fixed nodes."""
        if self.segments is None:
            return sum(wk * self._query_grads({n: w0[n] + tk * step[n] for n in w0})
                       for tk, wk in zip(self.nodes.tolist(), self.weights.tolist()))
        rows, pieces, kinks = [], [], []
        for x, (r, c) in zip(self.queries, self.pixels):
            g, info = self.segments.average_gradient(lambda p, x=x, r=r, c=c: self._f(p, x[None])[0, 0, r, c], w0, step)
            rows.append(g.to(self.dtype))
            pieces.append(info.pieces)
            kinks.append(info.kinks)
            self.unresolved += info.unresolved
        self.pieces.append(pieces)
        self.kinks.append(kinks)
        return torch.stack(rows)

    def _example_grads(self, w: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        """∇ℓ_i(w) for every example of the batch, shape (B, P)."""

        def loss_i(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            out = functional_call(self.grad_copy, {**p, **self.grad_state}, (x[None],))
            return elementwise_loss(out, y[None].reshape(out.shape), self.loss, reduction="mean")

        with held_rounds(self.grad_copy, {**w, **self.grad_state}, xb):  # a fixed-point model runs its batch's rounds
            return F.flatten(vmap(grad(loss_i), (None, 0, 0))(w, xb, yb), lead=1)

    def _penalty_grad(self, w: dict[str, Tensor], xb: Tensor, weight: float) -> Tensor:
        """∇(λ_t P(w; batch)), shape (P,)."""
        prefixed = {f"model.{k}": v for k, v in {**w, **self.grad_state}.items()}
        keys = list(w)

        def pen(p: dict[str, Tensor]) -> Tensor:
            full = {**prefixed, **{f"model.{k}": p[k] for k in keys}}
            return weight * functional_call(self.penalty_net, full, (xb,))

        return F.flatten(grad(pen)(w), 0)

    # -- the hook ----------------------------------------------------------------------------------------
    def before_step(self, batch_indices: Sequence[int] | Tensor, inputs: Tensor, targets: Tensor) -> None:
        """Snapshot w_t, the batch (dataset indices, augmented inputs, targets) and the step's lr."""
        if self.model is None:
            raise RuntimeError("bind(model, optimizer) must be called before the first step")
        if self._pending is not None:
            raise RuntimeError("before_step called twice without after_step")
        check_adam(self.optimizer)
        idx = torch.as_tensor(batch_indices, dtype=torch.long).reshape(-1).to(self.device)
        if idx.numel() != inputs.shape[0] or torch.unique(idx).numel() != idx.numel():
            raise ValueError(f"batch_indices must be {inputs.shape[0]} distinct dataset indices, got {idx.tolist()}")
        if int(idx.min()) < 0 or int(idx.max()) >= self.n_train:
            raise ValueError(f"batch_indices must lie in [0, {self.n_train}), got {idx.tolist()}")
        xb = inputs.detach().to(self.gdtype)
        yb = targets.detach().to(self.gdtype)
        self._pending = (self._weights(), self._weights(self.gdtype), idx, xb, yb)

    def after_step(self) -> None:
        """Read w_{t+1} and the optimizer state, split the update over the examples, and contract with ḡ_t."""
        if self._pending is None:
            raise RuntimeError("after_step called without before_step")
        w0, w0_grad, idx, xb, yb = self._pending
        self._pending = None
        group = self.optimizer.param_groups[0]
        lr, (beta1, beta2), eps = float(group["lr"]), group["betas"], float(group["eps"])
        w1 = self._weights()
        delta = F.flatten(w1, 0) - F.flatten(w0, 0)

        # g_t = c_t (Σ_i ∇ℓ_i / B + λ_t ∇P), the gradient the optimizer consumed
        per_example = self._example_grads(w0_grad, xb, yb).to(self.dtype) / xb.shape[0]
        weight = float(self.penalty_weight(self.t)) if self.penalty_weight is not None else 0.0
        reg_grad = (self._penalty_grad(w0_grad, xb, weight).to(self.dtype) if weight != 0.0
                    else torch.zeros_like(delta))
        total = per_example.sum(0) + reg_grad
        clip = 1.0
        if self.grad_clip > 0:
            clip = min(1.0, self.grad_clip / (float(total.norm()) + 1e-6))
        used = [p.grad for _, p in self.named]
        if all(g is not None for g in used):
            seen = torch.cat([g.detach().reshape(-1).to(self.dtype) for g in used])
            self.grad_res.append(float((clip * total - seen).norm() / seen.norm().clamp_min(1e-300)))
        else:
            self.grad_res.append(math.nan)

        # per-example first moments, then the exact split of this step's update
        self.moments.mul_(beta1)
        self.moments.index_add_(0, self._rows(idx), (1.0 - beta1) * clip * per_example)
        self.moment_reg.mul_(beta1).add_((1.0 - beta1) * clip * reg_grad)
        states = [self.optimizer.state[p] for _, p in self.named]
        step = int(float(states[0]["step"]))
        exp_avg = torch.cat([s["exp_avg"].reshape(-1) for s in states]).to(self.dtype)
        exp_avg_sq = torch.cat([s["exp_avg_sq"].reshape(-1) for s in states]).to(self.dtype)
        if step != self.t + 1:
            raise RuntimeError(f"optimizer step counter is {step}, expected {self.t + 1}: one optimizer.step() per hook step")
        scale = lr / (1.0 - beta1 ** step)
        precond = 1.0 / (exp_avg_sq.sqrt() / math.sqrt(1.0 - beta2 ** step) + eps)  # D_t
        moment_sum = self.moments.sum(0) + self.moment_reg
        self.mom_res.append(float((moment_sum - exp_avg).norm() / exp_avg.norm().clamp_min(1e-300)))
        split_sum = -scale * precond * moment_sum
        self.step_err.append(float((split_sum - delta).norm()))
        self.step_norm.append(float(delta.norm()))
        self.step_res.append(self.step_err[-1] / max(self.step_norm[-1], float(split_sum.norm()), 1e-300))

        # ḡ_t(x_q) by Gauss–Legendre along the actual segment, contracted with each Δw_{t,i}
        gbar = self._segment_grads(w0, self._unflat(delta))
        weighted = -scale * gbar * precond  # (Q, P): ḡ ⊙ (−s D)
        self._record(coef=-scale * precond, gbar=gbar, synced=False, alpha=1.0, beta1=float(beta1), clip=clip,
                     w0=w0_grad, idx=idx, xb=xb, yb=yb)
        self.contrib += weighted @ self.moments.T
        self.reg += weighted @ self.moment_reg
        self.book += gbar @ (delta - split_sum)
        self.lrs.append(lr)
        self.clips.append(clip)
        self.t += 1

    def result(self) -> AdamPathDecomposition:
        """The decomposition so far (``final`` is f at the live model's current weights)."""
        if self.model is None:
            raise RuntimeError("the recorder was never bound to a training loop")
        final = self.query_values(self._weights())
        residual = final - self.initial - self.contrib.sum(1) - self.reg
        as_t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        return AdamPathDecomposition(
            initial=self.initial.clone(), final=final, contributions=self.contrib.clone(), regulariser=self.reg.clone(),
            residual=residual, bookkeeping=self.book.clone(), step_residuals=as_t(self.step_res),
            step_errors=as_t(self.step_err), update_norms=as_t(self.step_norm),
            momentum_residuals=as_t(self.mom_res), gradient_residuals=as_t(self.grad_res),
            clip_factors=as_t(self.clips), quadrature=self.quadrature, lrs=list(self.lrs),
            pieces=torch.tensor(self.pieces, dtype=torch.long) if self.pieces else None,
            kinks=torch.tensor(self.kinks, dtype=torch.long) if self.kinks else None, unresolved=self.unresolved,
        )

