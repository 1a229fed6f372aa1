#!/usr/bin/env bash
# Ablation (Table 3, "+Dynamic Grading"): DYPO's grading and multi-teacher SFT with GRPO on mid prompts, no GAL
# (configs/preset/no_gal.yaml). The next row, "+GAL", is the full recipe: scripts/run_dypo_qwen2.5_7b.sh.
#   DRY_RUN=1 bash scripts/run_ablation_no_gal.sh
#   TEACHER_SIZE=8b bash scripts/run_ablation_no_gal.sh    # the 8B-teacher cell of the row
source "$(dirname "$0")/_dypo_common.sh"
PRESET=no_gal rl_launch dypo_trainer "${EXP_NAME:-dypo-no-gal$TEACHER_TAG-$MODEL}" "$@"
