#!/usr/bin/env bash
# The paper's Tables 1, 3, 4 and 5 at toy scale on CPU: every row trained through the run_*.sh scripts
# (MODEL=tiny DEVICE=cpu SCALE=toy), evaluated with recipe_dypo.eval, rendered beside the paper's tables.
#
#   bash scripts/reproduce_toy_tables.sh                          # all four tables, seeds 1,2,3
#   bash scripts/reproduce_toy_tables.sh --tables 1 --seeds 1,2,3 # Table 1 only
#   bash scripts/reproduce_toy_tables.sh --render-only            # re-render from the finished runs
#
# Resumable: run the same command again and finished runs and evaluations are skipped. Everything goes to
# outputs/toy_tables (--out): assets/ (benchmark, base model), runs/<seed>/<run>/ (log.txt, ckpt/, eval/),
# tables/<table>.md and .csv. recipe_dypo/toy/reproduce.py has the details; docs/toy_tables.md the results.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash "$ROOT/scripts/setup_env.sh"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$ROOT/.venv/bin/python" -m recipe_dypo.toy.reproduce "$@"
