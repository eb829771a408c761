"""Attribution ("a superposition of training examples") and input similarity from the network's view.

- :func:`explain`: the training images that contribute most to one output pixel, from an exact
  path decomposition of an SGD run (or the TracInCP checkpoint approximation for a saved run).
- :func:`input_similarity`: Charpiat et al. (2019) normalized tangent kernel,
  ρ(x, y) = tr K_w(x, y) / sqrt(tr K_w(x, x) · tr K_w(y, y)), the trace taken over the output pixels
  (for scalar models: the cosine of the parameter gradients). We use the trace version, not the
  C^{-1/2} K C^{-1/2} matrix version: it is one number per pair and equals the cosine between the
  concatenated per-pixel gradient vectors, so |ρ| ≤ 1 by Cauchy–Schwarz.
- :func:`nearest_training_images`: the k training images with the highest ρ to each test image.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from . import _functional as F
from .path import path_decomposition
from .tangent import tangent_kernel
from jordanlab._atomic import save_figure, write_json

__all__ = ["Explanation", "explain", "explain_run", "plot_explanation", "similarity_shift", "input_similarity", "nearest_training_images",
           "initial_model"]


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
        For a run, the output of the run's own final model at the pixel (the SGD copy may differ).
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


def initial_model(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, object]:
    """Rebuild w_0 of a ``jordanlab train`` run from its saved config (same seeding as the loop).

    The global RNG state is saved and restored around the rebuild.
    """
    from jordanlab.train import build_model, latest_good_checkpoint, load_checkpoint
    from jordanlab.train.config import config_from_dict

    path = latest_good_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"run_dir {str(run_dir)!r} holds no good checkpoint (ckpt-*.pt with a valid .sha256)")
    config = config_from_dict(load_checkpoint(path)["config"], source=str(path))
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            seed = config.train.seed
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            model = build_model(config.model)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return model, config


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def explain(
    model_or_run: nn.Module | str | os.PathLike[str],
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
    For an ``nn.Module`` w_0 is its current weights (it is not modified). For a ``jordanlab train`` run
    directory, w_0 is rebuilt from the run's config and seed (:func:`initial_model`): Ranger's updates are
    not −lr ∇L, so the run itself admits no exact decomposition; we explain an SGD-trained copy of the
    same network from the same start and report the run's own output as ``run_final`` for comparison.
    (The TracInCP checkpoint alternative, :func:`~jordanlab.kernels.checkpoint_path_kernel`, needs
    checkpoints along the whole run, but ``jordanlab train`` keeps only the last few by default, and
    its error is uncontrolled.) BatchNorm layers are run in eval mode (fixed running statistics).

    Parameters
    ----------
    model_or_run : nn.Module or path to a run directory
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
    notes: list[str] = []
    run_final = None
    if isinstance(model_or_run, nn.Module):
        model = copy.deepcopy(model_or_run)
    elif isinstance(model_or_run, (str, os.PathLike)):
        model, _ = initial_model(model_or_run)
        from jordanlab.train import load_model

        trained, _ = load_model(model_or_run)
        trained = trained.to(dtype)
        img = torch.as_tensor(image, dtype=dtype)[None]
        with torch.no_grad():
            run_final = float(trained(img).reshape(img.shape[-2], img.shape[-1])[pixel[0], pixel[1]])
        notes.append("explains an SGD-trained copy from the run's w_0 (the run used its own optimizer)")
    else:
        raise TypeError(f"model_or_run must be an nn.Module or a run directory, got {type(model_or_run).__name__}")
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
        run_final=run_final, notes=notes,
    )


def plot_explanation(expl: Explanation, path: str | os.PathLike[str] | None = None, *, title: str | None = None):
    """The talk's "superposition of training examples" figure.

    Left: the query image with the query pixel marked, f(w_0) → f(w_T). Then one column per top-k training
    image: the image (top row) and its per-pixel contribution map (bottom row, diverging colors, shared
    scale), titled with its contribution. Saved atomically to ``path`` (PNG) when given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = expl.top.numel()
    fig, axes = plt.subplots(2, k + 1, figsize=(1.9 * (k + 1), 4.0), squeeze=False)
    r, c = expl.pixel
    ax = axes[0, 0]
    ax.imshow(expl.image[0].numpy(), cmap="gray_r", interpolation="nearest")
    ax.plot([c], [r], marker="o", color="red", markersize=6, markerfacecolor="none", markeredgewidth=2)
    ax.set_title(f"query ({r},{c})\nf: {expl.initial:.2f} → {expl.final:.2f}", fontsize=8)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.0, 0.5, f"top-{k} share: {expl.share:.0%}\nresidual: {expl.residual:.1e}\n{expl.method}\n"
                    "maps: red raises,\nblue lowers the\nquery logit",
                    fontsize=8, va="center")
    vmax = float(expl.maps[expl.top].abs().max()) if expl.maps is not None else 1.0
    for j, i in enumerate(expl.top.tolist()):
        axes[0, j + 1].imshow(expl.train_images[j, 0].numpy(), cmap="gray_r", interpolation="nearest")
        axes[0, j + 1].set_title(f"#{i}: {float(expl.contributions[i]):+.3f}", fontsize=8)
        if expl.maps is not None:
            axes[1, j + 1].imshow(expl.maps[i].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=110)
        plt.close(fig)
    return fig


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


