#!/usr/bin/env bash
# DYPO on Qwen3-4B-Base (paper Table 2): the 7B recipe on 1 node x 8 GPUs, rollout TP 1.
#   DRY_RUN=1 bash scripts/run_dypo_qwen3_4b_base.sh
MODEL=qwen3-4b-base exec bash "$(dirname "$0")/run_dypo_qwen2.5_7b.sh" "$@"
