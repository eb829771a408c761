"""The model registry: one factory per architecture name, plus descriptive helpers."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from jordanlab.topology import PropagationNet, ScanNet

from .automaton import AutomatonScanNet
from .cnn import UNET_CONV_LAYERS, LocalCNN
from .depth import CrossingDepthNet
from .recurrent import RecurrentNet
from .scan import ParityScanNet, RowScanNet
from .unet import UNet


def unet(
    *,
    in_channels: int = 1,
    width: int = 8,
    depth: int = 5,
    norm: str = "batch",
    up: str = "transposed",
) -> nn.Module:
    """U-Net with 6 scales (5 poolings), concatenated skips: the talk's network."""
    return UNet(in_channels=in_channels, width=width, depth=depth, norm=norm, up=up)


def local_cnn(
    *, in_channels: int = 1, width: int = 16, depth: int = UNET_CONV_LAYERS, norm: str = "batch"
) -> nn.Module:
    """Plain 3×3 CNN, as many conv layers as the U-Net, no pooling: a local receptive field."""
    return LocalCNN(in_channels=in_channels, width=width, depth=depth, norm=norm)


def cnn_gap(
    *,
    in_channels: int = 1,
    width: int = 16,
    depth: int = UNET_CONV_LAYERS,
    norm: str = "batch",
    blocks: int = 1,
) -> nn.Module:
    """Local CNN + global-average-pooling blocks (image mean broadcast back to every pixel)."""
    return LocalCNN(
        in_channels=in_channels, width=width, depth=depth, norm=norm, nonlocal_kind="gap", blocks=blocks
    )


def cnn_sa(
    *,
    in_channels: int = 1,
    width: int = 16,
    depth: int = UNET_CONV_LAYERS,
    norm: str = "batch",
    blocks: int = 1,
    max_tokens: int = 256,
    attention: str = "math",
) -> nn.Module:
    """Local CNN + non-local self-attention blocks (Wang et al. 2018; subsampled keys)."""
    return LocalCNN(
        in_channels=in_channels,
        width=width,
        depth=depth,
        norm=norm,
        nonlocal_kind="sa",
        blocks=blocks,
        max_tokens=max_tokens,
        attention=attention,
    )


def cnn_gc(
    *,
    in_channels: int = 1,
    width: int = 16,
    depth: int = UNET_CONV_LAYERS,
    norm: str = "batch",
    blocks: int = 1,
    ratio: int = 4,
) -> nn.Module:
    """Local CNN + global-context blocks (Cao et al. GCNet: attention-pooled context, bottleneck)."""
    return LocalCNN(
        in_channels=in_channels,
        width=width,
        depth=depth,
        norm=norm,
        nonlocal_kind="gc",
        blocks=blocks,
        ratio=ratio,
    )


def recurrent(
    *,
    in_channels: int = 1,
    width: int = 32,
    blocks: int = 1,
    iters: int = 20,
    state_norm: str = "channel",
) -> nn.Module:
    """Weight-tied recurrent CNN with recall (DeepThinking style), run for any number of iterations."""
    return RecurrentNet(
        in_channels=in_channels, width=width, blocks=blocks, iters=iters, state_norm=state_norm
    )


def scan(
    *,
    in_channels: int = 1,
    width: int = 16,
    encoder_depth: int = 3,
    head_width: int = 16,
    directions: tuple[str, ...] = ("right",),
    gate: str = "tanh",
    method: str = "doubling",
) -> nn.Module:
    """Learned row scan: local encoder, linear recurrence h = a⊙h' + b along rows, local head."""
    return RowScanNet(
        in_channels=in_channels,
        width=width,
        encoder_depth=encoder_depth,
        head_width=head_width,
        directions=directions,
        gate=gate,
        method=method,
    )


