"""Exact path decomposition of a real Ranger run (``pytorch_optimizer.Ranger``) over its training examples.

Ranger is RAdam inside Lookahead, with gradient centralization. In ``pytorch_optimizer`` 4.1 one
``step()`` at step t = 1, 2, … (single parameter group) does, per parameter tensor:

    g_t   = GC(c_t (Σ_{i∈B_t} ∇ℓ_i(w_{t−1}) / |B_t| + λ_t ∇P))  [+ wd · w_{t−1} when weight_decouple=False]
    w̃     = w_{t−1} (1 − wd·lr_t)                               [weight_decouple=True; 1 − wd with fixed_decay]
    m_t   = β1 m_{t−1} + (1 − β1) g_t,      v_t = β2 v_{t−1} + (1 − β2) g_t²
    ρ_t   = ρ_∞ − 2tβ2^t / (1 − β2^t),      ρ_∞ = 2 / (1 − β2) − 1
    σ_t   = lr_t r_t / (1 − β1^t),   r_t = sqrt((1 − β2^t)(ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t)) if ρ_t ≥ ρ_min
            else (1 if degenerated_to_sgd else −1)
    w'    = w̃ − σ_t m_t / (sqrt(v_t) + eps)   (ρ_t ≥ ρ_min, rectified)   or   w̃ − σ_t m_t   (un-rectified)
    w_t   = w'                                  if t mod k ≠ 0
    w_t   = S + α (w' − S),  S ← w_t            if t mod k = 0   (Lookahead; S = w_0 initially)

GC(g) subtracts from every tensor of more than one axis its mean over all axes but the first. Note the
un-rectified branch with ``degenerated_to_sgd=False`` (the default, and jordanlab's ``build_optimizer``):
r_t = −1, so the first steps (t ≤ 5 for β2 = 0.999) move *up* the momentum, w' = w̃ + lr m_t / (1 − β1^t).
The decomposition reproduces that term for term (it is what the run did).

Every term is linear in the per-example gradients except v_t, a data-dependent diagonal preconditioner
read from the optimizer. Keeping, per training example i, its share M[i] of m_t and its share F[i] of the
fast-weight displacement since the last synchronization (w_{t−1} − S = Σ_i F[i] + F_reg) splits each
update exactly, the Lookahead jump included:

    Δw'_{t,i} = −σ_t E_t ⊙ M_t[i],                    E_t = 1/(sqrt(v_t) + eps) or 1 (un-rectified)
    Δw_{t,i}  = Δw'_{t,i}                              (then F[i] += Δw'_{t,i})
    Δw_{t,i}  = α Δw'_{t,i} − (1 − α) F[i]            at a synchronization (then F[i] = 0),

and a regularization row collects the penalty, the coupled or decoupled weight decay (−wd·lr·w_{t−1})
and their momentum. With ḡ_t(x_q) = ∫_0^1 ∇f(w_{t−1} + sΔw_t, x_q) ds along the *actual* segment
(split at the query's kinks, ``kernels._segments``),

    f(w_T, x_q) − f(w_0, x_q) = Σ_i a_i + a_reg + a_BN + residual,   a_i = Σ_t ḡ_t · Δw_{t,i}.

BatchNorm: the running statistics β are buffers, not parameters. The query is read in eval mode (as
``evaluate`` reads it), the step-t segment with β_{t−1}, and a_BN = Σ_t f(w_t, β_t) − f(w_t, β_{t−1})
is reported as its own term, never in the residual. The per-example gradient of a BatchNorm network in
training mode is the gradient of example i's loss term *in its batch* (the batch statistics couple the
examples; the terms still sum to the batch gradient the optimizer used).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

from jordanlab.train.losses import elementwise_loss

from . import _functional as F
from .adam_path import AdamPathRecorder, PathResult

__all__ = ["RangerPathDecomposition", "RangerPathRecorder", "check_ranger", "rectified_step_size"]


def rectified_step_size(step: int, lr: float, beta1: float, beta2: float, *, threshold: float = 5,
                        degenerated_to_sgd: bool = False, adam_debias: bool = False) -> tuple[float, bool]:
    """(σ_t, rectified) of RAdam at step ``step`` (1-based), as ``pytorch_optimizer`` computes them.

    Examples
    --------
    >>> [round(rectified_step_size(t, 1.0, 0.95, 0.999)[0], 4) for t in (1, 5, 6)]
    [-20.0, -4.4205, 0.0075]
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    b2t = beta2 ** step
    rho = rho_inf - 2 * step * b2t / (1.0 - b2t)
    rectified = rho >= threshold
    if rectified:
        r = math.sqrt((1.0 - b2t) * (rho - 4) / (rho_inf - 4) * (rho - 2) / rho * rho_inf / (rho_inf - 2))
    else:
        r = 1.0 if degenerated_to_sgd else -1.0
    size = lr * r
    return (size if adam_debias else size / (1.0 - math.pow(beta1, step))), rectified


