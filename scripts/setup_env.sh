#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root and install dypo-verl with the CPU torch.
# torch is installed FIRST and pinned: verl's extras or an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
PY="${PYTHON_BOOTSTRAP:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  pip install -q --upgrade pip
  pip install -q "torch==2.13.0"
fi
if ! python -c "import verl, recipe_dypo, pytest, matplotlib" 2>/dev/null \
   || [[ setup.py -nt .venv/.dypo-installed ]]; then
  pip install -q -e ".[dev]" "torch==2.13.0"
  touch .venv/.dypo-installed
fi
python - <<'PY'
import torch, verl
print(f"dypo-verl environment ready: torch {torch.__version__}, verl {verl.__version__}")
PY
