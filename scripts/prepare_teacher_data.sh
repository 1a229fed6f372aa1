#!/usr/bin/env bash
# Build the training and SFT data of one teacher setting (docs/data.md "Preparing data"): DeepSeek-R1 (LUFFY's traces)
# plus a second teacher chosen by TEACHER_SIZE (Table 3's teacher strengths; data_prep/teacher_sizes.py):
#   235b: Qwen3-235B-A22B (the paper's second teacher, the default)  -> data/train_2t.parquet,     data/sft_2t.parquet
#   32b:  Qwen3-32B (our reading of "32B")                           -> data/train_2t_32b.parquet, data/sft_2t_32b.parquet
#   8b:   Qwen3-8B  (our reading of "8B")                            -> data/train_2t_8b.parquet,  data/sft_2t_8b.parquet
# and data/sft_1t.parquet (DeepSeek-R1 traces only: Table 1's SFT baseline, Table 3's "+ SFT").
#
#   DRY_RUN=1 TEACHER_SIZE=32b bash scripts/prepare_teacher_data.sh      # print the commands only
#   TEACHER_SIZE=8b bash scripts/prepare_teacher_data.sh                 # GPUs for the generation step (vLLM)
#   STEPS=merge,validate,sft TEACHER_SIZE=32b bash scripts/prepare_teacher_data.sh   # traces already generated
#
# Steps (STEPS, comma-separated; default all): train (LUFFY's data -> data/train.parquet, skipped when it exists),
# generate (second teacher's traces, resumable), merge (2 teachers per prompt), validate, sft (both SFT files).
# Knobs: DATA_DIR (data), TRAIN_SOURCE (Elliott/Openr1-Math-46k-8192), TP (vLLM tensor parallel size, default per
# teacher), N_SAMPLES (4 per prompt), PYTHON.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
TEACHER_SIZE="${TEACHER_SIZE:-235b}"
DATA_DIR="${DATA_DIR:-data}"
STEPS="${STEPS:-train,generate,merge,validate,sft}"
setting="$("$PYTHON" -m data_prep.teacher_sizes "$TEACHER_SIZE")" || exit 1
eval "$setting"   # TEACHER_MODEL TEACHER_NAME TEACHER_TP TRACES_FILE TRAIN_2T_FILE SFT_2T_FILE SFT_1T_FILE FIRST_TEACHER

is_dry_run() { [[ -n "${DRY_RUN:-}" && "${DRY_RUN}" != "0" && "${DRY_RUN}" != "false" ]]; }
wants() { [[ ",$STEPS," == *",$1,"* ]]; }
run() { echo "+ $*" >&2; is_dry_run || "$@"; }

echo "== teacher setting $TEACHER_SIZE: $FIRST_TEACHER + $TEACHER_NAME ($TEACHER_MODEL)" >&2
if wants train; then
  if [[ -f "$DATA_DIR/train.parquet" ]]; then
    echo "== $DATA_DIR/train.parquet exists: train step skipped" >&2
  else
    run "$PYTHON" -m data_prep.prepare_train --input "${TRAIN_SOURCE:-Elliott/Openr1-Math-46k-8192}" \
      --output "$DATA_DIR/train.parquet" --teacher-name "$FIRST_TEACHER"
  fi
fi
if wants generate; then
  run "$PYTHON" -m data_prep.generate_teacher_traces --input "$DATA_DIR/train.parquet" --model "$TEACHER_MODEL" \
    --teacher-name "$TEACHER_NAME" --n "${N_SAMPLES:-4}" --max-tokens 8192 \
    --tensor-parallel-size "${TP:-$TEACHER_TP}" --output "$DATA_DIR/$TRACES_FILE"
fi
if wants merge; then
  run "$PYTHON" -m data_prep.add_teacher --input "$DATA_DIR/train.parquet" --traces "$DATA_DIR/$TRACES_FILE" \
    --output "$DATA_DIR/$TRAIN_2T_FILE" --min-teachers 2 --drop-short
fi
if wants validate; then
  run "$PYTHON" -m data_prep.validate "$DATA_DIR/$TRAIN_2T_FILE" --min-teachers 2 --require-think
fi
if wants sft; then
  run "$PYTHON" -m data_prep.make_sft_data --input "$DATA_DIR/$TRAIN_2T_FILE" --output "$DATA_DIR/$SFT_2T_FILE"
  run "$PYTHON" -m data_prep.make_sft_data --input "$DATA_DIR/train.parquet" --output "$DATA_DIR/$SFT_1T_FILE" \
    --teacher "$FIRST_TEACHER"
fi