def check_ranger(optimizer: torch.optim.Optimizer) -> dict:
    """The hyperparameters of a ``pytorch_optimizer.Ranger`` the decomposition reproduces; ``ValueError`` otherwise."""
    try:
        from pytorch_optimizer import Ranger
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ValueError("pytorch_optimizer is not installed: no Ranger to decompose") from exc
    name = type(optimizer).__name__
    if not isinstance(optimizer, Ranger):
        raise ValueError(f"optimizer is {name}: RangerPathRecorder needs pytorch_optimizer.Ranger "
                         "(AdamPathRecorder for Adam, PathRecorder for plain SGD)")
    if getattr(optimizer, "maximize", False):
        raise ValueError("optimizer Ranger has maximize=True: not handled")
    keys = ("betas", "alpha", "k", "eps", "weight_decay", "weight_decouple", "fixed_decay")
    groups = {tuple(str(g.get(k)) for k in keys) for g in optimizer.param_groups}
    if len(groups) != 1 or len({float(g["lr"]) for g in optimizer.param_groups}) != 1:
        raise ValueError(f"optimizer param_groups must share lr and {keys}")
    g = optimizer.param_groups[0]
    for bad in ("adanorm",):
        if g.get(bad):
            raise ValueError(f"optimizer Ranger has {bad}=True: not handled")
    return {
        "betas": tuple(float(b) for b in g["betas"]), "alpha": float(g["alpha"]), "k": int(g["k"]),
        "eps": float(g["eps"]), "weight_decay": float(g["weight_decay"]), "weight_decouple": bool(g["weight_decouple"]),
        "fixed_decay": bool(g["fixed_decay"]), "adam_debias": bool(g.get("adam_debias", False)),
        "n_sma_threshold": optimizer.n_sma_threshold, "degenerated_to_sgd": bool(optimizer.degenerated_to_sgd),
        "use_gc": bool(optimizer.use_gc), "gc_threshold": int(optimizer.gc_gradient_threshold),
    }


