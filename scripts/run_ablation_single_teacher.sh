#!/usr/bin/env bash
# Ablation (Table 4, single teacher): full DYPO, but hard prompts draw only TEACHER's solution
# (dypo.teacher_names); the two-teacher row is scripts/run_dypo_qwen2.5_7b.sh. The paper does not say which
# teacher its single-teacher run keeps; DeepSeek-R1 (the default) is our reading. The trainer stops at start-up
# if no row of the training file has a teacher of that name.
#   DRY_RUN=1 bash scripts/run_ablation_single_teacher.sh
#   TEACHER=qwen3-235b-a22b bash scripts/run_ablation_single_teacher.sh
source "$(dirname "$0")/_dypo_common.sh"
TEACHER="${TEACHER:-deepseek-r1}"
rl_launch dypo_trainer "${EXP_NAME:-dypo-1t-$TEACHER$TEACHER_TAG-$MODEL}" "dypo.teacher_names=[$TEACHER]" "$@"
