"""Topology-preserving thinning of curve pixels for (8, 4) digital topology, in numpy and torch.

A curve pixel ``p`` is *simple* when deleting it changes neither the 8-connected components of the
curve pixels nor the 4-connected components of the background. For the 2-D (8, 4) case this is
local (Rosenfeld; Kong & Rosenfeld 1989): ``p`` is simple iff

* ``T8 = 1``: the curve pixels of ``N8*(p)`` (the 8 neighbours) form exactly one 8-connected
  component, and
* ``T4 = 1``: exactly one 4-connected component of the background pixels of ``N8*(p)`` contains a
  4-neighbour of ``p``.

Both depend on the 8 neighbours only, so a 256-entry lookup table decides it. Deleting simple pixels
*one at a time* preserves topology; deleting many at once may not (both pixels of a 2-pixel segment
are simple). We delete in parallel only within one of the four subfields ``(row % 2, col % 2)``:
two pixels of a subfield are never 8-adjacent, so neither lies in the other's neighbourhood, and the
parallel deletion equals a sequential one in which every deleted pixel is simple when it goes.
Sweeping the four subfields until nothing changes gives an *irreducible* set (no simple pixel) with
the same topology as the input: same curve components, same background components, same
adjacency between them, hence the same even-odd depth for every background pixel.
Spurs are removed too (an end pixel is simple), so a closed curve shrinks to a loop.
"""

from __future__ import annotations

import numpy as np
import torch

__all__: list[str] = []

# The 8 neighbours (drow, dcol) in cyclic order N, NE, E, SE, S, SW, W, NW; bit k of a code is
# neighbour k.
_NEIGHBOURS8: tuple[tuple[int, int], ...] = (
    (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1),
)
_SUBFIELDS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (0, 1), (1, 0))


def _components(cells: list[tuple[int, int]], *, diagonal: bool) -> list[set[tuple[int, int]]]:
    """Connected components of a small set of pixels (8-adjacency if ``diagonal`` else 4)."""
    left = set(cells)
    comps: list[set[tuple[int, int]]] = []
    while left:
        stack = [left.pop()]
        comp = set(stack)
        while stack:
            r, c = stack.pop()
            for q in list(left):
                dr, dc = abs(q[0] - r), abs(q[1] - c)
                if (dr + dc == 1) or (diagonal and dr == 1 and dc == 1):
                    left.remove(q)
                    comp.add(q)
                    stack.append(q)
        comps.append(comp)
    return comps


def _simple_point_table() -> np.ndarray:
    """The 256-entry table ``simple[code]`` for (8, 4) topology (see module docstring)."""
    table = np.zeros(256, dtype=bool)
    four = {(-1, 0), (0, 1), (1, 0), (0, -1)}
    for code in range(256):
        fg = [_NEIGHBOURS8[k] for k in range(8) if code >> k & 1]
        bg = [_NEIGHBOURS8[k] for k in range(8) if not code >> k & 1]
        t8 = len(_components(fg, diagonal=True))
        t4 = sum(1 for comp in _components(bg, diagonal=False) if comp & four)
        table[code] = t8 == 1 and t4 == 1
    return table


SIMPLE_POINT_TABLE: np.ndarray = _simple_point_table()
_TORCH_TABLES: dict[torch.device, torch.Tensor] = {}


def _torch_table(device: torch.device) -> torch.Tensor:
    if device not in _TORCH_TABLES:
        _TORCH_TABLES[device] = torch.from_numpy(SIMPLE_POINT_TABLE).to(device)
    return _TORCH_TABLES[device]


def has_redundant_pixels(b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Per image of a bool batch ``(N, H, W)``: does some 2x2 window hold 3 or 4 curve pixels?

    For a valid boundary this is exactly the case where some curve pixel does not have exactly two
    8-neighbours (an "L" corner, a thick stroke), i.e. where the crossing rule needs thinning first.
    """
    if isinstance(b, torch.Tensor):
        u = b.to(torch.uint8)
    else:
        u = b.view(np.uint8)
    pairs = u[:, :, :-1] + u[:, :, 1:]
    quad = pairs[:, :-1, :] + pairs[:, 1:, :]
    if isinstance(quad, torch.Tensor):
        return (quad >= 3).flatten(1).any(dim=1)
    return (quad >= 3).reshape(quad.shape[0], -1).any(axis=1)


def thin(b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Irreducible topology-preserving thinning of a bool batch ``(N, H, W)`` (numpy or torch).

    Sparse: only the curve pixels are visited (gathers of their 8 neighbours in the flattened,
    zero-padded batch), sub-field by sub-field, until a full sweep deletes nothing. Same result as
    :func:`_thin_dense`. Returns a new bool batch of the same kind; the input is not modified.
    """
    is_torch = isinstance(b, torch.Tensor)
    n, h, w = b.shape
    stride = w + 2
    offsets = [dr * stride + dc for dr, dc in _NEIGHBOURS8]
    if is_torch:
        padded = torch.zeros((n, h + 2, w + 2), dtype=torch.bool, device=b.device)
        table = _torch_table(b.device)
        image, row, col = torch.nonzero(b, as_tuple=True)
    else:
        padded = np.zeros((n, h + 2, w + 2), dtype=bool)
        table = SIMPLE_POINT_TABLE
        image, row, col = np.nonzero(b)
    padded[:, 1:-1, 1:-1] = b
    flat = padded.reshape(-1)
    index = image * ((h + 2) * stride) + (row + 1) * stride + (col + 1)
    groups = [index[(row % 2 == a) & (col % 2 == c)] for a, c in _SUBFIELDS]
    changed = True
    while changed:
        changed = False
        for g, idx in enumerate(groups):
            if len(idx) == 0:
                continue
            code = None
            for k, off in enumerate(offsets):
                nb = flat[idx + off]
                term = (nb.to(torch.int64) if is_torch else nb.astype(np.int64)) << k
                code = term if code is None else code | term
            simple = table[code]
            if bool(simple.any()):
                flat[idx[simple]] = False
                groups[g] = idx[~simple]
                changed = True
    return padded[:, 1:-1, 1:-1].clone() if is_torch else padded[:, 1:-1, 1:-1].copy()


def _thin_dense(b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Dense reference for :func:`thin`: every sub-field pixel examined at every sweep."""

    is_torch = isinstance(b, torch.Tensor)
    n, h, w = b.shape
    if is_torch:
        padded = torch.zeros((n, h + 2, w + 2), dtype=torch.bool, device=b.device)
        table = _torch_table(b.device)
    else:
        padded = np.zeros((n, h + 2, w + 2), dtype=bool)
        table = SIMPLE_POINT_TABLE
    padded[:, 1:-1, 1:-1] = b
    changed = True
    while changed:
        changed = False
        for a, c in _SUBFIELDS:
            centre = padded[:, 1 + a : h + 1 : 2, 1 + c : w + 1 : 2]
            code = None
            for k, (dr, dc) in enumerate(_NEIGHBOURS8):
                nb = padded[:, 1 + a + dr : h + 1 + dr : 2, 1 + c + dc : w + 1 + dc : 2]
                term = (nb.to(torch.int32) if is_torch else nb.astype(np.int32)) << k
                code = term if code is None else code | term
            delete = centre & (table[code.long()] if is_torch else table[code])
            if bool(delete.any()):
                padded[:, 1 + a : h + 1 : 2, 1 + c : w + 1 : 2] = centre & ~delete
                changed = True
    return padded[:, 1:-1, 1:-1].clone() if is_torch else padded[:, 1:-1, 1:-1].copy()
