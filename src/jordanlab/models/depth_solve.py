"""Exact solvers of crossing-depth's fixed point: Dijkstra on the pixel grid, integer depth on components.

:func:`shortest_path_depth` is the sweeps' fixed point for any costs (one pass, no rounds);
:func:`integer_depth` is the depth under a hard 0/1 cost table, computed on the graph of 4-connected
stroke and background components, so no pass follows a corridor (:class:`~jordanlab.models.CrossingDepthNet`
uses it once :func:`~jordanlab.models.depth_certificate.certify_costs` proves the learned costs harden).
"""

from __future__ import annotations

import numpy as np
import torch

from .parts import check_positive_int

__all__ = ["DIRECTIONS", "integer_depth", "shortest_path_depth"]

#: The four directions a cost is paid from, in sweep order: (name, (dy, dx) of the predecessor).
DIRECTIONS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("left", (0, -1)),
    ("right", (0, 1)),
    ("top", (-1, 0)),
    ("bottom", (1, 0)),
)


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
