"""U-Net with six scales (five poolings): the talk's network."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .parts import DoubleConv, Down, OutConv, Up, check_images, check_norm, check_positive_int


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with ``depth + 1`` scales and concatenated skips.

    Channels at scale k are ``width · 2^k`` (k = 0…depth): with ``width=8`` and ``depth=5``,
    8, 16, 32, 64, 128, 256. Encoder: DoubleConv, then ``depth`` × (max-pool → DoubleConv);
    decoder: ``depth`` × (upsample → concat skip → DoubleConv); head: 1×1 conv → one logit.

    Inputs of any size are zero-padded (symmetrically) to a multiple of ``2^depth`` and the
    output is cropped back, so the network runs on any (H, W); zero is the background value
    of a boundary image, so the padding adds no curve.

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input.
    width : int
        Channels at the finest scale (the classic U-Net uses 64).
    depth : int
        Number of poolings (5 gives the talk's 6 scales).
    norm : {"batch", "none"}
        BatchNorm after every 3×3 conv, or none (for tangent-kernel analysis).
    up : {"transposed", "bilinear"}
        Upsampling by a 2×2 stride-2 transposed conv or bilinear interpolation + 1×1 conv.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 8,
        depth: int = 5,
        norm: str = "batch",
        up: str = "transposed",
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        check_positive_int(width, "width")
        self.depth = check_positive_int(depth, "depth")
        self.norm = check_norm(norm)
        channels = [width * 2**k for k in range(depth + 1)]
        self.inc = DoubleConv(in_channels, channels[0], norm=norm)
        self.downs = nn.ModuleList(
            Down(channels[k], channels[k + 1], norm=norm) for k in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(channels[k + 1], mode=up, norm=norm) for k in reversed(range(depth))
        )
        self.outc = OutConv(channels[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        check_images(x, self.in_channels)
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = -h % m, -w % m
        top, left = ph // 2, pw // 2
        if ph or pw:
            x = F.pad(x, (left, pw - left, top, ph - top))
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for upblock in self.ups:
            y = upblock(y, skips.pop())
        logits = self.outc(y)
        return logits[..., top : top + h, left : left + w]

    def input_window(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Input rows (or columns) each output row can depend on, for a padded side ``size``.

        Returns ``lo, hi`` of shape ``(size,)``: output index i depends on input indices
        ``lo[i] … hi[i]`` only. The dependency of a 2-D output pixel is the product of the row
        and column windows (every layer is separable in its support). Computed exactly by
        following each layer: a 3×3 conv takes the union of three neighbours' windows, a 2×2
        pool of two, a stride-2 transposed conv copies its parent's, bilinear ×2 upsampling
        takes the union of its two interpolation parents (clamped at the border), and a skip
        concatenation the union of both branches.
        """
        m = 2**self.depth
        if size % m:
            raise ValueError(f"size={size} must be a multiple of 2**depth = {m}")
        bilinear = isinstance(self.ups[0].up, nn.Sequential)
        idx = np.arange(size)
        lo, hi = _conv3(idx, idx, times=2)
        skips = [(lo, hi)]
        for _ in range(self.depth):
            lo, hi = np.minimum(lo[0::2], lo[1::2]), np.maximum(hi[0::2], hi[1::2])
            lo, hi = _conv3(lo, hi, times=2)
            skips.append((lo, hi))
        skips.pop()
        for _ in range(self.depth):
            n = 2 * lo.shape[0]
            fine = np.arange(n)
            if bilinear:
                a = np.clip((fine - 1) // 2, 0, lo.shape[0] - 1)  # floor(i/2 − 1/4)
                b = np.clip((fine + 1) // 2, 0, lo.shape[0] - 1)
                lo, hi = np.minimum(lo[a], lo[b]), np.maximum(hi[a], hi[b])
            else:
                lo, hi = lo[fine // 2], hi[fine // 2]
            slo, shi = skips.pop()
            lo, hi = _conv3(np.minimum(lo, slo), np.maximum(hi, shi), times=2)
        return lo, hi

    def receptive_field(self) -> int:
        """Side of the largest input window any interior output pixel depends on.

        The window of a U-Net output depends on the pixel's position modulo 2^depth (the
        poolings' phase), so this is the maximum of ``hi − lo + 1`` from :meth:`input_window`
        over the pixels of a canvas large enough that the border plays no role.
        """
        m = 2**self.depth
        size = 8 * m * max(self.depth, 1) + 8 * m
        lo, hi = self.input_window(size)
        mid = slice(size // 4, 3 * size // 4)
        return int((hi[mid] - lo[mid] + 1).max())


def _conv3(lo: np.ndarray, hi: np.ndarray, *, times: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows after ``times`` zero-padded 3×3 convs: union over the neighbours i−1, i, i+1."""
    for _ in range(times):
        lo = np.minimum(lo, np.concatenate([lo[:1], lo[:-1]]))
        lo = np.minimum(lo, np.concatenate([lo[1:], lo[-1:]]))
        hi = np.maximum(hi, np.concatenate([hi[:1], hi[:-1]]))
        hi = np.maximum(hi, np.concatenate([hi[1:], hi[-1:]]))
    return lo, hi
