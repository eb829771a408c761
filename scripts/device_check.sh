#!/usr/bin/env bash
# Every CUDA path of jordanlab in one run of under 9 minutes on one H200 (issue 15).
#
#   bash scripts/device_check.sh            # on the GPU machine: results under $OUT (or runs/device-check-out)
#   bash scripts/device_check.sh --small    # CPU dry run, every stage shrunk (~2-3 min); or DEVICE_CHECK_SMALL=1
#   bash scripts/device_check.sh --out DIR --stages env,fill,depth   # a subset
#
# The machine is bare and offline. Its python3 already holds a CUDA build of torch: this script never
# installs torch. It installs jordanlab itself (editable, no dependencies, no index, no build isolation),
# and pytorch-optimizer (Ranger, not in the image) from a wheel carried in .whl/, made here beforehand with
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl pytorch-optimizer==4.1.0
# (pure Python: one wheel for every platform; name `.whl` in the device tool's `carry`). If the editable
# install fails, PYTHONPATH=src is used instead. The stages, their time boxes and outputs are described
# in scripts/device_check.py.
#
# Through this workplace's device tool (one call; the driver's budget is 480 s, set-up ~15 s on top):
#   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=570)
# The 7 files that come back (results.jsonl, summary.md, device_check.log, shapes128-run.tar.000/.001,
# textures256-run.tar.000/.001) fit its limits (8 files, 16 MiB each, 64 MiB in all).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [[ -z "${PYTHON:-}" && -x .venv/bin/python ]] && ! python3 -c "import torch" 2>/dev/null; then
  PY="$PWD/.venv/bin/python"  # a dry run here: the project's environment (the GPU machine's python3 holds torch)
fi
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUTDIR="${OUT:-$PWD/runs/device-check-out}"
for ((i = 1; i <= $#; i++)); do  # --out DIR given on the command line wins
  if [[ "${!i}" == "--out" ]]; then j=$((i + 1)); OUTDIR="${!j}"; fi
done
mkdir -p "$OUTDIR"
SETUP_LOG="$OUTDIR/device_check.log"
t0=$(date +%s)

small=0
[[ " $* " == *" --small "* || "${DEVICE_CHECK_SMALL:-0}" == "1" ]] && small=1
if [[ $small == 0 ]]; then
  # Install what is missing, offline. torch is never touched.
  if ! "$PY" -c "import pytorch_optimizer" 2>/dev/null; then
    if compgen -G ".whl/pytorch_optimizer-*.whl" >/dev/null; then
      "$PY" -m pip install -q --no-index --no-deps --no-cache-dir .whl/pytorch_optimizer-*.whl >>"$SETUP_LOG.setup" 2>&1 \
        || echo "[device_check.sh] pytorch-optimizer wheel did not install (see the setup log)"
    else
      echo "[device_check.sh] pytorch_optimizer is missing and no .whl/pytorch_optimizer-*.whl was carried:"
      echo "                  the training stages will fail (Ranger)."
    fi
  fi
  if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e . >>"$SETUP_LOG.setup" 2>&1; then
    echo "[device_check.sh] editable install failed; running from src/ (PYTHONPATH)"
  fi
fi
"$PY" -c "import torch, jordanlab; print('[device_check.sh] torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| jordanlab from', jordanlab.__file__)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
echo "[device_check.sh] set-up took $(( $(date +%s) - t0 )) s"

"$PY" scripts/device_check.py --out "$OUTDIR" "$@"
rc=$?
if [[ -f "$SETUP_LOG.setup" ]]; then  # keep the file count low: the set-up log joins the main log
  { echo "===== set-up (pip)"; cat "$SETUP_LOG.setup"; } >>"$SETUP_LOG"
  rm -f "$SETUP_LOG.setup"
fi
echo "[device_check.sh] total $(( $(date +%s) - t0 )) s; results in $OUTDIR"
exit $rc
