r"""A learned row automaton: the parity scan with memory.

The learned parity scan (:class:`~jordanlab.models.scan.ParityScanNet`) multiplies one gate
a ∈ (−1, 1) per pixel along each row; the gate sees a 2×3 window, so it must decide *at one
pixel* whether the curve is crossed. That is exact for thin 8-curves but not for thick strokes:
for a band 2–3 pixels wide, whether a row's run of stroke pixels separates the inside from the
outside depends on how the band leaves the row at *both* ends of the run, which may be far apart
(a nearly horizontal band). A finite automaton reading the row from the right can hold what it
saw at the run's right end in its state and decide at the left end, so this module generalises
the scalar gate to a k-state stochastic transition matrix.

- Transition network (sees boundary channel 0 only): the window of rows r − h₀ … r + h₁ and
  columns c − w₀ … c + w₁ (zero outside the canvas; h₀ = ⌊(h − 1)/2⌋, h₁ = ⌊h/2⌋ and likewise
  for the columns, so (5, 3) is centred and (2, 3) is ParityScanNet's rows r, r + 1) → (h×w)
  conv 1→``width`` → ReLU → 1×1 → ReLU → 1×1 ``width``→k² logits L_c, read as a k×k matrix
  (source state i, target state j), and :math:`A_c = \mathrm{softmax}_j L_c`, a row-stochastic
  matrix. The last bias starts at log(0.95 (k − 1)/0.05) on the diagonal (hold with probability
  0.95, :func:`hold_bias`), so at initialisation long products of A stay near the identity and
  gradients reach far columns.
- Scan from the right border: the state is a distribution (row vector) over the k states,
  :math:`h_W = e_0` and :math:`h_c = h_{c+1} A_c`, i.e.
  :math:`h_c = e_0\,A_{W-1} A_{W-2} \cdots A_c`. A product of row-stochastic matrices is
  row-stochastic, so the scan never blows up or vanishes however long the row; a permutation
  matrix is an exact, deterministic transition (the 2-state swap is ParityScanNet's a = −1).
- Head (sees every input channel and a readout of h): 1×1 conv → ``width`` → ReLU → 1×1 →
  one logit.

Parity structure (``parity=True``, the default). An unconstrained automaton can fit the training
family (one shape per image: most rows cross the curve twice) with a *counting* automaton
("outside, then inside after the first run, then outside for good") that is not parity and fails
on nested curves (observed: 0 % of nested images perfect). With ``parity=True`` the k = 2M
states are pairs (parity bit, memory state m ∈ {1 … M}), and each transition is equivariant
under flipping the parity bit:

.. math:: A_c = \begin{pmatrix} P_c & Q_c \\ Q_c & P_c \end{pmatrix},
          \qquad [P_c \; Q_c] = \mathrm{softmax}_{\text{row}} L_c,

where the network gives M × 2M logits L_c, P_c[i, j] is "memory i → j, keep the parity" and
Q_c[i, j] "memory i → j, flip it". The memory then evolves by P + Q whatever the parity, so it can
hold what the run's right end looked like but can never *know* the parity, and the head sees only
the parity readout :math:`\sigma_c = \Pr(\text{even}) - \Pr(\text{odd}) \in [-1, 1]` (and x): the
prediction is the XOR of local flip decisions, i.e. a crossing parity, for any number of
crossings. With M = 1 this is exactly ParityScanNet's gate, :math:`a = P - Q \in (-1, 1)`.
``parity=False`` lets all k×k entries free and the head read all of h (the ablation).

Reset on the background (``reset=True``, with ``parity=True``). A crossing happens on the
stroke, so the transition at a background pixel (B_{r,c} = 0) is fixed to "keep the parity,
go to the first memory state": :math:`A_c = B_{r,c} A^{\text{net}}_c + (1 - B_{r,c}) R` with R
mapping (p, m) to (p, 1).
Every run of stroke pixels then starts from the same memory state, so a run's flip decision
depends on that run (and its 5-row window) alone. Without it the decision may also depend on the
memory left by the runs to its right, and in the training family (one shape per image) a run only
ever follows the other side of the same shape; nested and multi-curve rows put, e.g., the bottom
of an inner curve after a run of an outer one, a context never trained, where the learned flip
was wrong (the commonest failing run on those suites was a thin cup bottom).

:func:`suffix_state_scan` computes every h_c with a log-depth doubling scan over the k×k
matrices (or a sequential loop, the reference). :meth:`AutomatonScanNet.gate_penalty` is the
mean row entropy of A divided by log k: 0 iff every transition is deterministic, i.e. the network
is an exact finite automaton, which is what lets it generalise to rows of any length.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .parts import check_images, check_positive_int
from .scan import SCAN_METHODS

__all__ = ["AutomatonScanNet", "suffix_state_scan"]

#: Probability of staying in the same state at initialisation (all k states alike): A ≈ identity.
HOLD_PROBABILITY = 0.95


def hold_bias(states: int, p: float = HOLD_PROBABILITY) -> float:
    """Diagonal logit b with softmax hold probability p: e^b / (e^b + k − 1) = p, b = log(p (k − 1) / (1 − p)).

    A fixed logit would not do: +3 holds with 0.95 for k = 2 but 0.80 for k = 6, and 0.80³² ≈ 10⁻³,
    so the state would forget the right border within a 32-pixel row before training starts.
    """
    return math.log(p * (states - 1) / (1.0 - p))


def suffix_state_scan(a: torch.Tensor, start: torch.Tensor, *, method: str = "doubling") -> torch.Tensor:
    r"""States :math:`h_c = s\,A_{W-1} A_{W-2} \cdots A_c` of a right-to-left automaton scan.

    Parameters
    ----------
    a : Tensor of shape (..., W, k, k)
        Transition matrices along the scanned axis (row-stochastic for a probabilistic
        automaton, though any matrices work).
    start : Tensor broadcastable to (..., k)
        The state s before the right border (a row vector).
    method : {"doubling", "sequential"}
        ``"doubling"``: Hillis–Steele prefix products of the column-reversed matrices
        B_t = A_{W−1−t}: at offset d = 1, 2, 4, … , Q_t ← Q_{t−d} Q_t (the older factors stay on
        the left, since matrix products do not commute), ⌈log₂ W⌉ batched k×k products.
        ``"sequential"``: W vector–matrix products (the reference).

    Returns
    -------
    Tensor of shape (..., W, k)
        h_c for every column c.

    Examples
    --------
    Two states and the swap at the marked columns: the state is the parity of the marks at and
    right of c.

    >>> import torch
    >>> swap, hold = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.eye(2)
    >>> a = torch.stack([swap, hold, hold, swap, swap])
    >>> suffix_state_scan(a, torch.tensor([1.0, 0.0]))[:, 1]
    tensor([1., 0., 0., 0., 1.])
    """
    if a.ndim < 3 or a.shape[-1] != a.shape[-2] or a.shape[-3] == 0:
        raise ValueError(f"a must have shape (..., W, k, k) with W >= 1, got {tuple(a.shape)}")
    if start.shape[-1] != a.shape[-1]:
        raise ValueError(f"start must end with k = {a.shape[-1]} states, got shape {tuple(start.shape)}")
    if method not in SCAN_METHODS:
        raise ValueError(f"method={method!r} is not supported; expected one of {SCAN_METHODS}")
    width = a.shape[-3]
    if method == "sequential":
        h = start.expand(*a.shape[:-3], a.shape[-1])
        states = [h] * width
        for c in range(width - 1, -1, -1):
            h = (h.unsqueeze(-2) @ a[..., c, :, :]).squeeze(-2)
            states[c] = h
        return torch.stack(states, dim=-2)
    q = a.flip(-3)  # q[t] = A_{W-1-t}
    d = 1
    while d < width:
        q = torch.cat([q[..., :d, :, :], q[..., :-d, :, :] @ q[..., d:, :, :]], dim=-3)
        d *= 2
    h = (start.unsqueeze(-2).unsqueeze(-2) @ q).squeeze(-2)  # s Q_t, broadcast over t
    return h.flip(-2)


def _reset_matrix(memory: int) -> torch.Tensor:
    """R ``(2M, 2M)``: state (parity p, memory m) → (p, memory 0), states ordered p·M + m."""
    r = torch.zeros(2 * memory, 2 * memory)
    r[:memory, 0] = 1.0
    r[memory:, memory] = 1.0
    return r


def _window_padding(window: tuple[int, int]) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) that centre an (h, w) window on its pixel."""
    h, w = window
    return (w - 1) // 2, w // 2, (h - 1) // 2, h // 2


