# Shared by the run_*.sh scripts: locate the repo and python, and launch recipe_dypo.main_dypo.
# Environment knobs every script understands:
#   DRY_RUN=1        resolve and print the full hydra config, run verl's and DYPO's checks, exit (no GPU, no Ray)
#   ENGINE=fsdp|fsdp2|megatron   training engine (default fsdp)
#   ROLLOUT=vllm|sglang          rollout server (default vllm)
#   NNODES, GPUS_PER_NODE, MODEL_PATH, TRAIN_FILE, VAL_FILE, EXP_NAME, CKPT_DIR
# Extra hydra overrides are passed through: bash scripts/run_x.sh dypo.alpha=0.2 trainer.total_epochs=2
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
ENGINE="${ENGINE:-fsdp}"
ROLLOUT="${ROLLOUT:-vllm}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
DATA_DIR="${DATA_DIR:-$REPO_ROOT/data}"

# Engine-specific overrides; the DYPO loss itself is engine-agnostic (one function, installed with set_loss_fn).
engine_overrides() {
  case "$ENGINE" in
    fsdp|fsdp2)
      echo "actor_rollout_ref.actor.strategy=$ENGINE actor_rollout_ref.ref.strategy=$ENGINE" \
           "actor_rollout_ref.actor.fsdp_config.param_offload=false" \
           "actor_rollout_ref.actor.fsdp_config.optimizer_offload=false" ;;
    megatron)
      echo "model_engine=megatron" \
           "actor_rollout_ref.actor.megatron.tensor_model_parallel_size=${MEGATRON_TP:-2}" \
           "actor_rollout_ref.actor.megatron.pipeline_model_parallel_size=${MEGATRON_PP:-1}" \
           "actor_rollout_ref.ref.megatron.tensor_model_parallel_size=${MEGATRON_TP:-2}" \
           "actor_rollout_ref.ref.megatron.pipeline_model_parallel_size=${MEGATRON_PP:-1}" ;;
    *) echo "ENGINE must be fsdp, fsdp2 or megatron, got '$ENGINE'" >&2; return 1 ;;
  esac
}

dypo_launch() {
  # shellcheck disable=SC2046
  HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-0}" "$PYTHON" -m recipe_dypo.main_dypo $(preset_args) \
    $(engine_overrides) \
    actor_rollout_ref.rollout.name="$ROLLOUT" \
    trainer.nnodes="$NNODES" \
    trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    "$@"
}

# PRESET=released_code selects configs/preset/released_code.yaml (the authors' released-code weights).
preset_args() {
  case "${PRESET:-paper}" in
    paper) ;;
    released_code) echo "+preset=released_code" ;;
    *) echo "PRESET must be paper or released_code, got '${PRESET}'" >&2; return 1 ;;
  esac
}
