"""``jordanlab kernel explain``: which training images carry one pixel of a trained run's prediction.

Two methods (``--method``):

- ``replay`` (the default for Adam and Ranger runs, :func:`explain_replay`): the run itself, replayed with
  the exact path recorder (:func:`~jordanlab.experiments.explain_adam_run`; the adjoint sweep on disk when the
  per-example shares do not fit in RAM): f_T is the run's own logit, split over all its training examples;
- ``sgd-copy`` (:func:`explain_run`): an SGD copy of the same model trained from the run's w₀ on the
  run's first training images, with the exact path decomposition recorded (:func:`jordanlab.kernels.explain`);
  the run's own output at the pixel is reported next to it as ``run_final``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from jordanlab._atomic import save_figure, write_json
from jordanlab.kernels import Explanation, explain

from ._runs import initial_model, run_images, trained_model
from .images import QueryImage, parse_image_spec

__all__ = ["EXPLAIN_METHODS", "explain_from_run", "explain_method", "explain_replay", "explain_run", "plot_explanation"]

#: ``jordanlab kernel explain --method``: ``auto`` is ``replay`` for Adam and Ranger runs, ``sgd-copy`` otherwise.
EXPLAIN_METHODS = ("auto", "replay", "sgd-copy")


def explain_method(run_dir: str | os.PathLike[str], method: str = "auto") -> str:
    """The method ``method`` resolves to for the run ``run_dir`` (``"replay"`` or ``"sgd-copy"``)."""
    from ._runs import run_config

    if method not in EXPLAIN_METHODS:
        raise ValueError(f"method must be one of {EXPLAIN_METHODS}, got {method!r}")
    name = run_config(run_dir).optim.name
    if method == "auto":
        return "replay" if name in ("adam", "ranger") else "sgd-copy"
    if method == "replay" and name not in ("adam", "ranger"):
        raise ValueError(f"run {str(run_dir)!r} uses optim.name={name!r}: the exact replay handles adam and ranger "
                         "runs; use --method sgd-copy")
    return method


def explain_replay(run_dir: str | os.PathLike[str], image: int | str, pixel: tuple[int, int],
                   out_dir: str | os.PathLike[str], *, k: int = 6, memory: str = "auto", kinks: bool = True,
                   quadrature: int = 3, size: int | None = None, progress: bool = True) -> dict:
    """The run's own output at ``pixel`` of ``image`` split over its training examples, by replaying the run.

    :func:`~jordanlab.experiments.explain_adam_run` with one query; writes its files (``OUT/explain-<name>.*``)
    and ``OUT/explain.json``: the query's report (f₀, f_T = the run's logit, Σ_i a_i, a_reg, a_BN, residual,
    all N contributions) with ``"method": "replay"`` and the replay's summary.
    """
    from .explain_adam import explain_adam_run, query_from_spec
    from ._runs import run_config

    if isinstance(image, bool) or not isinstance(image, (int, str)):
        raise ValueError(f"--method replay needs an image spec (INDEX, NAME:INDEX or a PNG path), got {type(image).__name__}")
    query = query_from_spec(str(image), pixel, run_config(run_dir), size=size)
    out = Path(out_dir)
    summary = explain_adam_run(run_dir, [query], out, quadrature=quadrature, k=k, progress=progress, memory=memory,
                               kinks=kinks)
    import json

    report = json.loads((out / f"explain-{query.name}.json").read_text())
    report.update(method="replay", summary={key: v for key, v in summary.items() if key != "queries"},
                  figure=str(out / f"explain-{query.name}.png"))
    if (out / f"explain-{query.name}-maps.png").is_file():  # the disk sweep's per-pixel maps
        report["maps_figure"] = str(out / f"explain-{query.name}-maps.png")
    write_json(out / "explain.json", report)
    return report


def explain_from_run(run_dir: str | os.PathLike[str], image: torch.Tensor, pixel: tuple[int, int],
                     train_inputs: torch.Tensor, train_targets: torch.Tensor, *,
                     dtype: torch.dtype = torch.float64, **kwargs) -> Explanation:
    """:func:`jordanlab.kernels.explain` of an SGD copy started at the run's w₀, with the run's own output.

    ``kwargs`` go to :func:`~jordanlab.kernels.explain` (``k``, ``lr``, ``steps``, ``batch_size``, ...).
    The returned explanation has ``run_final``, the trained run's output at ``pixel`` of ``image``, and
    a note saying that the explained network is the SGD copy.
    """
    w0, _ = initial_model(run_dir)
    trained, _ = trained_model(run_dir)
    trained = trained.to(dtype).eval()
    img = torch.as_tensor(image, dtype=dtype)[None]
    with torch.no_grad():
        run_final = float(trained(img).reshape(img.shape[-2], img.shape[-1])[pixel[0], pixel[1]])
    e = explain(w0, image, pixel, train_inputs, train_targets, dtype=dtype, **kwargs)
    note = "explains an SGD-trained copy from the run's w_0 (the run used its own optimizer)"
    return dataclasses.replace(e, run_final=run_final, notes=[note, *e.notes])


def _query(run_dir: str | os.PathLike[str], image: object, config: object) -> QueryImage:
    if isinstance(image, np.ndarray):
        return QueryImage(np.asarray(image, dtype=np.uint8), None, "array")
    if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
        if image < 0:
            raise ValueError(f"image index must be >= 0, got {image}")
        return parse_image_spec(str(int(image)), config)
    if isinstance(image, (str, os.PathLike)):
        return parse_image_spec(image, config)
    raise TypeError(f"image must be an index, an image spec, a PNG path or an (H, W) array, got {type(image).__name__}")


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
    """``jordanlab kernel explain RUN --method sgd-copy``: write ``OUT/explain.json`` and ``OUT/explain.png``.

    ``image`` is an index into the run's test split, an image spec (``INDEX``, ``NAME:INDEX``, a PNG path:
    :func:`~jordanlab.experiments.parse_image_spec`) or a boundary array ``(H, W)``. The training images are
    the first ``n_train`` of the run's training split, their targets the exact masks. The explained network
    is an SGD copy (BCE loss, float64) trained from the run's w₀ (:func:`explain_from_run`).
    """
    _, config = initial_model(run_dir)
    b, m, _ = run_images(config, "train", n_train)
    query = _query(run_dir, image, config)
    img = query.boundary
    h, w = img.shape
    if not (0 <= pixel[0] < h and 0 <= pixel[1] < w):
        raise ValueError(f"pixel {tuple(pixel)} is outside the {h}x{w} image {query.source}")
    x = torch.as_tensor(np.asarray(b), dtype=torch.float64)[:, None]
    y = torch.as_tensor(np.asarray(m), dtype=torch.float64)[:, None]
    e = explain_from_run(run_dir, torch.as_tensor(np.asarray(img), dtype=torch.float64)[None], pixel, x, y, k=k,
                         lr=lr, steps=steps, batch_size=batch_size, seed=seed, quadrature=quadrature,
                         progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    change = abs(e.final - e.initial)
    report = {
        "run": str(run_dir), "image": query.source, "pixel": list(e.pixel), "method": e.method,
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
    plot_explanation(e, out / "explain.png", title=f"{Path(run_dir).name}: {query.source} pixel {tuple(e.pixel)}")
    return report


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
