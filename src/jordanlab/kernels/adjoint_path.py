"""The exact Adam/Ranger path decomposition by reverse accumulation: O(T (Q + 1) P) on disk, not O(N P) in RAM.

The forward recorders (:class:`~jordanlab.kernels.AdamPathRecorder`,
:class:`~jordanlab.kernels.RangerPathRecorder`) keep every example's share M[i] of the first moment (and,
for Ranger, F[i] of the fast-weight displacement since the last Lookahead synchronization): two
(N + 1) × P buffers, 32 GB in float64 for 1,024 images and a 1.95M-parameter U-Net. The same numbers
come out of one backward sweep over the recorded steps, because every a_i is linear in the per-example
gradients. With the forward recorders' notation (``kernels.ranger_path``: Δw_{t,i} = coef_t ⊙ M_t[i]
on a step without synchronization, α coef_t ⊙ M_t[i] − (1 − α) F[i] at one, F[i] the sum of the
window's earlier coef_s ⊙ M_s[i]),

    a_i = Σ_t ḡ_t · Δw_{t,i} = Σ_t ⟨u_t, M_t[i]⟩,
    u_t = coef_t ⊙ (ḡ_t − (1 − α) ḡ_{s(t)})   t not a sync, its window closed by the sync s(t) ≤ T,
    u_t = coef_t ⊙ ḡ_t                         t not a sync, its window still open at T,
    u_t = α coef_t ⊙ ḡ_t                       t a sync (Adam: α = 1, no sync, u_t = coef_t ⊙ ḡ_t).

With M_t[i] = Σ_{τ≤t} β1^{t−τ} (1 − β1) 1[i ∈ B_τ] G_τ[i] and G_τ[i] = GC(c_τ ∇ℓ_i(w_{τ−1}) / |B_τ|)
(GC, Ranger's gradient centralization, is an orthogonal projection, hence symmetric; the identity for Adam):

    a_i = Σ_τ 1[i ∈ B_τ] (1 − β1) (c_τ / |B_τ|) ⟨GC(λ_τ), ∇ℓ_i(w_{τ−1})⟩,
    λ_T = u_T,   λ_τ = u_τ + β1 λ_{τ+1}.

The |B_τ| numbers ⟨v, ∇ℓ_i(w_{τ−1})⟩ of one batch are one forward-mode derivative (``torch.func.jvp``) of
the vector of per-example losses along v, one per query: no per-example gradient is ever formed. With
BatchNorm in training mode ℓ_i is example i's term in its batch, as the forward recorder defines it.

:class:`AdjointPathRecorder` is the forward recorder (Adam or Ranger, chosen by the optimizer it is bound
to) with a single share row, the *aggregate* of all examples (Σ_i M[i]: one row, cheap), plus the
regularization row; during training it writes, per step, u_t (Q × P, as soon as its window closes), the
weights w_{t−1} as trained, the batch (inputs as augmented, targets, dataset indices) and c_t to files in
a scratch directory; :meth:`AdjointPathRecorder.result` then sweeps t = T, …, 1 reading them in reverse.
The forward aggregate checks the sweep: Σ_i a_i (adjoint) − a_data (forward) is reported as
``adjoint_residual`` (float rounding: ~1e-15 relative in float64).

**Per-pixel maps.** ℓ_i is the mean of example i's per-pixel losses ℓ_{i,p}, so the same jvp, taken of the
(B, H·W) per-pixel losses instead of their means, splits every a_i over the pixels of each presentation of
example i (each step that drew it, as augmented then), ℓ_{i,p} the loss at pixel p:

    a_i = Σ_{τ: i ∈ B_τ} Σ_p A_{τ,i}[p],   A_{τ,i}[p] = (1 − β1) (c_τ / |B_τ|) ⟨GC(λ_τ), ∇ℓ_{i,p}(w_{τ−1})⟩ / (H W),

the talk's "superposition of training examples" down to the pixels that carry it, at no extra jvp
(``result(maps=...)`` or :meth:`AdjointPathRecorder.pixel_maps`, :class:`PixelMaps`). The maps of one
presentation live in its own (augmented) frame: an affine augmentation has no pixel-exact way back.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap

from jordanlab.train.losses import elementwise_loss

from . import _functional as F
from .adam_path import AdamPathDecomposition, AdamPathRecorder
from .ranger_path import RangerPathDecomposition, RangerPathRecorder

__all__ = ["SCRATCH_MARKER", "AdjointPathDecomposition", "AdjointPathRecorder", "PixelMaps"]

#: The file that marks a scratch directory as the adjoint recorder's own (it deletes only such directories).
SCRATCH_MARKER = ".jordanlab-adjoint-scratch"
_FILES = ("u.bin", "w.bin", "x.bin", "y.bin")


@dataclass(frozen=True)
class PixelMaps:
    """Per-pixel contributions of chosen examples, one entry per presentation (a step that drew the example).

    Attributes
    ----------
    examples, steps : Tensor of shape (K,)
        Dataset index and 0-based step of each presentation (steps ascending within an example).
    inputs, targets : Tensor of shape (K, H, W)
        The presentation's image and mask as trained (augmented), float.
    maps : Tensor of shape (Q, K, H, W)
        A_{τ,i}[p]: ``maps[q, examples == i].sum()`` is a_i of query q (the sweep's contribution).
    """

    examples: Tensor
    steps: Tensor
    inputs: Tensor
    targets: Tensor
    maps: Tensor

    def select(self, examples: Sequence[int]) -> PixelMaps:
        """The presentations of ``examples`` only (each must be among :attr:`examples`, or never drawn)."""
        keep = torch.isin(self.examples, torch.as_tensor(list(examples), dtype=self.examples.dtype))
        return PixelMaps(self.examples[keep], self.steps[keep], self.inputs[keep], self.targets[keep],
                         self.maps[:, keep])

    def totals(self) -> Tensor:
        """(Q, K): each presentation's share Σ_p A_{τ,i}[p]."""
        return self.maps.flatten(2).sum(-1)


@dataclass(frozen=True)
class AdjointPathDecomposition:
    """Result of :class:`AdjointPathRecorder`: the forward recorder's result with the adjoint's a_i.

    Attributes
    ----------
    path : AdamPathDecomposition or RangerPathDecomposition
        ``contributions`` (Q, N) from the backward sweep; ``residual`` = final − initial − Σ_i a_i − a_reg
        (− a_BN); every per-step check (step, momentum, gradient, slow-weight residuals) from the forward pass.
    aggregate : Tensor of shape (Q,)
        a_data = Σ_t ḡ_t · Δw_{t,data}, the forward bookkeeping of all examples together (one share row).
    adjoint_residual : Tensor of shape (Q,)
        Σ_i a_i (adjoint) − a_data (forward): the sweep's own bookkeeping residual.
    disk_bytes : int
        Bytes the scratch files held (u_t, w_{t−1}, the batches).
    sweep_seconds : float
        Wall time of the backward sweep.
    """

    path: AdamPathDecomposition | RangerPathDecomposition
    aggregate: Tensor
    adjoint_residual: Tensor
    disk_bytes: int
    sweep_seconds: float
    maps: PixelMaps | None = None

    @property
    def contributions(self) -> Tensor:
        return self.path.contributions


def _strip_running_stats(net: nn.Module) -> nn.Module:
    """BatchNorm in training mode without running statistics: the same outputs, no buffer written (for jvp)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return net


class _Adjoint:
    """The reverse-accumulation mixin (first base of the two recorder classes below)."""

    scratch: Path

    def _init_scratch(self, scratch: str | os.PathLike[str]) -> None:
        path = Path(scratch)
        own = {SCRATCH_MARKER, *_FILES}
        if path.is_dir() and (path / SCRATCH_MARKER).is_file() and {p.name for p in path.iterdir()} <= own:
            for name in own:  # a killed recorder's leftover: only its own files, proven by the marker
                (path / name).unlink(missing_ok=True)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ValueError(f"scratch directory {str(path)!r} exists and is not empty: the adjoint recorder needs its own")
        path.mkdir(parents=True, exist_ok=True)
        (path / SCRATCH_MARKER).write_text("jordanlab adjoint path recorder scratch; deleted when it is done\n")
        self.scratch = path
        self._fds = {name: os.open(path / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) for name in _FILES}
        self._batches: list[tuple[int, tuple[int, ...], Tensor, float, bool]] = []  # offset, shape, idx, c_t, train
        self._batch_offset = 0
        self._window: list[tuple[int, Tensor, Tensor]] = []  # (t, coef_t, ḡ_t) of the open Lookahead window
        self._beta1: float | None = None
        self._cached: AdjointPathDecomposition | None = None
        self._kept: set[int] = set()

    # -- the forward recorder, reduced to one share row -------------------------------------------------
    def _share_rows(self) -> int:
        return 1

    def _rows(self, idx: Tensor) -> Tensor:
        return torch.zeros(1, dtype=torch.long, device=idx.device)

    def _setup_adjoint(self, model: nn.Module) -> None:
        self.store_dtype = self.named[0][1].dtype  # the weights as trained
        self.jvp_train = _strip_running_stats(self._deepcopy(model).to(self.gdtype).train())
        self.jvp_eval = self._deepcopy(model).to(self.gdtype).eval()
        self._n_params = sum(self.sizes)

    @staticmethod
    def _deepcopy(model: nn.Module) -> nn.Module:
        import copy

        return copy.deepcopy(model)

    def _batch_losses(self, p: dict[str, Tensor], xb: Tensor, yb: Tensor, training: bool) -> Tensor:
        """(ℓ_i(w))_i of one batch, shape (B,): each example's mean per-pixel loss, BatchNorm statistics of its batch."""
        return self._pixel_losses(p, xb, yb, training).sum(1)

    def _pixel_losses(self, p: dict[str, Tensor], xb: Tensor, yb: Tensor, training: bool) -> Tensor:
        """(ℓ_{i,p}(w) / (H W)), shape (B, H·W): the per-pixel terms of :meth:`_batch_losses`."""
        if training:
            out = functional_call(self.jvp_train, p, (xb,))
        else:
            out = functional_call(self.jvp_eval, {**p, **self.grad_state}, (xb,))
        per = elementwise_loss(out, yb.reshape(out.shape), self.loss).reshape(out.shape[0], -1)
        return per / per.shape[1]

    def _example_grads(self, w: dict[str, Tensor], xb: Tensor, yb: Tensor) -> Tensor:
        """The one share row: ∇_w Σ_i ℓ_i(w), shape (1, P) (the aggregate of the forward recorder's rows)."""
        training = self.model.training
        g = grad(lambda p: self._batch_losses(p, xb, yb, training).sum())(w)
        return F.flatten(g, 0)[None]

    # -- recording ---------------------------------------------------------------------------------------
    def _write(self, name: str, offset: int, tensor: Tensor) -> None:
        data = tensor.detach().cpu().contiguous().numpy().tobytes()
        if os.pwrite(self._fds[name], data, offset) != len(data):
            raise OSError(f"short write to {self.scratch / name}")

    def _write_u(self, t: int, u: Tensor) -> None:
        self._write("u.bin", t * u.numel() * u.element_size(), u.to(self.dtype))

    def _record(self, *, coef: Tensor, gbar: Tensor, synced: bool, alpha: float, beta1: float, clip: float,
                w0: dict[str, Tensor], idx: Tensor, xb: Tensor, yb: Tensor) -> None:
        t = self.t  # 0-based index of this step
        if self._beta1 is not None and beta1 != self._beta1:
            raise ValueError(f"beta1 changed during the run ({self._beta1} -> {beta1}): not handled")
        self._beta1 = beta1
        w = F.flatten(w0, 0).to(self.store_dtype)
        self._write("w.bin", t * w.numel() * w.element_size(), w)
        x, y = xb.to(self.store_dtype), yb.to(self.store_dtype)
        self._write("x.bin", self._batch_offset, x)
        self._write("y.bin", self._batch_offset, y)
        self._batches.append((self._batch_offset, tuple(x.shape), idx.cpu().clone(), float(clip),
                              bool(self.model.training)))
        self._batch_offset += x.numel() * x.element_size()
        if synced:  # the window's earlier steps get their share of the Lookahead pull −(1 − α) ḡ_s
            for s, c, g in self._window:
                self._write_u(s, c * (g - (1.0 - alpha) * gbar))
            self._window = []
            self._write_u(t, alpha * coef * gbar)
        elif alpha == 1.0:  # no Lookahead (Adam): nothing pulls this step back later
            self._write_u(t, coef * gbar)
        else:
            self._window.append((t, coef.clone(), gbar.clone()))

    # -- the backward sweep ------------------------------------------------------------------------------
    def _read(self, name: str, dtype: torch.dtype, offset: int, shape: tuple[int, ...]) -> Tensor:
        arr = np.memmap(self.scratch / name, dtype=torch.empty((), dtype=dtype).numpy().dtype, mode="r",
                        offset=offset, shape=shape)
        return torch.from_numpy(np.array(arr)).to(self.device)

    def _close_window(self) -> None:
        for s, c, g in self._window:  # a window still open at T: no Lookahead pull on its steps
            self._write_u(s, c * g)
        self._window = []

    def _sweep(self, keep: Tensor | None = None) -> tuple[Tensor, PixelMaps | None]:
        """a (Q, N): λ_T = u_T, λ_τ = u_τ + β1 λ_{τ+1}; a_i += (1 − β1) c_τ/|B_τ| ⟨GC(λ_τ), ∇ℓ_i(w_{τ−1})⟩ by jvp.

        ``keep``: a bool mask over the N examples whose per-pixel maps are kept (module docstring); the jvp is
        always taken of the per-pixel losses, so a_i is the same number with or without maps.
        """
        self._close_window()
        q, p_all = len(self.queries), self._n_params
        a = torch.zeros(q, self.n_train, dtype=self.dtype, device=self.device)
        lam = torch.zeros(q, p_all, dtype=self.dtype, device=self.device)
        beta1 = self._beta1 if self._beta1 is not None else 0.0
        u_bytes = q * p_all * torch.empty((), dtype=self.dtype).element_size()
        w_bytes = p_all * torch.empty((), dtype=self.store_dtype).element_size()
        kept: list[tuple[Tensor, int, Tensor, Tensor, Tensor]] = []  # examples, step, x, y, maps (Q, k, H·W)
        for t in reversed(range(self.t)):
            lam = self._read("u.bin", self.dtype, t * u_bytes, (q, p_all)) + beta1 * lam
            offset, shape, idx, clip, training = self._batches[t]
            w = self._unflat(self._read("w.bin", self.store_dtype, t * w_bytes, (p_all,)).to(self.gdtype))
            xb = self._read("x.bin", self.store_dtype, offset, shape).to(self.gdtype)
            yb = self._read("y.bin", self.store_dtype, offset, shape).to(self.gdtype)
            v = self._centralize(lam).to(self.gdtype)
            tangents = {n: part.reshape(q, *p.shape) for (n, p), part in zip(self.named, torch.split(v, self.sizes, 1))}
            fn = lambda p: self._pixel_losses(p, xb, yb, training)  # noqa: E731
            pix = vmap(lambda t: jvp(fn, (w,), (t,))[1])(tangents).to(self.dtype)  # (Q, B, H·W): the Q jvps at once
            pix = ((1.0 - beta1) * clip / shape[0]) * pix
            a.index_add_(1, idx.to(self.device), pix.sum(2))
            if keep is not None and bool(keep[idx].any()):
                rows = keep[idx].nonzero().flatten()
                kept.append((idx[rows], t, xb[rows.to(xb.device)], yb[rows.to(xb.device)],
                             pix[:, rows.to(pix.device)]))
        if keep is None:
            return a, None
        return a, self._collect(kept, q)

    def _collect(self, kept: list, q: int) -> PixelMaps:
        """The kept presentations, grouped by example, steps ascending (the sweep visits them backwards)."""
        if not kept:
            return PixelMaps(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                             torch.zeros(0, 0, 0), torch.zeros(0, 0, 0), torch.zeros(q, 0, 0, 0, dtype=self.dtype))
        examples = torch.cat([k[0] for k in kept]).cpu()
        steps = torch.cat([torch.full((len(k[0]),), k[1], dtype=torch.long) for k in kept])
        hw = kept[0][2].shape[-2:]
        inputs = torch.cat([k[2].reshape(-1, *hw) for k in kept]).float().cpu()
        targets = torch.cat([k[3].reshape(-1, *hw) for k in kept]).float().cpu()
        maps = torch.cat([k[4] for k in kept], 1).reshape(q, -1, *hw).cpu()
        order = torch.as_tensor(np.lexsort((steps.numpy(), examples.numpy())))
        return PixelMaps(examples[order], steps[order], inputs[order], targets[order], maps[:, order])

    def _keep_mask(self, maps: bool | Sequence[int]) -> Tensor | None:
        if maps is False:
            return None
        keep = torch.zeros(self.n_train, dtype=torch.bool)
        if maps is True:
            keep[:] = True
        else:
            idx = torch.as_tensor(list(maps), dtype=torch.long)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n_train):
                raise ValueError(f"maps: example indices must lie in [0, {self.n_train}), got {idx.tolist()}")
            keep[idx] = True
        return keep

    def pixel_maps(self, examples: Sequence[int]) -> PixelMaps:
        """The per-pixel maps of ``examples``: from the cached result when it kept them, else one more sweep."""
        result = self.result()
        wanted = set(int(i) for i in examples)
        if result.maps is not None and wanted <= self._kept:
            return result.maps.select(sorted(wanted))
        keep = self._keep_mask(sorted(wanted))
        a, maps = self._sweep(keep)
        self._check_same(a, result.contributions)
        return maps

    @staticmethod
    def _check_same(a: Tensor, ref: Tensor) -> None:
        """A second sweep recomputes the same a_i (same reads, same jvps): anything else is a bug, not rounding."""
        if not torch.equal(a, ref):
            raise RuntimeError(f"a second sweep gave other contributions (max diff {float((a - ref).abs().max()):.3e})")

    def disk_bytes(self) -> int:
        """Bytes the scratch files hold now."""
        return sum((self.scratch / name).stat().st_size for name in _FILES if (self.scratch / name).exists())

    def result(self, *, maps: bool | Sequence[int] = False) -> AdjointPathDecomposition:  # type: ignore[override]
        """The decomposition (the backward sweep runs once, on the first call, after the last step).

        ``maps``: keep the per-pixel maps of every example (``True``: Q · T · B · H · W numbers) or of the
        listed ones, in the same sweep (:class:`PixelMaps`, ``.maps`` of the result).
        """
        if self._cached is not None and self._cached.path.steps == self.t and maps is False:
            return self._cached
        forward = super().result()
        self._close_window()
        disk = self.disk_bytes()
        keep = self._keep_mask(maps)
        t0 = time.perf_counter()
        a, kept = self._sweep(keep)
        self._kept = set() if keep is None else set(keep.nonzero().flatten().tolist())
        seconds = time.perf_counter() - t0
        aggregate = forward.contributions[:, 0]
        bn = getattr(forward, "batchnorm", torch.zeros_like(forward.regulariser))
        residual = forward.final - forward.initial - a.sum(1) - forward.regulariser - bn
        path = dataclasses.replace(forward, contributions=a, residual=residual)
        self._cached = AdjointPathDecomposition(path=path, aggregate=aggregate.clone(),
                                                adjoint_residual=a.sum(1) - aggregate, disk_bytes=disk,
                                                sweep_seconds=seconds, maps=kept)
        return self._cached

    def close(self) -> None:
        """Delete the scratch files, the marker and the (then empty) scratch directory; nothing else."""
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)
        self._fds = {}
        if not (self.scratch / SCRATCH_MARKER).is_file():
            return
        for name in _FILES:
            (self.scratch / name).unlink(missing_ok=True)
        (self.scratch / SCRATCH_MARKER).unlink()
        self.scratch.rmdir()

    def __enter__(self):  # noqa: ANN204
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AdjointAdam(_Adjoint, AdamPathRecorder):
    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        AdamPathRecorder.bind(self, model, optimizer)
        self._setup_adjoint(model)


