"""U-Net with six scales (five poolings): the talk's network."""

from __future__ import annotations

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

    def receptive_field(self) -> int:
        """Side of the theoretical receptive field of one output pixel (in input pixels).

        Each 3×3 conv at a scale with pixel spacing j adds 2j; a 2×2 max-pool adds j then
        doubles j; the decoder's 2×2 stride-2 transposed conv adds nothing and halves j
        (bilinear upsampling from spacing j adds j).
        """
        r, j = 5, 1  # inc: two 3×3 convs
        for _ in range(self.depth):
            r += j  # pool
            j *= 2
            r += 4 * j  # two convs
        bilinear = isinstance(self.ups[0].up, nn.Sequential)
        for _ in range(self.depth):
            if bilinear:
                r += j
            j //= 2
            r += 4 * j
        return r
