#!/usr/bin/env bash
# DYPO on Qwen2.5-Math-7B with the paper's settings (Table 1): 2 nodes x 8 GPUs, k=8 rollouts, lr 1e-6,
# max response 8192, alpha=0.5, beta=1, gamma=1, rollout temperature 1.0, 128 prompts per step
# (configs/paper_setup.yaml + configs/dypo_trainer.yaml).
# Data: docs/data.md "Preparing data" writes $DATA_DIR/train_2t.parquet (2 teachers per prompt) and $DATA_DIR/eval/.
#   TEACHER_SIZE=32b|8b: Table 3's "+ GAL (DYPO)" with a Qwen3-32B / Qwen3-8B second teacher (train_2t_32b.parquet ...)
#   DRY_RUN=1 bash scripts/run_dypo_qwen2.5_7b.sh          # print the resolved config, no GPU needed
#   bash scripts/run_dypo_qwen2.5_7b.sh dypo.alpha=0.2      # any hydra override
MODEL="${MODEL:-qwen2.5-math-7b}"
source "$(dirname "$0")/_dypo_common.sh"
dypo_launch "$@"
