#!/usr/bin/env bash
# Baseline "SFT": verl's own SFT trainer (configs/sft_trainer.yaml) on teacher solutions, launched with torchrun
# on each node. SFT_TEACHERS=1 (default): DeepSeek-R1 traces only, data/sft_1t.parquet (Table 1's SFT = Table 3's
# "+ SFT"); SFT_TEACHERS=2: both teachers, data/sft_2t[_32b|_8b].parquet by TEACHER_SIZE (Table 3's
# "+ Multi-Teacher"). Data: scripts/prepare_teacher_data.sh (or data_prep/make_sft_data.py).
#   DRY_RUN=1 bash scripts/run_sft.sh
#   TEACHER_SIZE=32b SFT_TEACHERS=2 bash scripts/run_sft.sh   # "+ Multi-Teacher (32B)"
#   SFT_FILE=data/my_sft.parquet bash scripts/run_sft.sh      # any SFT parquet
# Multi-node: run on every node with NODE_RANK, MASTER_ADDR, MASTER_PORT set.
source "$(dirname "$0")/_dypo_common.sh"
sft_launch "${EXP_NAME:-sft-$SFT_TAG-$MODEL}" "$@"