@dataclass(frozen=True)
class RangerPathDecomposition(PathResult):
    """Result of a recorded Ranger run: final = initial + Σ_i contributions + regulariser + batchnorm + residual.

    Attributes
    ----------
    initial, final : Tensor of shape (Q,)
        f(w_0, β_0, x_q) and f(w_T, β_T, x_q) (eval mode: BatchNorm reads its running statistics β).
    contributions : Tensor of shape (Q, N)
        a_i, the contribution of training example i.
    regulariser : Tensor of shape (Q,)
        Share of the penalty and of the weight decay.
    batchnorm : Tensor of shape (Q,)
        Σ_t f(w_t, β_t) − f(w_t, β_{t−1}): the change of the running statistics (0 without BatchNorm).
    residual : Tensor of shape (Q,)
        final − initial − Σ_i a_i − a_reg − a_BN = bookkeeping + quadrature residual.
    bookkeeping : Tensor of shape (Q,)
        Σ_t ḡ_t · (Δw_t − Σ_i Δw_{t,i} − Δw_{t,reg}).
    step_residuals : Tensor of shape (T,)
        ||Σ_i Δw_{t,i} + Δw_{t,reg} − Δw_t|| / max(||Δw_t||, ||split||), against the real optimizer's step.
    step_errors, weight_norms, update_norms : Tensor of shape (T,)
        ||Σ_i Δw_{t,i} + Δw_{t,reg} − Δw_t||, ||w_t|| and ||Δw_t||: the optimizer rounds w_t to the weights' precision
        (ε||w_t|| per operation), so a step much smaller than the weights has a relative residual far above ε
        while its error stays at a few ε||w_t||, the rounding of the run itself.
    momentum_residuals, gradient_residuals, slow_residuals : Tensor of shape (T,)
        ||Σ M − exp_avg|| / ||exp_avg||; ||g_t − p.grad|| / ||p.grad|| (p.grad after the step: centralized,
        coupled decay added, as the optimizer used it); ||w_t − Σ F − slow_buffer|| / max(||slow_buffer||, tiny).
    replay_residual : float
        ||w_0 + Σ_t Σ_i Δw_{t,i} + Δw_{t,reg} − w_T|| / ||w_T||: the replayed weights against the run's.
    rectified, synced : Tensor of shape (T,), bool
        RAdam's rectified steps; Lookahead's synchronizations.
    step_sizes, clip_factors : Tensor of shape (T,)
    pieces, kinks : Tensor of shape (T, Q), optional
    unresolved : int
    lrs : list of float
    quadrature_residuals : Tensor of shape (T, Q)
        f(w_t, β_{t−1}) − f(w_{t−1}, β_{t−1}) − ḡ_t · Δw_t per step and query: the quadrature error of each segment
        (float rounding with kink splitting; the error of fixed nodes across kinks without). They sum to
        residual − bookkeeping.
    """

    initial: Tensor
    final: Tensor
    contributions: Tensor
    regulariser: Tensor
    batchnorm: Tensor
    residual: Tensor
    bookkeeping: Tensor
    step_residuals: Tensor
    step_errors: Tensor
    weight_norms: Tensor
    update_norms: Tensor
    momentum_residuals: Tensor
    gradient_residuals: Tensor
    slow_residuals: Tensor
    replay_residual: float
    rectified: Tensor
    synced: Tensor
    step_sizes: Tensor
    clip_factors: Tensor
    pieces: Tensor | None
    kinks: Tensor | None
    unresolved: int
    quadrature: int
    lrs: list[float]
    quadrature_residuals: Tensor | None = None


