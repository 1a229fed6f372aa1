#!/usr/bin/env bash
# Megatron variant of run_dypo_qwen2.5_7b.sh: same DYPO loss and config, Megatron training engine (TP=${MEGATRON_TP:-2}).
#   DRY_RUN=1 bash scripts/run_dypo_qwen2.5_7b_megatron.sh
ENGINE=megatron exec bash "$(dirname "$0")/run_dypo_qwen2.5_7b.sh" "$@"
