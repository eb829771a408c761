"""`jordanlab reproduce`: the talk's experiments end to end, then one HTML report.

Steps, each resumable (a finished training run is not retrained; a finished step is not redone):

1. the data: a gallery of every family and suite, with exact labels;
2. learning: train each config of the plan and evaluate it on the test split and every OOD suite;
3. the kernel lens: the exact kernel-machine decomposition of (S)GD runs (``verify``);
4. infinite width: kernel machines against the trained network on the point task (``thesis``);
5. ``DIR/index.html`` with the tables and figures.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jordanlab._atomic import write_json
from jordanlab._owned import check_replaceable, mark, marked_kind
from jordanlab.report.html import Section, markdown_table, write_report
from jordanlab.train.run import Run

#: (run name, config file) trained by ``reproduce --quick``: minutes on 2 CPU cores.
QUICK_PLAN: tuple[tuple[str, str], ...] = (
    ("unet", "quick-unet.toml"),
    ("local-cnn", "quick-local-cnn.toml"),
    ("cnn-gap", "quick-cnn-gap.toml"),
    ("parity-scan", "quick-parity-scan.toml"),
    ("crossing-depth", "quick-crossing-depth.toml"),
)
#: The talk's settings (hours on CPU; minutes on a GPU).
FULL_PLAN: tuple[tuple[str, str], ...] = (
    ("unet", "talk-shapes128-unet.toml"),
    ("local-cnn", "talk-shapes128-local-cnn.toml"),
    ("cnn-gap", "talk-shapes128-cnn-gap.toml"),
    ("cnn-sa", "talk-shapes128-cnn-sa.toml"),
    ("cnn-gc", "talk-shapes128-cnn-gc.toml"),
    ("unet-textures", "talk-textures256-unet.toml"),
    ("parity-scan", "quick-parity-scan.toml"),
    ("recurrent", "quick-recurrent.toml"),
    ("crossing-depth", "quick-crossing-depth.toml"),
)
QUICK_EVAL_N = 100  # images per suite in the quick report


def configs_dir() -> Path:
    """The repository's ``configs/`` (beside ``src/``), else ``./configs``."""
    here = Path(__file__).resolve().parents[3] / "configs"
    for candidate in (here, Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no configs/ directory found (looked in {here} and {Path.cwd() / 'configs'})")


@dataclass
class _Log:
    """Timings of the steps, written to ``DIR/reproduce.json`` as the run goes."""

    path: Path
    steps: list[dict[str, Any]]

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        print(f"[reproduce] {name} ...", flush=True)
        result = fn()
        seconds = time.perf_counter() - t0
        self.steps = [s for s in self.steps if s["step"] != name] + [{"step": name, "seconds": round(seconds, 1)}]
        write_json(self.path, {"steps": self.steps})
        print(f"[reproduce] {name}: {seconds:.0f} s", flush=True)
        return result


def _eval_rows(name: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"model": name, "suite": suite, "n": r["n"], "mean_iou": r["mean_iou"],
             "pixel_accuracy": r["pixel_accuracy"], "perfect_rate": r["perfect_rate"]}
            for suite, r in result["suites"].items()]


