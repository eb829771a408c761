"""Cost of kink-split steps on the talk's own run: the shipped ``unet`` (quick-unet Ranger run) replayed.

The first ``--steps`` steps of the run are replayed under ``AdjointPathRecorder(kinks=True)`` for the four
queries of the README's explain table (or those picked with ``--queries``); prints the seconds of each
recorded step, the probes of the kink search (query forwards at w + sΔ) and the pieces per step and query.
A plain step of this run is ~0.15 s.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kink_cost.py --steps 3``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from jordanlab.experiments.explain_adam import queries_from_specs
from jordanlab.kernels import AdjointPathRecorder
from jordanlab.kernels import _segments
from jordanlab.train import train
from jordanlab.train.run import Run

SPECS = ["0", "nested:0", "spiral:0", "large-4x:0"]
PIXELS = [(15, 15), (13, 21), (17, 13), (71, 55)]


class _Stop(Exception):
    pass


class _Clock:
    """A step hook that times each recorded step and stops the replay after ``steps``."""

    def __init__(self, steps: int) -> None:
        self.steps, self.seconds = steps, []

    def bind(self, model, optimizer) -> None:
        pass

    def before_step(self, idx, x, y) -> None:
        self.t0 = time.perf_counter()

    def after_step(self) -> None:
        self.seconds.append(time.perf_counter() - self.t0)
        if len(self.seconds) >= self.steps:
            raise _Stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--queries", type=int, nargs="+", default=[0, 1, 2, 3], help="indices into the README's four")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    qs = queries_from_specs("unet", [SPECS[i] for i in args.queries], [PIXELS[i] for i in args.queries])
    probes = [0]
    probe = _segments.SegmentQuadrature._probe

    def counted(self, *a, **kw):
        probes[0] += 1
        return probe(self, *a, **kw)

    _segments.SegmentQuadrature._probe = counted
    clock = _Clock(args.steps)
    with tempfile.TemporaryDirectory() as d:
        images = [torch.as_tensor(q.boundary, dtype=torch.float32)[None] for q in qs]
        rec = AdjointPathRecorder(images, [q.pixel for q in qs], 1024, scratch=Path(d) / "scratch", kinks=True,
                                  quadrature=3)
        try:
            train(Run.open("unet").config, Path(d) / "replay", progress=False, step_hooks=[rec, clock])
        except _Stop:
            pass
        pieces = rec.recorder.pieces
        rec.close()
    report = {"queries": [q.name for q in qs], "step_seconds": clock.seconds, "probes": probes[0],
              "pieces": pieces, "threads": torch.get_num_threads()}
    print(json.dumps(report))
    if args.json:
        from jordanlab._atomic import write_json

        write_json(args.json, report)


if __name__ == "__main__":
    main()
