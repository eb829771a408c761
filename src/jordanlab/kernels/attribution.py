"""Attribution ("a superposition of training examples") and input similarity from the network's view.

- :func:`explain`: the training images that contribute most to one output pixel, from an exact
  path decomposition of an SGD run (or the TracInCP checkpoint approximation for a saved run).
- :func:`input_similarity`: Charpiat et al. (2019) normalized tangent kernel,
  ρ(x, y) = tr K_w(x, y) / sqrt(tr K_w(x, x) · tr K_w(y, y)), the trace taken over the output pixels
  (for scalar models: the cosine of the parameter gradients). We use the trace version, not the
  C^{-1/2} K C^{-1/2} matrix version: it is one number per pair and equals the cosine between the
  concatenated per-pixel gradient vectors, so |ρ| ≤ 1 by Cauchy–Schwarz.
- :func:`nearest_training_images`: the k training images with the highest ρ to each test image.
- :func:`tracin_cp`: TracInCP scores of all training examples for one query pixel from a run's checkpoints,
  −Σ_c η_c ∇_w f(w_c, x_q)·∇_w ℓ(w_c, z_i), by one forward-mode jvp of the per-example losses per checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from . import _functional as F
from .path import path_decomposition, per_example_loss
from .tangent import tangent_kernel

__all__ = ["Explanation", "explain", "similarity_shift", "input_similarity", "nearest_training_images", "tracin_cp"]


@dataclass(frozen=True)
class Explanation:
    """Why the model outputs what it does at ``pixel`` of ``image``.

    Attributes
    ----------
    image : Tensor of shape (C, H, W)
    pixel : (row, col)
    initial, final, residual : float
        f(w_0), f(w_T) at the pixel, and final − initial − Σ_i contributions[i].
    contributions : Tensor of shape (N,)
        Contribution of each training image (see :func:`~jordanlab.kernels.path_decomposition`).
    maps : Tensor of shape (N, H, W) or None
        Per-pixel split of each contribution over the training image's own pixels (sums to it).
    path_kernel : Tensor of shape (N,)
        K^p(x_q, x_i).
    top : Tensor of shape (k,)
        Indices of the k training images with the largest |contribution|.
    share : float
        Σ_{i∈top} contributions[i] / (final − initial): the share of the learned change they account for.
    method : str
        ``"retrain-sgd"`` (exact decomposition) or ``"checkpoints"`` (TracInCP approximation).
    run_final : float or None
        For a run (:func:`jordanlab.experiments.explain_from_run`), the output of the run's own final
        model at the pixel (the SGD copy may differ); ``None`` otherwise.
    notes : list of str
    """

    image: Tensor
    pixel: tuple[int, int]
    initial: float
    final: float
    residual: float
    contributions: Tensor
    maps: Tensor | None
    path_kernel: Tensor
    top: Tensor
    share: float
    method: str
    train_images: Tensor
    run_final: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def top_values(self) -> Tensor:
        return self.contributions[self.top]


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def explain(
    model: nn.Module,
    image: Tensor,
    pixel: tuple[int, int],
    train_inputs: Tensor,
    train_targets: Tensor,
    *,
    k: int = 8,
    lr: float = 0.05,
    steps: int = 200,
    batch_size: int | None = None,
    loss: str = "bce",
    seed: int = 0,
    mode: str = "exact",
    dtype: torch.dtype = torch.float64,
    quadrature: int = 3,
    progress: bool = False,
) -> Explanation:
    """Top-k training images by their contribution to ``model(image)[0, r, c]``, with per-pixel maps.

    Method ("retrain-sgd"): a copy of the model is trained from w_0 by plain (S)GD on
    ``(train_inputs, train_targets)`` while the exact path decomposition of the query pixel is recorded,
    so f(w_T, x)[r, c] = f(w_0, x)[r, c] + Σ_i contributions[i] + residual with a floating-point residual.
    w_0 is the model's current weights (it is not modified). For a ``jordanlab train`` run, whose optimizer
    admits no exact decomposition, :func:`jordanlab.experiments.explain_from_run` explains an SGD copy
    started at the run's w_0 and reports the run's own output as ``run_final``. (The TracInCP checkpoint
    alternative, :func:`~jordanlab.kernels.checkpoint_path_kernel`, needs
    checkpoints along the whole run, but ``jordanlab train`` keeps only the last few by default, and
    its error is uncontrolled.) BatchNorm layers are run in eval mode (fixed running statistics).

    Parameters
    ----------
    model : nn.Module
    image : Tensor of shape (C, H, W)
    pixel : (row, col)
    train_inputs : Tensor of shape (N, C, H, W)
    train_targets : Tensor of shape (N, 1, H, W) or (N, H, W)
    k : int
    lr, steps, batch_size, loss, seed, mode
        The SGD run (see :func:`~jordanlab.kernels.path_decomposition`).
    dtype : torch.dtype
        The copy is trained in this dtype (float64 makes the residual ~1e-12 relative for smooth nets).
    quadrature : int
        Gauss–Legendre nodes per step. ReLU networks are only piecewise smooth along a step: kinks crossed
        inside a step leave a residual (~1e-4 relative measured on local-cnn); more nodes shrink it slowly.

    Returns
    -------
    Explanation
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__} (for a run directory use "
                        "jordanlab.experiments.explain_from_run)")
    notes: list[str] = []
    model = copy.deepcopy(model)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    model = model.to(dtype)
    if _has_batchnorm(model):
        notes.append("BatchNorm layers run in eval mode (running statistics fixed) during the SGD copy")
    model.eval()
    image = torch.as_tensor(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    x = torch.as_tensor(train_inputs, dtype=dtype)
    y = torch.as_tensor(train_targets, dtype=dtype)
    r = path_decomposition(
        model, x, y, image[None].to(dtype), loss=loss, lr=lr, steps=steps, batch_size=batch_size, mode=mode,
        pixels=[tuple(pixel)], seed=seed, quadrature=quadrature, contraction="jvp", pixel_maps=True,
        progress=progress,
    )
    contrib = r.contributions[0]
    kk = min(k, contrib.numel())
    top = torch.argsort(contrib.abs(), descending=True)[:kk]
    change = float(r.final[0] - r.initial[0])
    share = float(contrib[top].sum()) / change if change != 0 else float("nan")
    return Explanation(
        image=image.detach().cpu(), pixel=(int(pixel[0]), int(pixel[1])), initial=float(r.initial[0]),
        final=float(r.final[0]), residual=float(r.residual[0]), contributions=contrib.cpu(),
        maps=None if r.pixel_maps is None else r.pixel_maps[0].cpu(), path_kernel=r.path_kernel[0].cpu(),
        top=top.cpu(), share=share, method="retrain-sgd", train_images=x[top].detach().cpu(),
        notes=notes,
    )


def input_similarity(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    pixels: Sequence[Sequence[int]] | None = None,
    batch_size: int = 8,
) -> Tensor:
    """Charpiat et al. normalized tangent kernel ρ(x, y) = tr K(x, y) / sqrt(tr K(x, x) tr K(y, y)).

    Parameters
    ----------
    model : nn.Module
    x1 : Tensor of shape (N1, C, H, W)
    x2 : Tensor of shape (N2, C, H, W), optional (None: x1)
    pixels : list of (row, col), optional
        Dense models: restrict the trace to these output pixels (None: all pixels).

    Returns
    -------
    Tensor of shape (N1, N2)
        Values in [−1, 1]; ρ(x, x) = 1; symmetric when x2 is None.
    """
    k12 = tangent_kernel(model, x1, x2, pixels=pixels, trace=True, batch_size=batch_size)
    d1 = _self_trace(model, x1, pixels, batch_size)
    d2 = d1 if x2 is None else _self_trace(model, x2, pixels, batch_size)
    tiny = torch.finfo(k12.dtype).tiny
    rho = k12 / torch.sqrt(torch.clamp(d1[:, None] * d2[None, :], min=tiny))
    if x2 is None:
        rho = 0.5 * (rho + rho.T)
        rho.fill_diagonal_(1.0)
    return rho


def _self_trace(model: nn.Module, x: Tensor, pixels, batch_size: int) -> Tensor:
    """tr K(x_n, x_n) for each n (diagonal only), shape (N,)."""
    return torch.cat([
        tangent_kernel(model, x[i : i + 1], pixels=pixels, trace=True, batch_size=batch_size)[0]
        for i in range(x.shape[0])
    ])


def nearest_training_images(
    model: nn.Module,
    test_images: Tensor,
    train_inputs: Tensor,
    *,
    k: int = 5,
    pixels: Sequence[Sequence[int]] | None = None,
    batch_size: int = 8,
) -> tuple[Tensor, Tensor]:
    """The k training images most similar to each test image "from the network's perspective".

    Returns
    -------
    values, indices : Tensor of shape (N_test, k)
        ρ (see :func:`input_similarity`) and training indices, highest ρ first.
    """
    F.check_model(model)
    rho = input_similarity(model, test_images, train_inputs, pixels=pixels, batch_size=batch_size)
    kk = min(k, rho.shape[1])
    return torch.topk(rho, kk, dim=1)


def similarity_shift(
    model: nn.Module,
    train_inputs: Tensor,
    test_sets: dict[str, Tensor],
    *,
    k: int = 5,
    pixels: Sequence[Sequence[int]] | None = None,
    grid: int = 4,
    batch_size: int = 8,
) -> dict[str, dict[str, float]]:
    """How close test images are to the training set "from the network's perspective", per test set.

    For each test image, ρ to its nearest and to its k nearest training images (:func:`input_similarity`);
    summarized per set (e.g. ``{"in-distribution": ..., "spiral": ...}``): the mean and median top-1 ρ and
    the mean top-k ρ. Low values for an OOD set mean the network's gradient features treat those images
    as unlike anything it was trained on. ``pixels=None`` uses a ``grid`` × ``grid`` lattice of output
    pixels for the trace (a full trace over H·W pixels needs H·W Jacobian rows per image).
    """
    if not test_sets:
        raise ValueError("test_sets must name at least one set of test images")
    if pixels is None:
        h, w = int(train_inputs.shape[-2]), int(train_inputs.shape[-1])
        pixels = [(int(r), int(c)) for r in np.linspace(0, h - 1, grid).round() for c in np.linspace(0, w - 1, grid).round()]
    out = {}
    for name, images in test_sets.items():
        vals, _ = nearest_training_images(model, images, train_inputs, k=k, pixels=pixels, batch_size=batch_size)
        out[name] = {"mean_top1": float(vals[:, 0].mean()), "median_top1": float(vals[:, 0].median()),
                     "mean_topk": float(vals.mean()), "n": int(images.shape[0]), "k": int(vals.shape[1])}
    return out


def tracin_cp(
    models: Sequence[nn.Module],
    lrs: Sequence[float],
    query: Tensor,
    pixel: tuple[int, int] | None,
    train_inputs: Tensor,
    train_targets: Tensor,
    *,
    loss: str = "bce",
    batch_size: int = 64,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """TracInCP scores (Pruthi et al. 2020) of every training example for one output of one query.

        score_i = −Σ_c η_c ∇_w f(w_c, x_q)[r, c] · ∇_w ℓ(w_c, z_i),

    f the model's logit at ``pixel`` of ``query``, ℓ(w, z_i) the per-example loss (the mean over the
    output pixels of :func:`~jordanlab.kernels.per_example_loss`), w_c the weights of checkpoint c and η_c
    its weight ``lrs[c]``. Sign: a training example whose gradient step (−η ∇ℓ_i) raises the query's logit
    scores positive, as the exact contributions a_i do. For each checkpoint, ∇_w f_q is one backward pass and
    the N dot products ⟨∇_w f_q, ∇_w ℓ_i⟩ are one forward-mode jvp of the vector (ℓ_1, …, ℓ_N) along
    ∇_w f_q (chunks of ``batch_size`` examples): no per-example gradients. Every model is evaluated in eval
    mode (BatchNorm with its running statistics, which are held fixed: they are buffers, not parameters),
    so the examples of a chunk are independent.

    Parameters
    ----------
    models : sequence of nn.Module
        One model per checkpoint (copied, cast to ``dtype`` and put in eval mode; not modified).
    lrs : sequence of float
        η_c, one per model.
    query : Tensor of shape (C, H, W)
    pixel : (row, col), or None for a scalar-output model
    train_inputs : Tensor of shape (N, C, H', W')
    train_targets : Tensor of shape (N, ...) with the model's per-example output size
    loss : {"bce", "mse", "mse-logits"}
    batch_size : int
    dtype : torch.dtype, optional
        Default: each model's own.

    Returns
    -------
    Tensor of shape (N,)
    """
    from torch.func import functional_call, jvp

    models = list(models)
    if len(models) == 0 or len(models) != len(lrs):
        raise ValueError(f"models and lrs must be non-empty and of equal length, got {len(models)} and {len(lrs)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    query = torch.as_tensor(query)
    if query.ndim != 3:
        raise ValueError(f"query must be (C, H, W), got shape {tuple(query.shape)}")
    n = int(train_inputs.shape[0])
    if int(train_targets.shape[0]) != n:
        raise ValueError(f"train_inputs and train_targets must hold the same number of examples, "
                         f"got {n} and {int(train_targets.shape[0])}")
    scores: Tensor | None = None
    for model, eta in zip(models, lrs):
        net = copy.deepcopy(model)
        if dtype is not None:
            net = net.to(dtype)
        net.eval()
        F.check_model(net)
        dt, dev = F.model_dtype_device(net)
        params = F.detached_params(net)
        state = F.frozen_state(net)
        xq = query.to(device=dev, dtype=dt)[None]
        p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        out = functional_call(net, {**p, **state}, (xq,))
        if pixel is None:
            if out.numel() != 1:
                raise ValueError(f"pixel is None but the model outputs {out.numel()} values per example")
            fq = out.reshape(())
        else:
            fq = out.reshape(out.shape[-2], out.shape[-1])[int(pixel[0]), int(pixel[1])]
        grads = torch.autograd.grad(fq, list(p.values()))
        tangent = {k: g.detach() for k, g in zip(p, grads)}
        x = F.as_input(train_inputs, "train_inputs", dt, dev)
        y = F.as_input(train_targets, "train_targets", dt, dev).reshape(n, -1)
        dots = torch.empty(n, dtype=dt, device=dev)
        for i in range(0, n, batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]

            def losses(w: dict[str, Tensor], xb: Tensor = xb, yb: Tensor = yb) -> Tensor:
                o = functional_call(net, {**w, **state}, (xb,)).reshape(xb.shape[0], -1)
                if o.shape[1] != yb.shape[1]:
                    raise ValueError(f"train_targets must hold {o.shape[1]} values per example, got {yb.shape[1]}")
                return per_example_loss(o, yb, loss)

            _, dots[i : i + batch_size] = jvp(losses, (params,), (tangent,))
        term = -float(eta) * dots
        scores = term if scores is None else scores + term
    assert scores is not None
    return scores.detach()