def _perfect_matrix(evals: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per suite, one column per model: perfect-image rate (the headline number)."""
    suites = list(dict.fromkeys(s for r in evals.values() for s in r["suites"]))
    return [{"suite": s, **{m: r["suites"][s]["perfect_rate"] for m, r in evals.items() if s in r["suites"]}}
            for s in suites]


#: The hard images of the first screen: one of each, the same for every model.
HARD_SUITES: tuple[str, ...] = ("multi-5", "nested", "spiral", "thick", "large-4x")

GLOSSARY: dict[str, str] = {
    "perfect (perfect_rate)": "share of images with <i>every</i> pixel right: the number that tells an algorithm "
                              "from an approximation (one wrong pixel makes an image imperfect)",
    "mean_iou": "mean over images of |predicted figure ∩ true figure| / |predicted ∪ true| (1 = identical)",
    "pixel_accuracy": "mean over images of the share of pixels labelled right (high even for bad masks: most "
                      "pixels are easy)",
    "n": "images per suite; a rate of 0 % or 100 % on 100 images has a 95 % Wilson interval of [0, 3.7] % or "
         "[96.3, 100] %; the [low, high] columns give it for every rate",
    "test": "the training family's own test split (one blob or polygon per image, 32×32)",
    "multi-2/3/5": "2, 3 or 5 disjoint shapes in one image", "nested": "rings inside rings (2 to 4 levels): "
    "the figure alternates with holes", "spiral": "thin bands wound several turns: long corridors",
    "polygon": "spiky star polygons (3 to 20 vertices)", "randomwalk": "random-walk loops",
    "thick": "the training family drawn with 2-3 pixel strokes", "large-2x / large-4x": "the training family on a "
    "canvas 2 or 4 times larger (64², 128²)",
    "iters / rounds, halted": "iterated models (crossing-depth, recurrent) repeat a step until the mask stops "
                              "changing; halted = share that stopped within the budget 2 (H + W)",
    "errors map": "orange: figure predicted right; red: predicted figure where there is ground (false "
                  "positive); blue: missed figure (false negative); black: the curve",
    "relative_residual (kernel lens)": "max |f(w_T) − f(w_0) − Σ_i contribution_i| / max |f(w_T) − f(w_0)| over "
                                       "the queries: how exactly the training images account for the output",
    "sign agreement (thesis)": "share of test points where a kernel machine's answer has the sign of the "
                               "trained network's (1 = it behaves like the network)",
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate k / n: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).

    >>> [round(v, 3) for v in wilson(100, 100)]
    [0.963, 1.0]
    """
    if n <= 0:
        raise ValueError(f"n: expected > 0, got {n}")
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def _headline(evals: dict[str, dict[str, Any]], params: dict[str, int]) -> list[dict[str, Any]]:
    """One row per model: parameters, then its perfect-image rate on each suite (as a percentage)."""
    rows = []
    for m, r in evals.items():
        row: dict[str, Any] = {"model": m, "parameters": params.get(m, "")}
        row.update({s: f"{100 * e['perfect_rate']:.0f} %" for s, e in r["suites"].items()})
        rows.append(row)
    return rows


def _shown(path: Path) -> str:
    """A path as a reader would type it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _comparison_figure(run_dirs: dict[str, Path], path: Path, *, seed: int = 0) -> Path:
    """Every model on the same hard images: rows the suites of :data:`HARD_SUITES`, columns the exact fill
    then each model's errors map (orange right, red false figure, blue missed figure)."""
    from matplotlib.figure import Figure

    from jordanlab.data import make
    from jordanlab.evaluate import error_map, predict_masks, run_canvas
    from jordanlab._atomic import save_figure
    from jordanlab.train import load_model

    models = {name: load_model(d) for name, d in run_dirs.items()}
    canvas = run_canvas(next(iter(models.values()))[1])
    fig = Figure(figsize=(1.2 * (len(models) + 1), 1.25 * len(HARD_SUITES)), layout="constrained")
    axes = fig.subplots(len(HARD_SUITES), len(models) + 1, squeeze=False)
    for row, suite in enumerate(HARD_SUITES):
        b, m = make(suite, "test", n=1, seed=seed, size=canvas)
        axes[row, 0].imshow(error_map(m[0], m[0], b[0]), interpolation="nearest")
        axes[row, 0].set_ylabel(f"{suite}\n{b.shape[-1]}²", fontsize=8)
        for col, (name, (model, _)) in enumerate(models.items(), start=1):
            pred = predict_masks(model, b, batch_size=1)[0][0]
            wrong = int((pred != m[0]).sum())
            ax = axes[row, col]
            ax.imshow(error_map(pred, m[0], b[0]), interpolation="nearest")
            ax.set_xlabel("perfect" if wrong == 0 else f"{wrong} wrong", fontsize=7,
                          color="darkgreen" if wrong == 0 else "darkred")
    for col, name in enumerate(["exact fill", *models]):
        axes[0, col].set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return save_figure(fig, path, dpi=110)


def _shipped_run(name: str, config: Any) -> Path | None:
    """The shipped model ``name`` if it was trained with exactly ``config`` (its description and device aside)."""
    from jordanlab.models import pretrained
    from jordanlab.train import config_to_dict, load_config

    if not pretrained.is_shipped(name):
        return None
    shipped = pretrained.path(name)

    def key(c: Any) -> dict[str, Any]:
        d = config_to_dict(c)
        d.pop("description", None)
        d["train"] = {k: v for k, v in d["train"].items() if k not in ("device", "num_workers", "keep_checkpoints")}
        return d

    return shipped if key(load_config(shipped / "config.toml")) == key(config) else None


def _copy_shipped(shipped: Path, run_dir: Path) -> None:
    """Copy a shipped model's run files into ``run_dir`` (not its ``eval.json``: the report scores afresh)."""
    import shutil

    run_dir.mkdir(parents=True, exist_ok=True)
    for f in shipped.iterdir():
        if f.is_file() and f.name not in ("eval.json", "check.json"):
            shutil.copyfile(f, run_dir / f.name)


def _is_shipped_copy(shipped: Path | None, run_dir: Path) -> bool:
    """Whether ``run_dir``'s newest checkpoint is the shipped one (the same SHA-256)."""
    if shipped is None:
        return False
    mine, theirs = Run.open(run_dir).latest_checkpoint(), Run.open(shipped).latest_checkpoint()
    return mine is not None and theirs is not None and _sha(mine) == _sha(theirs)


def _sha(checkpoint: Path) -> str:
    return checkpoint.with_name(checkpoint.name + ".sha256").read_text().split()[0]


def reproduce(out_dir: str | os.PathLike, *, quick: bool = True, device: str = "auto",
              progress: bool = True, plan: tuple[tuple[str, str | os.PathLike], ...] | None = None,
              eval_n: int | None = None, kernels: bool = True, pretrained: bool = True) -> Path:
    """Run the plan (quick or the talk's) into ``out_dir`` and return the path of ``index.html``.

    Parameters
    ----------
    quick : the quick plan (:data:`QUICK_PLAN`, 100 images per suite) or the talk's (:data:`FULL_PLAN`).
    plan : ``(run name, config)`` pairs replacing the default plan; a relative config is looked up in
        :func:`configs_dir`.
    eval_n : images per OOD suite (default 100 for quick, the suites' own count otherwise).
    kernels : also run the kernel-lens and infinite-width steps.
    pretrained : a plan entry whose config is exactly that of a shipped model
        (``jordanlab.models.pretrained``) starts from the shipped run instead of training it again (the
        weights are the same: ``tests/test_pretrained.py`` retrains them bit for bit); it is still
        evaluated afresh. ``False`` trains everything.
    """
    from jordanlab.data import gallery
    from jordanlab.evaluate import evaluate_run, stale_suites
    from jordanlab.train import load_config, train

    out = Path(out_dir).resolve()  # figure paths below are absolute, whatever the working directory
    log_path = out / "reproduce.json"
    if not log_path.is_file():  # a report directory of an earlier reproduce is ours; anything else must be empty
        check_replaceable(out, "reproduce")
    out.mkdir(parents=True, exist_ok=True)
    if marked_kind(out) != "reproduce":
        mark(out, "reproduce")
    steps = json.loads(log_path.read_text())["steps"] if log_path.exists() else []
    log = _Log(log_path, steps)
    plan = plan if plan is not None else (QUICK_PLAN if quick else FULL_PLAN)
    eval_n = eval_n if eval_n is not None else (QUICK_EVAL_N if quick else None)
    cdir = configs_dir()
    sections: list[Section] = []

    # 1. data
    fig_gallery = out / "figures" / "gallery.png"
    if not fig_gallery.exists():
        log.run("gallery", lambda: gallery(fig_gallery, per_name=4, seed=0))
    data_sec = Section("The task as exact data", folded=True,
                       lead="every family and suite, each curve over its exact figure").text(
        "Each row: one preset or out-of-distribution suite. The curve is drawn in black over its "
        "figure (boundary ∪ pixels inside an odd number of curves), computed by the exact crossing-parity "
        "fill and cross-checked by an independent flood fill. The last row shows the train-time "
        "affine augmentation: curves distorted before rasterization, so labels stay exact."
    ).figure(fig_gallery, "Four test images of every preset and suite (rows), curve in black over its exact "
                          "figure; the last row: training shapes after a random affine distortion")

    # 2. learning
    evals: dict[str, dict[str, Any]] = {}
    params: dict[str, int] = {}
    learn = Section("Every model in detail", folded=True,
                    lead="how each was trained, all its scores with intervals, its best and worst images").text(
        "Each model is trained on one simple family (a single blob or polygon per image) and evaluated on "
        "the test split and on every out-of-distribution suite. Models marked <i>shipped</i> are the trained "
        "models inside the package, trained by the same config (bit-identical weights: "
        "<code>tests/test_pretrained.py</code>); <code>jordanlab reproduce --retrain</code> trains them again.")
    for name, cfg_file in plan:
        run_dir = out / "runs" / name
        overrides = [f"train.device={json.dumps(device)}"]
        config = load_config(cdir / cfg_file, overrides)  # an absolute cfg_file stays as it is
        shipped = _shipped_run(name, config) if pretrained else None
        if shipped is not None and not Run.for_training(run_dir, config).checkpoints():
            log.run(f"copy shipped {name}", lambda: _copy_shipped(shipped, run_dir))
        # Training returns at once when the run is finished (a shipped copy is: its one checkpoint is the last
        # epoch's), and evaluation recomputes only what is stale, so a rerun redoes exactly the unfinished work.
        if not Run.for_training(run_dir, config).status()["finished"]:
            log.run(f"train {name}", lambda: train(config, run_dir, progress=progress))
        score = lambda: evaluate_run(run_dir, n=eval_n, device=device, progress=progress)  # noqa: E731
        # a fresh eval.json is returned as it is (nothing scored, no step logged)
        evals[name] = log.run(f"eval {name}", score) if stale_suites(run_dir, n=eval_n) else score()
        from jordanlab.models import count_parameters

        params[name] = count_parameters(Run.open(run_dir).load_model())
        origin = " (shipped)" if _is_shipped_copy(shipped, run_dir) else ""
        learn.text(f"<b>{name}</b>{origin}: <code>jordanlab train {_shown(cdir / cfg_file)} --out "
                   f"{_shown(run_dir)}</code>, then <code>jordanlab eval {_shown(run_dir)} --n {eval_n}</code>.")
    for name in evals:
        rows = []
        for r in _eval_rows(name, evals[name]):
            lo, hi = wilson(round(r["perfect_rate"] * r["n"]), r["n"])
            rows.append({**r, "perfect low": lo, "perfect high": hi})
        learn.table(rows, caption=f"{name}: every suite, with the 95 % Wilson interval of the perfect rate")
        figs = sorted((out / "runs" / name / "figures").glob("*.png"))
        learn.grid([(f, f"{name}, training: loss and IoU per epoch" if f.stem == "training" else
                     f"{name} on {f.stem.removeprefix('suite-')}: its 3 best and 3 worst images (input, "
                     f"prediction, errors)") for f in figs])
    summary = ["# perfect-image rate", markdown_table(_perfect_matrix(evals))]

    # the first screen: the answer
    fig_compare = out / "figures" / "compare.png"
    newest = max((out / "runs" / n / "eval.json").stat().st_mtime_ns for n in evals) if evals else 0
    if evals and (not fig_compare.exists() or fig_compare.stat().st_mtime_ns < newest):
        log.run("comparison figure", lambda: _comparison_figure({n: out / "runs" / n for n in evals}, fig_compare))
    exact = [m for m, r in evals.items() if all(e["perfect_rate"] == 1.0 for e in r["suites"].values())]
    ns = sorted({e["n"] for r in evals.values() for e in r["suites"].values()})
    answer = Section("The answer").text(
        "Every network below was trained on one simple shape per 32×32 image and tested on harder images it "
        "never saw. "
        + (f"Pixel-perfect on every suite: <b>{', '.join(exact)}</b>; " if exact else
           "No network is pixel-perfect on every suite; ")
        + "the others learned the training family, not the rule: they fail on several shapes, nested "
          "rings, spirals or larger canvases.").table(
        _headline(evals, params), caption=f"share of pixel-perfect images per suite (n = {', '.join(map(str, ns))} "
                                          "images each; see the glossary for intervals)"
    ).figure(fig_compare, "The same hard image for every model (rows: several shapes, nested rings, a spiral, "
                          "a thick stroke, a 4× canvas). Orange: figure found; red: ground taken for figure; "
                          "blue: figure missed; the label under each tells whether it is pixel-perfect.")
    glossary = Section("How to read this page").glossary(GLOSSARY)
    sections = [answer, glossary, data_sec, learn]

    if kernels:
        sections.extend(_kernel_sections(out, quick=quick, progress=progress, log=log, summary=summary))
    sections.append(Section("Timings", folded=True, lead="seconds per step of this run").table(log.steps).code(
        "jordanlab reproduce " + ("--quick " if quick else "") + f"--out {_shown(out)}"))
    intro = ("Can a neural network learn planar topology? Generated by <code>jordanlab reproduce"
             + (" --quick" if quick else "") + "</code>; click a folded section to open it. The tables in "
             "markdown are in <code>summary.md</code>; <code>jordanlab serve</code> lets you draw your own curves.")
    (out / "summary.md").write_text("\n\n".join(summary) + "\n")
    return write_report(out, "jordanlab: can a neural network learn planar topology?", sections, intro=intro)


def _kernel_sections(out: Path, *, quick: bool, progress: bool, log: _Log, summary: list[str]) -> list[Section]:
    """The kernel lens (``verify``) and the infinite-width thesis, as report sections."""
    from jordanlab.experiments import run_thesis, verify

    sections = []
    # 3. the kernel lens
    kdir = out / "kernels"
    if not (kdir / "verify.json").exists():
        log.run("kernel verify", lambda: verify(kdir, quick=quick, progress=progress))
    ver = json.loads((kdir / "verify.json").read_text())
    ksec = Section("The kernel lens: Domingos' theorem checked on real training runs", folded=True,
                   lead="training images account exactly for a trained network's output").text(
        "For a small CNN trained on shapes-32 by (S)GD, the output at every query is decomposed as "
        "f(w_T, x) = f(w_0, x) + Σ_i contribution_i + residual. In tangent mode (Domingos' tangent kernel "
        "at each step) the residual is O(lr); in exact mode (the gradient averaged along each step by "
        "Gauss–Legendre quadrature) it falls to floating-point level.").table(ver["runs"], caption="verify.json")
    if "kernel_motion" in ver:
        ksec.table(ver["kernel_motion"], caption="relative motion of the tangent kernel during training vs width")
    ksec.grid([(fig, "relative residual of the decomposition against the learning rate (left) and how much "
                     "the tangent kernel moves during training as the width grows (right)" if fig.stem == "verify"
                else fig.stem) for fig in sorted(kdir.glob("*.png"))])
    sections.append(ksec)

    # 4. infinite width and the thesis
    tdir = out / "thesis"
    if not (tdir / "thesis.json").exists():
        log.run("thesis", lambda: run_thesis(tdir, quick=quick, progress=progress))
    thesis = json.loads((tdir / "thesis.json").read_text())
    tsec = Section("Kernel machines vs the trained network (point task)", folded=True,
                   lead="do kernel machines behave like the trained network, in and out of distribution?").text(
        "Curve plus one marked pixel: is the pixel inside? The same training set for NTK regression "
        "(infinite-width MLP and CNN kernels), the finite network, and kernel regression with the trained "
        "network's own final tangent kernel.")
    if "table" in thesis:
        tsec.table(thesis["table"])
    tsec.grid([(fig, "accuracy per test suite (top) and agreement in sign with the trained network (bottom); "
                     "the dashed line is chance" if fig.stem == "thesis" else fig.stem)
               for fig in sorted(tdir.glob("*.png"))])
    sections.append(tsec)

    summary += ["# verify.json", markdown_table(ver["runs"])]
    if "table" in thesis:
        summary += ["# thesis", markdown_table(thesis["table"])]
    return sections
