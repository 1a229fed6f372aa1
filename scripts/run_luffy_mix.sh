#!/usr/bin/env bash
# Baseline "LUFFY-style off-policy mixing" on the DYPO trainer (configs/preset/luffy_mix.yaml): 7 rollouts plus
# one teacher solution per group, group-normalised advantages, policy shaping on the teacher's tokens.
#   DRY_RUN=1 bash scripts/run_luffy_mix.sh
source "$(dirname "$0")/_dypo_common.sh"
PRESET=luffy_mix rl_launch dypo_trainer "${EXP_NAME:-luffy-mix$TEACHER_TAG-$MODEL}" "$@"
