"""jordanlab: can a neural network learn planar topology?

Each command parses its arguments and calls one library function; see ``jordanlab COMMAND --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


# --------------------------------------------------------------------------- data and the fill
def _cmd_data_make(args: argparse.Namespace) -> int:
    from jordanlab.data import write_dataset

    out = write_dataset(args.name, args.out, seed=args.seed, n=args.n, size=args.size,
                        overwrite=args.overwrite, workers=args.workers, progress=not args.quiet)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    counts = ", ".join(f"{k}: {v}" for k, v in manifest.get("counts", {}).items())
    print(f"wrote {out} ({counts})")
    return 0


def _cmd_data_show(args: argparse.Namespace) -> int:
    from jordanlab.data import preview_dataset

    out = preview_dataset(args.dir, args.out, split=args.split, n=args.n, ncols=args.ncols)
    print(f"wrote {out}")
    return 0


def _cmd_data_gallery(args: argparse.Namespace) -> int:
    from jordanlab.data import gallery

    print(f"wrote {gallery(args.out, per_name=args.per_name, seed=args.seed, size=args.size)}")
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from jordanlab.data import PRESETS, SUITES, resolve
    from jordanlab.report.html import markdown_table

    rows = []
    for name in [*PRESETS, *SUITES]:
        s = resolve(name, size=None if name in PRESETS else args.size)
        rows.append({"name": name, "kind": s.kind, "canvas": f"{s.size}x{s.size}", "family": s.family,
                     "train": s.n_train, "test": s.n_test, "stroke": "-".join(map(str, sorted(set(s.thickness)))),
                     "augment": s.augment})
    print(markdown_table(rows))
    return 0


def _cmd_fill(args: argparse.Namespace) -> int:
    from jordanlab.data import fill_png

    steps: list[str] = []
    mask = fill_png(args.input, args.out, curve=args.curve, method=args.method, repair=args.repair,
                    repaired_png=args.repaired_out, steps=steps)
    if args.repair:
        print("repair: " + ("; ".join(steps) if steps else "nothing to repair"))
        if args.repaired_out:
            print(f"wrote {args.repaired_out} (the repaired curves, white on black)")
    print(f"wrote {args.out}: {int(mask.sum())} figure pixels of {mask.size}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from jordanlab.report.serve import serve

    serve(args.run or None, host=args.host, port=args.port, device=args.device, quiet=args.quiet)
    return 0


# --------------------------------------------------------------------------- models and learning
def _pretrained_rows() -> list[dict[str, object]]:
    from jordanlab.models import pretrained

    rows = []
    for name in pretrained.names():
        meta = pretrained.info(name)
        row: dict[str, object] = {"name": name, "parameters": meta["parameters"],
                                  "size": f"{meta['bytes'] / 1e6:.2f} MB", "config": meta["config"]}
        row.update({suite: f"{100 * rate:.0f} %" for suite, rate in meta["perfect"].items()})
        rows.append(row)
    return rows


def _cmd_models(args: argparse.Namespace) -> int:
    from jordanlab.models import model_table
    from jordanlab.report.html import markdown_table

    if args.pretrained:
        print(markdown_table(_pretrained_rows()))
        print("perfect: share of pixel-perfect images of 20 per suite (eval.json of each shipped model); "
              "use a name wherever a command takes RUN")
        return 0
    print(markdown_table(model_table(canvas=args.canvas)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from jordanlab.train import load_config, train

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={json.dumps(args.device)}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    config = load_config(args.config, overrides)
    metrics = train(config, args.out, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(json.dumps(metrics, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from jordanlab.evaluate import evaluate_run, format_table

    if args.suites == "all":
        suites = None
    elif args.suites:
        suites = args.suites.split(",")
    else:  # --data alone evaluates only those directories
        suites = () if args.data else None
    from jordanlab.train.run import Run

    run = Run.open(args.run)
    result = evaluate_run(run, suites=suites, data_dirs=args.data or (), n=args.n,
                          device=args.device, max_iters=args.max_iters, patience=args.patience,
                          progress=not args.quiet)
    print(format_table(result))
    if not result["finished"]:
        print(f"note: {result['checkpoint']} is epoch {result['epoch']} of {result['epochs_planned']}: "
              "the run is unfinished (rerun 'jordanlab train' to finish it)")
    print(f"wrote {run.eval_path}" if not run.readonly else f"{run.path} is read-only: eval.json not written")
    return 0


def _cmd_certify(args: argparse.Namespace) -> int:
    from jordanlab.evaluate import model_certificate
    from jordanlab.train.checkpoint import load_model

    model, _ = load_model(args.run)
    cert = model_certificate(model, size=args.size)
    if cert is None:
        raise ValueError(f"run {args.run!r}: model {type(model).__name__} has no certificate (only crossing-depth)")
    for line in cert["reasons"]:
        print(line)
    if cert["certified"]:
        print(f"certified: exact on every well-posed image of any canvas (inference hardens the costs to "
              f"{cert['table_class']}); the learned soft costs alone are exact up to {cert['max_size_soft']}²")
    else:
        print(f"not certified: {cert['failure']}; guaranteed up to {cert['max_size']}²")
    if args.size is not None:
        print(f"size {args.size}²: {'exact' if cert['exact_at_size'] else 'not guaranteed'}")
    return 0 if cert["certified"] or cert["exact_at_size"] else 1


def _cmd_predict(args: argparse.Namespace) -> int:
    from jordanlab.evaluate import predict_png

    out = predict_png(args.run, args.input, args.out, device=args.device)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- the kernel lens
def _cmd_kernel_verify(args: argparse.Namespace) -> int:
    from jordanlab.experiments import verify
    from jordanlab.report.html import markdown_table

    result = verify(args.out, quick=args.quick, progress=not args.quiet)
    print(markdown_table(result["runs"]))
    print(f"wrote {Path(args.out) / 'verify.json'}")
    return 0


def _pixel(text: str) -> tuple[int, int]:
    """``--pixel R,C`` as ``(R, C)``."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise ValueError(f"--pixel must be R,C (two integers), got {text!r}")
    return int(parts[0]), int(parts[1])


