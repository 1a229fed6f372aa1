#!/usr/bin/env bash
# Baseline "SFT->RL" (sequential pipeline): stage 1 = scripts/run_sft.sh (verl SFT on the teacher solutions:
# SFT_TEACHERS=1, the default, DeepSeek-R1 only = Table 1's SFT -> RL; SFT_TEACHERS=2 [TEACHER_SIZE=...], both
# teachers = Table 3's "+ RL", our reading), then
# stage 2 = scripts/run_grpo.sh (plain verl GRPO) starting from stage 1's last checkpoint in Hugging Face format
# (<SFT_CKPT_DIR>/global_step_N/huggingface, written because sft_trainer.yaml saves hf_model).
#   DRY_RUN=1 bash scripts/run_sft_then_rl.sh        # resolves both stages' configs (stage 2 from the real
#                                                     # checkpoint when SFT_CKPT_DIR exists, else a placeholder)
#   STAGES=rl bash scripts/run_sft_then_rl.sh         # stage 2 only, from the existing SFT checkpoints
# Overrides after the script name go to stage 2 (GRPO); SFT_ARGS="key=value ..." go to stage 1.
source "$(dirname "$0")/_dypo_common.sh"
STAGES="${STAGES:-sft,rl}"
export SFT_CKPT_DIR="${SFT_CKPT_DIR:-checkpoints/sft-$SFT_TAG-for-rl-$MODEL}"
read -r -a sft_args <<< "${SFT_ARGS:-}"

if [[ ",$STAGES," == *",sft,"* ]]; then
  echo "== stage 1: SFT -> $SFT_CKPT_DIR" >&2
  sft_launch "sft-$SFT_TAG-for-rl-$MODEL" "${sft_args[@]}"
fi
if [[ ",$STAGES," == *",rl,"* ]]; then
  if is_dry_run && [[ ! -d "$SFT_CKPT_DIR" ]]; then
    SFT_MODEL="$SFT_CKPT_DIR/global_step_LAST/huggingface"  # stage 1 has not run: a placeholder to resolve with
  else
    SFT_MODEL="$("$PYTHON" -c 'import contextlib, sys
from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path
with contextlib.redirect_stdout(sys.stderr):  # verl prints "Found checkpoint" itself
    path = find_latest_ckpt_path(sys.argv[1])
sys.exit(f"no SFT checkpoint under {sys.argv[1]}; run stage 1 (STAGES=sft) first") if path is None else print(path)
' "$SFT_CKPT_DIR")/huggingface"
    [[ -f "$SFT_MODEL/config.json" ]] || { echo "stage 2: $SFT_MODEL has no config.json (was hf_model saved?)" >&2; exit 1; }
  fi
  echo "== stage 2: GRPO from $SFT_MODEL" >&2
  MODEL_PATH="$SFT_MODEL"
  rl_launch grpo_trainer "${EXP_NAME:-sft-$SFT_TAG-then-grpo-$MODEL}" "$@"
fi
