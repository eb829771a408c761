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

    mask = fill_png(args.input, args.out, curve=args.curve, method=args.method)
    print(f"wrote {args.out}: {int(mask.sum())} figure pixels of {mask.size}")
    return 0


# --------------------------------------------------------------------------- models and learning
def _cmd_models(args: argparse.Namespace) -> int:
    from jordanlab.models import model_table
    from jordanlab.report.html import markdown_table

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
    result = evaluate_run(args.run, suites=suites, data_dirs=args.data or (), n=args.n,
                          device=args.device, max_iters=args.max_iters, patience=args.patience,
                          progress=not args.quiet)
    print(format_table(result))
    print(f"wrote {Path(args.run) / 'eval.json'}")
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
    from jordanlab.kernels import verify
    from jordanlab.report.html import markdown_table

    result = verify(args.out, quick=args.quick, progress=not args.quiet)
    print(markdown_table(result["runs"]))
    print(f"wrote {Path(args.out) / 'verify.json'}")
    return 0


def _explain_image(run: str, spec: str):
    """``--image``: a test-split index, ``NAME:INDEX`` (a suite at the run's canvas, or a preset) or a PNG path."""
    if spec.isdigit():
        return int(spec)
    _, sep, index = spec.rpartition(":")
    if sep and index.isdigit() and not Path(spec).exists():
        from jordanlab.kernels.adam_path import load_query_image
        from jordanlab.train import load_config

        return load_query_image(spec, load_config(Path(run) / "config.toml"))[0]
    return spec


def _cmd_kernel_explain(args: argparse.Namespace) -> int:
    from jordanlab.kernels import explain_run

    r, c = (int(v) for v in args.pixel.split(","))
    report = explain_run(args.run, _explain_image(args.run, args.image), (r, c), args.out, k=args.k,
                         n_train=args.n_train, steps=args.steps, lr=args.lr, progress=not args.quiet)
    print(json.dumps({k: v for k, v in report.items() if k != "top"}, indent=2, default=str))
    print(f"wrote {Path(args.out) / 'explain.png'}")
    return 0


def _cmd_kernel_explain_adam(args: argparse.Namespace) -> int:
    from jordanlab.kernels.adam_path import Query, explain_adam_run, load_query_image
    from jordanlab.train import load_config

    if len(args.image) != len(args.pixel):
        raise ValueError(f"--image and --pixel must come in pairs, got {len(args.image)} and {len(args.pixel)}")
    config = load_config(Path(args.run) / "config.toml")
    queries = []
    for spec, pix in zip(args.image, args.pixel):
        r, c = (int(v) for v in pix.split(","))
        b, m, source = load_query_image(spec, config, size=args.size)
        queries.append(Query(f"{spec.replace(':', '-')}-r{r}c{c}", b, m, (r, c), source))
    summary = explain_adam_run(args.run, queries, args.out, replay_dir=args.replay, quadrature=args.quadrature,
                               k=args.k, progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_kernel_infinite(args: argparse.Namespace) -> int:
    from jordanlab.kernels.thesis import infinite_check

    infinite_check(args.out, quick=args.quick, progress=not args.quiet)
    return 0


def _cmd_kernel_thesis(args: argparse.Namespace) -> int:
    from jordanlab.kernels.thesis import run_thesis

    run_thesis(args.out, quick=args.quick, progress=not args.quiet)
    return 0


# --------------------------------------------------------------------------- the whole pipeline
def _cmd_reproduce(args: argparse.Namespace) -> int:
    from jordanlab.report.reproduce import reproduce

    index = reproduce(args.out, quick=args.quick, device=args.device, progress=not args.quiet)
    print(f"report: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jordanlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("input", help="8-bit PNG of closed curves")
    p.add_argument("--out", required=True, help="mask PNG to write (figure white, ground black)")
    p.add_argument("--curve", default="auto", choices=["auto", "dark", "light"],
                   help="curve pixels are dark on light, light on dark, or auto (the minority class)")
    p.add_argument("--method", default="parity", choices=["parity", "flood"])

    # learning
    p = command(sub, "models", _cmd_models, "table of architectures: parameters and receptive fields")
    p.add_argument("--canvas", type=int, default=128, help="canvas for 'global' receptive fields")
    p = command(sub, "train", _cmd_train, "train a model from a TOML config (resumes an existing run)")
    p.add_argument("config", help="TOML config (see configs/)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl, config.toml)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"])
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=0.003 (repeatable)")
    quiet(p)
    p = command(sub, "eval", _cmd_eval, "evaluate a run on the test split and every OOD suite")
    p.add_argument("run", help="run directory")
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
    p.add_argument("run", help="run directory")
    p.add_argument("--size", type=int, default=None, help="also decide this canvas side")
    p = command(sub, "predict", _cmd_predict, "fill your own boundary image with a trained run")
    p.add_argument("run")
    p.add_argument("input", help="8-bit PNG of closed curves (any canvas)")
    p.add_argument("--out", required=True)
    device(p)

    # kernels
    kernel = sub.add_parser("kernel", help="the kernel lens: tangent, path and infinite-width kernels").add_subparsers(
        dest="kernel_command", required=True, metavar="SUBCOMMAND")
    p = command(kernel, "verify", _cmd_kernel_verify,
                "check the exact kernel-machine decomposition of (S)GD runs; write verify.json and plots")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="fewer steps and learning rates")
    quiet(p)
    p = command(kernel, "explain", _cmd_kernel_explain,
                "which training images carry a pixel's prediction (exact path-kernel attribution)")
    p.add_argument("run", help="run directory")
    p.add_argument("--image", required=True,
                   help="test-split index (e.g. 0), SUITE:INDEX at the run's canvas (e.g. spiral:3), or a PNG")
    p.add_argument("--pixel", required=True, help="R,C of the query pixel")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=8, help="top-k training images")
    p.add_argument("--n-train", type=int, default=64, help="training images in the recorded SGD copy")
    p.add_argument("--steps", type=int, default=200, help="SGD steps of the recorded copy")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate of the recorded copy")
    quiet(p)
    p = command(kernel, "explain-adam", _cmd_kernel_explain_adam,
                "exact path decomposition of a real Adam run: replay it and attribute query pixels to training images")
    p.add_argument("run", help="run directory (its config.toml is replayed; standard objective, Adam/AdamW wd=0)")
    p.add_argument("--image", action="append", required=True,
                   help="INDEX (the preset's test split) or SUITE:INDEX (suite at --size); repeat, one per --pixel")
    p.add_argument("--pixel", action="append", required=True, help="R,C of the query pixel; repeat, one per --image")
    p.add_argument("--size", type=int, default=None,
                   help="base canvas of suite images (default: the run's training canvas; large-4x: 4x this)")
    p.add_argument("--out", required=True, help="figures and JSON go here")
    p.add_argument("--replay", default=None, help="fresh run directory for the replay (default OUT/replay)")
    p.add_argument("--quadrature", type=int, default=2, help="Gauss-Legendre nodes per step")
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
    quiet(p)

    p = command(sub, "reproduce", _cmd_reproduce,
                "make the data, train, evaluate, run the kernel checks and write DIR/index.html")
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="small images and few epochs (minutes on 2 cores)")
    device(p)
    quiet(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        # Bad input: say what is wrong without a traceback (JORDANLAB_DEBUG=1 shows it).
        if os.environ.get("JORDANLAB_DEBUG"):
            raise
        print(f"jordanlab {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
