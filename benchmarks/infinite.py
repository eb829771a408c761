"""Cross-check and time jordanlab's closed-form kernels against neural-tangents 0.6.5.

Run ``bash benchmarks/nt_env.sh`` once (creates ``.nt-venv``), then::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/infinite.py --out runs/bench-infinite

Both sides compute the same kernels on the same float64 inputs: NT runs in a subprocess with the
``.nt-venv`` interpreter (inputs and kernels exchanged as ``.npz``), single-threaded like torch
here unless ``--threads`` says otherwise. Reported per case: the max elementwise relative error
``max |K_jl - K_nt| / |K_nt|`` of NNGP and NTK, and the median wall time of ``--repeats`` runs
(NT: jitted, after one warm-up call that compiles; jordanlab: after one warm-up call), wall and
CPU (process) time: on a shared machine the CPU time is the fairer number. Each case runs NT then
jordanlab back to back so that both see the same load.
neural-tangents is never imported by jordanlab or its test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jordanlab.kernels.infinite import cnn_kernels, mlp_kernels

ROOT = Path(__file__).resolve().parents[1]

# (name, kind, readout, n, channels, size, depth, w_std, b_std, binary inputs)
CASES = [
    ("mlp d3", "mlp", None, 64, 128, None, 3, 1.4, 0.1, False),
    ("mlp d3 binary", "mlp", None, 64, 128, None, 3, 1.0, 0.0, True),
    ("cnn d3 flatten 8x8", "cnn", "flatten", 32, 2, 8, 3, 1.4, 0.1, False),
    ("cnn d3 gap 8x8", "cnn", "gap", 32, 2, 8, 3, 1.4, 0.1, False),
    ("cnn d3 flatten 16x16", "cnn", "flatten", 32, 2, 16, 3, 1.4, 0.1, False),
    ("cnn d3 gap 16x16", "cnn", "gap", 16, 2, 16, 3, 1.4, 0.1, False),
    ("cnn d3 flatten 16x16 binary", "cnn", "flatten", 32, 2, 16, 3, 1.0, 0.0, True),
    ("cnn d3 gap 16x16 binary", "cnn", "gap", 16, 2, 16, 3, 1.0, 0.0, True),
]

NT_SCRIPT = r'''
import json, os, statistics, sys, time
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from neural_tangents import stax

inp, out, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(inp, allow_pickle=False)
cases = json.loads(str(data["cases"]))
res, times = {}, {}
for i, c in enumerate(cases):
    if f"x{i}" not in data:
        continue
    x = jnp.asarray(data[f"x{i}"])
    w, b, depth = c["w_std"], c["b_std"], c["depth"]
    if c["kind"] == "mlp":
        layers = [stax.Dense(512, W_std=w, b_std=b), stax.Relu()] * depth
        layers += [stax.Dense(1, W_std=w, b_std=b)]
    else:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        layers = [stax.Conv(512, (3, 3), padding="SAME", W_std=w, b_std=b), stax.Relu()] * depth
        layers += [stax.Flatten() if c["readout"] == "flatten" else stax.GlobalAvgPool()]
        layers += [stax.Dense(1, W_std=w, b_std=b)]
    _, _, kernel_fn = stax.serial(*layers)
    kfn = jax.jit(kernel_fn, static_argnames="get")
    k = kfn(x, None, get=("nngp", "ntk"))
    jax.block_until_ready(k)
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(kfn(x, None, get=("nngp", "ntk")))
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    res[f"nngp{i}"] = np.asarray(k.nngp)
    res[f"ntk{i}"] = np.asarray(k.ntk)
    times[str(i)] = [statistics.median(ts), statistics.median(cs)]
np.savez(out, times=json.dumps(times), version=json.dumps(
    {"jax": jax.__version__, "neural_tangents": __import__("neural_tangents").__version__}), **res)
'''


def _inputs(case: tuple, rng: np.random.Generator) -> np.ndarray:
    _, kind, _, n, c, size, *_, binary = case
    shape = (n, c) if kind == "mlp" else (n, c, size, size)
    if binary:
        return (rng.random(shape) < 0.15).astype(np.float64)
    return rng.standard_normal(shape)


def _jordanlab(case: tuple, x: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    _, kind, readout, *_rest = case
    depth, w, b = case[6], case[7], case[8]
    if kind == "mlp":
        k, t = mlp_kernels(x, None, depth, w, b, device=device)
    else:
        k, t = cnn_kernels(x, None, depth, w, b, readout, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    return k.cpu().numpy(), t.cpu().numpy()


def _rel(a: np.ndarray, b: np.ndarray, off_diagonal: bool = False) -> float:
    """max |a - b| / |b| over all entries, or over pairs of distinct inputs only."""
    err = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    if off_diagonal:
        err = err[~np.eye(len(err), dtype=bool)]
    return float(np.max(err))


def _nt_case(nt_python: Path, i: int, meta: list[dict], x: np.ndarray, repeats: int, env: dict) -> dict:
    """Run case ``i`` in the NT environment (one subprocess, jitted, after a compiling call)."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, res = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, cases=json.dumps(meta), **{f"x{i}": x})
        subprocess.run([str(nt_python), "-c", NT_SCRIPT, str(inp), str(res), str(repeats)], env=env, check=True)
        return dict(np.load(res, allow_pickle=False))