def parity_scan(
    *, in_channels: int = 1, width: int = 16, gate: str = "tanh", method: str = "doubling"
) -> nn.Module:
    """Learned parity rule: gate from the 2×3 crossing window, product scan h = a·h' along rows, 1×1 head."""
    return ParityScanNet(in_channels=in_channels, width=width, gate=gate, method=method)


def automaton_scan(
    *,
    in_channels: int = 1,
    states: int = 4,
    window: tuple[int, int] = (5, 3),
    width: int = 16,
    parity: bool = True,
    reset: bool = True,
    method: str = "doubling",
) -> nn.Module:
    """Learned row automaton: parity bit × memory states, transitions from a 5×3 window, memory reset off the stroke, 1×1 head."""
    return AutomatonScanNet(
        in_channels=in_channels, states=states, window=window, width=width, parity=parity,
        reset=reset, method=method,
    )


def crossing_depth(
    *,
    in_channels: int = 1,
    window: str | tuple[int, int] = "pair",
    width: int = 16,
    init_logit: float = -4.0,
    sparsity: float = 0.1,
    tol: float = 1e-4,
) -> nn.Module:
    """Learned even-odd depth: learned crossing costs, min-plus row/column sweeps to a fixed point, parity readout."""
    return CrossingDepthNet(
        in_channels=in_channels, window=window, width=width, init_logit=init_logit, sparsity=sparsity, tol=tol
    )


def _check_one_channel(in_channels: int, name: str) -> None:
    if in_channels != 1:
        raise ValueError(f"{name} reads a single boundary channel; in_channels must be 1, got {in_channels!r}")


def programmed_propagation(
    *, in_channels: int = 1, max_steps: int | None = None, scale: float = 10.0
) -> nn.Module:
    """Exact reference, no training: local propagation of the even-odd depth from the border."""
    _check_one_channel(in_channels, "programmed-propagation")
    return PropagationNet(max_steps=max_steps, scale=scale).requires_grad_(False)


def programmed_scan(*, in_channels: int = 1, scale: float = 10.0, thin: bool = True) -> nn.Module:
    """Exact reference, no training: 3×3 crossing detector and sign-flip scan along each row."""
    _check_one_channel(in_channels, "programmed-scan")
    return ScanNet(scale=scale, thin=thin).requires_grad_(False)


#: Architecture name → factory (keyword-only arguments with defaults).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": unet,
    "local-cnn": local_cnn,
    "cnn-gap": cnn_gap,
    "cnn-sa": cnn_sa,
    "cnn-gc": cnn_gc,
    "recurrent": recurrent,
    "scan": scan,
    "parity-scan": parity_scan,
    "automaton-scan": automaton_scan,
    "crossing-depth": crossing_depth,
    "programmed-propagation": programmed_propagation,
    "programmed-scan": programmed_scan,
}


def _external(name: str) -> Callable[..., nn.Module]:
    """The factory ``attr`` of module ``pkg.mod`` named by ``"pkg.mod:attr"`` (bring your own network)."""
    import importlib

    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ValueError(f"model {name!r}: expected 'package.module:Factory' for a model of your own")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"model {name!r}: cannot import module {module!r} ({exc}); is it on PYTHONPATH?") from None
    factory = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ValueError(f"model {name!r}: module {module!r} has no attribute {attr!r}")
    if not callable(factory):
        raise ValueError(f"model {name!r}: {attr!r} is not callable (expected an nn.Module class or a factory)")
    return factory  # type: ignore[return-value]


