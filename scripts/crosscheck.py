"""Cross-check the two fills on ALL images of every preset split and suite (run by hand).

For each preset (both splits) and each suite, generate every image with ``jordanlab.data.make``
(seed 0 by default) and check that ``fill(method="parity") == fill(method="flood")`` on every
image, and that both equal the mask stored by the data layer (which labels thick strokes as the
fill of their thin centre curves plus the stroke, independently of the parity fill's thinning).
With ``--validate`` every boundary also goes through ``validate`` (slower: one labelling per image).

Prints one line per dataset (images checked, mismatches) and writes the table to
``benchmarks/README_fill.md`` (section ``crosscheck``). Exits non-zero on any mismatch.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/crosscheck.py --workers 2 --validate
    OMP_NUM_THREADS=1 .venv/bin/python scripts/crosscheck.py --only shapes-32,nested --no-write
    OMP_NUM_THREADS=1 .venv/bin/python scripts/crosscheck.py --only thick --n 2000 --size 128 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fill import write_section  # noqa: E402  (benchmarks/fill.py: atomic README_fill.md section)

_BLOCK = 500  # images per fill call (bounds memory at 256 x 256)


def check(
    name: str, split: str, *, seed: int, workers: int, validate_all: bool, n: int | None = None, size: int | None = None
) -> tuple[int, int, int, str]:
    """(images, parity != flood, parity != stored masks, shape) for one dataset split."""
    from jordanlab.data import make
    from jordanlab.topology import fill, validate

    boundaries, masks = make(name, split=split, n=n, seed=seed, size=size, workers=workers, progress=True)
    n = len(boundaries)
    bad_flood = bad_masks = 0
    for a in range(0, n, _BLOCK):
        b, m = boundaries[a : a + _BLOCK], masks[a : a + _BLOCK]
        if validate_all:
            validate(b)
        parity, flood = fill(b), fill(b, method="flood")
        bad_flood += int((parity != flood).any(axis=(1, 2)).sum())
        bad_masks += int((parity != m).any(axis=(1, 2)).sum())
    return n, bad_flood, bad_masks, "x".join(map(str, boundaries.shape[1:]))


def main(argv: list[str] | None = None) -> int:
    from jordanlab.data import PRESETS, SUITES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="generation processes (default 1)")
    parser.add_argument("--validate", action="store_true", help="also validate every boundary")
    parser.add_argument("--only", default="", help="comma-separated dataset names (default: all)")
    parser.add_argument("--n", type=int, default=None, help="images per split (default: all of them)")
    parser.add_argument("--size", type=int, default=None, help="base canvas of the suites (default 64)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update README_fill.md")
    args = parser.parse_args(argv)
    names = [x for x in args.only.split(",") if x] or sorted(PRESETS) + sorted(SUITES)
    unknown = sorted(set(names) - set(PRESETS) - set(SUITES))
    if unknown:
        parser.error(f"unknown datasets {unknown}; presets {sorted(PRESETS)}, suites {sorted(SUITES)}")
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python scripts/crosscheck.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [
        f"Command: `{cmd.strip()}`",
        "",
        f"{'Every image' if args.n is None else f'The first {args.n} images'} of each split, seed {args.seed}; "
        f"validated: {'yes' if args.validate else 'no'}.",
        "",
        "| dataset | split | images | canvas | parity != flood | parity != stored mask | seconds |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    total = failures = 0
    for name in names:
        splits = ("train", "test") if name in PRESETS else ("test",)
        for split in splits:
            t0 = time.perf_counter()
            size = args.size if name in SUITES else None
            n, bad_flood, bad_masks, shape = check(
                name, split, seed=args.seed, workers=args.workers, validate_all=args.validate, n=args.n, size=size
            )
            rows.append(f"| {name} | {split} | {n:,} | {shape} | {bad_flood} | {bad_masks} | {time.perf_counter() - t0:.0f} |")
            print(rows[-1], flush=True)
            total += n
            failures += bad_flood + bad_masks
    rows += ["", f"Total: {total:,} images, {failures} mismatches."]
    table = "\n".join(rows)
    print(table)
    if not args.no_write:
        write_section("crosscheck", "## Cross-check: parity == flood on every generated image\n\n" + table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