def run(out: Path, *, repeats: int = 5, threads: int = 1, device: str = "cpu", seed: int = 0) -> dict:
    """Run every case, NT then jordanlab back to back (so both see the same machine load)."""
    out.mkdir(parents=True, exist_ok=True)
    nt_python = ROOT / ".nt-venv" / "bin" / "python"
    if not nt_python.exists():
        raise SystemExit(f"{nt_python} not found: run `bash benchmarks/nt_env.sh` first")
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    xs = [_inputs(c, rng) for c in CASES]
    meta = [
        dict(name=c[0], kind=c[1], readout=c[2], depth=c[6], w_std=c[7], b_std=c[8]) for c in CASES
    ]
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={threads}",
        OMP_NUM_THREADS=str(threads),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    rows = []
    versions: dict = {}
    for i, (case, x) in enumerate(zip(CASES, xs)):
        nt = _nt_case(nt_python, i, meta, x, repeats, env)
        versions = json.loads(str(nt["version"]))
        nt_wall, nt_cpu = json.loads(str(nt["times"]))[str(i)]
        _jordanlab(case, x, device)  # warm-up
        ts, cs = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            k, t = _jordanlab(case, x, device)
            ts.append(time.perf_counter() - t0)
            cs.append(time.process_time() - c0)
        jl_wall, jl_cpu = statistics.median(ts), statistics.median(cs)
        rows.append(
            dict(
                case=case[0],
                n=int(x.shape[0]),
                rel_err_nngp=_rel(k, nt[f"nngp{i}"]),
                rel_err_ntk=_rel(t, nt[f"ntk{i}"]),
                rel_err_ntk_distinct=_rel(t, nt[f"ntk{i}"], off_diagonal=True),
                wall_jordanlab=jl_wall,
                wall_nt=nt_wall,
                cpu_jordanlab=jl_cpu,
                cpu_nt=nt_cpu,
                speedup_wall=nt_wall / jl_wall,
                speedup_cpu=nt_cpu / jl_cpu,
            )
        )
        print(rows[-1], flush=True)
    result = dict(
        rows=rows,
        versions=versions | {"torch": torch.__version__},
        threads=threads,
        device=device,
        repeats=repeats,
    )
    tmp_path = out / "bench_infinite.json.tmp"
    tmp_path.write_text(json.dumps(result, indent=2))
    os.replace(tmp_path, out / "bench_infinite.json")
    return result


def _table(result: dict) -> str:
    lines = [
        "| case | N | rel err NNGP | rel err NTK | (distinct inputs) | jordanlab wall / cpu s | "
        "NT wall / cpu s | NT/jordanlab wall | cpu |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {r['n']} | {r['rel_err_nngp']:.1e} | {r['rel_err_ntk']:.1e} | "
            f"{r['rel_err_ntk_distinct']:.1e} | {r['wall_jordanlab']:.4f} / {r['cpu_jordanlab']:.4f} | "
            f"{r['wall_nt']:.4f} / {r['cpu_nt']:.4f} | {r['speedup_wall']:.2f}× | {r['speedup_cpu']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-infinite")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    result = run(Path(a.out), repeats=a.repeats, threads=a.threads, device=a.device)
    print(_table(result))
    print(f"versions: {result['versions']}; threads={result['threads']} device={result['device']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
