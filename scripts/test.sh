#!/usr/bin/env bash
# The project's test command (README, CI): set up .venv, then run the CPU test suite offline.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO_ROOT/scripts/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check recipe_dypo data_prep tests benchmarks scripts
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
