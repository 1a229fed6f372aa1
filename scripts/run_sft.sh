#!/usr/bin/env bash
# Baseline "SFT" (also Table 3's "+Multi-Teacher SFT"): verl's own SFT trainer on every teacher solution of the
# training set (configs/sft_trainer.yaml), launched with torchrun on each node.
# Data: python -m data_prep.make_sft_data --input data/train_2t.parquet --output data/sft_2t.parquet
#   DRY_RUN=1 bash scripts/run_sft.sh
#   SFT_FILE=data/sft_1t.parquet bash scripts/run_sft.sh   # single-teacher SFT (make_sft_data --teacher NAME)
# Multi-node: run on every node with NODE_RANK, MASTER_ADDR, MASTER_PORT set.
source "$(dirname "$0")/_dypo_common.sh"
sft_launch "${EXP_NAME:-sft-$MODEL}" "$@"
