"""A proof, from crossing-depth's 20 learned numbers, that it is exact on every well-posed image up to a canvas size.

:func:`certify_costs` checks that the costs are within ε of an exact 0/1 table, that the drift they
can accumulate along the longest path of a canvas stays below the head's tolerance, and that the head
reads parity at integer depths; it returns the largest canvas it guarantees, or the first condition
that fails.
"""

from __future__ import annotations

import math

import numpy as np

from .depth_solve import DIRECTIONS

__all__ = ["certify_costs"]


def _max_depth(size: int) -> int:
    """Most curves that can enclose a background pixel of a ``size``² canvas: ``(size − 1) // 2``.

    Along the pixel's row each enclosing curve has a stroke pixel on either side, distinct curves'
    pixels are distinct, so ``2 m + 1 <= size``.
    """
    return max(0, (int(size) - 1) // 2)


def _soft_deviation(size: int, eps_move: float, eps_transition: float, eps_one: float, unit_roundoff: float) -> float:
    r"""Bound on :math:`|d_c − d_T|` at background pixels of a ``size``² canvas (see :func:`certify_costs`)."""
    n = int(size)
    path, depth = n * n, _max_depth(n)
    up = depth * eps_transition + path * eps_move
    down = depth * eps_one
    return max(up, down) + 2.0 * path * (depth + 2) * unit_roundoff


def certify_costs(
    low: np.ndarray,
    high: np.ndarray,
    head_weight: np.ndarray,
    head_bias: float,
    *,
    size: int | None = None,
    min_size: int = 32,
    unit_roundoff: float = 2.0**-24,
) -> dict:
    r"""Decide from the learned numbers on which canvases crossing-depth is exact on *every* well-posed image.

    Parameters
    ----------
    low, high : array of shape (4, 2, 2)
        Least and largest cost of entering a pixel p from its neighbour q in direction k of
        :data:`DIRECTIONS`, by ``[k, B_q, B_p]`` (equal for the ``"pair"`` window; over every binary
        window for a wider one).
    head_weight : array of shape (3,), head_bias : float
        The 1×1 head on :math:`[B, (1 − B)\cos \pi d, 1 − B]`.
    size : int, optional
        A canvas to decide (``exact_at_size`` in the result).
    min_size : int
        Inference hardens the costs only if the costs as learned are certified up to this canvas
        (the training canvas): there the hardened and the learned model are both exact, so hardening
        changes no answer the training could have checked.
    unit_roundoff : float
        Of the float type the soft depth is computed in (2⁻²⁴: float32).

    Returns
    -------
    dict (JSON-ready)
        ``certified`` (conditions 1–5 hold: inference hardens the costs and is exact on every canvas),
        ``table_exact`` (conditions 1–4: the hardened model would be exact on every canvas),
        ``max_size`` (largest canvas side on which the model as run at inference is exact; ``None``:
        every canvas), ``max_size_soft`` (the same for the soft, learned costs), ``tolerance``,
        ``eps``, ``table``, ``table_class``, ``failure`` (first failing condition or ``None``),
        ``reasons`` (every condition checked, in order), ``size`` and ``exact_at_size``.

    Notes
    -----
    Premise (the exact fill's, :func:`jordanlab.topology.fill`): on a well-posed image (disjoint simple
    closed 8-curves, no two curves 8-adjacent), under the *reference* table R (1 to leave a stroke for
    the background, 0 otherwise) the depth of a background pixel is the number m of curves around it.

    1. **Hard table.** Every cost range lies on one side of 1/2; T is the rounded table.
    2. **Free moves.** :math:`T_k[0,0] = T_k[1,1] = 0`: a region and a 4-connected stroke piece are
       crossed for free.
    3. **An exact split.** Either (i) leaving a stroke costs 1 from every direction and entering is
       free from both directions of one axis (top and bottom, or left and right), or (ii) entering costs
       1 from every direction and leaving is free. (ii): along a path between background pixels entries
       and exits alternate, so every path costs as under R. (i): :math:`T \ge R`, so
       :math:`d_T \ge d_R = m`; conversely every R-crossing of a curve C from its outer region O into
       its inner region I (enter a stroke piece K from a ∈ O, walk in K, leave into I) can be rerouted at
       cost 1 under T: if a enters s ∈ K from the right (say) and vertical entries are free, walk up the
       column of a: while the pixel above s is in K and the one above a is background, both move up
       (a stays in O, s in K); the walk ends at the frame (entered for free), at a pixel above a in K
       (entered from below for free), at a background pixel above s (then in O, entering s from above
       for free), or at the diagonal pattern (above a: stroke v of C; above s: background u). There u
       touches C, so u ∈ O (enter s from above for free) or u ∈ I (enter v from a for free, leave to u
       for 1). So :math:`d_T = m` exactly, with integer costs: the hardened model has no drift.
    4. **Parity readout.** :math:`w_0 + b > 0` (curve pixels are figure), :math:`w_1 < 0` and
       :math:`|w_2 + b| < |w_1|`; then at :math:`|d − m| < \tau = \arccos(|w_2 + b| / |w_1|) / \pi`
       the logit :math:`w_1 (−1)^m \cos(\pi (d − m)) + w_2 + b` has the sign of the parity of m.
    5. **Drift of the soft costs.** With :math:`\varepsilon_{mv}` the largest cost of a free move,
       :math:`\varepsilon_t` the largest free transition cost and :math:`\varepsilon_1` the largest
       shortfall of a costly entry from 1: a T-shortest path has at most :math:`L = N^2` steps (it is
       simple) and at most m free transitions, so :math:`d_c \le m + m \varepsilon_t + L\varepsilon_{mv}`;
       any path has at least as many costly steps as its T-cost, so :math:`d_c \ge m (1 − \varepsilon_1)`;
       with :math:`m \le (N − 1)/2` and a float rounding term :math:`2 L (m + 2) u`, the soft model is
       exact on an N² canvas if that bound is below τ: ``max_size_soft`` is the largest such N.

    >>> lo = np.zeros((4, 2, 2)); lo[:, 1, 0] = 1
    >>> cert = certify_costs(lo, lo, np.array([10.0, -10.0, 0.0]), 0.0)
    >>> cert["certified"], cert["max_size"], cert["table_class"]
    (True, None, 'leave 1, enter free (both axes)')
    """
    lo, hi = np.asarray(low, float), np.asarray(high, float)
    if lo.shape != (len(DIRECTIONS), 2, 2) or hi.shape != lo.shape:
        raise ValueError(f"low, high: expected shape (4, 2, 2), got {lo.shape} and {hi.shape}")
    hw = np.asarray(head_weight, float).ravel()
    if hw.shape != (3,):
        raise ValueError(f"head_weight: expected 3 numbers, got shape {hw.shape}")
    names = [name for name, _ in DIRECTIONS]
    pairs = {(0, 0): "background→background", (0, 1): "background→stroke", (1, 0): "stroke→background",
             (1, 1): "stroke→stroke"}
    reasons: list[str] = []
    out: dict = dict(certified=False, table_exact=False, max_size=0, max_size_soft=0, tolerance=None, eps=None,
                     table=None, table_class=None, failure=None, reasons=reasons, size=size, exact_at_size=False,
                     min_size=int(min_size))

    def fail(msg: str) -> dict:
        reasons.append("FAIL " + msg)
        out["failure"] = msg
        return out

    # 1. a hard table
    for k in range(len(DIRECTIONS)):
        for (q, p), pair in pairs.items():
            if lo[k, q, p] <= 0.5 <= hi[k, q, p]:
                return fail(f"hard table: the cost of {pair} from the {names[k]} ranges over "
                            f"[{lo[k, q, p]:.3g}, {hi[k, q, p]:.3g}], not on one side of 1/2")
    t = (lo > 0.5).astype(np.int64)
    out["table"] = t.tolist()
    reasons.append("ok   hard table: every cost range lies on one side of 1/2")
    # 2. free moves
    for k in range(len(DIRECTIONS)):
        for q in (0, 1):
            if t[k, q, q]:
                return fail(f"free moves: {pairs[(q, q)]} from the {names[k]} costs at least {lo[k, q, q]:.3g} "
                            "(rounds to 1), so a region or a stroke can count as several crossings")
    reasons.append("ok   free moves: background→background and stroke→stroke round to 0 from every direction")
    # 3. an exact split
    enter, leave = t[:, 0, 1], t[:, 1, 0]
    if leave.all() and not (enter[2] or enter[3]) or leave.all() and not (enter[0] or enter[1]):
        axes = [a for a, ks in (("vertical", (2, 3)), ("horizontal", (0, 1))) if not enter[list(ks)].any()]
        costly = [names[k] for k in range(4) if enter[k]]
        cls = "leave 1, enter free (both axes)" if not costly else f"leave 1, enter free along the {axes[0]} axis (1 from the {', '.join(costly)})"
    elif enter.all() and not leave.any():
        cls = "enter 1, leave free"
    else:
        return fail(f"exact split: entering costs {enter.tolist()} and leaving costs {leave.tolist()} "
                    "(left, right, top, bottom) is neither 'leave 1 with one axis of free entries' nor "
                    "'enter 1, leave free': some curve can cost 0 or 2 to cross")
    out["table_class"] = cls
    reasons.append(f"ok   exact split: {cls}, so the hardened depth is the number of curves around a pixel")
    # 4. the head reads parity
    w0, w1, w2 = hw
    a = w2 + float(head_bias)
    if not w0 + head_bias > 0:
        return fail(f"parity readout: a curve pixel's logit w0 + b = {w0 + head_bias:.3g} is not > 0")
    if not (w1 < 0 and abs(a) < abs(w1)):
        return fail(f"parity readout: w1 = {w1:.3g}, w2 + b = {a:.3g}: need w1 < 0 and |w2 + b| < |w1|")
    tau = math.acos(abs(a) / abs(w1)) / math.pi
    out["tolerance"] = tau
    reasons.append(f"ok   parity readout: logit signs are right within |d − m| < {tau:.4f} of every integer m")
    out["table_exact"] = True
    # 5. the soft costs' drift
    free = t == 0
    move = np.zeros_like(free)
    move[:, 0, 0] = move[:, 1, 1] = True
    eps = dict(move=float(hi[move].max()), transition=float(hi[free & ~move].max()) if (free & ~move).any() else 0.0,
               one=float((1 - lo[~free]).max()) if (~free).any() else 0.0)
    out["eps"] = eps
    ok = lambda n: _soft_deviation(n, eps["move"], eps["transition"], eps["one"], unit_roundoff) < tau  # noqa: E731
    top = 0
    if ok(1):
        hi_n = 2
        while ok(hi_n) and hi_n < 2**24:
            hi_n *= 2
        lo_n = hi_n // 2
        while hi_n - lo_n > 1:
            mid = (lo_n + hi_n) // 2
            lo_n, hi_n = (mid, hi_n) if ok(mid) else (lo_n, mid)
        top = lo_n
    out["max_size_soft"] = top
    reasons.append(f"{'ok  ' if top >= min_size else 'FAIL'} drift: the learned costs (eps move {eps['move']:.2g}, "
                   f"transition {eps['transition']:.2g}, shortfall of 1 {eps['one']:.2g}) keep every depth within "
                   f"{tau:.3f} of its integer on canvases up to {top}² (the hardening rule needs {min_size}²)")
    out["certified"] = top >= min_size
    if not out["certified"]:
        out["failure"] = f"drift: the learned costs are certified only up to {top}², below the training canvas {min_size}²"
    out["max_size"] = None if out["certified"] else top
    out["exact_at_size"] = size is not None and (out["certified"] or int(size) <= top)
    return out
