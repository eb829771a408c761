"""The ``jordanlab`` command: thin wrappers that parse arguments and call one library function."""

from __future__ import annotations

import argparse
import sys


def _cmd_demo(args: argparse.Namespace) -> int:
    raise SystemExit("jordanlab demo: not wired yet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jordanlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="make a small dataset and a PNG grid of curves with their fills")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
