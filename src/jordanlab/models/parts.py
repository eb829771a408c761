"""Small building blocks shared by the architectures in :mod:`jordanlab.models`.

Every part is a tiny ``nn.Module`` whose docstring gives its structure in one line.
No part uses in-place operations, so every model built from them (with ``norm="none"``)
works under :func:`torch.func.functional_call`, ``vmap``, ``jvp`` and ``vjp``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "none")
ATTENTIONS = ("math", "fused")


def check_norm(norm: str) -> str:
    """Return ``norm`` if it is one of :data:`NORMS`, else raise ``ValueError`` listing them."""
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not supported; expected one of {NORMS}")
    return norm


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is a positive ``int`` (not ``bool``), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class ConvNormReLU(nn.Sequential):
    """3×3 conv (zero padding 1) → BatchNorm (if ``norm="batch"``) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "batch") -> None:
        check_norm(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=norm == "none")
        ]
        if norm == "batch":
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """(3×3 conv → [BN] → ReLU) × 2: ``in_channels → out_channels → out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "batch") -> None:
        super().__init__(
            ConvNormReLU(in_channels, out_channels, norm=norm),
            ConvNormReLU(out_channels, out_channels, norm=norm),
        )


class Down(nn.Sequential):
    """2×2 max-pool (stride 2) → DoubleConv: halves H, W; ``in_channels → out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: str = "batch") -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, norm=norm))


