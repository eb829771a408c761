"""Segment averages of a query gradient that stay exact across ReLU and max-pool kinks.

Along one optimizer step the weights move on the segment w(s) = w + sΔ, s ∈ [0, 1], and the path
decomposition needs ḡ = ∫_0^1 ∇_w f(w(s), x_q) ds exactly, because f(w + Δ) − f(w) = ḡ · Δ. For a
network built from smooth maps and piecewise-linear ones (ReLU, max-pool, clamp, abs, maximum) the
query output is smooth on each interval of s where the *activation pattern* of the query — the
on/off state of every ReLU unit and the argmax of every max-pool window that reaches the query
pixel — is constant, and only there: Gauss–Legendre nodes that straddle a change of pattern
(a kink) integrate a function that is not smooth, which is the O(kink) error of plain quadrature.

:class:`SegmentQuadrature` therefore

1. reads the pattern with a :class:`torch.overrides.TorchFunctionMode` during the query's forward pass
   (status: pre-activation > 0 for the ReLU family, the argmax index for max-pooling, the active
   branch for clamp/abs/maximum/minimum) and its *relevance*: ∂f_q/∂(op output) ≠ 0, from one
   backward pass. A unit whose output does not reach the query (outside its receptive field, or
   behind units that are off) cannot change f_q while it stays irrelevant, and a unit that becomes
   relevant does so through a relevant unit's change, which is detected;
2. compares the pattern on a grid of ``detect + 1`` points of [0, 1], and between two points whose
   relevant statuses differ locates the first change to float precision (safeguarded regula falsi on
   the changed units' pre-activations, or on the gap between the old and new winner of a pool window,
   with bisection steps; a bracket 4 ulps wide), then continues from there: the pieces [s_j, s_{j+1}];
3. integrates each piece with ``nodes`` Gauss–Legendre nodes (exact for a polynomial ∇f of degree
   2·nodes − 1, which a piecewise-linear network with L weight layers is along the segment for
   2·nodes − 1 ≥ L − 1; in practice the high-order terms vanish like |Δ|^k and few nodes suffice), and
4. checks each piece by the fundamental theorem of calculus, f(w(b)) − f(w(a)) = ∫_a^b ∇f ds · Δ, which
   costs nothing (the end values come from step 1). A piece that fails the check (a unit that crossed
   zero twice between grid points, a kink op not listed here, too few nodes for the piece's degree)
   is re-detected on a finer grid, or halved, up to ``max_depth`` times; pieces that still fail are
   counted in ``unresolved``, never hidden.

The sum over the pieces' checks is the step's own quadrature residual f(w + Δ) − f(w) − ḡ·Δ, reported
per step by the recorders.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as nnf
from torch.overrides import TorchFunctionMode

from . import _functional as F

__all__ = ["ActivationPattern", "SegmentInfo", "SegmentQuadrature"]

_RELU_LIKE = {nnf.relu, nnf.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_, nnf.leaky_relu,
              nnf.leaky_relu_, nnf.prelu, nnf.rrelu}
_CLAMP_LIKE = {torch.clamp, torch.clip, Tensor.clamp, Tensor.clip, Tensor.clamp_, torch.clamp_min, torch.clamp_max,
               Tensor.clamp_min, Tensor.clamp_max, nnf.hardtanh, nnf.hardtanh_, nnf.relu6}
_ABS = {torch.abs, Tensor.abs, Tensor.__abs__}
_BINARY = {torch.maximum, torch.minimum, torch.fmax, torch.fmin}
_POOLS = {
    nnf.max_pool1d: nnf.max_pool1d_with_indices, nnf.max_pool2d: nnf.max_pool2d_with_indices,
    nnf.max_pool3d: nnf.max_pool3d_with_indices, nnf.max_pool1d_with_indices: nnf.max_pool1d_with_indices,
    nnf.max_pool2d_with_indices: nnf.max_pool2d_with_indices, nnf.max_pool3d_with_indices: nnf.max_pool3d_with_indices,
    nnf.adaptive_max_pool1d: nnf.adaptive_max_pool1d_with_indices,
    nnf.adaptive_max_pool2d: nnf.adaptive_max_pool2d_with_indices,
    nnf.adaptive_max_pool3d: nnf.adaptive_max_pool3d_with_indices,
}


def _clamp_bounds(func: Callable, args: tuple, kwargs: dict) -> tuple[object, object]:
    """(lower, upper) bound of a clamp-like call; ``None`` where unbounded."""
    if func in (nnf.relu6,):
        return 0.0, 6.0
    if func in (nnf.hardtanh, nnf.hardtanh_):
        lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
        hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
        return lo, hi
    if func in (torch.clamp_min, Tensor.clamp_min):
        return (args[1] if len(args) > 1 else kwargs.get("min")), None
    if func in (torch.clamp_max, Tensor.clamp_max):
        return None, (args[1] if len(args) > 1 else kwargs.get("max"))
    lo = args[1] if len(args) > 1 else kwargs.get("min")
    hi = args[2] if len(args) > 2 else kwargs.get("max")
    return lo, hi


class ActivationPattern(TorchFunctionMode):
    """Record the activation pattern of a forward pass: one (status, output) pair per piecewise-linear op.

    ``status[j]`` has the shape of the op's output: ReLU family: input > 0; clamp family: 0 inside,
    1 below, 2 above the bounds; abs: input > 0; maximum/minimum: first > second; max-pooling: the flat
    argmax index of each window. ``outputs[j]`` is the op's output tensor (for the relevance ∂f/∂output).
    ``margins[j]`` keeps what locates a change by interpolation: the pre-activation for the ReLU family,
    the pooled input for max-pooling, ``None`` for the others (located by bisection).
    Ops outside this list are not seen (the check by the fundamental theorem of calculus catches their kinks).
    """

    def __init__(self) -> None:
        super().__init__()
        self.status: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self.margins: list[Tensor | None] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch protocol
        kwargs = kwargs or {}
        margin = None
        if func in _RELU_LIKE:
            margin = (args[0] if args else kwargs["input"]).detach().clone()
            st = margin > 0
            out = func(*args, **kwargs)
        elif func in _CLAMP_LIKE:
            x = (args[0] if args else kwargs["input"]).detach()
            lo, hi = _clamp_bounds(func, args, kwargs)
            st = torch.zeros(x.shape, dtype=torch.int8, device=x.device)
            if lo is not None:
                st = st + (x < (lo.detach() if isinstance(lo, Tensor) else lo)).to(torch.int8)
            if hi is not None:
                st = st + 2 * (x > (hi.detach() if isinstance(hi, Tensor) else hi)).to(torch.int8)
            out = func(*args, **kwargs)
        elif func in _ABS:
            st = args[0].detach() > 0
            out = func(*args, **kwargs)
        elif func in _BINARY:
            a, b = args[0], (args[1] if len(args) > 1 else kwargs["other"])
            st = torch.broadcast_tensors(a.detach() > (b.detach() if isinstance(b, Tensor) else b))[0]
            out = func(*args, **kwargs)
        elif func in _POOLS:
            with_indices = _POOLS[func]
            bound = inspect.signature(with_indices).bind_partial(*args, **kwargs).arguments
            bound.pop("return_indices", None)
            out, idx = with_indices(**bound)
            wants = func is with_indices or kwargs.get("return_indices") or (
                len(args) > 6 and func in (nnf.max_pool1d, nnf.max_pool2d, nnf.max_pool3d) and args[6])
            self.status.append(idx)
            self.outputs.append(out)
            self.margins.append(bound["input"].detach())
            return (out, idx) if wants else out
        else:
            return func(*args, **kwargs)
        self.status.append(st)
        self.outputs.append(out)
        self.margins.append(margin if st.shape == out.shape else None)
        return out


def _crossing(m_lo: Tensor, m_hi: Tensor, st_lo: Tensor, st_hi: Tensor, mask: Tensor | None) -> float | None:
    """Smallest t ∈ (0, 1) where a unit that changed status between lo (t = 0) and hi (t = 1) crossed, by
    linear interpolation of its margin (the pre-activation, or the gap between two pool candidates)."""
    changed = st_lo != st_hi
    if mask is not None:
        changed &= mask
    if not bool(changed.any()):
        return None
    if st_lo.dtype == torch.bool:  # ReLU family: margins are the pre-activations
        a, b = m_lo[changed], m_hi[changed]
    else:  # max-pool: the old winner's value minus the new winner's, at both ends
        flat_lo, flat_hi = m_lo.flatten(-2), m_hi.flatten(-2)
        i_lo, i_hi = st_lo.flatten(-2), st_hi.flatten(-2)
        a = (flat_lo.gather(-1, i_lo) - flat_lo.gather(-1, i_hi)).reshape(st_lo.shape)[changed]
        b = (flat_hi.gather(-1, i_lo) - flat_hi.gather(-1, i_hi)).reshape(st_lo.shape)[changed]
    den = a - b
    ok = (den != 0) & torch.isfinite(den)
    if not bool(ok.any()):
        return None
    t = (a[ok] / den[ok]).clamp(0.0, 1.0)
    return float(t.min())


@dataclass
class _Probe:
    s: float
    value: float
    status: list[Tensor]
    margins: list[Tensor | None]
    relevance: list[Tensor] | None
    grad: Tensor | None  # flat (P,)


@dataclass
class SegmentInfo:
    """What one segment's integration did, for one query.

    Attributes
    ----------
    pieces : int
        Intervals of constant relevant pattern (each integrated with ``nodes`` Gauss–Legendre nodes).
    kinks : int
        Pattern changes located by bisection.
    refinements : int
        Pieces that failed the fundamental-theorem check and were re-detected or halved.
    unresolved : int
        Pieces that still failed it after ``max_depth`` refinements.
    residual : float
        f(w + Δ) − f(w) − ḡ·Δ: the quadrature residual of this step (sum of the pieces' checks).
    evaluations : int
        Forward passes of the query (with or without backward) spent on this segment.
    """

    pieces: int = 0
    kinks: int = 0
    refinements: int = 0
    unresolved: int = 0
    residual: float = 0.0
    evaluations: int = 0


class SegmentQuadrature:
    """ḡ = ∫_0^1 ∇_w f(w + sΔ) ds for one scalar query function ``f(params)``, split at its kinks.

    Parameters
    ----------
    nodes : int
        Gauss–Legendre nodes per piece.
    detect : int
        The pattern is compared at ``detect + 1`` equally spaced points of [0, 1] before bisection.
    max_depth : int
        Refinements of a piece that fails the check f(b) − f(a) = ∫_a^b ∇f ds · Δ.
    rtol : float
        A piece [a, b] passes when |f(b) − f(a) − I·Δ| ≤ (b − a)·rtol·|f(1) − f(0)| + 64 ε max(|f|, 1)
        (ε the dtype's machine epsilon), so the pieces of a step together stay within rtol of its change.

    Examples
    --------
    >>> import torch
    >>> w = {"a": torch.tensor([1.0, -0.5], dtype=torch.float64)}
    >>> d = {"a": torch.tensor([-3.0, 2.0], dtype=torch.float64)}
    >>> f = lambda p: torch.relu(p["a"]).sum()  # kinks at s = 1/3 and s = 1/4
    >>> g, info = SegmentQuadrature(nodes=1).average_gradient(f, w, d)
    >>> [round(v, 12) for v in g.tolist()], info.pieces, info.kinks, abs(info.residual) < 1e-14
    ([0.333333333333, 0.75], 4, 2, True)
    """

    def __init__(self, *, nodes: int = 3, detect: int = 2, max_depth: int = 4, rtol: float = 1e-11) -> None:
        if not isinstance(detect, int) or detect < 1:
            raise ValueError(f"detect must be a positive int (grid intervals of the pattern search), got {detect!r}")
        if not isinstance(max_depth, int) or max_depth < 0:
            raise ValueError(f"max_depth must be an int >= 0, got {max_depth!r}")
        if not (isinstance(rtol, (int, float)) and rtol > 0):
            raise ValueError(f"rtol must be a positive float, got {rtol!r}")
        self.nodes, self.detect, self.max_depth, self.rtol = nodes, detect, max_depth, float(rtol)
        self._gl = F.gauss_legendre(nodes, torch.float64, torch.device("cpu"))

    # -- one evaluation of the query at w + sΔ -------------------------------------------------------------
    def _probe(self, s: float, *, relevance: bool, gradient: bool) -> _Probe:
        self._info.evaluations += 1
        backward = relevance or gradient
        ws = {k: (v + s * self._delta[k]) for k, v in self._w.items()}
        if backward:
            ws = {k: v.detach().requires_grad_(True) for k, v in ws.items()}
        with torch.enable_grad() if backward else torch.no_grad():
            with ActivationPattern() as pat:
                out = self._f(ws)
            if out.numel() != 1:
                raise ValueError(f"the query function must return a scalar, got shape {tuple(out.shape)}")
            rel, grad = None, None
            if relevance and not gradient and not pat.outputs:
                rel, backward = [], False  # no piecewise op: nothing to be relevant
            if backward:
                inputs = (list(ws.values()) if gradient else []) + (pat.outputs if relevance else [])
                gs = torch.autograd.grad(out.reshape(()), inputs, allow_unused=True)
                n = len(ws) if gradient else 0
                if gradient:
                    grad = torch.cat([(g if g is not None else torch.zeros_like(v)).reshape(-1)
                                      for g, v in zip(gs[:n], ws.values())]).detach()
                if relevance:
                    rel = [(g != 0) if g is not None else torch.zeros(o.shape, dtype=torch.bool, device=o.device)
                           for g, o in zip(gs[n:], pat.outputs)]
        return _Probe(s, float(out.detach()), [t.detach() for t in pat.status], pat.margins, rel, grad)

    @staticmethod
    def _same(a: list[Tensor], b: list[Tensor], masks: list[Tensor] | None) -> bool:
        if len(a) != len(b):
            return False
        for j, (x, y) in enumerate(zip(a, b)):
            if x.shape != y.shape:
                return False
            if masks is None:
                if not torch.equal(x, y):
                    return False
            elif not torch.equal(x[masks[j]], y[masks[j]]):
                return False
        return True

    def _masks(self, p: _Probe, q: _Probe) -> list[Tensor] | None:
        if p.relevance is None or q.relevance is None or len(p.relevance) != len(q.relevance):
            return None
        if any(a.shape != b.shape for a, b in zip(p.relevance, q.relevance)):
            return None
        return [a | b for a, b in zip(p.relevance, q.relevance)]

    def _estimate(self, lo: _Probe, hi: _Probe, masks: list[Tensor] | None) -> float | None:
        if len(lo.status) != len(hi.status):
            return None
        best = None
        for j, (a, b) in enumerate(zip(lo.status, hi.status)):
            ma, mb = lo.margins[j], hi.margins[j]
            if ma is None or mb is None or a.shape != b.shape or ma.shape != mb.shape:
                continue
            t = _crossing(ma, mb, a, b, None if masks is None else masks[j])
            if t is not None and (best is None or t < best):
                best = t
        return None if best is None else lo.s + best * (hi.s - lo.s)

    def _locate(self, cur: _Probe, nxt: _Probe, masks: list[Tensor] | None) -> _Probe:
        """The first point after ``cur`` (within a few ulps) whose relevant pattern differs from cur's.

        Safeguarded regula falsi on the changed units' margins (a pre-activation is nearly linear in s
        over one step, so the estimates converge fast): each estimate is probed, then a point on its far
        side at twice the last correction (half the tolerance after the first estimate), so that an
        accurate estimate closes the bracket at once; every fourth probe is a bisection. Stops when the
        bracket is 4 ulps of max(s, 0.5) wide: ulps of s ∈ [0, 1] are counted at 0.5 or above, because a
        unit exactly at its kink at s = 0 (a pre-activation of 0, a pool tie) changes right after 0, and a
        bracket measured in the ulps of its own tiny upper end shrank for hundreds of probes to 1e-120.
        """
        lo, hi = cur, nxt
        last = None
        for it in range(400):
            tol = 4 * math.ulp(max(hi.s, 0.5))
            if hi.s - lo.s <= tol:
                return hi
            est = None if it % 4 == 3 else self._estimate(lo, hi, masks)
            if est is not None and est <= lo.s:  # the margin is 0 at lo: the change is right after it
                est = lo.s + 0.5 * tol
            elif est is not None and est >= hi.s:
                est = hi.s - 0.5 * tol
            if est is None or not (lo.s < est < hi.s):
                est = 0.5 * (lo.s + hi.s)
            p = self._probe(est, relevance=False, gradient=False)
            left = self._same(p.status, cur.status, masks)
            lo, hi = (p, hi) if left else (lo, p)
            guard = 0.5 * tol if last is None else max(2.0 * abs(est - last), 0.5 * tol)
            s2 = est + guard if left else est - guard
            if lo.s < s2 < hi.s:
                q = self._probe(s2, relevance=False, gradient=False)
                lo, hi = (q, hi) if self._same(q.status, cur.status, masks) else (lo, q)
            last = est
        return hi

    def _pieces(self, a: _Probe, b: _Probe, grid: int) -> list[_Probe]:
        """Break points a = p_0 < p_1 < … < p_m = b, each a probe with relevance."""
        points = [a]
        for j in range(1, grid + 1):
            nxt = b if j == grid else self._probe(a.s + (b.s - a.s) * j / grid, relevance=True, gradient=False)
            cur = points[-1]
            if j < grid and self._same(cur.status, nxt.status, self._masks(cur, nxt)):
                continue  # one piece so far: a grid point is no break point
            while True:
                masks = self._masks(cur, nxt)
                if self._same(cur.status, nxt.status, masks):
                    break
                hit = self._locate(cur, nxt, masks)
                if hit.s >= nxt.s:
                    break
                self._info.kinks += 1
                cur = self._probe(hit.s, relevance=True, gradient=False)
                points.append(cur)
            points.append(nxt)
        return points

    def _integrate(self, a: _Probe, b: _Probe, depth: int) -> Tensor:
        nodes, weights = self._gl
        h = b.s - a.s
        total = None
        for t, wk in zip(nodes.tolist(), weights.tolist()):
            g = self._probe(a.s + h * t, relevance=False, gradient=True).grad
            total = wk * h * g if total is None else total + wk * h * g
        err = b.value - a.value - float(total.double() @ self._dflat.double())
        tol = h * self.rtol * self._scale + self._floor
        if abs(err) <= tol:
            self._info.pieces += 1
            self._info.residual += err
            return total
        if depth >= self.max_depth:
            self._info.pieces += 1
            self._info.unresolved += 1
            self._info.residual += err
            return total
        self._info.refinements += 1
        points = self._pieces(a, b, 4)
        if len(points) == 2:  # no kink seen on a finer grid: halve (more nodes per unit of s)
            points = [a, self._probe(a.s + 0.5 * h, relevance=True, gradient=False), b]
        return sum(self._integrate(p, q, depth + 1) for p, q in zip(points[:-1], points[1:]))

    def average_gradient(self, f: Callable[[F.Params], Tensor], w: F.Params, delta: F.Params) -> tuple[Tensor, SegmentInfo]:
        """ḡ (flat, in the parameter order of ``w``) and what the integration did.

        ``f(params) -> scalar`` is the query output as a function of the parameter dict; ``w`` and ``delta``
        have the same keys (the segment is w + sΔ, s ∈ [0, 1]).
        """
        if set(w) != set(delta):
            raise ValueError("w and delta must have the same parameter names")
        self._f, self._w = f, w
        self._delta = {k: delta[k] for k in w}
        self._dflat = torch.cat([self._delta[k].reshape(-1) for k in w])
        self._info = SegmentInfo()
        p0 = self._probe(0.0, relevance=True, gradient=False)
        p1 = self._probe(1.0, relevance=True, gradient=False)
        eps = torch.finfo(next(iter(w.values())).dtype).eps
        self._scale = abs(p1.value - p0.value)
        self._floor = 64 * eps * max(abs(p0.value), abs(p1.value), 1.0)
        points = self._pieces(p0, p1, self.detect)
        gbar = sum(self._integrate(p, q, 0) for p, q in zip(points[:-1], points[1:]))
        info = self._info
        del self._f, self._w, self._delta, self._dflat, self._info
        return gbar, info
