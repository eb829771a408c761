r"""A learned even-odd depth: shortest paths on the pixel grid with learned crossing costs.

The exact fill labels a background pixel by the parity of the number of curves around it (the
even-odd rule; :func:`jordanlab.topology.fill`). For disjoint simple closed curves, that number is
the least number of curves a path from the pixel to the image border must cross, whatever the
strokes' thickness. This network computes a learned version of that least number as a shortest
path on the 4-connected pixel grid, and reads its parity.

- **Costs** (the learned part). Entering pixel p from its neighbour q costs
  :math:`c_k(p) \in (0, 1)` for the four directions k (from the left, right, top, bottom). With
  ``window="pair"`` (the default) the cost sees the pair (q, p) only: a table of 2×2 logits per
  direction, :math:`c_k(p) = \sigma(T_k[B_q, B_p])`, written bilinearly in the boundary values so
  it applies to soft inputs too (16 parameters). The exact solution is "1 to leave a stroke for the
  background, 0 otherwise" (or any split of 1 between entering and leaving a stroke, with 0 between
  two stroke pixels and between two background pixels). A window ``(h, w)`` instead computes the
  four costs from an h×w window around p with a small conv net: the ablation.
- **Depth** (fixed structure). :math:`d` is the shortest-path distance from a frame of depth 0
  around the canvas. One *round* is four sweeps; a sweep along a row is the min-plus (tropical)
  linear recurrence :math:`d_t \leftarrow \min(d_t, d_{t-1} + c_t)`, computed exactly with a
  cumulative sum and a cumulative minimum (:func:`min_plus_scan`). Rounds repeat until the depth
  is a fixed point (Bellman–Ford): a label-free halting rule. A round carries the depth along a
  whole row or column, so the rounds follow the number of monotone pieces of the shortest paths,
  not their length: 3–5 rounds for blobs at any canvas size, and on spirals (winding corridors)
  about 6× fewer rounds than local propagation needs steps (``benchmarks/depth_figures.py``).
- **Inference** (:meth:`CrossingDepthNet.forward_with_rounds` without autograd: ``predict``, ``eval``;
  :meth:`~CrossingDepthNet.forward` and :meth:`~CrossingDepthNet.depth` keep the sweeps). The same fixed
  point, reached without following the corridors:
  :func:`shortest_path_depth` solves the shortest paths exactly (Dijkstra from a virtual source on the
  frame, one pass), which equals the sweeps' fixed point to float precision; and when the 20 learned
  numbers are *certified* (:func:`certify_costs`) :meth:`CrossingDepthNet.forward_with_rounds` hardens the
  costs to their 0/1 table and computes the integer depth on the graph of 4-connected stroke and
  background components (:func:`integer_depth`), so no residual cost can add up along a long path.
  Training keeps the sweeps (their gradients are the ones the recipe was tuned with).
- **Readout**. A 1×1 conv on :math:`[B, (1 - B)\cos \pi d, 1 - B]`: curve pixels belong to the
  figure, and a background pixel's label is a learned function of the parity of its depth
  (:math:`\cos \pi d = \pm 1` at integer depths).

Why the penalties (:meth:`CrossingDepthNet.gate_penalty`): trained on one blob per image, plain
BCE finds costs that are right on the training family but soft, and small costs add up along long
paths (a spiral's corridor, an 8× canvas): without the penalty, ``configs/quick-crossing-depth.toml``
gets 0 % of 64² spirals and 23 % of 256² canvases. The mean binary entropy (ramped in) pushes every
cost to 0 or 1, so the learned depth becomes an integer count, which is what extrapolates; the
mean cost (sparsity) prefers 0 for costs the training data leaves free (it was not needed on
seed 0: the README's ablation table).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .parts import check_images, check_positive_int

__all__ = ["CrossingDepthNet", "DIRECTIONS", "certify_costs", "integer_depth", "min_plus_scan", "shortest_path_depth"]

#: The four directions a cost is paid from, in sweep order: (name, (dy, dx) of the predecessor).
DIRECTIONS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("left", (0, -1)),
    ("right", (0, 1)),
    ("top", (-1, 0)),
    ("bottom", (1, 0)),
)


def min_plus_scan(d: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    r"""One left-to-right sweep of the min-plus recurrence along the last axis, from a frame of depth 0.

    Returns :math:`d'_t = \min\big(d_t,\ \min_{j < t} (d_j + \sum_{j < i \le t} c_i),\ \sum_{i \le t} c_i\big)`,
    i.e. :math:`d'_t = \min(d_t, d'_{t-1} + c_t)` with :math:`d'_{-1} = 0`, computed in parallel as
    :math:`C_t + \mathrm{cummin}_{j \le t}(d_j - C_j)` with :math:`C = \mathrm{cumsum}(c)`.
    ``d`` may hold ``+inf`` (not reached yet); ``c`` must be finite and non-negative.
    """
    if d.shape != c.shape:
        raise ValueError(f"min_plus_scan: d and c shapes differ, {tuple(d.shape)} vs {tuple(c.shape)}")
    frame = d.new_zeros(*d.shape[:-1], 1)
    dd = torch.cat([frame, d], dim=-1)
    cc = torch.cumsum(torch.cat([frame, c], dim=-1), dim=-1)
    swept = cc + torch.cummin(dd - cc, dim=-1).values
    return torch.minimum(d, swept[..., 1:])


def _sweep(d: torch.Tensor, c: torch.Tensor, direction: str) -> torch.Tensor:
    """``min_plus_scan`` of ``(N, H, W)`` depths in one direction (the predecessor's side)."""
    if direction == "left":
        return min_plus_scan(d, c)
    if direction == "right":
        return min_plus_scan(d.flip(-1), c.flip(-1)).flip(-1)
    if direction == "top":
        return min_plus_scan(d.transpose(1, 2), c.transpose(1, 2)).transpose(1, 2)
    return min_plus_scan(d.flip(1).transpose(1, 2), c.flip(1).transpose(1, 2)).transpose(1, 2).flip(1)


def _predecessor(b: torch.Tensor, offset: tuple[int, int]) -> torch.Tensor:
    """``(N, H, W)`` boundary value of each pixel's neighbour at ``offset`` (0 = background off the canvas)."""
    dy, dx = offset
    padded = F.pad(b, (1, 1, 1, 1))
    h, w = b.shape[-2:]
    return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _binary_entropy(c: torch.Tensor) -> torch.Tensor:
    """H(c) / log 2 in [0, 1], finite at c = 0 and 1 (0 · log 0 = 0)."""
    tiny = torch.finfo(c.dtype).tiny
    return -(c * torch.log(c.clamp_min(tiny)) + (1 - c) * torch.log((1 - c).clamp_min(tiny))) / math.log(2)


# ---------------------------------------------------------------- inference: the fixed point without sweeps


def _frame_and_edges(n: int, h: int, w: int):
    """For each direction k of :data:`DIRECTIONS`: (pixels p with an on-canvas predecessor, their predecessors q,
    pixels whose predecessor is off the canvas), as flat indices into ``(n, h, w)``."""
    idx = np.arange(n * h * w).reshape(n, h, w)
    out = []
    for _, (dy, dx) in DIRECTIONS:
        ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
        p = idx[:, ys, xs]
        q = idx[:, ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx]
        border = np.zeros((h, w), bool)
        if dy:
            border[0 if dy < 0 else h - 1, :] = True
        if dx:
            border[:, 0 if dx < 0 else w - 1] = True
        out.append((p.ravel(), q.ravel(), idx[:, border].ravel(), border))
    return out


def shortest_path_depth(c: torch.Tensor) -> torch.Tensor:
    r"""The exact fixed point of the sweeps: shortest-path depth ``(N, H, W)`` under costs ``c`` ``(N, 4, H, W)``.

    :math:`d(p) = \min_{\text{paths } f \to p} \sum_{\text{steps } q \to p'} c_{k(q, p')}(p')`, the paths
    starting on the frame around the canvas (depth 0), computed by Dijkstra's algorithm
    (``scipy.sparse.csgraph.dijkstra``, float64) on the 4-connected pixel graph plus one virtual source
    joined to each border pixel by the cost of entering it from off the canvas. This is the Bellman–Ford
    fixed point the sweeps of :meth:`CrossingDepthNet.depth` converge to, in one pass whatever the
    length of the corridors. No gradient flows.

    >>> c = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 5).expand(1, 4, 1, 5)  # one row: all on the frame
    >>> shortest_path_depth(c.contiguous())
    tensor([[[0., 1., 0., 1., 1.]]])
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    if c.ndim != 4 or c.shape[1] != len(DIRECTIONS):
        raise ValueError(f"c: expected shape (N, 4, H, W), got {tuple(c.shape)}")
    n, _, h, w = c.shape
    cc = c.detach().to("cpu", torch.float64).numpy()
    npx = n * h * w
    frame = np.full(npx, np.inf)
    rows, cols, vals = [], [], []
    for k, (p, q, edge, border) in enumerate(_frame_and_edges(n, h, w)):
        ck = cc[:, k].ravel()
        rows.append(q)
        cols.append(p)
        vals.append(ck[p])
        np.minimum.at(frame, edge, ck[edge])  # a corner pixel is entered from off the canvas two ways
    on_frame = np.flatnonzero(np.isfinite(frame))
    rows.append(np.full(on_frame.size, npx))
    cols.append(on_frame)
    vals.append(frame[on_frame])
    graph = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(npx + 1, npx + 1))
    # Explicitly stored zero costs are edges for csgraph (tests/test_depth_inference.py has zero costs).
    dist = dijkstra(graph, directed=True, indices=npx)[:npx]
    return torch.from_numpy(dist.reshape(n, h, w)).to(c.dtype)



#: Largest (stroke labels + 1) x (background labels + 1) whose pairs are deduplicated through flag tables
#: (else by sorting): 4 x 2^22 flags = 16 MB, touched only where a pair occurs.
_PAIR_TABLE_MAX = 1 << 22


def _crossings(flat_bg: np.ndarray, at: np.ndarray, s: np.ndarray, offsets: list[int], t: np.ndarray, n_bg: int,
               n_st: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The distinct adjacent (background component g, stroke component s) pairs and their cheapest crossings.

    ``at`` are the flat indices of the stroke pixels, ``s`` their stroke labels, ``offsets[k]`` the flat
    offset of the predecessor q = p + (dy, dx) of direction k. A pair's entry cost is
    :math:`\min_k t[k, 0, 1]` and its exit cost :math:`\min_k t[k \oplus 1, 1, 0]` over the directions k in
    which some stroke pixel of s has a pixel of g as its predecessor (leaving p for q enters q in the
    opposite direction k ⊕ 1). A pair is the key :math:`s (n_{bg} + 1) + g`; the keys seen per direction
    are flagged in tables when these are small (one scatter per direction, no sort), else sorted.
    Returns (g, s, entry cost, exit cost), int64, ordered by (s, g).
    """
    span = n_bg + 1
    base = s.astype(np.int64)
    base *= span
    enter = np.array([t[k, 0, 1] for k in range(len(offsets))], np.int64)
    leave = np.array([t[k ^ 1, 1, 0] for k in range(len(offsets))], np.int64)
    size = (n_st + 1) * span
    lo = -min(offsets)  # at - lo >= 0: every stroke pixel has its four neighbours on the padded canvas
    at = at - lo
    neighbour = [flat_bg[lo + off :] for off in offsets]  # neighbour[k][at] = flat_bg[at + lo + off]
    if size <= _PAIR_TABLE_MAX:
        seen = np.zeros((len(offsets), size), bool)
        for k in range(len(offsets)):
            seen[k][base + neighbour[k][at]] = True
        seen[:, ::span] = False  # g = 0: the predecessor is a stroke pixel, no crossing
        key = np.flatnonzero(seen.any(0))
        # 0/1 costs: the cheapest over the directions seen is 0 iff a free one was seen.
        e = np.ones(key.size, np.int64) if enter.all() else (~seen[enter == 0].any(0)[key]).astype(np.int64)
        x = np.ones(key.size, np.int64) if leave.all() else (~seen[leave == 0].any(0)[key]).astype(np.int64)
    else:
        keys, es, xs = [], [], []
        for k in range(len(offsets)):
            g = neighbour[k][at]
            sel = g > 0
            keys.append(base[sel] + g[sel])
            es.append(np.full(int(sel.sum()), enter[k]))
            xs.append(np.full(int(sel.sum()), leave[k]))
        allk = np.concatenate(keys)
        order = np.argsort(allk)
        allk = allk[order]
        first = np.flatnonzero(np.append(True, allk[1:] != allk[:-1])) if allk.size else np.zeros(0, np.int64)
        key = allk[first]
        e = np.minimum.reduceat(np.concatenate(es)[order], first) if key.size else np.zeros(0, np.int64)
        x = np.minimum.reduceat(np.concatenate(xs)[order], first) if key.size else np.zeros(0, np.int64)
    st, g = np.divmod(key, span)
    return g, st, e, x


def _twins(g: np.ndarray, st: np.ndarray, e: np.ndarray, x: np.ndarray, n_bg: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    r"""Merge the stroke components that have the same crossings: the edges of the reduced component graph.

    The pairs (g, st, e, x) of :func:`_crossings`, ordered by stroke label ``st``, give each stroke
    component S its in-edges g → S of cost e and out-edges S → g of cost x. Two components with the same
    set of (g, e, x) are *twins*: their depths are equal (:math:`d(S) = \min_g d(g) + e`) and one copy of
    their edges leaves every other depth unchanged. Components with one or two neighbours (all but a few:
    a thin band, a spiral's 4-connected pieces) are merged by that set, encoded as one integer; those
    with more stay nodes of their own.

    Returns (the labels 1 … of the stroke components, the reduced node of each, (sources, destinations,
    costs) of the reduced graph), whose nodes are 0 (the source), 1 … n_bg (background) and then one per
    class of twins.
    """
    span4 = 4 * (n_bg + 1)
    code = (g * 2 + e) * 2 + x  # one crossing: (g, e, x), in [4, span4)
    new = np.ones(st.size, bool)
    np.not_equal(st[1:], st[:-1], out=new[1:])
    first = np.flatnonzero(new)
    deg = np.diff(np.append(first, st.size))  # >= 1: a component's topmost pixel has a background pixel above
    comps = st[first]
    sig = code[first]
    two = np.flatnonzero(deg == 2)
    sig[two] = sig[two] * span4 + code[first[two] + 1]  # >= 4 span4 > any single code
    small = deg <= 2
    if span4 * span4 <= _PAIR_TABLE_MAX:
        seen = np.zeros(span4 * span4, bool)
        seen[sig[small]] = True
        classes = np.flatnonzero(seen)
        rank = np.zeros(seen.size, np.int64)
        rank[classes] = np.arange(classes.size)
        inv = rank[sig[small]]
    else:
        classes, inv = np.unique(sig[small], return_inverse=True)
    big = np.flatnonzero(~small)
    if big.size:
        node = np.empty(comps.size, np.int64)
        node[small] = n_bg + 1 + inv
        node[big] = n_bg + 1 + classes.size + np.arange(big.size)
    else:
        node = n_bg + 1 + inv
    # Edges of the classes (decoded from their signatures) and of the components kept whole.
    one = classes < span4
    codes = [classes[one], classes[~one] // span4, classes[~one] % span4]
    owner = [np.flatnonzero(one), np.flatnonzero(~one), np.flatnonzero(~one)]
    owner = [n_bg + 1 + o for o in owner]
    if big.size:
        in_big = np.repeat(~small, deg)
        codes.append(code[in_big])
        owner.append(np.repeat(node, deg)[in_big])
    code, owner = np.concatenate(codes), np.concatenate(owner)
    gg, ee, xx = code >> 2, (code >> 1) & 1, code & 1
    return comps, node, (np.concatenate([gg, owner]), np.concatenate([owner, gg]), np.concatenate([ee, xx]))


def _bfs01(m: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray, budget: int) -> np.ndarray:
    """Depth of each of ``m`` nodes from node 0 along edges of cost 0 or 1, cut at ``budget − 1`` (int64).

    Level-synchronous 0/1 breadth-first search: close the reached set under free edges, then one costly
    step; edges into reached nodes are dropped as the search goes, so each level touches fewer.
    """
    free = cost == 0
    free_s, free_d, cost_s, cost_d = src[free], dst[free], src[~free], dst[~free]
    dist = np.full(m, -1, np.int64)
    reached = np.zeros(m, bool)
    reached[0] = True
    level = 0
    while True:
        while free_s.size:  # closure under free edges
            sel = reached[free_s]
            if not sel.any():
                break
            reached[free_d[sel]] = True
            keep = ~reached[free_d]
            free_s, free_d = free_s[keep], free_d[keep]
        dist[reached & (dist < 0)] = level
        keep = ~reached[cost_d]
        cost_s, cost_d = cost_s[keep], cost_d[keep]
        sel = reached[cost_s]
        if level >= budget - 1 or not sel.any():
            break
        reached[cost_d[sel]] = True
        level += 1
    dist[dist < 0] = budget - 1  # not reached within the budget
    return dist


def _padded_stroke(b: np.ndarray) -> np.ndarray:
    """The stroke pixels ``b != 0`` of images ``(N, H, W)``, padded by one background pixel on each side (bool)."""
    n, h, w = b.shape
    stroke = np.zeros((n, h + 2, w + 2), bool)
    np.not_equal(b, 0, out=stroke[:, 1:-1, 1:-1])
    return stroke


def _component_depth(stroke: np.ndarray, t: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    r"""The integer depth on the graph of 4-connected components of padded stroke masks ``(N, H + 2, W + 2)``.

    ``stroke`` (:func:`_padded_stroke`) pads each canvas by one background pixel on each side: that frame
    is off the canvas (depth 0), and so is every background component it touches (node 0, the source,
    joins the frame at cost 0).
    The padded images are stacked into one plane, ``(N (H + 2), W + 2)``, and labelled there (their
    frames join, strokes never cross a frame). Entering a stroke pixel p from its background
    neighbour q in direction k costs ``t[k, 0, 1]``, leaving it back to q costs ``t[k ^ 1, 1, 0]``
    (the opposite direction); moves inside a component are free. So the edges of the component graph
    are the distinct (background, stroke) pairs over the stroke pixels' four neighbours, at their
    cheapest direction (:func:`_crossings`: one gather per direction over the stroke pixels only, no
    sort); twin stroke components are merged (:func:`_twins`) and the 0/1 search (:func:`_bfs01`)
    runs on what is left, whose size follows the number of distinct crossings, not of pixels.

    Returns the padded background and stroke labels ``(N, H + 2, W + 2)`` (int32, 0 off the kind),
    the depth of every node (node 0: the source; 1 … n_bg: background components; n_bg + 1 …:
    stroke components), the BFS levels per image ``(N,)`` and n_bg.
    """
    from scipy import ndimage

    n, hp, wp = stroke.shape
    plane = stroke.reshape(n * hp, wp)
    lab_bg, n_bg = ndimage.label(~plane, output=np.int32)  # the default structure: 4-connectivity
    lab_st, n_st = ndimage.label(plane, output=np.int32)
    lab_bg, lab_st = lab_bg.reshape(stroke.shape), lab_st.reshape(stroke.shape)
    at = np.flatnonzero(stroke)  # stroke pixels (never on the padding: each has four neighbours in its image)
    s = lab_st.ravel()[at]
    offsets = [dy * wp + dx for _, (dy, dx) in DIRECTIONS]
    g, st, e, x = _crossings(lab_bg.ravel(), at, s, offsets, t, n_bg, n_st)
    comps, node, (src, dst, cost) = _twins(g, st, e, x, n_bg)
    src = np.append(src, 0)
    dst = np.append(dst, 1)  # the source -> the frame (label 1: the first pixel), free
    cost = np.append(cost, 0)
    reduced = _bfs01(int(node.max(initial=n_bg)) + 1, src, dst, cost, budget)
    dist = np.empty(n_bg + n_st + 1, np.int64)
    dist[: n_bg + 1] = reduced[: n_bg + 1]
    dist[n_bg + comps] = reduced[node]
    # ndimage.label numbers components in scan order, so each image's labels form one range per kind.
    if n == 1:
        ends_bg, ends_st = np.array([n_bg]), np.array([n_st])
    else:
        ends_bg = np.maximum.accumulate(lab_bg.reshape(n, -1).max(1))
        first = np.searchsorted(at, np.arange(n) * stroke[0].size)  # each image's first stroke pixel
        ends_st = np.zeros(n, np.int64)
        has = first < np.append(first[1:], at.size)  # images with a stroke pixel
        if has.any():
            ends_st[has] = np.maximum.reduceat(s, first[has])
        ends_st = np.maximum.accumulate(ends_st)
    ends_st = ends_st + n_bg
    levels = np.ones(n, np.int64)
    for ends, start in ((ends_bg, 1), (ends_st, n_bg + 1)):
        starts = np.concatenate([[start], ends[:-1] + 1])
        for i in range(n):
            if ends[i] >= starts[i]:
                levels[i] = max(levels[i], int(dist[starts[i] : ends[i] + 1].max()) + 1)
    return lab_bg, lab_st, dist, np.minimum(levels, budget), n_bg


def integer_depth(boundary: np.ndarray, table: np.ndarray, *, max_rounds: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Depth ``(N, H, W)`` (int64) of binary images under a hard 0/1 cost table, and the BFS levels each used ``(N,)``.

    ``table[k, B_q, B_p]`` is the cost of entering pixel p from its neighbour q in direction k of
    :data:`DIRECTIONS`; moves between two background pixels or two stroke pixels must cost 0
    (``table[:, 0, 0] = table[:, 1, 1] = 0``). Then the depth is constant on every 4-connected
    component of background and of stroke pixels (``scipy.ndimage.label``), and is the 0/1
    shortest-path distance from the frame on the graph of components, whose edges are the adjacent
    (stroke, background) component pairs (:func:`_component_depth`): two labelling passes, one gather per
    direction over the stroke pixels, and a level-synchronous 0/1 breadth-first search on the graph with
    twin stroke components merged, whatever the length of a corridor. The levels (``1 + max depth``
    of the image: the rounds a level-synchronous 0/1 search needs) grow with the nesting depth of the
    curves only; with ``max_rounds`` (default ``2 (H + W)``), depths beyond ``max_rounds − 1`` are cut
    there and the image reports ``max_rounds``.

    >>> b = np.zeros((1, 7, 7), np.uint8); b[0, 1:6, 1] = b[0, 1:6, 5] = b[0, 1, 1:6] = b[0, 5, 1:6] = 1
    >>> t = np.zeros((4, 2, 2), np.int64); t[:, 1, 0] = 1  # 1 to leave a stroke
    >>> d, levels = integer_depth(b, t)
    >>> int(d[0, 0, 0]), int(d[0, 3, 3]), int(levels[0])
    (0, 1, 2)
    """
    b = np.asarray(boundary)
    if b.ndim != 3:
        raise ValueError(f"boundary: expected shape (N, H, W), got {b.shape}")
    t = np.asarray(table)
    if t.shape != (len(DIRECTIONS), 2, 2) or not np.isin(t, (0, 1)).all():
        raise ValueError(f"table: expected a (4, 2, 2) array of 0/1 costs, got shape {t.shape}")
    if t[:, 0, 0].any() or t[:, 1, 1].any():
        raise ValueError("table: moves between two background or two stroke pixels must cost 0")
    n, h, w = b.shape
    budget = 2 * (h + w) if max_rounds is None else check_positive_int(max_rounds, "max_rounds")
    lab_bg, lab_st, dist, levels, n_bg = _component_depth(_padded_stroke(b), t, budget)
    node = lab_bg[:, 1:-1, 1:-1].copy()
    stroke = b != 0
    node[stroke] = lab_st[:, 1:-1, 1:-1][stroke] + n_bg
    return dist[node], levels


# ---------------------------------------------------------------- the certificate


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


class CrossingDepthNet(nn.Module):
    """Learned crossing costs, min-plus sweeps to a fixed point, parity readout (see the module docstring).

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input; the costs read channel 0 (the boundary).
    window : "pair" or (int, int)
        What a cost sees: the pair (predecessor, pixel), or an odd h×w window around the pixel.
    width : int
        Hidden channels of the window's cost net (unused with ``"pair"``).
    init_logit : float
        Initial cost logit (σ(−4) ≈ 0.018: paths start almost free, so depths start small).
    sparsity : float
        Weight of the mean cost in :meth:`gate_penalty`, beside the mean binary entropy.
    tol : float
        Halting rule: an image stops when no depth changed by more than ``tol`` in a round.
    harden : bool
        Whether :meth:`forward_with_rounds` (inference) hardens certified costs (:meth:`certificate`).
    harden_min_size : int
        The canvas up to which the learned costs must be certified before inference hardens them.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        window: str | tuple[int, int] = "pair",
        width: int = 16,
        init_logit: float = -4.0,
        sparsity: float = 0.1,
        tol: float = 1e-4,
        harden: bool = True,
        harden_min_size: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        if window == "pair":
            self.window: str | tuple[int, int] = "pair"
            self.table = nn.Parameter(init_logit + 0.5 * torch.randn(len(DIRECTIONS), 2, 2))
        else:
            kh, kw = (int(v) for v in window)  # type: ignore[union-attr]
            if kh < 3 or kw < 3 or kh % 2 == 0 or kw % 2 == 0:
                raise ValueError(f"window must be 'pair' or odd sizes >= 3 (to hold the predecessor), got {window!r}")
            self.window = (kh, kw)
            check_positive_int(width, "width")
            self.cost_net = nn.Sequential(
                nn.Conv2d(1, width, (kh, kw), padding=(kh // 2, kw // 2)),
                nn.ReLU(),
                nn.Conv2d(width, len(DIRECTIONS), 1),
            )
            with torch.no_grad():
                self.cost_net[-1].bias.fill_(init_logit)
        if sparsity < 0:
            raise ValueError(f"sparsity must be >= 0, got {sparsity}")
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        self.sparsity = float(sparsity)
        self.tol = float(tol)
        self.harden = bool(harden)
        self.harden_min_size = check_positive_int(harden_min_size, "harden_min_size")
        self.head = nn.Conv2d(3, 1, 1)
        #: Rounds to run under ``torch.func.vmap`` (None: as many as the vmapped batch needs); see :meth:`depth`.
        self.rounds_under_vmap: int | None = None

    def cost_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 4, H, W)`` of the cost of entering each pixel from each direction."""
        check_images(x, self.in_channels)
        b = x[:, 0]
        if self.window != "pair":
            return self.cost_net(x[:, :1])
        out = []
        for k, (_, offset) in enumerate(DIRECTIONS):
            q = _predecessor(b, offset)
            t = self.table[k]
            out.append(t[0, 0] * (1 - q) * (1 - b) + t[0, 1] * (1 - q) * b + t[1, 0] * q * (1 - b) + t[1, 1] * q * b)
        return torch.stack(out, dim=1)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Costs ``(N, 4, H, W)`` in (0, 1), one channel per direction of :data:`DIRECTIONS`."""
        return torch.sigmoid(self.cost_logits(x))

    def gate_penalty(self, c: torch.Tensor) -> torch.Tensor:
        """Mean binary entropy of the costs (0 iff all are 0 or 1) plus ``sparsity`` × mean cost."""
        return _binary_entropy(c).mean() + self.sparsity * c.mean()

    def sweep_round(self, d: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """One round: the four sweeps, in the order of :data:`DIRECTIONS`."""
        for k, (name, _) in enumerate(DIRECTIONS):
            d = _sweep(d, c[:, k], name)
        return d

    def depth(self, c: torch.Tensor, *, max_rounds: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Shortest-path depth ``(N, H, W)`` under costs ``c`` and the rounds each image used ``(N,)``.

        Rounds repeat until no depth changes by more than ``tol`` (the round that shows it counts),
        at most ``max_rounds`` (default ``2 (H + W)``). Under autograd the whole batch runs until its
        last image halts; without it, halted images leave the batch. These are the sweeps the model is
        trained, explained and drawn with; inference (:meth:`forward_with_rounds`) reaches the same fixed
        point without them (:meth:`exact_depth`). If ``rounds_under_vmap`` is set (by
        :func:`~jordanlab.models.held_rounds`), exactly that many rounds run and no value steers the loop:
        this is how the model runs under ``torch.func.vmap`` (per-example gradients, tangent kernels),
        where the caller counts the rounds of the whole vmapped batch beforehand on its plain values
        (:meth:`sweep_rounds`), as a training step runs its batch.
        """
        n, _, h, w = c.shape
        budget = 2 * (h + w) if max_rounds is None else check_positive_int(max_rounds, "max_rounds")
        d = torch.full((n, h, w), math.inf, dtype=c.dtype, device=c.device)
        rounds = torch.zeros(n, dtype=torch.long, device=c.device)  # 0: not halted yet
        if self.rounds_under_vmap is not None:
            for _ in range(self.rounds_under_vmap):
                d = self.sweep_round(d, c)
            return d, rounds.fill_(self.rounds_under_vmap)
        try:
            if torch.is_grad_enabled():
                for t in range(1, budget + 1):
                    new = self.sweep_round(d, c)
                    rounds[(rounds == 0) & self._halted(d, new)] = t
                    d = new
                    if bool((rounds > 0).all()):
                        break
                return d, rounds.masked_fill(rounds == 0, budget)
            return self._depth_no_grad(c, budget)
        except RuntimeError as exc:  # torch.func.vmap refuses the value-steered loop
            if not str(exc).startswith("vmap"):
                raise
            raise RuntimeError(
                "CrossingDepthNet under torch.func.vmap needs its round count held fixed (no value may steer the "
                "loop): call it inside `with jordanlab.models.held_rounds(model, params, x):`, which counts the "
                "rounds of the batch x on its plain values first") from exc

    def sweep_rounds(self, x: torch.Tensor, *, max_rounds: int | None = None) -> torch.Tensor:
        """The rounds ``(N,)`` the sweeps of :meth:`depth` run on each image of ``x`` (no gradient).

        A batch under autograd runs ``sweep_rounds(x).max()`` rounds; :func:`~jordanlab.models.held_rounds`
        holds that number for a vmapped call.
        """
        with torch.no_grad():
            c = self.gates(x)
            n, _, h, w = c.shape
            budget = 2 * (h + w) if max_rounds is None else check_positive_int(max_rounds, "max_rounds")
            return self._depth_no_grad(c, budget)[1]

    @torch.no_grad()
    def sweep_depth(self, c: torch.Tensor, *, max_rounds: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The sweeps' depth and rounds without autograd (halted images leave the batch), as :meth:`depth` there."""
        n, _, h, w = c.shape
        budget = 2 * (h + w) if max_rounds is None else check_positive_int(max_rounds, "max_rounds")
        return self._depth_no_grad(c, budget)

    @staticmethod
    def exact_depth(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sweeps' fixed point solved in one pass (:func:`shortest_path_depth`) and rounds = 1 ``(N,)``; no gradient."""
        return shortest_path_depth(c).to(c.device), torch.ones(c.shape[0], dtype=torch.long, device=c.device)

    def _depth_no_grad(self, c: torch.Tensor, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`depth` without autograd: halted images leave the batch."""
        n, _, h, w = c.shape
        d = torch.full((n, h, w), math.inf, dtype=c.dtype, device=c.device)
        rounds = torch.zeros(n, dtype=torch.long, device=c.device)
        out = d.clone()
        active = torch.arange(n, device=c.device)
        for t in range(1, budget + 1):
            new = self.sweep_round(d, c)
            out[active] = new
            halted = self._halted(d, new)
            rounds[active[halted]] = t
            active, d, c = active[~halted], new[~halted], c[~halted]
            if active.numel() == 0:
                break
        return out, rounds.masked_fill(rounds == 0, budget)

    def _halted(self, old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Per image: no depth changed by more than ``tol`` (and none was still unreached)."""
        with torch.no_grad():
            change = torch.where(torch.isfinite(old), (new - old).abs(), torch.full_like(old, math.inf))
            return change.flatten(1).amax(1) <= self.tol

    def readout(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` = head([B, (1 − B) cos πd, 1 − B]) with d the depth under costs c."""
        return self.depth_readout(x, self.depth(c)[0])

    def depth_readout(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` of a computed depth ``d`` ``(N, H, W)``: the head alone."""
        b = x[:, :1]
        bg = 1 - b
        return self.head(torch.cat([b, bg * torch.cos(math.pi * d)[:, None].to(b.dtype), bg], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        return self.readout(x, self.gates(x))

    def forward_with_rounds(self, x: torch.Tensor, *, max_rounds: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, 1, H, W)`` and the rounds each image used ``(N,)`` (the iteration count): inference.

        Without autograd, on binary images, and if :meth:`certificate` says the costs harden
        (``harden=True``), the depth is the integer depth of the hardened table (:func:`integer_depth`;
        rounds = its BFS levels, 1 + the largest depth) read by the head at integer depths; otherwise,
        without autograd, the exact fixed point of the learned costs (:meth:`exact_depth`, rounds = 1);
        under autograd the sweeps (:meth:`depth`). Without autograd no pass follows a corridor.
        """
        if torch.is_grad_enabled():
            d, rounds = self.depth(self.gates(x), max_rounds=max_rounds)
            return self.depth_readout(x, d), rounds
        check_images(x, self.in_channels)
        b = x[:, 0]
        cert = self.certificate() if self.harden else None
        if cert is not None and cert["certified"]:
            values = b.detach().cpu()
            values = (values.float() if values.dtype == torch.bfloat16 else values).numpy()  # bf16 -> f32: exact
            stroke = _padded_stroke(values)
            # Binary iff every nonzero value is 1 (NaN is nonzero and not 1): two counts, no float pass kept.
            if np.count_nonzero(values == 1) == np.count_nonzero(stroke):
                n, h, w = b.shape
                budget = 2 * (h + w) if max_rounds is None else check_positive_int(max_rounds, "max_rounds")
                lab_bg, _, dist, levels, n_bg = _component_depth(stroke, np.asarray(cert["table"]), budget)
                return self._integer_readout(lab_bg, dist, n_bg).to(x.device, x.dtype), torch.from_numpy(levels).to(x.device)
        d, rounds = self.exact_depth(self.gates(x))
        return self.depth_readout(x, d), rounds

    def _integer_readout(self, lab_bg: np.ndarray, dist: np.ndarray, n_bg: int) -> torch.Tensor:
        """The head at integer depths, ``(N, 1, H, W)``: one of three logits (curve, even, odd background) per component.

        ``lab_bg`` are the padded background labels of :func:`_component_depth` (0 on stroke pixels: the curve's logit).
        """
        cases = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, -1.0, 1.0]], dtype=self.head.weight.dtype)
        with torch.no_grad():
            lut = self.head(cases[:, :, None, None]).flatten().numpy()
        case = np.zeros(n_bg + 1, np.intp)
        case[1:] = 1 + dist[1 : n_bg + 1] % 2
        # One gather over the contiguous padded labels (twice as fast as over the cropped view); the crop is a view.
        return torch.from_numpy(np.take(lut[case], lab_bg)[:, None, 1:-1, 1:-1])

    def cost_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Least and largest cost ``(4, 2, 2)`` by ``[direction, B_q, B_p]`` over every binary window the costs can see.

        For ``window="pair"`` the table itself (low = high); for an h×w window the cost net is run on
        all :math:`2^{hw}` binary windows (at most 2¹⁶) and each cost is grouped by the predecessor's and
        the pixel's values.
        """
        with torch.no_grad():
            if self.window == "pair":
                c = torch.sigmoid(self.table.double()).numpy()
                return c, c.copy()
            kh, kw = self.window  # type: ignore[misc]
            if kh * kw > 16:
                raise ValueError(f"window {self.window}: 2^{kh * kw} binary windows are too many to enumerate (at most 2^16)")
            codes = torch.arange(2 ** (kh * kw))
            bits = ((codes[:, None] >> torch.arange(kh * kw)) & 1).to(self.head.weight.dtype).view(-1, 1, kh, kw)
            c = torch.sigmoid(self.cost_net(bits)[:, :, kh // 2, kw // 2]).double().numpy()  # (P, 4)
            bits = bits[:, 0].numpy().astype(np.int64)
        lo, hi = np.full((len(DIRECTIONS), 2, 2), np.inf), np.full((len(DIRECTIONS), 2, 2), -np.inf)
        for k, (_, (dy, dx)) in enumerate(DIRECTIONS):
            q, p = bits[:, kh // 2 + dy, kw // 2 + dx], bits[:, kh // 2, kw // 2]
            for bq in (0, 1):
                for bp in (0, 1):
                    sel = c[(q == bq) & (p == bp), k]
                    lo[k, bq, bp], hi[k, bq, bp] = sel.min(), sel.max()
        return lo, hi

    def certificate(self, size: int | None = None) -> dict:
        """:func:`certify_costs` of this model's costs and head (see there): on which canvases it is exact."""
        lo, hi = self.cost_ranges()
        w = self.head.weight.detach().double().flatten().numpy()
        u = 2.0**-53 if self.head.weight.dtype == torch.float64 else 2.0**-24
        return certify_costs(lo, hi, w, float(self.head.bias.detach()), size=size, min_size=self.harden_min_size,
                             unit_roundoff=u)

    def receptive_field(self) -> str:
        """``"global"``: a round reaches the whole canvas along rows and columns; rounds repeat to a fixed point."""
        return "global (rounds to a fixed point)"