class AutomatonScanNet(nn.Module):
    """A learned k-state automaton read along rows from the right border (see the module docstring).

    The transition matrices are exposed without hidden state, like ParityScanNet's gates:
    :meth:`gates` computes A, :meth:`readout` maps (x, A) to logits, ``forward(x) =
    readout(x, gates(x))``, and :meth:`gate_penalty` is the normalised row entropy of A, so
    ``train.gate_penalty`` pushes the transitions to deterministic ones.

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input; channel 0 is the boundary.
    states : int
        k, the number of automaton states (at least 2: parity needs two; even when
        ``parity=True``: M = k/2 memory states times the parity bit).
    window : (int, int)
        (h, w) of the transition network's window on channel 0, centred on the pixel.
    width : int
        Hidden channels of the transition network and of the head.
    parity : bool
        Parity-equivariant transitions and a parity-only readout (see the module docstring).
    reset : bool
        Fixed transition "keep parity, reset memory" on background pixels (needs ``parity``).
    method : {"doubling", "sequential"}
        Scan implementation (see :func:`suffix_state_scan`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        states: int = 4,
        window: tuple[int, int] = (5, 3),
        width: int = 16,
        parity: bool = True,
        reset: bool = True,
        method: str = "doubling",
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.states = check_positive_int(states, "states")
        if states < 2:
            raise ValueError(f"states must be >= 2 (parity needs two states), got {states!r}")
        if reset and not parity:
            raise ValueError("reset=True needs parity=True (the reset keeps the parity bit)")
        if parity and states % 2:
            raise ValueError(f"states must be even with parity=True (parity bit x memory), got {states!r}")
        window = tuple(window)
        if len(window) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in window):
            raise ValueError(f"window must be a pair of positive ints (h, w), got {window!r}")
        check_positive_int(width, "width")
        if method not in SCAN_METHODS:
            raise ValueError(f"method={method!r} is not supported; expected one of {SCAN_METHODS}")
        self.window_size: tuple[int, int] = (int(window[0]), int(window[1]))
        self.method, self.parity, self.reset = method, bool(parity), bool(reset)
        k = self.states
        rows = k // 2 if self.parity else k  # free rows of logits: M (parity) or k
        self.window = nn.Conv2d(1, width, self.window_size)
        self.transition_mlp = nn.Sequential(
            nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, rows * k, 1)
        )
        self.register_buffer("start", nn.functional.one_hot(torch.tensor(0), k).float(), persistent=False)
        self.register_buffer("reset_matrix", _reset_matrix(k // 2), persistent=False)
        readout = 1 if self.parity else k
        self.head = nn.Sequential(nn.Conv2d(in_channels + readout, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1))
        with torch.no_grad():
            self.transition_mlp[-1].bias.copy_(hold_bias(k) * torch.eye(rows, k).flatten())

    def transition_logits(self, x: torch.Tensor) -> torch.Tensor:
        """L ``(N, H, W, rows, k)`` (source, target; rows = M with parity, else k) from channel 0's window."""
        check_images(x, self.in_channels)
        window = nn.functional.pad(x[:, :1], _window_padding(self.window_size))
        z = self.transition_mlp(self.window(window))
        n, _, h, w = z.shape
        return z.view(n, -1, self.states, h, w).permute(0, 3, 4, 1, 2)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Row-stochastic transitions A ``(N, H, W, k, k)``: softmax over the target state.

        With ``parity=True`` the M softmax rows [P Q] are stacked with their parity swap [Q P].
        """
        rows = torch.softmax(self.transition_logits(x), dim=-1)
        if not self.parity:
            return rows
        m = self.states // 2
        a = torch.cat([rows, torch.cat([rows[..., m:], rows[..., :m]], dim=-1)], dim=-2)
        if not self.reset:
            return a
        stroke = x[:, 0, :, :, None, None].to(a.dtype)
        return stroke * a + (1 - stroke) * self.reset_matrix.to(a.dtype)

    def gate_penalty(self, a: torch.Tensor) -> torch.Tensor:
        r"""Mean row entropy :math:`-\sum_j A_{ij} \log A_{ij} / \log k`: 0 iff every A is a 0/1 matrix.

        The log is taken of max(A, smallest normal float), so an entry that the softmax rounds to
        0 has a finite gradient (log A + 1 would be −∞ there, and 0 · ∞ a NaN).
        """
        log_a = torch.log(a.clamp_min(torch.finfo(a.dtype).tiny))
        entropy = -(a * log_a).sum(-1)
        return entropy.mean() / math.log(self.states)

    def scan_states(self, a: torch.Tensor) -> torch.Tensor:
        """h ``(N, k, H, W)``: the state distribution at each pixel, scanned from the right border."""
        h = suffix_state_scan(a, self.start.to(a.dtype), method=self.method)
        return h.permute(0, 3, 1, 2)

    def readout(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``: head([x, σ]) with σ = Pr(even) − Pr(odd) (parity), or head([x, h])."""
        h = self.scan_states(a).to(x.dtype)
        if self.parity:
            m = self.states // 2
            h = h[:, :m].sum(1, keepdim=True) - h[:, m:].sum(1, keepdim=True)
        return self.head(torch.cat([x, h], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        return self.readout(x, self.gates(x))

    def receptive_field(self) -> str:
        """``"global along rows"``: the scan reaches the right border (within the window's rows)."""
        return "global along rows"