def explain_run(
    run_dir: str | os.PathLike[str],
    image: int | str | os.PathLike[str] | np.ndarray,
    pixel: tuple[int, int],
    out_dir: str | os.PathLike[str],
    *,
    k: int = 8,
    n_train: int = 64,
    lr: float = 0.05,
    steps: int = 200,
    batch_size: int | None = 16,
    seed: int = 0,
    quadrature: int = 3,
    progress: bool = True,
) -> dict:
    """``jordanlab kernel explain RUN --image IMG --pixel R,C``: write ``DIR/explain.json`` and ``DIR/explain.png``.

    ``image`` is an index into the run's test split, a boundary PNG, or a boundary array ``(H, W)``. The training images are the first
    ``n_train`` of the run's training split (``config.data.dir``, else ``RUN/data``, else regenerated with
    ``jordanlab.data.make``); targets are their masks. The explained network is an SGD copy (BCE loss, float64)
    trained from the run's w_0, see :func:`explain`; the run's own output at the pixel is ``run_final``.
    """

    from jordanlab import data

    _, config = initial_model(run_dir)
    data_dir = Path(config.data.dir) if config.data.dir else Path(run_dir) / "data"
    have_dir = (data_dir / "manifest.json").exists()
    if have_dir:
        b, m = data.load_dataset(data_dir, "train")
    else:
        b, m = data.make(config.data.preset, "train", n_train, config.data.seed)
    b, m = b[:n_train], m[:n_train]
    if isinstance(image, np.ndarray):
        img, source = np.asarray(image, dtype=np.uint8), "array"
    elif isinstance(image, (int, np.integer)):
        tb, _ = data.load_dataset(data_dir, "test") if have_dir else data.make(config.data.preset, "test", int(image) + 1,
                                                                              config.data.seed)
        if not 0 <= int(image) < len(tb):
            raise ValueError(f"image index {image} is outside the run's test split of {len(tb)} images")
        img = tb[int(image)]
        source = f"test[{int(image)}]"
    else:
        img = data.read_boundary_png(image)
        source = str(image)
    h, w = img.shape
    if not (0 <= pixel[0] < h and 0 <= pixel[1] < w):
        raise ValueError(f"pixel {tuple(pixel)} is outside the {h}x{w} image {source}")
    x = torch.as_tensor(np.asarray(b), dtype=torch.float64)[:, None]
    y = torch.as_tensor(np.asarray(m), dtype=torch.float64)[:, None]
    e = explain(run_dir, torch.as_tensor(np.asarray(img), dtype=torch.float64)[None], pixel, x, y, k=k, lr=lr,
                steps=steps, batch_size=batch_size, seed=seed, quadrature=quadrature, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    change = abs(e.final - e.initial)
    report = {
        "run": str(run_dir), "image": source, "pixel": list(e.pixel), "method": e.method,
        "initial": e.initial, "final": e.final, "residual": e.residual,
        "relative_residual": abs(e.residual) / max(change, float(torch.finfo(torch.float64).tiny)),
        "run_final": e.run_final, "share": e.share,
        "top": [{"index": int(i), "contribution": float(e.contributions[i]), "path_kernel": float(e.path_kernel[i])}
                for i in e.top.tolist()],
        "sgd": {"lr": lr, "steps": steps, "batch_size": batch_size, "n_train": int(x.shape[0]), "loss": "bce",
                "dtype": "float64", "seed": seed, "quadrature": quadrature},
        "notes": e.notes,
    }
    write_json(out / "explain.json", report)
    plot_explanation(e, out / "explain.png", title=f"{Path(run_dir).name}: {source} pixel {tuple(e.pixel)}")
    return report


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