class Up(nn.Module):
    """Upsample ×2 (``in → in/2`` channels) → concat skip (``in/2``) → DoubleConv ``in → in/2``.

    ``mode="transposed"`` upsamples with a 2×2 stride-2 transposed conv; ``mode="bilinear"``
    with bilinear interpolation followed by a 1×1 conv, so the channel arithmetic is the same.
    """

    def __init__(self, in_channels: int, *, mode: str = "transposed", norm: str = "batch") -> None:
        super().__init__()
        out_channels = in_channels // 2
        if mode == "transposed":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        elif mode == "bilinear":
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, 1),
            )
        else:
            raise ValueError(f"up={mode!r} is not supported; expected 'transposed' or 'bilinear'")
        self.conv = DoubleConv(2 * out_channels, out_channels, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class OutConv(nn.Conv2d):
    """1×1 conv ``in_channels → 1``: one logit per pixel."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 1, 1)


class GlobalAvgPoolBlock(nn.Module):
    """concat(x, broadcast(mean_{H,W} x)) → 1×1 conv ``2C → C`` → [BN] → ReLU.

    Every output pixel sees the image-wide average of every channel: the simplest global layer.
    """

    def __init__(self, channels: int, *, norm: str = "batch") -> None:
        super().__init__()
        check_norm(norm)
        self.mix = nn.Conv2d(2 * channels, channels, 1, bias=norm == "none")
        self.norm = nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        return F.relu(self.norm(self.mix(torch.cat([x, mean], dim=1))))


class SelfAttentionBlock(nn.Module):
    """Non-local block (Wang et al. 2018, embedded Gaussian), residual: x + W_z · softmax(θᵀφ/√d) g.

    θ, φ, g are 1×1 convs ``C → C/2`` and W_z a 1×1 conv ``C/2 → C`` (default initialisation,
    not zero as in the paper, so the block is non-local from the start). Queries are all H·W
    pixels; keys and values are max-pooled by the smallest integer factor ``s`` with
    ⌈H/s⌉·⌈W/s⌉ ≤ ``max_tokens`` (the subsampling trick of Wang et al.; ``s = 1``, full
    attention, when H·W ≤ ``max_tokens``).

    Notes
    -----
    Memory: full attention on 128×128 would hold a 16384 × 16384 matrix (1 GiB per image).
    With the default ``max_tokens=256`` the keys are an at most 16 × 16 grid (stride 8 on
    128×128, 2 on 32×32), so the attention matrix has H·W·256 floats per image (16 MiB at
    128×128; autograd keeps about three such tensors). ``attention="math"`` (default) writes
    softmax(θᵀφ/√d) g out and works under every :mod:`torch.func` transform;
    ``attention="fused"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` with
    the layout that selects its flash kernel (never stores the matrix, about 3× faster for this
    block on CPU) but has no forward-mode AD (``torch.func.jvp`` raises).
    """

    def __init__(self, channels: int, *, max_tokens: int = 256, attention: str = "math") -> None:
        super().__init__()
        inner = max(channels // 2, 1)
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r} is not supported; expected one of {ATTENTIONS}")
        self.attention = attention
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)

    def key_stride(self, height: int, width: int) -> int:
        """Smallest s ≥ 1 with ⌈H/s⌉·⌈W/s⌉ ≤ ``max_tokens``."""
        s = max(1, math.isqrt(max(height * width // self.max_tokens, 1)))
        while math.ceil(height / s) * math.ceil(width / s) > self.max_tokens:
            s += 1
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.key_stride(h, w)
        kv = x if s == 1 else F.max_pool2d(x, s, stride=s, ceil_mode=True)
        q = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, d)
        k = self.phi(kv).flatten(2).transpose(1, 2)  # (N, T, d)
        v = self.g(kv).flatten(2).transpose(1, 2)  # (N, T, d)
        if self.attention == "fused":
            # One head, contiguous (N, 1, L, d): the layout for which torch picks its flash
            # kernel (3-D or strided inputs silently fall back to bmm + softmax).
            q, k, v = (t[:, None].contiguous() for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v)[:, 0]
        else:
            weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
            y = weights @ v  # (N, HW, d)
        y = y.transpose(1, 2).reshape(n, -1, h, w)
        return x + self.out(y)


class GlobalContextBlock(nn.Module):
    """GCNet block (Cao et al. 2019): x + W₂ ReLU(LN(W₁ Σ_p softmax_p(w_k·x_p) x_p)).

    Context modelling: a 1×1 conv ``C → 1`` gives one score per pixel, a softmax over the H·W
    pixels turns it into attention weights, and the weighted sum of the features is a C-vector.
    Transform: bottleneck 1×1 conv ``C → C/r``, LayerNorm over the C/r channels, ReLU, 1×1 conv
    ``C/r → C`` (default initialisation). Fusion: the result is added to every pixel.
    The bottleneck keeps at least 4 channels: a LayerNorm over one channel outputs 0 whatever
    its input (and over two, only ±1), which would cut the block off at small widths.
    """

    def __init__(self, channels: int, *, ratio: int = 4) -> None:
        super().__init__()
        check_positive_int(ratio, "ratio")
        inner = max(channels // ratio, 4)
        self.score = nn.Conv2d(channels, 1, 1)
        self.down = nn.Conv2d(channels, inner, 1)
        self.norm = nn.LayerNorm([inner, 1, 1])
        self.up = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, _ = x.shape
        weights = torch.softmax(self.score(x).flatten(2), dim=-1)  # (N, 1, HW)
        context = torch.bmm(x.flatten(2), weights.transpose(1, 2))  # (N, C, 1)
        context = context.view(n, c, 1, 1)
        return x + self.up(F.relu(self.norm(self.down(context))))


class ChannelNorm(nn.Module):
    """Per-pixel LayerNorm over channels (no affine): (x − mean_c x) / sqrt(var_c x + ε).

    Local (each pixel alone) and independent of the canvas size, unlike BatchNorm or
    InstanceNorm; it bounds the state of a recurrent network at every step.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(var + self.eps)


class BasicBlock(nn.Module):
    """ResNet basic block without normalisation: x + conv3×3(ReLU(conv3×3(x))), then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def check_images(x: torch.Tensor, in_channels: int) -> None:
    """Raise unless ``x`` is a floating ``(N, in_channels, H, W)`` tensor with H, W ≥ 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor (cast boundary images with .float()), got {x.dtype}")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"x has {x.shape[1]} channels but the model was built with in_channels={in_channels}"
        )