def _cmd_kernel_explain(args: argparse.Namespace) -> int:
    from jordanlab.experiments import explain_method, explain_replay, explain_run

    if explain_method(args.run, args.method) == "replay":
        report = explain_replay(args.run, args.image, _pixel(args.pixel), args.out, k=args.k, memory=args.memory,
                                kinks=args.kinks == "on", quadrature=args.quadrature, progress=not args.quiet)
        keys = ("image", "source", "pixel", "method", "f0", "fT", "run_logit", "sum_a", "a_reg", "a_bn", "residual",
                "relative_residual", "n_50", "n_90")
        print(json.dumps({key: report.get(key) for key in keys}, indent=2, default=str))
        print(f"wrote {Path(args.out) / 'explain.json'} and {report['figure']}")
        return 0
    report = explain_run(args.run, args.image, _pixel(args.pixel), args.out, k=args.k,
                         n_train=args.n_train, steps=args.steps, lr=args.lr, progress=not args.quiet)
    print(json.dumps({k: v for k, v in report.items() if k != "top"}, indent=2, default=str))
    print(f"wrote {Path(args.out) / 'explain.png'}")
    return 0


def _cmd_kernel_explain_adam(args: argparse.Namespace) -> int:
    from jordanlab.experiments import explain_adam_run, queries_from_specs

    if len(args.image) != len(args.pixel):
        raise ValueError(f"--image and --pixel must come in pairs, got {len(args.image)} and {len(args.pixel)}")
    queries = queries_from_specs(args.run, args.image, [_pixel(p) for p in args.pixel], size=args.size)
    summary = explain_adam_run(args.run, queries, args.out, replay_dir=args.replay, quadrature=args.quadrature,
                               k=args.k, progress=not args.quiet, memory=args.memory, kinks=args.kinks == "on")
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_kernel_infinite(args: argparse.Namespace) -> int:
    from jordanlab.experiments import infinite_check

    infinite_check(args.out, quick=args.quick, progress=not args.quiet)
    return 0


