#!/usr/bin/env bash
# CPU quickstart: train a tiny randomly initialised Qwen2 model with DYPO on the offline toy arithmetic task.
#
#   bash scripts/quickstart.sh                 # ~4 min of training on 2 CPU cores (+ install on first use)
#   bash scripts/quickstart.sh --steps 20      # any `python -m recipe_dypo.local train` option passes through
#
# Creates/reuses .venv at the repo root, installs the CPU build of torch first (so pip never pulls a CUDA
# wheel), then this package in editable mode. No network access is needed after installation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if [[ ! -x "$PY" ]]; then
  echo "creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "installing torch==$TORCH_VERSION (CPU build)"
  "$PY" -m pip install --quiet "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
fi
if ! "$PY" -c "import recipe_dypo, verl, matplotlib, tqdm" 2>/dev/null; then
  echo "installing dypo-verl (editable) with the quickstart extras"
  # torch is already satisfied, so pip keeps the CPU build instead of resolving a CUDA one
  "$PY" -m pip install --quiet -e ".[dev]"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
exec "$PY" -m recipe_dypo.local train --out-dir "${OUT_DIR:-outputs/quickstart}" "$@"
