"""Programmed networks: fixed-weight ``torch.nn.Module``s that compute the exact even-odd fill.

The talk remarks that a CNN programmed *ad hoc* can fill the inside of a curve provided its
receptive field is large enough. Two such networks, no training, float32, any device, batched
``(N, 1, H, W)`` boundary images in (curve pixels > 0.5) and ``(N, 1, H, W)`` logits out
(``+scale`` on the figure, ``-scale`` on the background):

* :class:`PropagationNet`: purely local. A 3x3 max-pool step repeated: "outside" spreads from the
  image border through the 4-connected background, then onto the curves it touches, then into the
  regions behind them, and so on, alternating the even-odd depth. Its depth (number of steps) grows
  with the length of the corridors to fill: :func:`propagation_steps` reports it.
* :class:`ScanNet`: one local 3x3 convolution computing, at every pixel, whether a curve edge goes
  down from it (a crossing of the half-line of the row), then a linear recurrence along each row
  ``h_c = a_c h_{c+1}`` with ``a_c = -1`` at a crossing and ``+1`` elsewhere (parity as a sign
  flip), computed with a cumulative product. Non-local along rows, hence constant depth.

Both equal :func:`jordanlab.topology.fill` on valid boundaries (the tests check it on every
curve family, nested and thick).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jordanlab.topology._thinning import has_redundant_pixels
from jordanlab.topology._thinning import thin as _thin

__all__ = ["PropagationNet", "PropagationResult", "ScanNet", "propagation_steps"]


def _check_input(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 1, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N, 1, H, W), got {tuple(x.shape)}")
    return x > 0.5


def _dilate4(m: torch.Tensor) -> torch.Tensor:
    """4-neighbourhood dilation (the cross): max of a 3x1 and a 1x3 max-pool, zero padding."""
    return torch.maximum(
        F.max_pool2d(m, (3, 1), stride=1, padding=(1, 0)), F.max_pool2d(m, (1, 3), stride=1, padding=(0, 1))
    )


def _dilate8(m: torch.Tensor) -> torch.Tensor:
    """8-neighbourhood dilation: a 3x3 max-pool, zero padding."""
    return F.max_pool2d(m, 3, stride=1, padding=1)


@dataclass(frozen=True)
class PropagationResult:
    """Output of :meth:`PropagationNet.propagate`.

    Attributes
    ----------
    logits : Tensor (N, 1, H, W), float32
        ``+scale`` on the figure, ``-scale`` on the background, ``0`` where the propagation did
        not arrive within ``max_steps``.
    steps : Tensor (N,), int64
        Number of propagation steps that changed image ``n`` (its depth as a local network).
    converged : Tensor (N,), bool
        Whether every pixel of image ``n`` was reached.
    """

    logits: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor


class PropagationNet(nn.Module):
    """Iterated local propagation of the even-odd depth from the image border.

    Parameters
    ----------
    max_steps : int or None, keyword-only
        Stop after this many steps (a network of fixed depth); ``None`` runs to convergence.
    scale : float, keyword-only
        Magnitude of the output logits.

    Notes
    -----
    State: ``reached`` (pixels whose depth is known) and ``odd`` (reached pixels of the figure).
    The area outside the image is the outside region (depth 0), so the first phase is seeded by the
    zero padding of the pooling. The network alternates phases, each a repeated local step run
    until nothing changes in any image:

    * region phase at depth ``d``: ``new = background & ~reached & D4(front)``, where ``D4`` is a
      3x3 cross max-pool (4-connected background) and ``front`` the pixels found so far in this
      phase (the first step starts from the curves of the previous phase, or the border);
    * curve phase: ``new = curve & ~reached & D(front)``, seeded by ``D4`` of the region just
      found, then spreading with the 3x3 max-pool ``D8`` (8-connected curves).

    A region found after crossing ``d`` curves belongs to the figure iff ``d`` is odd; curves always
    do. Running each phase to convergence matters: spreading regions and curves simultaneously
    would let a curve (8-connected, faster along diagonals) overtake its outer region and label it
    wrongly. A step counts for an image when it changes that image's state, so ``steps`` is the
    depth the local network needs on it: about the length of the longest corridor to fill, summed
    over the nesting levels.
    """

    def __init__(self, *, max_steps: int | None = None, scale: float = 10.0) -> None:
        super().__init__()
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 0):
            raise ValueError(f"max_steps must be None or an int >= 0, got {max_steps!r}")
        self.max_steps = max_steps
        self.scale = float(scale)

    def propagate(self, x: torch.Tensor) -> PropagationResult:
        """Run the propagation on ``x`` ``(N, 1, H, W)``; see :class:`PropagationResult`."""
        curve = _check_input(x).float()
        background = 1.0 - curve
        n = x.shape[0]
        steps = torch.zeros(n, dtype=torch.int64, device=x.device)
        reached = torch.zeros_like(curve)
        odd = torch.zeros_like(curve)
        budget = self.max_steps
        # The padding ring (outside the image) is the outside region: seed phase 0 from it.
        ring = 1.0 - F.pad(torch.ones_like(curve), (1, 1, 1, 1))
        front = _dilate4(ring)[..., 1:-1, 1:-1]  # image pixels 4-adjacent to the outside
        depth = 0
        is_region = True
        while True:
            spread = _dilate4 if is_region else _dilate8
            allowed = (background if is_region else curve) * (1.0 - reached)
            new = front * allowed  # the seeds of this phase
            found = torch.zeros_like(curve)
            while True:
                changed = new.flatten(1).amax(dim=1) > 0
                if not bool(changed.any()):
                    break
                if budget is not None:
                    if budget == 0:
                        break
                    budget -= 1
                steps += changed.to(torch.int64)
                found = found + new
                new = spread(found) * allowed * (1.0 - found)
            reached = reached + found
            if is_region:
                odd = odd + found * float(depth % 2)
                front = _dilate4(found)  # curves 4-adjacent to the regions just found
                depth += 1
            else:
                odd = odd + found
                front = _dilate4(found)  # background 4-adjacent to the curves just found
            is_region = not is_region
            if not bool(found.any()) or budget == 0:
                break
        sign = torch.where(odd > 0, 1.0, -1.0) * reached  # 0 where not reached
        converged = reached.flatten(1).amin(dim=1) > 0
        return PropagationResult(logits=self.scale * sign, steps=steps, converged=converged)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``: ``+scale`` figure, ``-scale`` background (0 if not reached)."""
        return self.propagate(x).logits