class RangerPathRecorder(AdamPathRecorder):
    """A training step hook that records the exact Ranger path decomposition of query pixels.

    Used like :class:`AdamPathRecorder` (``train(config, run_dir, step_hooks=[rec])``, then ``rec.result()``):
    the trainer calls ``bind(model, optimizer)``, ``before_step(indices, x, y)`` and ``after_step()``.
    Memory: two (N + 1) × P buffers (the moment shares M and the displacement shares F) in ``dtype``.
    BatchNorm networks are accepted (see the module docstring); Dropout is refused.

    Parameters are those of :class:`AdamPathRecorder` (``quadrature`` defaults to 3 nodes per piece).
    """

    def __init__(self, queries: Sequence[Tensor], pixels: Sequence[Sequence[int]], n_train: int, *,
                 loss: str = "bce", grad_clip: float = 0.0, penalty_weight: Callable[[int], float] | None = None,
                 quadrature: int = 3, dtype: torch.dtype = torch.float64, gradient_dtype: torch.dtype | None = None,
                 kinks: bool = True, detect: int = 2) -> None:
        super().__init__(queries, pixels, n_train, loss=loss, grad_clip=grad_clip, penalty_weight=penalty_weight,
                         quadrature=quadrature, dtype=dtype, gradient_dtype=gradient_dtype, kinks=kinks, detect=detect)

    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Attach to the loop's model and its (fresh) Ranger optimizer."""
        for name, module in model.named_modules():
            if isinstance(module, nn.Dropout) and module.p > 0:
                raise ValueError(f"model module {name!r} is an active Dropout: the run is random per step")
        self.hp = check_ranger(optimizer)
        self._setup(model, optimizer)
        self.has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.copy.eval()  # the query is read as evaluate reads it: BatchNorm with running statistics
        self.grad_copy.train(model.training)
        self.fast = torch.zeros_like(self.moments)
        self.fast_reg = torch.zeros_like(self.moment_reg)
        self.replay = F.flatten(self._weights(), 0).clone()
        self.start = self.replay.clone()
        self.bn = torch.zeros_like(self.reg)
        self.slow_res: list[float] = []
        self.rect: list[bool] = []
        self.sync: list[bool] = []
        self.sizes_t: list[float] = []
        self.w_norm: list[float] = []
        self.quad_res: list[Tensor] = []
        self.initial = self.query_values(self._weights())
        self._f_prev = self.initial.clone()

    def _live_state(self) -> dict[str, Tensor]:
        return {k: v.detach().to(self.dtype).clone() if v.is_floating_point() else v.detach().clone()
                for k, v in F.frozen_state(self.model).items()}

    def _centralize(self, rows: Tensor) -> Tensor:
        """GC applied to every parameter tensor of each row of ``rows`` (B, P), as Ranger does to p.grad."""
        if not self.hp["use_gc"]:
            return rows
        parts = []
        for (_, p), chunk in zip(self.named, torch.split(rows, self.sizes, dim=1)):
            if p.dim() > self.hp["gc_threshold"]:
                shaped = chunk.reshape(rows.shape[0], p.shape[0], -1)
                chunk = (shaped - shaped.mean(dim=2, keepdim=True)).reshape(rows.shape[0], -1)
            parts.append(chunk)
        return torch.cat(parts, dim=1)

    def _example_grads(self, w: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        """∇ℓ_i(w) per example (B, P); with BatchNorm in training mode, ℓ_i is example i's term in its batch."""
        if not (self.has_bn and self.grad_copy.training):
            return super()._example_grads(w, xb, yb)
        scratch = {k: v.clone() for k, v in self.grad_state.items()}  # train-mode BN writes its running stats

        def losses(p: dict[str, Tensor]) -> Tensor:
            out = functional_call(self.grad_copy, {**p, **scratch}, (xb,))
            per = elementwise_loss(out, yb.reshape(out.shape), self.loss)
            return per.reshape(out.shape[0], -1).mean(1)

        leaves = {k: v.detach().requires_grad_(True) for k, v in w.items()}
        with torch.enable_grad():
            per = losses(leaves)
            rows = []
            for i in range(per.shape[0]):  # one backward per example term (the batch statistics couple them)
                g = torch.autograd.grad(per[i], list(leaves.values()), retain_graph=i + 1 < per.shape[0],
                                        allow_unused=True)
                rows.append(torch.cat([(gi if gi is not None else torch.zeros_like(v)).reshape(-1)
                                       for gi, v in zip(g, leaves.values())]))
        return torch.stack(rows)

    def before_step(self, batch_indices: Sequence[int] | Tensor, inputs: Tensor, targets: Tensor) -> None:
        """Snapshot w_{t−1}, the running statistics β_{t−1} and the batch."""
        if self.model is None:
            raise RuntimeError("bind(model, optimizer) must be called before the first step")
        if self._pending is not None:
            raise RuntimeError("before_step called twice without after_step")
        self.hp = check_ranger(self.optimizer)
        idx = torch.as_tensor(batch_indices, dtype=torch.long).reshape(-1).to(self.device)
        if idx.numel() != inputs.shape[0] or torch.unique(idx).numel() != idx.numel():
            raise ValueError(f"batch_indices must be {inputs.shape[0]} distinct dataset indices, got {idx.tolist()}")
        if int(idx.min()) < 0 or int(idx.max()) >= self.n_train:
            raise ValueError(f"batch_indices must lie in [0, {self.n_train}), got {idx.tolist()}")
        self.grad_copy.train(self.model.training)
        self._pending = (self._weights(), self._weights(self.gdtype), idx, inputs.detach().to(self.gdtype),
                         targets.detach().to(self.gdtype))

    def after_step(self) -> None:
        """Split the real Ranger step (RAdam update, weight decay, Lookahead jump) over the examples."""
        if self._pending is None:
            raise RuntimeError("after_step called without before_step")
        w0, w0_grad, idx, xb, yb = self._pending
        self._pending = None
        hp, t = self.hp, self.t + 1
        group = self.optimizer.param_groups[0]
        lr = float(group["lr"])
        beta1, beta2 = hp["betas"]
        if int(group["step"]) != t:
            raise RuntimeError(f"optimizer step counter is {group['step']}, expected {t}: one optimizer.step() per hook step")
        w1 = self._weights()
        w0_flat = F.flatten(w0, 0)
        delta = F.flatten(w1, 0) - w0_flat

        # the gradient the optimizer consumed: c_t (Σ ∇ℓ_i / B + λ ∇P), centralized, plus coupled decay
        per_example = self._example_grads(w0_grad, xb, yb).to(self.dtype) / xb.shape[0]
        weight = float(self.penalty_weight(self.t)) if self.penalty_weight is not None else 0.0
        reg_grad = (self._penalty_grad(w0_grad, xb, weight).to(self.dtype) if weight != 0.0
                    else torch.zeros_like(delta))
        clip = 1.0
        if self.grad_clip > 0:
            clip = min(1.0, self.grad_clip / (float((per_example.sum(0) + reg_grad).norm()) + 1e-6))
        per_example = self._centralize(clip * per_example)
        reg_grad = self._centralize((clip * reg_grad)[None])[0]
        wd = hp["weight_decay"]
        if wd > 0 and not hp["weight_decouple"]:
            reg_grad = reg_grad + wd * w0_flat
        used = [p.grad for _, p in self.named]
        if all(g is not None for g in used):
            seen = torch.cat([g.detach().reshape(-1).to(self.dtype) for g in used])
            self.grad_res.append(float((per_example.sum(0) + reg_grad - seen).norm() / seen.norm().clamp_min(1e-300)))
        else:
            self.grad_res.append(math.nan)

        # first-moment shares, RAdam's step and the decoupled decay
        self.moments.mul_(beta1).index_add_(0, self._rows(idx), (1.0 - beta1) * per_example)
        self.moment_reg.mul_(beta1).add_((1.0 - beta1) * reg_grad)
        states = [self.optimizer.state[p] for _, p in self.named]
        exp_avg = torch.cat([s["exp_avg"].reshape(-1) for s in states]).to(self.dtype)
        exp_avg_sq = torch.cat([s["exp_avg_sq"].reshape(-1) for s in states]).to(self.dtype)
        slow = torch.cat([s["slow_buffer"].reshape(-1) for s in states]).to(self.dtype)
        size, rectified = rectified_step_size(t, lr, beta1, beta2, threshold=hp["n_sma_threshold"],
                                              degenerated_to_sgd=hp["degenerated_to_sgd"], adam_debias=hp["adam_debias"])
        coef = -size / (exp_avg_sq.sqrt() + hp["eps"]) if rectified else torch.full_like(delta, -size)
        decay = wd * (1.0 if hp["fixed_decay"] else lr) if (wd > 0 and hp["weight_decouple"]) else 0.0
        moment_sum = self.moments.sum(0) + self.moment_reg
        self.mom_res.append(float((moment_sum - exp_avg).norm() / exp_avg.norm().clamp_min(1e-300)))
        prime_reg = coef * self.moment_reg - decay * w0_flat  # Δw'_reg
        synced = t % hp["k"] == 0
        alpha = hp["alpha"]
        fast_sum = self.fast.sum(0) + self.fast_reg
        prime_sum = coef * self.moments.sum(0) + prime_reg
        split_sum = alpha * prime_sum - (1.0 - alpha) * fast_sum if synced else prime_sum
        err = float((split_sum - delta).norm())
        self.step_err.append(err)
        self.step_norm.append(float(delta.norm()))
        self.step_res.append(err / max(self.step_norm[-1], float(split_sum.norm()), 1e-300))

        # contract with ḡ_t (β_{t−1} held), then the BatchNorm term f(w_t, β_t) − f(w_t, β_{t−1})
        gbar = self._segment_grads(w0, self._unflat(delta))
        weighted = gbar * coef  # (Q, P)
        self._record(coef=coef, gbar=gbar, synced=synced, alpha=alpha, beta1=beta1, clip=clip, w0=w0_grad, idx=idx,
                     xb=xb, yb=yb)
        if synced:
            self.contrib += alpha * (weighted @ self.moments.T) - (1.0 - alpha) * (gbar @ self.fast.T)
            self.reg += alpha * (gbar @ prime_reg) - (1.0 - alpha) * (gbar @ self.fast_reg)
            self.fast.zero_()
            self.fast_reg.zero_()
        else:
            self.contrib += weighted @ self.moments.T
            self.reg += gbar @ prime_reg
            self.fast.addcmul_(self.moments, coef)
            self.fast_reg.add_(prime_reg)
        self.book += gbar @ (delta - split_sum)
        self.replay += split_sum
        w1_flat = F.flatten(w1, 0)
        self.w_norm.append(float(w1_flat.norm()))
        fast_now = self.fast.sum(0) + self.fast_reg
        self.slow_res.append(float((w1_flat - fast_now - slow).norm() / slow.norm().clamp_min(1e-300)))
        after = self._live_state()
        old = self.query_values(w1)  # f(w_t, β_{t−1}): the end of the segment ḡ_t was integrated along
        self.quad_res.append(old - self._f_prev - gbar @ delta)
        if self.has_bn:
            before = self.state
            self.state = after
            new = self.query_values(w1)
            self.state = before
            self.bn += new - old
        else:
            new = old
        self._f_prev = new
        self.state = after
        self.lrs.append(lr)
        self.clips.append(clip)
        self.rect.append(rectified)
        self.sync.append(synced)
        self.sizes_t.append(size)
        self.t = t

    def result(self) -> RangerPathDecomposition:
        """The decomposition so far (``final``: f at the live model's weights and running statistics)."""
        if self.model is None:
            raise RuntimeError("the recorder was never bound to a training loop")
        w = self._weights()
        final = self.query_values(w)
        residual = final - self.initial - self.contrib.sum(1) - self.reg - self.bn
        wt = F.flatten(w, 0)
        replay = float((self.replay - wt).norm() / wt.norm().clamp_min(1e-300))
        as_t = lambda v, dt=torch.float64: torch.tensor(v, dtype=dt)  # noqa: E731
        return RangerPathDecomposition(
            initial=self.initial.clone(), final=final, contributions=self.contrib.clone(), regulariser=self.reg.clone(),
            batchnorm=self.bn.clone(), residual=residual, bookkeeping=self.book.clone(),
            step_residuals=as_t(self.step_res), step_errors=as_t(self.step_err), weight_norms=as_t(self.w_norm),
            update_norms=as_t(self.step_norm),
            momentum_residuals=as_t(self.mom_res),
            gradient_residuals=as_t(self.grad_res), slow_residuals=as_t(self.slow_res), replay_residual=replay,
            rectified=as_t(self.rect, torch.bool), synced=as_t(self.sync, torch.bool), step_sizes=as_t(self.sizes_t),
            clip_factors=as_t(self.clips),
            pieces=torch.tensor(self.pieces, dtype=torch.long) if self.pieces else None,
            kinks=torch.tensor(self.kinks, dtype=torch.long) if self.kinks else None,
            unresolved=self.unresolved, quadrature=self.quadrature, lrs=list(self.lrs),
            quadrature_residuals=(torch.stack(self.quad_res) if self.quad_res
                                  else torch.zeros(0, len(self.queries), dtype=self.dtype)),
        )
