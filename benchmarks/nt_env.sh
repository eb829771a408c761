#!/usr/bin/env bash
# Create .nt-venv: a separate environment holding neural-tangents 0.6.5 for benchmarks/infinite.py.
# neural-tangents is unmaintained; 0.6.5 imports only with these pins (jax 0.5 removed
# jax.random.KeyArray, google/neural-tangents#209). Never a dependency of jordanlab.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .nt-venv/bin/python ]; then
    "$PY" -m venv .nt-venv
fi
.nt-venv/bin/python -m pip install --quiet --upgrade pip
.nt-venv/bin/python -m pip install --quiet \
    "neural-tangents==0.6.5" "jax==0.4.30" "jaxlib==0.4.30" "numpy<2" "tf2jax==0.3.6"
.nt-venv/bin/python -c "import jax, neural_tangents as nt; from neural_tangents import stax; print('neural-tangents', nt.__version__, 'jax', jax.__version__)"