def _cmd_kernel_thesis(args: argparse.Namespace) -> int:
    from jordanlab.experiments import load_thesis_config, run_thesis

    config = load_thesis_config(args.config) if args.config else None
    run_thesis(args.out, quick=args.quick, config=config, progress=not args.quiet)
    return 0


# --------------------------------------------------------------------------- the whole pipeline
def _cmd_reproduce(args: argparse.Namespace) -> int:
    from jordanlab.report.reproduce import reproduce

    index = reproduce(args.out, quick=args.quick, device=args.device, progress=not args.quiet,
                      pretrained=not args.retrain)
    print(f"report: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from jordanlab import __version__

    parser = argparse.ArgumentParser(prog="jordanlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jordanlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("--figure-formats", default=None, metavar="svg,pdf",
                        help="also write every figure as SVG and/or PDF beside its PNG")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(subparsers, name: str, func, help: str) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def quiet(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    def device(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where to compute (default: auto = cuda if available)")

    # data
    data = sub.add_parser("data", help="make, list and look at datasets").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND")
    p = command(data, "make", _cmd_data_make, "generate a preset or suite into a dataset directory")
    p.add_argument("name", help="preset (shapes-32, shapes-64, shapes-128, textures-256) or suite name")
    p.add_argument("--out", required=True, help="dataset directory to create (manifest.json + .npz shards)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None, help="images per split (default: the preset's counts)")
    p.add_argument("--size", type=int, default=None, help="base canvas of a suite (default 64)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset directory")
    quiet(p)
    p = command(data, "show", _cmd_data_show, "write a PNG grid of a dataset's curves with their fills")
    p.add_argument("dir", help="dataset directory")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=32, help="images to show (default 32)")
    p.add_argument("--ncols", type=int, default=8)
    p = command(data, "gallery", _cmd_data_gallery, "a PNG grid of every preset and suite")
    p.add_argument("--out", required=True)
    p.add_argument("--per-name", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="base canvas of the suites (default 64)")
    p = command(data, "list", _cmd_data_list, "presets and suites with their canvases and counts")
    p.add_argument("--size", type=int, default=None, help="base canvas of the suites (default 64)")

    p = command(sub, "fill", _cmd_fill, "fill your own boundary image (PNG) with the exact even-odd rule")
    p.add_argument("input", help="8-bit PNG of closed curves (with --repair: any image Pillow reads)")
    p.add_argument("--out", required=True, help="mask PNG to write (figure white, ground black)")
    p.add_argument("--curve", default="auto", choices=["auto", "dark", "light"],
                   help="curve pixels are dark on light, light on dark, or auto (the minority class)")
    p.add_argument("--method", default="parity", choices=["parity", "flood"])
    p.add_argument("--repair", action="store_true",
                   help="read any image Pillow reads (JPEG too), fill pinholes, join gaps of up to 2 pixels "
                        "and thin the strokes before filling; says what it changed")
    p.add_argument("--repaired-out", default=None, metavar="PNG",
                   help="with --repair: also write the repaired curves to this PNG")

    # learning
    p = command(sub, "models", _cmd_models, "table of architectures: parameters and receptive fields")
    p.add_argument("--canvas", type=int, default=128, help="canvas for 'global' receptive fields")
    p.add_argument("--pretrained", action="store_true",
                   help="list the shipped trained models (usable wherever a command takes RUN)")
    p = command(sub, "train", _cmd_train, "train a model from a TOML config (resumes an existing run)")
    p.add_argument("config", help="TOML config (see configs/)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, config.toml)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=0.003 (repeatable)")
    quiet(p)
    p = command(sub, "eval", _cmd_eval, "evaluate a run on the test split and every OOD suite")
    p.add_argument("run", help="run directory, or a shipped model (jordanlab models --pretrained)")
    p.add_argument("--suites", default=None,
                   help="comma-separated suite names, or 'all' (default: all, or none when --data is given)")
    p.add_argument("--data", action="append", metavar="DIR",
                   help="evaluate a dataset directory (repeatable); alone it replaces the suites, "
                        "with --suites all it adds to them")
    p.add_argument("--n", type=int, default=None, help="images per suite")
    p.add_argument("--max-iters", type=int, default=None, help="iteration budget of recurrent models")
    p.add_argument("--patience", type=int, default=10,
                   help="recurrent models halt once their mask is unchanged for this many iterations")
    device(p)
    quiet(p)
    p = command(sub, "certify", _cmd_certify,
                "prove from a crossing-depth run's learned numbers the canvases on which it is exact")
    p.add_argument("run", help="run directory, or a shipped model (jordanlab models --pretrained)")
    p.add_argument("--size", type=int, default=None, help="also decide this canvas side")
    p = command(sub, "predict", _cmd_predict, "fill your own boundary image with a trained run")
    p.add_argument("run", help="run directory, or a shipped model (jordanlab models --pretrained)")
    p.add_argument("input", help="8-bit PNG of closed curves (any canvas)")
    p.add_argument("--out", required=True)
    device(p)

    # kernels
    kernel = sub.add_parser("kernel", help="the kernel lens: tangent, path and infinite-width kernels").add_subparsers(
        dest="kernel_command", required=True, metavar="SUBCOMMAND")
    p = command(kernel, "verify", _cmd_kernel_verify,
                "check the exact kernel-machine decomposition of (S)GD, Adam and Ranger runs (smooth and ReLU); write verify.json and plots")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="fewer steps and learning rates")
    quiet(p)
    p = command(kernel, "explain", _cmd_kernel_explain,
                "which training images carry a pixel's prediction (exact path-kernel attribution)")
    p.add_argument("run", help="run directory, or a shipped model (jordanlab models --pretrained)")
    p.add_argument("--image", required=True,
                   help="test-split index (e.g. 0), SUITE:INDEX at the run's canvas (e.g. spiral:3), "
                        "PRESET:INDEX, or a PNG")
    p.add_argument("--pixel", required=True, help="R,C of the query pixel")
    p.add_argument("--out", required=True)
    p.add_argument("--method", choices=["auto", "replay", "sgd-copy"], default="auto",
                   help="replay: the run itself, replayed with the exact recorder (auto for Adam/Ranger runs); "
                        "sgd-copy: an SGD copy trained from the run's w0 (auto for other runs)")
    p.add_argument("--memory", choices=["auto", "ram", "disk"], default="auto",
                   help="replay: per-example shares in RAM or the adjoint sweep on disk (auto: by size)")
    p.add_argument("--kinks", choices=["on", "off"], default="on", help="replay: split steps at ReLU/max-pool kinks")
    p.add_argument("--quadrature", type=int, default=3, help="replay: Gauss-Legendre nodes per step (per piece)")
    p.add_argument("--k", type=int, default=8, help="top-k training images")
    p.add_argument("--n-train", type=int, default=64, help="training images in the recorded SGD copy")
    p.add_argument("--steps", type=int, default=200, help="SGD steps of the recorded copy")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate of the recorded copy")
    quiet(p)
    p = command(kernel, "explain-adam", _cmd_kernel_explain_adam,
                "exact path decomposition of a real Adam or Ranger run: replay it and attribute query pixels to "
                "training images (and their pixels)")
    p.add_argument("run", help="run directory or shipped model (its config.toml is replayed; standard objective; "
                               "Adam with weight_decay 0, or Ranger)")
    p.add_argument("--image", action="append", required=True,
                   help="INDEX (the run's test split), SUITE:INDEX (suite at --size), PRESET:INDEX or a PNG; "
                        "repeat, one per --pixel")
    p.add_argument("--pixel", action="append", required=True, help="R,C of the query pixel; repeat, one per --image")
    p.add_argument("--size", type=int, default=None,
                   help="base canvas of suite images (default: the run's training canvas; large-4x: 4x this)")
    p.add_argument("--out", required=True, help="figures and JSON go here")
    p.add_argument("--replay", default=None, help="fresh run directory for the replay (default OUT/replay)")
    p.add_argument("--quadrature", type=int, default=2, help="Gauss-Legendre nodes per step (per piece with kinks on)")
    p.add_argument("--kinks", choices=["on", "off"], default="on",
                   help="split each step at the query's ReLU/max-pool kinks (exact); off: fixed nodes, the kink "
                        "error stays in the reported residual")
    p.add_argument("--memory", choices=["auto", "ram", "disk"], default="auto",
                   help="per-example shares in RAM, or the adjoint sweep over steps stored in OUT/adjoint-scratch "
                        "(auto: disk when the shares would take more than half the available RAM)")
    p.add_argument("--k", type=int, default=6, help="top +k and -k training images in the figure")
    quiet(p)
    p = command(kernel, "infinite-check", _cmd_kernel_infinite,
                "closed-form NTK/NNGP against finite widths and wide trained networks")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    quiet(p)
    p = command(kernel, "thesis", _cmd_kernel_thesis,
                "kernel machines vs the trained network on the point task, in and out of distribution")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--config", default=None,
                   help="TOML of ThesisConfig keys (e.g. configs/experiments/thesis.toml); overrides --quick")
    quiet(p)

    p = command(sub, "serve", _cmd_serve,
                "a local web page: draw closed curves, see the exact fill and each model's prediction")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--run", action="append", metavar="RUN",
                   help="a run directory or shipped model to show (repeatable; default: every shipped model)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no request log")

    p = command(sub, "reproduce", _cmd_reproduce,
                "make the data, train, evaluate, run the kernel checks and write DIR/index.html")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="small images and few epochs (minutes on 2 cores)")
    p.add_argument("--retrain", action="store_true",
                   help="train every model, even those shipped with exactly the plan's config")
    device(p)
    quiet(p)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    """The failures a user can cause and fix: each becomes one line and exit code 2."""
    from PIL import Image

    from jordanlab.train import CorruptCheckpointError, NonFiniteLossError

    return (ValueError, OSError, NonFiniteLossError, CorruptCheckpointError, Image.DecompressionBombError)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected mistake prints one line (exit 2), Ctrl-C exits 130."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("JORDANLAB_DEBUG"))
    name = " ".join(v for v in (args.command, getattr(args, "data_command", None),
                                getattr(args, "kernel_command", None)) if v)
    from jordanlab._atomic import FIGURE_FORMATS_ENV, extra_figure_formats

    saved = os.environ.get(FIGURE_FORMATS_ENV)
    try:
        if args.figure_formats is not None:
            extra_figure_formats(args.figure_formats)  # an unknown format is a one-line error before any work
            os.environ[FIGURE_FORMATS_ENV] = args.figure_formats
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        hint = "; rerun the same command to resume" if args.command in ("train", "reproduce") else ""
        print(f"\njordanlab {name}: interrupted{hint}", file=sys.stderr)
        return 130
    except _expected_errors() as exc:
        # Bad input: say what is wrong without a traceback (--debug or JORDANLAB_DEBUG=1 shows it).
        if debug:
            raise
        print(f"jordanlab {name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    finally:  # main() may run in-process (tests, notebooks): leave the environment as it was
        if saved is None:
            os.environ.pop(FIGURE_FORMATS_ENV, None)
        else:
            os.environ[FIGURE_FORMATS_ENV] = saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
