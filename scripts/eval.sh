#!/usr/bin/env bash
# Evaluate one checkpoint with the paper's protocol (temperature 0.6, top-p 1.0, 8192 new tokens, chat template,
# 32 samples per prompt for AIME24/AIME25/AMC and 1 for MATH-500/Minerva/ARC-c/GPQA-Diamond), grade with
# recipe_dypo.reward, and write per-sample JSONL + summary.json/summary.md to $OUT.
#
#   MODEL=checkpoints/dypo_qwen25math7b/global_step_500/actor/huggingface bash scripts/eval.sh
#   MODEL=Qwen/Qwen2.5-Math-7B LABEL=Qwen2.5-Math-7B OUT=runs/eval/base bash scripts/eval.sh
#   DRY_RUN=1 MODEL=... bash scripts/eval.sh      # print the command only
#
# A verl FSDP actor checkpoint directory (no config.json, has fsdp_config.json) is merged to Hugging Face format
# first with `python -m verl.model_merger merge` into $MODEL/../hf_merged. Interrupted runs resume: run the same
# command again. Extra arguments are passed to `python -m recipe_dypo.eval` (e.g. --benchmarks aime24 math500).
set -euo pipefail

MODEL=${MODEL:?set MODEL=<hf checkpoint dir | verl actor dir | hub id>}
DATA=${DATA:-data/eval}                 # written by data_prep/prepare_eval.py
BACKEND=${BACKEND:-vllm}                # vllm (GPU) | hf (CPU / tiny models)
TP=${TP:-1}                             # vLLM tensor parallel size
GPU_MEM=${GPU_MEM:-0.9}
N_SAMPLES=${N_SAMPLES:-aime24=32,aime25=32,amc=32,default=1}
TEMPERATURE=${TEMPERATURE:-0.6}
TOP_P=${TOP_P:-1.0}
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-8192}
MAX_MODEL_LEN=${MAX_MODEL_LEN:-}        # default: the model's own limit
SEED=${SEED:-0}
WORKERS=${WORKERS:-8}                   # grading processes
PYTHON=${PYTHON:-python}
BENCHMARKS=${BENCHMARKS:-aime24 aime25 amc math500 minerva arc_c gpqa_diamond}  # the paper's seven columns

if [[ -d "$MODEL" && ! -f "$MODEL/config.json" && -f "$MODEL/fsdp_config.json" ]]; then
    MERGED="$(dirname "$MODEL")/hf_merged"
    if [[ ! -f "$MERGED/config.json" ]]; then
        echo "[eval.sh] merging FSDP checkpoint $MODEL -> $MERGED"
        if [[ "${DRY_RUN:-0}" != "1" ]]; then
            "$PYTHON" -m verl.model_merger merge --backend fsdp --local_dir "$MODEL" --target_dir "$MERGED"
        fi
    fi
    MODEL="$MERGED"
fi

LABEL=${LABEL:-$(basename "$(dirname "$MODEL")")_$(basename "$MODEL")}
OUT=${OUT:-runs/eval/${LABEL}}

if [[ ! -e "$DATA" ]]; then
    # fall back to LUFFY's eval files shipped beside the repository (see ../shared/README.md)
    LUFFY=${LUFFY:-../shared/benchmarks/luffy}
    DATA="$LUFFY/valid.all.parquet $LUFFY/valid.arc_c.parquet $LUFFY/valid.gpqa.parquet"
    echo "[eval.sh] no data/eval; using LUFFY's files: $DATA"
fi

# shellcheck disable=SC2206
CMD=("$PYTHON" -m recipe_dypo.eval
    --model "$MODEL" --label "$LABEL" --output-dir "$OUT" --backend "$BACKEND"
    --n-samples "$N_SAMPLES" --temperature "$TEMPERATURE" --top-p "$TOP_P" --max-new-tokens "$MAX_NEW_TOKENS"
    --seed "$SEED" --num-workers "$WORKERS" --tensor-parallel-size "$TP" --gpu-memory-utilization "$GPU_MEM"
    --benchmarks $BENCHMARKS)
[[ -n "$MAX_MODEL_LEN" ]] && CMD+=(--max-model-len "$MAX_MODEL_LEN")
# shellcheck disable=SC2206
CMD+=(--data $DATA "$@")

echo "[eval.sh] ${CMD[*]}"
if [[ "${DRY_RUN:-0}" == "1" ]]; then
    exit 0
fi
"${CMD[@]}"
