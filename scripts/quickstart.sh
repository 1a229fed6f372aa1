#!/usr/bin/env bash
# CPU quickstart: train a tiny randomly initialised Qwen2 model with DYPO on the offline toy arithmetic task.
#
#   bash scripts/quickstart.sh                 # ~4 min of training on 2 CPU cores (+ install on first use)
#   bash scripts/quickstart.sh --steps 20      # any `python -m recipe_dypo.local train` option passes through
#
# Creates/reuses .venv at the repo root with the CPU torch (scripts/setup_env.sh: torch==2.13.0 first, so pip
# never pulls a CUDA build), then this package in editable mode. No network access is needed after installation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash "$ROOT/scripts/setup_env.sh"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore}"
exec "$ROOT/.venv/bin/python" -m recipe_dypo.local train --out-dir "${OUT_DIR:-outputs/quickstart}" "$@"
