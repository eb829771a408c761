"""Learned row-scan network: a local encoder, a linear recurrence along rows, a local head.

The exact parity rule fills a pixel when the half-line to its right crosses the curve an odd
number of times. Written as a recurrence from the right border, s_c = a_c · s_{c+1} with
a_c = −1 at a crossing and +1 elsewhere, the sign of s_c is the parity. A linear recurrence
h_c = a_c ⊙ h_{c+1} + b_c with input-dependent a_c ∈ (−1, 1) (``gate="tanh"``) can express this;
with a positive gate (``gate="sigmoid"``, a_c ∈ (0, 1)) the sign can never flip, so it cannot.
"""

from __future__ import annotations

import torch
from torch import nn

from .parts import ConvNormReLU, check_images, check_positive_int

SCAN_METHODS = ("doubling", "sequential")
GATES = ("tanh", "sigmoid")
#: Directions, named by the half-line each state summarises: "right" scans right-to-left.
DIRECTIONS = ("right", "left", "down", "up")


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    *,
    reverse: bool = False,
    method: str = "doubling",
) -> torch.Tensor:
    """Solve the first-order linear recurrence h_t = a_t ⊙ h_{t−1} + b_t along the last axis.

    With ``reverse=True`` the recurrence runs from the end: h_t = a_t ⊙ h_{t+1} + b_t.
    The state before the first element is ``h0`` (zero when None).

    Parameters
    ----------
    a, b : Tensor of shape (..., T)
        Coefficients and inputs (same shape).
    h0 : Tensor broadcastable to (..., 1), optional
        Initial state.
    reverse : bool
        Scan from t = T−1 down to 0.
    method : {"doubling", "sequential"}
        ``"doubling"``: Hillis–Steele parallel prefix over the associative composition
        (A₁, B₁) then (A₂, B₂) = (A₂A₁, A₂B₁ + B₂), ⌈log₂ T⌉ vectorised steps and no division,
        so negative and zero coefficients are exact. ``"sequential"``: a loop over the T
        positions (the reference).

    Returns
    -------
    Tensor of shape (..., T)
        All states h_0 … h_{T−1}.

    Examples
    --------
    Parity of the ones to the right (inclusive) as a sign, with a = 1 − 2x, b = 0, h0 = 1:

    >>> import torch
    >>> x = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    >>> linear_scan(1 - 2 * x, torch.zeros(7), torch.ones(1), reverse=True)
    tensor([-1., -1.,  1.,  1.,  1., -1.,  1.])
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim < 1 or a.shape[-1] == 0:
        raise ValueError(f"a must have a non-empty last axis, got shape {tuple(a.shape)}")
    if method not in SCAN_METHODS:
        raise ValueError(f"method={method!r} is not supported; expected one of {SCAN_METHODS}")
    if reverse:
        a, b = a.flip(-1), b.flip(-1)
    if method == "sequential":
        h = torch.zeros_like(b[..., 0]) if h0 is None else h0[..., 0].expand_as(b[..., 0])
        states = []
        for t in range(a.shape[-1]):
            h = a[..., t] * h + b[..., t]
            states.append(h)
        out = torch.stack(states, dim=-1)
    else:
        big_a, big_b = a, b
        d, length = 1, a.shape[-1]
        while d < length:
            big_b = torch.cat([big_b[..., :d], big_a[..., d:] * big_b[..., :-d] + big_b[..., d:]], dim=-1)
            big_a = torch.cat([big_a[..., :d], big_a[..., d:] * big_a[..., :-d]], dim=-1)
            d *= 2
        out = big_b if h0 is None else big_b + big_a * h0
    return out.flip(-1) if reverse else out


class RowScanNet(nn.Module):
    """Local encoder → gated linear scans along rows (and optionally columns) → local head.

    - Encoder: ``encoder_depth`` × (3×3 conv → ReLU), ``C → width`` features f.
    - For each direction d: a = gate(1×1 conv(f)), b = 1×1 conv(f) (``width`` channels each),
      h = the recurrence h_p = a_p ⊙ h_{p+1} + b_p along d, started from a learned state h0_d
      beyond the border (see :func:`linear_scan`).
    - Head: concat(f, h_d for every d) → 3×3 conv → ReLU → 1×1 conv → one logit.

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input.
    width : int
        Channels of the features and of each scan state.
    encoder_depth : int
        3×3 convs in the encoder (its receptive field is 2·encoder_depth + 1).
    head_width : int
        Hidden channels of the head.
    directions : tuple of {"right", "left", "down", "up"}
        Half-lines summarised by the scans; ``("right",)`` is the parity rule's ray.
    gate : {"tanh", "sigmoid"}
        a ∈ (−1, 1) (sign flips possible: parity expressible) or a ∈ (0, 1) (positive only).
    method : {"doubling", "sequential"}
        Scan implementation (same result; see :func:`linear_scan`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 16,
        encoder_depth: int = 3,
        head_width: int = 16,
        directions: tuple[str, ...] = ("right",),
        gate: str = "tanh",
        method: str = "doubling",
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        check_positive_int(width, "width")
        check_positive_int(encoder_depth, "encoder_depth")
        check_positive_int(head_width, "head_width")
        directions = tuple(directions)
        bad = [d for d in directions if d not in DIRECTIONS]
        if bad or not directions or len(set(directions)) != len(directions):
            raise ValueError(
                f"directions={directions!r} must be distinct entries of {DIRECTIONS}, at least one"
            )
        if gate not in GATES:
            raise ValueError(f"gate={gate!r} is not supported; expected one of {GATES}")
        if method not in SCAN_METHODS:
            raise ValueError(f"method={method!r} is not supported; expected one of {SCAN_METHODS}")
        self.directions, self.gate, self.method = directions, gate, method
        self.encoder = nn.Sequential(
            *(ConvNormReLU(in_channels if i == 0 else width, width, norm="none") for i in range(encoder_depth))
        )
        self.coef_a = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in directions)
        self.coef_b = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in directions)
        self.h0 = nn.Parameter(torch.ones(len(directions), width))
        self.head = nn.Sequential(
            nn.Conv2d(width * (1 + len(directions)), head_width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_width, 1, 1),
        )

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Encoder features f ``(N, width, H, W)`` and the (a, b) pair of every direction."""
        check_images(x, self.in_channels)
        f = self.encoder(x)
        squash = torch.tanh if self.gate == "tanh" else torch.sigmoid
        return f, [(squash(ca(f)), cb(f)) for ca, cb in zip(self.coef_a, self.coef_b)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        f, coefs = self.coefficients(x)
        states = [f]
        for k, (direction, (a, b)) in enumerate(zip(self.directions, coefs)):
            vertical = direction in ("down", "up")
            if vertical:
                a, b = a.transpose(-1, -2), b.transpose(-1, -2)
            h0 = self.h0[k].view(1, -1, 1, 1)
            h = linear_scan(a, b, h0, reverse=direction in ("right", "down"), method=self.method)
            states.append(h.transpose(-1, -2) if vertical else h)
        return self.head(torch.cat(states, dim=1))

    def receptive_field(self) -> str:
        """``"global along rows"`` (or rows and columns) : the scans reach the canvas border."""
        axes = {"rows" if d in ("right", "left") else "columns" for d in self.directions}
        return "global along " + " and ".join(sorted(axes, reverse=True))



class ParityScanNet(nn.Module):
    r"""A learned parity rule: a gate from the 2×3 crossing window, a pure product scan, a 1×1 head.

    - Gate network (sees boundary channel 0 only): the window of rows r, r+1 and columns
      c−1 … c+1 (zero outside the canvas) → (2×3) conv 1→``width`` → ReLU → 1×1 ``width``→``width``
      → ReLU → 1×1 ``width``→1 = z, and a = tanh(z) (``gate="tanh"``, a ∈ (−1, 1)) or
      a = σ(z) (``gate="sigmoid"``, a ∈ (0, 1)). The last bias starts at 2 ("hold": a ≈ 0.96 or
      0.88), since a product of gates near 0 would kill the gradient.
    - Scan from the right border, one channel, no input term:
      :math:`h_c = a_c h_{c+1}`, :math:`h_W = h_0` (learned), i.e. :math:`h_c = h_0 \prod_{c' \ge c} a_{c'}`.
    - Head (sees every input channel and h): 1×1 conv (C+1)→``width`` → ReLU → 1×1 → one logit.

    The exact thin-curve rule is expressible with the tanh gate: with d = ReLU(3B_{r,c} +
    B_{r+1,c−1} + B_{r+1,c} + B_{r+1,c+1} − 3) (the curve edges going down from a curve pixel,
    see :class:`jordanlab.topology.ScanNet`), z = s(1 − 2 (d mod 2)) gives a = ±1 in float32 for
    s ≳ 9, and h = ±h0 is the parity of the crossings to the right. A positive gate keeps the
    sign of h0, so it cannot.

    The gates are exposed without hidden state: :meth:`gates` computes a, :meth:`readout` maps
    (x, a) to logits, and ``forward(x) = readout(x, gates(x))``; a training objective that
    penalises the gates calls the two halves (see ``jordanlab.train.objectives.StandardObjective``).

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input; channel 0 is the boundary.
    width : int
        Hidden channels of the gate network and of the head.
    gate : {"tanh", "sigmoid"}
        Gate squashing.
    method : {"doubling", "sequential"}
        Scan implementation (see :func:`linear_scan`).
    """

    def __init__(self, *, in_channels: int = 1, width: int = 16, gate: str = "tanh", method: str = "doubling") -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        check_positive_int(width, "width")
        if gate not in GATES:
            raise ValueError(f"gate={gate!r} is not supported; expected one of {GATES}")
        if method not in SCAN_METHODS:
            raise ValueError(f"method={method!r} is not supported; expected one of {SCAN_METHODS}")
        self.gate, self.method = gate, method
        self.window = nn.Conv2d(1, width, (2, 3))
        self.gate_mlp = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1))
        self.h0 = nn.Parameter(torch.ones(1))
        self.head = nn.Sequential(nn.Conv2d(in_channels + 1, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1))
        with torch.no_grad():
            self.gate_mlp[-1].bias.fill_(2.0)

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """z ``(N, 1, H, W)`` from the 2×3 window (rows r, r+1; columns c−1 … c+1) of channel 0."""
        check_images(x, self.in_channels)
        window = nn.functional.pad(x[:, :1], (1, 1, 0, 1))
        return self.gate_mlp(self.window(window))

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """a = tanh(z) or σ(z), ``(N, 1, H, W)``."""
        z = self.gate_logits(x)
        return torch.tanh(z) if self.gate == "tanh" else torch.sigmoid(z)

    def gate_penalty(self, a: torch.Tensor) -> torch.Tensor:
        """Unit-modulus penalty: mean(1 − a²) (tanh) or mean(4a(1 − a)) (sigmoid); 0 iff every a is at an end of its range."""
        return (1.0 - a * a).mean() if self.gate == "tanh" else (4.0 * a * (1.0 - a)).mean()

    def readout(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)`` from the input and the gates: h_c = a_c h_{c+1}, head([x, h])."""
        h = linear_scan(a, torch.zeros_like(a), self.h0.view(1, 1, 1, 1), reverse=True, method=self.method)
        return self.head(torch.cat([x, h], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        return self.readout(x, self.gates(x))

    def receptive_field(self) -> str:
        """``"global along rows"``: the scan reaches the right border."""
        return "global along rows"