def propagation_steps(boundary: torch.Tensor, *, max_steps: int | None = None) -> torch.Tensor:
    """Steps :class:`PropagationNet` needs per image, for ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``.

    Accepts numpy arrays too. Returns an int64 tensor ``(N,)`` (``(1,)`` for a single image).
    """
    x = torch.as_tensor(boundary)
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[:, None]
    return PropagationNet(max_steps=max_steps).propagate(x.float()).steps


class ScanNet(nn.Module):
    r"""Row-scan network: a 3x3 crossing detector and a sign-flip recurrence along each row.

    Parameters
    ----------
    scale : float, keyword-only
        Magnitude of the output logits.
    thin : bool, keyword-only
        Thin boundaries that are not simple 8-curves (L corners, strokes thicker than one pixel)
        with the topology-preserving simple-point deletion of :func:`jordanlab.topology.fill`
        before the scan (default True). Without it the scan is exact for simple closed 8-curves
        only.

    Notes
    -----
    With ``B`` the boundary, the fixed convolution (kernel ``[[0, 0, 0], [0, 3, 0], [1, 1, 1]]``,
    bias ``-3``) followed by a ReLU gives the number of curve edges going down from each pixel,

    .. math:: d_{r,c} = \mathrm{ReLU}(B_{r+1,c-1} + B_{r+1,c} + B_{r+1,c+1} + 3B_{r,c} - 3)
              = B_{r,c}\,(B_{r+1,c-1} + B_{r+1,c} + B_{r+1,c+1}),

    and ``a = cos(pi d)`` is ``-1`` at an odd number of crossings, ``+1`` otherwise. The recurrence
    ``h_c = a_{c+1} h_{c+1}`` from ``h_{W-1} = -1`` (outside, right of the image) is
    ``h_c = -\prod_{c' > c} a_{c'}`` (a reversed cumulative product), positive iff the half-line
    right of ``c`` crosses the curves an odd number of times. Logits: ``scale * max(h, 2B - 1)``.
    """

    def __init__(self, *, scale: float = 10.0, thin: bool = True) -> None:
        super().__init__()
        self.scale = float(scale)
        self.thin = bool(thin)
        self.crossing = nn.Conv2d(1, 1, 3, padding=1, bias=True)
        with torch.no_grad():
            self.crossing.weight.copy_(torch.tensor([[[[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]]]]))
            self.crossing.bias.fill_(-3.0)
        self.crossing.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``: ``+scale`` figure, ``-scale`` background."""
        b = _check_input(x)
        if self.thin:
            flat = b[:, 0]
            need = has_redundant_pixels(flat)
            if bool(need.any()):
                flat = flat.clone()
                flat[need] = _thin(flat[need])
            centre = flat[:, None].float()
        else:
            centre = b.float()
        down = F.relu(self.crossing(centre))
        flip = torch.cos(torch.pi * down).round()  # exactly +1 / -1 for integer d
        # h_c = -prod_{c' > c} a_{c'}: cumulative product from the right, shifted by one column.
        suffix = torch.flip(torch.cumprod(torch.flip(flip, dims=[-1]), dim=-1), dims=[-1])
        h = -torch.cat([suffix[..., 1:], torch.ones_like(suffix[..., :1])], dim=-1)
        return self.scale * torch.maximum(h, 2.0 * b.float() - 1.0)
