#!/usr/bin/env bash
# CPU quickstart: DYPO on single-digit addition through verl's real trainer (the CPU backend), 8-11 min on 2 cores.
#
#   bash scripts/quickstart.sh                  # one DYPO run: outputs/quickstart/{summary.json,curves.png,dypo/}
#   bash scripts/quickstart.sh --compare        # + GRPO and one-teacher DYPO from the same cold start (~30 min)
#   bash scripts/quickstart.sh --steps 20 dypo.alpha=0.2      # fewer steps; hydra overrides pass through
#
# Each run is `MODEL=tiny SCALE=quickstart DEVICE=cpu bash scripts/run_*.sh`, i.e. `python -m
# recipe_dypo.main_dypo` with the same trainer a GPU launch uses (recipe_dypo/toy/quickstart.py drives it and
# shows progress; verl's own output goes to outputs/quickstart/<run>/log.txt). Creates/reuses .venv at the repo
# root with the CPU torch (scripts/setup_env.sh). No network access is needed after installation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash "$ROOT/scripts/setup_env.sh"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$ROOT/.venv/bin/python" -m recipe_dypo.toy.quickstart --out "${OUT_DIR:-outputs/quickstart}" "$@"
