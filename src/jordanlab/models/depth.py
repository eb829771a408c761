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

from .depth_certificate import certify_costs
from .depth_solve import DIRECTIONS, _component_depth, _padded_stroke, integer_depth, shortest_path_depth
from .parts import check_images, check_positive_int

__all__ = ["CrossingDepthNet", "DIRECTIONS", "certify_costs", "integer_depth", "min_plus_scan", "shortest_path_depth"]


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
