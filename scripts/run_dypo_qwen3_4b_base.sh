#!/usr/bin/env bash
# DYPO on Qwen3-4B-Base (paper Table 2): same recipe as the 7B run on 1 node x 8 GPUs.
#   DRY_RUN=1 bash scripts/run_dypo_qwen3_4b_base.sh
source "$(dirname "$0")/_dypo_common.sh"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-4B-Base}" NNODES="${NNODES:-1}" EXP_NAME="${EXP_NAME:-dypo-qwen3-4b-base}" \
  exec bash "$(dirname "$0")/run_dypo_qwen2.5_7b.sh" actor_rollout_ref.rollout.tensor_model_parallel_size=1 "$@"