class _AdjointRanger(_Adjoint, RangerPathRecorder):
    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        RangerPathRecorder.bind(self, model, optimizer)
        self._setup_adjoint(model)


class AdjointPathRecorder:
    """A training step hook: the exact Adam or Ranger path decomposition with O(T (Q+1) P) disk, O((k+Q) P) RAM.

    Used like the forward recorders (``train(config, run_dir, step_hooks=[rec])``, then ``rec.result()``,
    then ``rec.close()``, or as a context manager). ``bind`` picks the Adam (``torch.optim.Adam/AdamW``) or the
    Ranger (``pytorch_optimizer.Ranger``) bookkeeping from the optimizer; parameters are those of
    :class:`~jordanlab.kernels.RangerPathRecorder` (``quadrature=None``: the Adam or Ranger recorder's default)
    plus ``scratch``, a directory that must not exist or be
    empty: it is marked as the recorder's own and deleted by :meth:`close` (its own files only).
    RAM: the query gradients, λ and the open Lookahead window (k − 1 steps of coef_t and ḡ_t).
    """

    def __init__(self, queries: Sequence[Tensor], pixels: Sequence[Sequence[int]], n_train: int, *,
                 scratch: str | os.PathLike[str], loss: str = "bce", grad_clip: float = 0.0,
                 penalty_weight: Callable[[int], float] | None = None, quadrature: int | None = None,
                 dtype: torch.dtype = torch.float64, gradient_dtype: torch.dtype | None = None,
                 kinks: bool = True, detect: int = 2) -> None:
        self._kwargs = dict(loss=loss, grad_clip=grad_clip, penalty_weight=penalty_weight, dtype=dtype,
                            gradient_dtype=gradient_dtype, kinks=kinks, detect=detect)
        if quadrature is not None:  # None: each forward recorder's default (Adam 2, Ranger 3 nodes)
            self._kwargs["quadrature"] = quadrature
        self._args = (list(queries), [tuple(p) for p in pixels], n_train)
        AdamPathRecorder(*self._args, **self._kwargs)  # validates the arguments now, not at bind
        self._scratch = scratch
        self._impl: _Adjoint | None = None
        path = Path(scratch)
        own = {SCRATCH_MARKER, *_FILES}
        if path.is_dir() and (path / SCRATCH_MARKER).is_file() and {p.name for p in path.iterdir()} <= own:
            for name in own:  # a killed recorder's leftover: only its own files, proven by the marker
                (path / name).unlink(missing_ok=True)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):  # refused now, not at bind
            raise ValueError(f"scratch directory {str(path)!r} exists and is not empty: the adjoint recorder needs its own")

    def bind(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Attach to the loop's model and optimizer: Ranger bookkeeping for ``pytorch_optimizer.Ranger``, else Adam's."""
        try:
            from pytorch_optimizer import Ranger
        except ImportError:  # pragma: no cover - a dependency of the package
            Ranger = ()  # noqa: N806
        cls = _AdjointRanger if isinstance(optimizer, Ranger) else _AdjointAdam
        impl = cls(*self._args, **self._kwargs)
        impl._init_scratch(self._scratch)
        try:
            impl.bind(model, optimizer)
        except BaseException:
            impl.close()
            raise
        self._impl = impl

    def _bound(self) -> _Adjoint:
        if self._impl is None:
            raise RuntimeError("bind(model, optimizer) must be called before the first step")
        return self._impl

    def before_step(self, batch_indices: Sequence[int] | Tensor, inputs: Tensor, targets: Tensor) -> None:
        self._bound().before_step(batch_indices, inputs, targets)

    def after_step(self) -> None:
        self._bound().after_step()

    @property
    def steps(self) -> int:
        return self._bound().t

    @property
    def recorder(self) -> AdamPathRecorder:
        """The bound forward recorder (Adam or Ranger bookkeeping, one aggregate share row)."""
        return self._bound()  # type: ignore[return-value]

    def disk_bytes(self) -> int:
        return self._bound().disk_bytes()

    def result(self, *, maps: bool | Sequence[int] = False) -> AdjointPathDecomposition:
        """Run the backward sweep (once) and return the decomposition; ``maps``: keep per-pixel maps (all or these)."""
        return self._bound().result(maps=maps)

    def pixel_maps(self, examples: Sequence[int]) -> PixelMaps:
        """Per-pixel maps of ``examples`` (:class:`PixelMaps`): kept by ``result(maps=...)``, else one more sweep."""
        return self._bound().pixel_maps(examples)

    def close(self) -> None:
        """Delete the scratch directory's files (only the recorder's own: it carries :data:`SCRATCH_MARKER`)."""
        if self._impl is not None:
            self._impl.close()

    def __enter__(self) -> AdjointPathRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
