"""Exact path-kernel decomposition of (S)GD training (Domingos 2020, Theorem 1 and Remark 5).

For plain (S)GD, w_{s+1} = w_s + Δ_s with Δ_s = −lr_s/|B_s| Σ_{i∈B_s} ∇_w ℓ_i(w_s), and for any query x_q

    f(w_{s+1}, x_q) − f(w_s, x_q) = ḡ_s(x_q) · Δ_s,   ḡ_s(x_q) = ∫_0^1 ∇_w f(w_s + tΔ_s, x_q) dt

(fundamental theorem of calculus along the straight segment). Splitting Δ_s over the examples gives

    f(w_T, x_q) = f(w_0, x_q) + Σ_i contributions[q, i],
    contributions[q, i] = −Σ_s lr_s · 1[i ∈ B_s]/|B_s| · ḡ_s(x_q) · ∇_w ℓ_i(w_s).

``mode="exact"`` evaluates ḡ_s with Gauss–Legendre quadrature (exact to floating point when f is smooth
along the segment, e.g. tanh/SiLU/softplus nets; ReLU kinks crossed inside a step leave an O(kink) error
unless ``kinks=True`` splits each segment at the query's pattern changes, ``kernels._segments``);
``mode="tangent"`` uses ḡ_s = ∇_w f(w_s, x_q) (Domingos' tangent kernel at w_s; residual O(lr)).
Recording is online: memory O(Q × N) (plus one parameter vector per query), no stored trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import Tensor, nn
from torch.func import grad, jvp, vmap

from jordanlab.models.protocols import held_rounds
from jordanlab.train.losses import LOSSES, elementwise_loss, loss_derivative

from . import _functional as F

__all__ = ["PathDecomposition", "PathRecorder", "path_decomposition", "per_example_loss", "LOSSES"]



class PathMode(str, Enum):
    """ḡ_s: ``EXACT`` = segment average by Gauss–Legendre quadrature; ``TANGENT`` = gradient at w_s."""

    EXACT = "exact"
    TANGENT = "tangent"


class Contraction(str, Enum):
    """How ḡ_s(x_q) · ∇ℓ_i(w_s) is formed for the Q queries and the B batch examples.

    ``JVP``: one forward-mode pass of the batch per query along ḡ_s(x_q): never materializes a per-example
    gradient, cost ~ Q batch forward-JVPs; also gives per-pixel contribution maps.
    ``PER_EXAMPLE``: per-example gradients ``vmap(grad(ℓ_i))`` (B, P) once per step, then a (Q, P) @ (P, B)
    product: cost independent of Q (two vmapped backward passes), memory B·P.
    ``AUTO``: ``JVP`` when Q ≤ 2 or pixel maps are requested, else ``PER_EXAMPLE``.
    """

    AUTO = "auto"
    JVP = "jvp"
    PER_EXAMPLE = "per-example"


def per_example_loss(outputs: Tensor, targets: Tensor, loss: str) -> Tensor:
    """Per-example loss ℓ_i = mean over the O outputs of example i; ``outputs``, ``targets`` are ``(B, O)``.

    ``loss`` names one of :data:`LOSSES` (:mod:`jordanlab.train.losses`): ``bce`` log(1 + e^f) − y f,
    ``mse`` (σ(f) − y)² (the trainer's), ``mse-logits`` (f − y)².
    """
    return elementwise_loss(outputs, targets, loss).mean(dim=-1)


def _loss_derivative(outputs: Tensor, targets: Tensor, loss: str) -> Tensor:
    """∂ℓ_i/∂f_{i,o}, shape (B, O) (includes the 1/O of the mean over outputs)."""
    return loss_derivative(outputs, targets, loss) / outputs.shape[-1]


@dataclass(frozen=True)
class PathDecomposition:
    """Result of a recorded (S)GD run: final = initial + contributions.sum(1) + residual.

    Attributes
    ----------
    initial, final, residual : Tensor of shape (Q,)
        f(w_0, x_q), f(w_T, x_q) and final − initial − Σ_i contributions[:, i].
    contributions : Tensor of shape (Q, N)
        −Σ_s lr_s 1[i∈B_s]/|B_s| ḡ_s(x_q)·∇ℓ_i(w_s).
    path_kernel : Tensor of shape (Q, N)
        K^p(x_q, x_i) = Σ_s lr_s 1[i∈B_s]/|B_s| ḡ_s(x_q)·∇_w f̄(w_s, x_i), with f̄ the mean of x_i's outputs
        (for scalar models f̄ = f: Domingos' path kernel with the step weights of (S)GD).
    loss_weights : Tensor of shape (Q, N)
        a_i = contributions / K^p (0 where K^p = 0): minus the loss derivative averaged along the path
        (and over x_i's pixels) weighted by the tangent kernel. Depends on the query (Domingos' Remark 1).
    bias : Tensor of shape (Q,)
        b = f(w_0, x_q).
    pixel_maps : Tensor of shape (Q, N, H, W) or None
        Dense models with ``pixel_maps=True``: contributions split over the pixels of x_i (sum = contributions).
    pieces : Tensor of shape (steps, Q) or None
        With ``kinks=True``: the pieces of constant activation pattern each step's segment was split into.
    """

    initial: Tensor
    final: Tensor
    contributions: Tensor
    residual: Tensor
    path_kernel: Tensor
    loss_weights: Tensor
    bias: Tensor
    mode: str
    steps: int
    pixel_maps: Tensor | None = None
    lrs: list[float] = field(default_factory=list)
    pieces: Tensor | None = None

    def kernel_machine(self) -> Tensor:
        """Σ_i a_i K^p(x_q, x_i) + b, shape (Q,): equals ``final`` up to ``residual``."""
        return (self.loss_weights * self.path_kernel).sum(dim=1) + self.bias

    @property
    def relative_residual(self) -> float:
        """max_q |residual_q| / max(max_q |final_q − initial_q|, tiny)."""
        change = (self.final - self.initial).abs().max()
        tiny = torch.finfo(self.final.dtype).tiny
        return float(self.residual.abs().max() / torch.clamp(change, min=tiny))


class _Recording:
    """Online accumulator of contributions and path kernel for fixed queries (shared engine)."""

    def __init__(
        self,
        model: nn.Module,
        queries: Tensor,
        n_train: int,
        *,
        pixels: Sequence[Sequence[int]] | None,
        loss: str,
        mode: str,
        quadrature: int,
        contraction: str,
        pixel_maps: bool,
        kinks: bool = False,
    ) -> None:
        F.check_model(model)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        try:
            self.mode = PathMode(mode)
        except ValueError:
            raise ValueError(f"mode must be one of {[m.value for m in PathMode]}, got {mode!r}") from None
        try:
            contraction_e = Contraction(contraction)
        except ValueError:
            raise ValueError(
                f"contraction must be one of {[c.value for c in Contraction]}, got {contraction!r}"
            ) from None
        if not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train must be a positive int, got {n_train!r}")
        self.model = model
        self.loss = loss
        self.dtype, self.device = F.model_dtype_device(model)
        self.state = F.frozen_state(model)
        self.fsingle = F.single_output_fn(model, self.state)
        self.fbatch = F.batch_output_fn(model, self.state)
        self.xq = F.as_input(queries, "queries", self.dtype, self.device)
        params = F.detached_params(model)
        self.out_shape = F.output_shape(model, params, self.state, self.xq)
        self.n_out = int(torch.tensor(self.out_shape).prod()) if self.out_shape else 1
        q = self.xq.shape[0]
        if self.n_out == 1:
            if pixels is not None:
                raise ValueError(f"pixels was given but the model output is scalar (per-example shape {self.out_shape})")
            self.qidx = torch.zeros(q, dtype=torch.long, device=self.device)
        else:
            if pixels is None:
                raise ValueError(
                    f"the model output is dense {self.out_shape}: pass pixels, one (row, col) per query ({q} queries)"
                )
            idx = F.pixel_indices(pixels, self.out_shape)
            if idx.numel() != q:
                raise ValueError(f"pixels must hold one (row, col) per query: got {idx.numel()} pixels for {q} queries")
            self.qidx = idx.to(self.device)
        if pixel_maps and self.n_out == 1:
            raise ValueError("pixel_maps=True needs a dense model (per-pixel outputs)")
        if contraction_e is Contraction.AUTO:
            contraction_e = Contraction.JVP if (q <= 2 or pixel_maps) else Contraction.PER_EXAMPLE
        if pixel_maps and contraction_e is not Contraction.JVP:
            raise ValueError("pixel_maps=True needs contraction='jvp' (per-example gradients are summed over pixels)")
        self.contraction = contraction_e
        self.nodes, self.weights = (
            F.gauss_legendre(quadrature, self.dtype, self.device) if self.mode is PathMode.EXACT
            else (torch.zeros(1, dtype=self.dtype, device=self.device), torch.ones(1, dtype=self.dtype, device=self.device))
        )
        if kinks and self.mode is not PathMode.EXACT:
            raise ValueError("kinks=True needs mode='exact' (tangent mode has no segment to split)")
        from ._segments import SegmentQuadrature

        self.segments = SegmentQuadrature(nodes=quadrature) if kinks else None
        self.pieces: list[list[int]] = []
        self.n_train = n_train
        zeros = torch.zeros(q, n_train, dtype=self.dtype, device=self.device)
        self.contributions = zeros.clone()
        self.kernel = zeros.clone()
        self.maps = torch.zeros(q, n_train, self.n_out, dtype=self.dtype, device=self.device) if pixel_maps else None
        self.initial = self.query_values(params)
        self.steps = 0
        self.lrs: list[float] = []

    def query_values(self, params: F.Params) -> Tensor:
        """f(w, x_q) at the query pixels, shape (Q,)."""
        with torch.no_grad():
            out = self.fbatch(params, self.xq)
        return out.gather(1, self.qidx[:, None])[:, 0]

    def _query_grad(self, params: F.Params) -> F.Params:
        def fq(p: F.Params, x: Tensor, j: Tensor) -> Tensor:
            return self.fsingle(p, x).gather(0, j.reshape(1))[0]

        with held_rounds(self.model, {**params, **self.state}, self.xq):  # a fixed-point model: the queries' rounds
            return vmap(grad(fq), (None, 0, 0))(params, self.xq, self.qidx)

    def segment_gradient(self, params: F.Params, delta: F.Params) -> F.Params:
        """ḡ(x_q) = Σ_k ω_k ∇f(w + t_k Δ, x_q) (one node t=0 in tangent mode), or split at kinks; dict of (Q, ...)."""
        if self.segments is not None:
            rows, pieces = [], []
            for x, j in zip(self.xq, self.qidx):
                g, info = self.segments.average_gradient(lambda p, x=x, j=j: self.fsingle(p, x)[j], params, delta)
                rows.append(g)
                pieces.append(info.pieces)
            self.pieces.append(pieces)
            flat = torch.stack(rows)
            parts = torch.split(flat, [v.numel() for v in params.values()], dim=1)
            return {k: v.reshape(flat.shape[0], *params[k].shape) for k, v in zip(params, parts)}
        total: F.Params | None = None
        for t, wgt in zip(self.nodes, self.weights):
            w = {k: params[k] + t * delta[k] for k in params}
            g = self._query_grad(w)
            total = {k: wgt * v for k, v in g.items()} if total is None else {k: total[k] + wgt * v for k, v in g.items()}
        assert total is not None
        return total

    def record(self, params: F.Params, delta: F.Params, xb: Tensor, yb: Tensor, idx: Tensor, lr: float) -> None:
        """Add step s: params = w_s, delta = w_{s+1} − w_s, batch (xb, yb) with dataset indices ``idx``."""
        if idx.numel() != xb.shape[0] or torch.unique(idx).numel() != idx.numel():
            raise ValueError(f"batch_indices must be {xb.shape[0]} distinct dataset indices, got {idx.tolist()}")
        if int(idx.min()) < 0 or int(idx.max()) >= self.n_train:
            raise ValueError(f"batch_indices must lie in [0, {self.n_train}), got {idx.tolist()}")
        gbar = self.segment_gradient(params, delta)
        c = lr / xb.shape[0]
        yb = yb.reshape(xb.shape[0], -1)
        if self.contraction is Contraction.JVP:
            def tangent(v: F.Params) -> tuple[Tensor, Tensor]:
                return jvp(lambda p: self.fbatch(p, xb), (params,), (v,))

            # primal f(w_s, x_b) (B, O) is shared by all queries; tangents (Q, B, O) = ḡ_q · ∇f(w_s, x_b)[o]
            with held_rounds(self.model, {**params, **self.state}, xb):
                fb, tang = vmap(tangent, out_dims=(None, 0))(gbar)
            dl = _loss_derivative(fb, yb, self.loss)  # (B, O)
            per_pixel = -c * tang * dl[None]
            step_contrib = per_pixel.sum(-1)
            step_kernel = c * tang.mean(-1)
            if self.maps is not None:
                self.maps[:, idx] += per_pixel
        else:
            def loss_i(p: F.Params, x: Tensor, y: Tensor) -> Tensor:
                return per_example_loss(self.fsingle(p, x)[None], y[None], self.loss)[0]

            def mean_out(p: F.Params, x: Tensor) -> Tensor:
                return self.fsingle(p, x).mean()

            with held_rounds(self.model, {**params, **self.state}, xb):
                gl = F.flatten(vmap(grad(loss_i), (None, 0, 0))(params, xb, yb), 1)  # (B, P)
                gf = F.flatten(vmap(grad(mean_out), (None, 0))(params, xb), 1)  # (B, P)
            gq = F.flatten(gbar, 1)  # (Q, P)
            step_contrib = -c * gq @ gl.T
            step_kernel = c * gq @ gf.T
        self.contributions[:, idx] += step_contrib
        self.kernel[:, idx] += step_kernel
        self.steps += 1
        self.lrs.append(float(lr))

    def result(self, final_params: F.Params) -> PathDecomposition:
        final = self.query_values(final_params)
        residual = final - self.initial - self.contributions.sum(dim=1)
        nz = self.kernel != 0
        a = torch.where(nz, self.contributions / torch.where(nz, self.kernel, torch.ones_like(self.kernel)), torch.zeros_like(self.kernel))
        maps = None
        if self.maps is not None:
            maps = self.maps.reshape(self.maps.shape[0], self.n_train, *self.out_shape[-2:]).clone()
        return PathDecomposition(
            initial=self.initial.clone(), final=final, contributions=self.contributions.clone(), residual=residual,
            path_kernel=self.kernel.clone(), loss_weights=a, bias=self.initial.clone(), mode=self.mode.value,
            steps=self.steps, pixel_maps=maps, lrs=list(self.lrs),
            pieces=torch.tensor(self.pieces, dtype=torch.long) if self.pieces else None,
        )


def _check_sgd(optimizer: torch.optim.Optimizer) -> None:
    name = type(optimizer).__name__
    if not isinstance(optimizer, torch.optim.SGD):
        raise ValueError(
            f"optimizer is {name}: the path decomposition holds for plain (S)GD only (Δw = −lr ∇L). "
            "Train with torch.optim.SGD(momentum=0, weight_decay=0), or use checkpoint_path_kernel for an "
            "approximate (TracIn) path kernel of this run"
        )
    for g in optimizer.param_groups:
        bad = {k: g.get(k) for k in ("momentum", "weight_decay") if g.get(k, 0)}
        if g.get("nesterov") or g.get("maximize"):
            bad.update(nesterov=g.get("nesterov"), maximize=g.get("maximize"))
        if bad:
            raise ValueError(f"optimizer SGD has {bad}: the decomposition needs momentum=0, weight_decay=0, no nesterov/maximize")
    lrs = {float(g["lr"]) for g in optimizer.param_groups}
    if len(lrs) != 1:
        raise ValueError(f"optimizer param_groups must share one lr, got {sorted(lrs)}")


class PathRecorder:
    """Record the path decomposition inside a plain (S)GD training loop.

    Usage::

        rec = PathRecorder(model, queries, n_train=len(x), pixels=[(r, c)], optimizer=opt)
        for idx in batches:
            rec.before_step(idx, x[idx], y[idx])
            opt.zero_grad(); per_example_loss(model(x[idx]).flatten(1), y[idx].flatten(1), "bce").mean().backward()
            opt.step()
            rec.after_step()
        result = rec.result()

    The recorder reads w_s in ``before_step`` and w_{s+1} in ``after_step``, so the segment of exact mode is
    the actual update Δ_s. It checks Δ_s = −lr ∇L(w_s) against ``p.grad`` (when present) and raises
    ``RuntimeError`` when the optimizer did something else (momentum, Adam/Ranger, weight decay).
    A loss other than the mean of ``per_example_loss`` is not detected here; it shows up in ``residual``.

    Parameters
    ----------
    model : nn.Module
    queries : Tensor of shape (Q, C, H, W)
    n_train : int
        Size of the training set (dataset indices lie in [0, n_train)).
    pixels : list of (row, col), optional
        One pixel per query for dense models.
    loss : {"bce", "mse", "mse-logits"}
        The per-example loss (:mod:`jordanlab.train.losses`; ``mse`` is (σ(f) − y)², ``mse-logits`` (f − y)²).
    mode : {"exact", "tangent"}
    lr : float, optional
        Learning rate; read from ``optimizer`` (each step) when that is given.
    optimizer : torch.optim.SGD, optional
        Checked to be plain SGD.
    quadrature : int
        Gauss–Legendre nodes for exact mode.
    contraction : {"auto", "jvp", "per-example"}
    pixel_maps : bool
        Also accumulate the (Q, N, H, W) per-pixel split of the contributions.
    check_tol : float, optional
        Relative tolerance of the Δ_s = −lr ∇L check (default 1e-4 float32, 1e-9 float64).
    """

    def __init__(
        self,
        model: nn.Module,
        queries: Tensor,
        n_train: int,
        *,
        pixels: Sequence[Sequence[int]] | None = None,
        loss: str = "bce",
        mode: str = "exact",
        lr: float | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        quadrature: int = 3,
        contraction: str = "auto",
        pixel_maps: bool = False,
        check_tol: float | None = None,
    ) -> None:
        if optimizer is None and lr is None:
            raise ValueError("pass lr or optimizer (the plain SGD optimizer whose lr is used)")
        if optimizer is not None:
            _check_sgd(optimizer)
        self._rec = _Recording(
            model, queries, n_train, pixels=pixels, loss=loss, mode=mode, quadrature=quadrature,
            contraction=contraction, pixel_maps=pixel_maps,
        )
        self.model = model
        self.optimizer = optimizer
        self.lr = lr
        self.check_tol = check_tol if check_tol is not None else (1e-9 if self._rec.dtype == torch.float64 else 1e-4)
        self._pending: tuple | None = None

    def before_step(self, batch_indices: Sequence[int] | Tensor, inputs: Tensor, targets: Tensor) -> None:
        """Snapshot w_s and the batch (dataset indices ``batch_indices``, inputs (B, ...), targets (B, ...))."""
        if self._pending is not None:
            raise RuntimeError("before_step called twice without after_step")
        rec = self._rec
        idx = torch.as_tensor(batch_indices, dtype=torch.long, device=rec.device).reshape(-1)
        xb = F.as_input(inputs, "inputs", rec.dtype, rec.device)
        yb = F.as_input(targets, "targets", rec.dtype, rec.device)
        if yb.shape[0] != xb.shape[0] or yb[0].numel() != rec.n_out:
            raise ValueError(f"targets must be (B, {rec.out_shape}) for B={xb.shape[0]}, got {tuple(yb.shape)}")
        lr = float(self.optimizer.param_groups[0]["lr"]) if self.optimizer is not None else float(self.lr)
        if self.optimizer is not None:
            _check_sgd(self.optimizer)
        self._pending = (F.detached_params(self.model), idx, xb, yb, lr)

    def after_step(self) -> None:
        """Read w_{s+1}, check the update was plain SGD, and add the step's contributions."""
        if self._pending is None:
            raise RuntimeError("after_step called without before_step")
        w0, idx, xb, yb, lr = self._pending
        self._pending = None
        w1 = F.detached_params(self.model)
        delta = {k: w1[k] - w0[k] for k in w0}
        grads = {n: p.grad for n, p in self.model.named_parameters() if p.requires_grad and p.grad is not None}
        if len(grads) == len(delta):
            num = sum(float(((delta[k] + lr * grads[k].to(delta[k].dtype)) ** 2).sum()) for k in delta) ** 0.5
            den = max(sum(float((delta[k] ** 2).sum()) for k in delta) ** 0.5, torch.finfo(self._rec.dtype).tiny)
            if num / den > self.check_tol:
                raise RuntimeError(
                    f"the update was not Δw = −lr·grad (relative mismatch {num / den:.3g} > {self.check_tol:g}): "
                    "the path decomposition needs plain SGD (no momentum, Adam/Ranger, weight decay or clipping)"
                )
        self._rec.record(w0, delta, xb, yb, idx, lr)

    def result(self) -> PathDecomposition:
        """The decomposition so far (``final`` is f at the model's current weights)."""
        return self._rec.result(F.detached_params(self.model))


def _batches(n: int, batch_size: int | None, steps: int, seed: int) -> list[Tensor]:
    """Minibatch indices: full batch (GD) or consecutive chunks of per-epoch permutations (SGD)."""
    if batch_size is None or batch_size >= n:
        return [torch.arange(n) for _ in range(steps)]
    gen = torch.Generator().manual_seed(seed)
    out: list[Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=gen)
        out.extend(perm[i : i + batch_size] for i in range(0, n, batch_size))
    return out[:steps]


def path_decomposition(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    queries: Tensor,
    *,
    loss: str = "bce",
    lr: float,
    steps: int,
    batch_size: int | None = None,
    mode: str = "exact",
    pixels: Sequence[Sequence[int]] | None = None,
    seed: int = 0,
    quadrature: int = 3,
    contraction: str = "auto",
    pixel_maps: bool = False,
    progress: bool = False,
    kinks: bool = False,
) -> PathDecomposition:
    """Train ``model`` in place by (S)GD and decompose its query outputs over the training examples.

    Parameters
    ----------
    model : nn.Module
        Trained in place (its parameters end at w_T). Computation uses the model's dtype and device.
    inputs : Tensor of shape (N, C, H, W)
    targets : Tensor of shape (N,) for scalar models or (N, 1, H, W)/(N, H, W) for dense models
    queries : Tensor of shape (Q, C, H, W)
    loss : {"bce", "mse", "mse-logits"}
        The per-example loss (:mod:`jordanlab.train.losses`; ``mse`` is (σ(f) − y)², ``mse-logits`` (f − y)²).
        L(w) = mean_{i∈B} ℓ_i(w), ℓ_i = mean over outputs of BCE-with-logits or squared error.
    lr : float
    steps : int
    batch_size : int, optional
        ``None``: full-batch GD. Otherwise SGD on per-epoch permutations (seeded by ``seed``).
    mode : {"exact", "tangent"}
        See the module docstring.
    pixels : list of (row, col), optional
        One pixel per query (dense models).
    quadrature : int
        Gauss–Legendre nodes per step in exact mode (error ∝ |Δ|^{2n} for smooth f; on the verify CNN,
        float64, lr 0.2: 1 node 1e-6, 2 nodes 9e-13, 3 nodes 2e-15 relative residual, hence the default 3).
    contraction : {"auto", "jvp", "per-example"}
    pixel_maps : bool
        Also return per-pixel contribution maps (Q, N, H, W).
    progress : bool
    kinks : bool
        Exact mode: split each step's segment where the query's ReLU/max-pool pattern changes and integrate
        each piece with ``quadrature`` nodes (exact across kinks; pieces per step in ``pieces``).

    Returns
    -------
    PathDecomposition
        final = initial + contributions.sum(1) + residual; kernel_machine() = Σ a K^p + b.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Flatten(0)).double()
    >>> x = torch.randn(6, 1, 2, 2, dtype=torch.float64); y = (x.sum((1, 2, 3)) > 0).double()
    >>> r = path_decomposition(net, x, y, x[:2], lr=0.1, steps=5)
    >>> bool(r.relative_residual < 1e-9)
    True
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive float, got {lr!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be None (full batch) or a positive int, got {batch_size!r}")
    dtype, device = F.model_dtype_device(model)
    x = F.as_input(inputs, "inputs", dtype, device)
    y = F.as_input(targets, "targets", dtype, device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"targets must have {x.shape[0]} examples like inputs, got {y.shape[0]}")
    rec = _Recording(
        model, queries, x.shape[0], pixels=pixels, loss=loss, mode=mode, quadrature=quadrature,
        contraction=contraction, pixel_maps=pixel_maps, kinks=kinks,
    )
    y = y.reshape(x.shape[0], -1)
    if y.shape[1] != rec.n_out:
        raise ValueError(f"targets must hold {rec.n_out} values per example (model output {rec.out_shape}), got {y.shape[1]}")

    def batch_loss(p: F.Params, xb: Tensor, yb: Tensor) -> Tensor:
        return per_example_loss(rec.fbatch(p, xb), yb, loss).mean()

    params = F.detached_params(model)
    batches = _batches(x.shape[0], batch_size, steps, seed)
    iterator = batches
    if progress:
        from tqdm import tqdm

        iterator = tqdm(batches, desc=f"path decomposition ({mode})")
    for idx in iterator:
        idx = idx.to(device)
        xb, yb = x[idx], y[idx]
        g = grad(batch_loss)(params, xb, yb)
        delta = {k: -lr * g[k] for k in params}
        rec.record(params, delta, xb, yb, idx, lr)
        params = {k: params[k] + delta[k] for k in params}
    with torch.no_grad():
        named = dict(model.named_parameters())
        for k, v in params.items():
            named[k].copy_(v)
    return rec.result(params)
