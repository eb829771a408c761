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

from jordanlab.report.html import Section, markdown_table, write_report
from jordanlab._atomic import write_json

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


def reproduce(out_dir: str | os.PathLike, *, quick: bool = True, device: str = "auto",
              progress: bool = True, plan: tuple[tuple[str, str | os.PathLike], ...] | None = None,
              eval_n: int | None = None, kernels: bool = True) -> Path:
    """Run the plan (quick or the talk's) into ``out_dir`` and return the path of ``index.html``.

    Parameters
    ----------
    quick : the quick plan (:data:`QUICK_PLAN`, 100 images per suite) or the talk's (:data:`FULL_PLAN`).
    plan : ``(run name, config)`` pairs replacing the default plan; a relative config is looked up in
        :func:`configs_dir`.
    eval_n : images per OOD suite (default 100 for quick, the suites' own count otherwise).
    kernels : also run the kernel-lens and infinite-width steps.
    """
    from jordanlab.data import gallery
    from jordanlab.evaluate import evaluate_run
    from jordanlab.train import load_config, train

    out = Path(out_dir).resolve()  # figure paths below are absolute, whatever the working directory
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "reproduce.json"
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
    sections.append(
        Section("The task as exact data").text(
            "Each row: one preset or out-of-distribution suite. The curve is drawn in black over its "
            "figure (boundary ∪ pixels inside an odd number of curves), computed by the exact crossing-parity "
            "fill and cross-checked by an independent flood fill. The last row shows the train-time "
            "affine augmentation: curves distorted before rasterization, so labels stay exact."
        ).figure(fig_gallery, "every family and suite with its exact fill"))

    # 2. learning
    evals: dict[str, dict[str, Any]] = {}
    learn = Section("Learning the closure task").text(
        "Each model is trained on one simple family (a single blob or polygon per image) and evaluated on "
        "the test split and on every out-of-distribution suite. <b>perfect_rate</b> is the share of images "
        "with every pixel right: the number that tells an algorithm from an approximation.")
    for name, cfg_file in plan:
        run_dir = out / "runs" / name
        overrides = [f"train.device={json.dumps(device)}"]
        config = load_config(cdir / cfg_file, overrides)  # an absolute cfg_file stays as it is
        eval_path = run_dir / "eval.json"
        if not eval_path.exists():  # a run evaluated earlier is finished; an unfinished one resumes
            log.run(f"train {name}", lambda: train(config, run_dir, progress=progress))
            log.run(f"eval {name}", lambda: evaluate_run(run_dir, n=eval_n,
                                                        device=device, progress=progress))
        evals[name] = json.loads(eval_path.read_text())
        learn.text(f"<b>{name}</b>: <code>jordanlab train configs/{cfg_file} --out {run_dir}</code>, "
                   f"then <code>jordanlab eval {run_dir}</code>.")
    learn.table(_perfect_matrix(evals), caption="perfect-image rate per suite (rows) and model (columns)")
    for name in evals:
        learn.table([r for r in _eval_rows(name, evals[name])], caption=f"{name}: all metrics")
        for fig in sorted((out / "runs" / name / "figures").glob("*.png")):
            learn.figure(fig, f"{name}: {fig.stem}")
    sections.append(learn)

    summary = ["# perfect-image rate", markdown_table(_perfect_matrix(evals))]
    if kernels:
        sections.extend(_kernel_sections(out, quick=quick, progress=progress, log=log, summary=summary))
    sections.append(Section("Timings").table(log.steps).code(
        "jordanlab reproduce " + ("--quick " if quick else "") + f"--out {out}"))
    intro = ("Can a neural network learn planar topology? Generated by <code>jordanlab reproduce"
             + (" --quick" if quick else "") + "</code>. The tables in markdown are in <code>summary.md</code>.")
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
    ksec = Section("The kernel lens: Domingos' theorem checked on real training runs").text(
        "For a small CNN trained on shapes-32 by (S)GD, the output at every query is decomposed as "
        "f(w_T, x) = f(w_0, x) + Σ_i contribution_i + residual. In tangent mode (Domingos' tangent kernel "
        "at each step) the residual is O(lr); in exact mode (the gradient averaged along each step by "
        "Gauss–Legendre quadrature) it falls to floating-point level.").table(ver["runs"], caption="verify.json")
    if "kernel_motion" in ver:
        ksec.table(ver["kernel_motion"], caption="relative motion of the tangent kernel during training vs width")
    for fig in sorted(kdir.glob("*.png")):
        ksec.figure(fig, fig.stem)
    sections.append(ksec)

    # 4. infinite width and the thesis
    tdir = out / "thesis"
    if not (tdir / "thesis.json").exists():
        log.run("thesis", lambda: run_thesis(tdir, quick=quick, progress=progress))
    thesis = json.loads((tdir / "thesis.json").read_text())
    tsec = Section("Kernel machines vs the trained network (point task)").text(
        "Curve plus one marked pixel: is the pixel inside? The same training set for NTK regression "
        "(infinite-width MLP and CNN kernels), the finite network, and kernel regression with the trained "
        "network's own final tangent kernel.")
    if "table" in thesis:
        tsec.table(thesis["table"])
    for fig in sorted(tdir.glob("*.png")):
        tsec.figure(fig, fig.stem)
    sections.append(tsec)

    summary += ["# verify.json", markdown_table(ver["runs"])]
    if "table" in thesis:
        summary += ["# thesis", markdown_table(thesis["table"])]
    return sections
