"""Plain convolutional stacks: the local CNN and its variants with non-local layers."""

from __future__ import annotations

import torch
from torch import nn

from .parts import (
    ConvNormReLU,
    GlobalAvgPoolBlock,
    GlobalContextBlock,
    OutConv,
    SelfAttentionBlock,
    check_images,
    check_norm,
    check_positive_int,
)

#: Number of 3×3 convolutions in the default U-Net (6 DoubleConvs down, 5 up).
UNET_CONV_LAYERS = 22

NONLOCAL_KINDS = ("gap", "sa", "gc")


def nonlocal_positions(depth: int, blocks: int) -> list[int]:
    """Indices i (1 ≤ i < depth) after whose i-th conv layer a non-local block is inserted.

    The ``blocks`` positions split the conv stack into ``blocks + 1`` nearly equal parts:
    i_k = round(k · depth / (blocks + 1)), k = 1…blocks (one block goes in the middle).
    """
    check_positive_int(depth, "depth")
    check_positive_int(blocks, "blocks")
    if blocks >= depth:
        raise ValueError(f"blocks={blocks} must be smaller than depth={depth}")
    return [round(k * depth / (blocks + 1)) for k in range(1, blocks + 1)]


class LocalCNN(nn.Module):
    """``depth`` × (3×3 conv → [BN] → ReLU) at full resolution, then a 1×1 conv to one logit.

    No pooling, no dilation: the receptive field is the square of side 2·depth + 1
    (Minsky–Papert's *local* perceptron: each output sees only a bounded window).
    With ``nonlocal_kind`` set, non-local blocks are inserted between conv layers at
    :func:`nonlocal_positions` (this is how ``cnn-gap``, ``cnn-sa`` and ``cnn-gc`` are built).

    Parameters
    ----------
    in_channels : int
        C of the ``(N, C, H, W)`` input.
    width : int
        Channels of every hidden layer.
    depth : int
        Number of 3×3 conv layers (default 22, the U-Net's count).
    norm : {"batch", "none"}
        BatchNorm after every 3×3 conv, or none.
    nonlocal_kind : {None, "gap", "sa", "gc"}
        Kind of non-local block to insert.
    blocks : int
        How many non-local blocks (ignored when ``nonlocal_kind`` is None).
    max_tokens : int
        Key/value budget of the self-attention blocks (see :class:`SelfAttentionBlock`).
    attention : {"math", "fused"}
        Self-attention implementation (see :class:`SelfAttentionBlock`).
    ratio : int
        Bottleneck ratio r of the global-context blocks (see :class:`GlobalContextBlock`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 16,
        depth: int = UNET_CONV_LAYERS,
        norm: str = "batch",
        nonlocal_kind: str | None = None,
        blocks: int = 1,
        max_tokens: int = 256,
        attention: str = "math",
        ratio: int = 4,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        check_positive_int(width, "width")
        self.depth = check_positive_int(depth, "depth")
        check_norm(norm)
        if nonlocal_kind is not None and nonlocal_kind not in NONLOCAL_KINDS:
            raise ValueError(
                f"nonlocal_kind={nonlocal_kind!r} is not supported; expected None or one of {NONLOCAL_KINDS}"
            )
        self.nonlocal_kind = nonlocal_kind
        positions = set(nonlocal_positions(depth, blocks)) if nonlocal_kind else set()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(ConvNormReLU(in_channels if i == 0 else width, width, norm=norm))
            if i + 1 in positions:
                layers.append(_nonlocal_block(nonlocal_kind, width, norm, max_tokens, attention, ratio))
        layers.append(OutConv(width))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, H, W)`` images to ``(N, 1, H, W)`` logits."""
        check_images(x, self.in_channels)
        return self.layers(x)

    def receptive_field(self) -> int | str:
        """Side 2·depth + 1 of the square window one output sees, or ``"global"``."""
        if self.nonlocal_kind is not None:
            return "global"
        return 1 + 2 * self.depth


def _nonlocal_block(
    kind: str | None, width: int, norm: str, max_tokens: int, attention: str, ratio: int
) -> nn.Module:
    if kind == "gap":
        return GlobalAvgPoolBlock(width, norm=norm)
    if kind == "sa":
        return SelfAttentionBlock(width, max_tokens=max_tokens, attention=attention)
    if kind == "gc":
        return GlobalContextBlock(width, ratio=ratio)
    raise AssertionError(kind)  # unreachable: checked in LocalCNN.__init__
