"""scripts/device_check.py, the driver of the GPU check (issue 15): time boxes, failures recorded, the summary."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_stage_past_its_box_is_killed_with_its_process_group():
    dc = _module()
    proc = subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    t = time.perf_counter()
    assert dc._wait_or_kill(proc, 1.0) is None
    assert time.perf_counter() - t < 15
    assert proc.poll() is not None
    deadline = time.perf_counter() + 10  # the group goes too (the backgrounded sleep), once init reaps it
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.perf_counter() < deadline, "the stage's process group outlived its box"
        time.sleep(0.2)


def test_a_failing_stage_is_recorded_and_the_next_one_runs(tmp_path):
    env = dict(os.environ, DEVICE_CHECK_FAIL="env", PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    env.pop("OUT", None)
    out, work = tmp_path / "out", tmp_path / "work"
    res = subprocess.run([sys.executable, str(SCRIPT), "--small", "--stages", "env,fill", "--out", str(out),
                          "--work", str(work)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["env", "fill"]
    assert rows[0]["status"] == "fail" and "forced failure" in rows[0]["error"]
    fill = rows[1]
    assert fill["status"] == "ok" and fill["device_equals_cpu"] and fill["small"]
    assert fill["batch"] == [8, 256, 256] and fill["cpu_mpix_per_s"] > 0
    summary = (out / "summary.md").read_text()
    assert "| env | fail |" in summary and "| fill | ok |" in summary


def test_unknown_stage_is_refused():
    res = subprocess.run([sys.executable, str(SCRIPT), "--stages", "env,warp"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert res.returncode == 2 and "unknown stage(s) warp" in res.stderr
