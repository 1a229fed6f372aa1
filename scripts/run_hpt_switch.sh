#!/usr/bin/env bash
# Baseline "HPT-style switch" on the DYPO trainer (configs/preset/hpt_switch.yaml): hard prompts -> SFT on one
# teacher row, all other prompts -> GRPO (easy groups kept, advantage 0), no GAL.
#   DRY_RUN=1 bash scripts/run_hpt_switch.sh
source "$(dirname "$0")/_dypo_common.sh"
PRESET=hpt_switch rl_launch dypo_trainer "${EXP_NAME:-hpt-switch$TEACHER_TAG-$MODEL}" "$@"
