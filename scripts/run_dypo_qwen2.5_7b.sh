#!/usr/bin/env bash
# DYPO on Qwen2.5-Math-7B with the paper's settings (Table 1): 2 nodes x 8 GPUs, k=8 rollouts, lr 1e-6,
# max response 8192, alpha=0.5, beta=1, gamma=1, rollout temperature 1.0 as in LUFFY, 128 prompts per step.
# Data: README "Preparing data" writes $DATA_DIR/train_2t.parquet (2 teachers per prompt) and $DATA_DIR/eval/.
#   DRY_RUN=1 bash scripts/run_dypo_qwen2.5_7b.sh          # print the resolved config, no GPU needed
#   bash scripts/run_dypo_qwen2.5_7b.sh dypo.alpha=0.2      # any hydra override
NNODES="${NNODES:-2}"
source "$(dirname "$0")/_dypo_common.sh"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-Math-7B}"
TRAIN_FILE="${TRAIN_FILE:-$DATA_DIR/train_2t.parquet}"
VAL_FILE="${VAL_FILE:-[$DATA_DIR/eval/aime24.parquet,$DATA_DIR/eval/amc.parquet,$DATA_DIR/eval/math500.parquet]}"
EXP_NAME="${EXP_NAME:-dypo-qwen2.5-math-7b}"

dypo_launch \
  data.train_files="$TRAIN_FILE" \
  data.val_files="$VAL_FILE" \
  data.train_batch_size=128 \
  data.max_prompt_length=1024 \
  data.max_response_length=8192 \
  actor_rollout_ref.model.path="$MODEL_PATH" \
  actor_rollout_ref.model.use_remove_padding=true \
  actor_rollout_ref.model.enable_gradient_checkpointing=true \
  actor_rollout_ref.actor.optim.lr=1e-6 \
  actor_rollout_ref.actor.use_dynamic_bsz=true \
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384 \
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true \
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768 \
  actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true \
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768 \
  actor_rollout_ref.rollout.n=8 \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
  actor_rollout_ref.rollout.gpu_memory_utilization=0.7 \
  actor_rollout_ref.rollout.val_kwargs.temperature=0.6 \
  actor_rollout_ref.rollout.val_kwargs.do_sample=true \
  trainer.experiment_name="$EXP_NAME" \
  trainer.default_local_dir="${CKPT_DIR:-checkpoints/$EXP_NAME}" \
  trainer.total_epochs=1 \
  trainer.save_freq=50 \
  trainer.test_freq=25 \
  trainer.logger='["console","file"]' \
  "$@"