def build(name: str, **kw: object) -> nn.Module:
    """Build the architecture registered as ``name`` with keyword options ``kw``.

    ``name`` may also be ``"package.module:Factory"``: a network of your own, any ``nn.Module`` class
    (or function returning one) that maps ``(N, 1, H, W)`` floats to ``(N, 1, H, W)`` logits; it is
    imported, called with ``kw`` and then trains, evaluates and is explained like the built-in ones.

    Raises
    ------
    ValueError
        ``name`` is not in :data:`MODELS` nor an importable ``module:attr`` (the message lists the
        valid names), or the factory did not return an ``nn.Module``.
    TypeError
        A keyword is not an option of that architecture (the message names it and lists the
        valid ones).

    Examples
    --------
    >>> import torch
    >>> net = build("local-cnn", width=4, depth=3)
    >>> net(torch.zeros(2, 1, 40, 56)).shape
    torch.Size([2, 1, 40, 56])
    """
    if isinstance(name, str) and ":" in name and name not in MODELS:
        factory = _external(name)
    elif not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}, "
                         "or 'package.module:Factory' for a network of your own")
    else:
        factory = MODELS[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        valid = list(params)
        unknown = [k for k in kw if k not in valid]
        if unknown:
            raise TypeError(
                f"model {name!r} got unknown keyword(s) {', '.join(map(repr, unknown))}; "
                f"valid keywords: {', '.join(valid)}"
            )
    model = factory(**kw)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {name!r}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def count_parameters(model: nn.Module, *, trainable: bool = False) -> int:
    """Number of scalar parameters Σ_p numel(p) (buffers excluded).

    With ``trainable=True`` only parameters with ``requires_grad`` count (the programmed
    networks have fixed weights: 0 trainable).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def receptive_field(model: str | nn.Module, *, canvas: int | None = None) -> int | str:
    """Receptive field of one output pixel: the side of its input window, or a description.

    Analytic: a stack of 3×3 convs (stride 1) of depth L sees a window of side 2L + 1; the
    U-Net's is computed through its poolings and upsamplings (:meth:`UNet.receptive_field`).
    Non-local layers give ``"global"``; the recurrent network's window grows with the number of
    iterations (``"unbounded (iterations)"``); the scan network reaches the border along its
    scan axes.

    Parameters
    ----------
    model : str or nn.Module
        A registered name (built with default options) or a built model.
    canvas : int, optional
        Canvas side. When given, a window of side ≥ 2·canvas − 1 (every pixel sees the whole
        canvas from anywhere) is reported as ``"global"``.

    Notes
    -----
    This is the receptive field in evaluation mode. In training mode BatchNorm normalises with
    statistics of the whole batch, so every output depends on every input pixel.

    Examples
    --------
    >>> receptive_field("local-cnn"), receptive_field("unet"), receptive_field("unet", canvas=128)
    (45, 412, 'global')
    """
    if isinstance(model, str):
        model = build(model)
    if canvas is not None:
        if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < 1:
            raise ValueError(f"canvas must be a positive int, got {canvas!r}")
    if isinstance(model, (RecurrentNet, PropagationNet)):
        return "unbounded (iterations)"
    if isinstance(model, ScanNet):
        return "global along rows"
    method = getattr(model, "receptive_field", None)
    if not callable(method):
        raise TypeError(f"no receptive field is known for a {type(model).__name__}")
    value = method()
    if isinstance(value, int) and canvas is not None and value >= 2 * canvas - 1:
        return "global"
    return value


def model_table(names: list[str] | None = None, *, canvas: int = 128) -> list[dict[str, object]]:
    """One row per architecture (default options).

    Keys: ``name``, ``parameters`` (all), ``trainable`` (those with ``requires_grad``),
    ``receptive_field`` (see :func:`receptive_field`), ``description`` (the factory's first
    docstring line).

    ``canvas`` decides when a finite receptive field is reported as ``"global"``.
    """
    names = list(MODELS) if names is None else list(names)
    rows = []
    for name in names:
        model = build(name)
        doc = inspect.getdoc(MODELS[name]) or ""
        rows.append(
            {
                "name": name,
                "parameters": count_parameters(model),
                "trainable": count_parameters(model, trainable=True),
                "receptive_field": receptive_field(model, canvas=canvas),
                "description": doc.splitlines()[0] if doc else "",
            }
        )
    return rows
