#!/usr/bin/env bash
# Baseline "RL": plain verl GRPO (verl's advantage estimator, loss and trainer; configs/grpo_trainer.yaml) on
# the setup DYPO uses (configs/paper_setup.yaml): same data, k=8, lr 1e-6, 8192-token responses.
#   DRY_RUN=1 bash scripts/run_grpo.sh                   # Qwen2.5-Math-7B (Table 1)
#   MODEL=qwen3-4b-base bash scripts/run_grpo.sh         # Qwen3-4B-Base (Table 2)
source "$(dirname "$0")/_dypo_common.sh"
rl_launch grpo_trainer "${EXP_NAME:-grpo-$MODEL}" "$@"
