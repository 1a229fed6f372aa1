#!/usr/bin/env bash
# Table 5: DYPO over alpha x beta (GRPO/GAL mix x GAL temperature), several seeds per cell, one run after
# another. Each cell is scripts/run_dypo_qwen2.5_7b.sh with dypo.alpha, dypo.beta and the seeds of the data
# order, rollout sampling and teacher draws overridden. Resumable: a cell that finished leaves
# <CKPT_ROOT>/<exp>/SWEEP_DONE and is skipped next time; an interrupted cell resumes from its checkpoints.
#   DRY_RUN=1 bash scripts/run_sweep_alpha_beta.sh    # resolves every alpha x beta cell (first seed)
#   ALPHAS="0.5" BETAS="0.1 1" SEEDS="1 2 3" bash scripts/run_sweep_alpha_beta.sh trainer.total_epochs=1
source "$(dirname "$0")/_dypo_common.sh"
ALPHAS="${ALPHAS:-0.2 0.5 0.8}"
BETAS="${BETAS:-0.1 1 2}"
SEEDS="${SEEDS:-1 2 3}"
CKPT_ROOT="${CKPT_ROOT:-checkpoints}"
read -r -a seeds <<< "$SEEDS"
cells=0
for alpha in $ALPHAS; do
  for beta in $BETAS; do
    for seed in "${seeds[@]}"; do
      if is_dry_run && [[ "$seed" != "${seeds[0]}" ]]; then continue; fi  # seeds only change the seed keys
      exp="dypo-a${alpha}-b${beta}-s${seed}-$MODEL"
      if [[ -f "$CKPT_ROOT/$exp/SWEEP_DONE" ]]; then echo "== $exp: done, skipped" >&2; continue; fi
      echo "== cell alpha=$alpha beta=$beta seed=$seed -> $exp" >&2
      EXP_NAME="$exp" CKPT_DIR="$CKPT_ROOT/$exp" bash "$SCRIPTS_DIR/run_dypo_qwen2.5_7b.sh" \
        dypo.alpha="$alpha" dypo.beta="$beta" dypo.seed="$seed" data.seed="$seed" \
        actor_rollout_ref.rollout.seed="$seed" "$@"
      is_dry_run || touch "$CKPT_ROOT/$exp/SWEEP_DONE"
      cells=$((cells + 1))
    done
  done
done
echo "sweep: $cells run(s) $(is_dry_run && echo resolved || echo finished); seeds: ${seeds[*]}" >&2
