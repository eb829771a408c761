"""How many local steps PropagationNet needs, by curve family and canvas size (run by hand).

A local network (3x3 receptive field per layer) must be as deep as the number of propagation
steps of :class:`jordanlab.topology.PropagationNet`: the even-odd depth travels one pixel per
step, region by region. For each family of ``jordanlab.data`` and each canvas size, generate
``--n`` images (seed 0), run the network to convergence, check its mask against ``fill``, and
report the median and maximum step count, and the row-scan ``ScanNet`` (constant depth) for
comparison. Writes the table to ``benchmarks/README_fill.md`` (section ``propagation-depth``).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/propagation_depth.py
    OMP_NUM_THREADS=1 .venv/bin/python scripts/propagation_depth.py --n 4 --sizes 32,64 --no-write
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fill import write_section  # noqa: E402  (benchmarks/fill.py: atomic README_fill.md section)

FAMILIES = ("shape", "multi-3", "nested", "randomwalk", "spiral", "texture")


def boundaries(family: str, size: int, n: int, seed: int) -> np.ndarray:
    from jordanlab.data.generate import generate_images
    from jordanlab.data.specs import Spec

    spec = Spec(f"depth-{family}", size, family, 0, n, kind="suite")
    return generate_images(spec, "test", range(n), seed=seed, workers=1, progress=False)[0]


def main(argv: list[str] | None = None) -> int:
    from jordanlab.topology import PropagationNet, fill

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="images per family and size (default 16)")
    parser.add_argument("--sizes", default="32,64,128,256", help="canvas sides (default 32,64,128,256)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only, do not update README_fill.md")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    families = [f for f in args.families.split(",") if f]
    torch.set_num_threads(1)
    net = PropagationNet()
    steps: dict[tuple[str, int], np.ndarray] = {}
    for family in families:
        for size in sizes:
            t0 = time.perf_counter()
            b = boundaries(family, size, args.n, args.seed)
            result = net.propagate(torch.from_numpy(b)[:, None].float())
            mask = (result.logits[:, 0] > 0).to(torch.uint8).numpy()
            if not np.array_equal(mask, fill(b)) or not bool(result.converged.all()):
                raise SystemExit(f"PropagationNet != fill on {family} at {size}: this is a bug")
            steps[family, size] = result.steps.numpy()
            print(
                f"{family:>10} {size:>4}: median {np.median(steps[family, size]):6.0f}  "
                f"max {steps[family, size].max():6d}  ({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python scripts/propagation_depth.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        f"Command: `{cmd.strip()}`",
        "",
        f"Propagation steps of `PropagationNet` to convergence (= depth of a 3x3 local network), median / max "
        f"over {args.n} images per cell (jordanlab.data families, seed {args.seed}); every mask checked equal "
        "to `fill`. `ScanNet` needs one 3x3 convolution plus one row recurrence at every size.",
        "",
        "| family | " + " | ".join(f"{s}x{s}" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for family in families:
        cells = [f"{np.median(steps[family, s]):.0f} / {steps[family, s].max()}" for s in sizes]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("propagation-depth", "## Depth of the local programmed network\n\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
