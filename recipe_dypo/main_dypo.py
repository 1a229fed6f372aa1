"""Entry point: ``python -m recipe_dypo.main_dypo [hydra overrides]``.

Runs verl's own v1 task runner with ``trainer.v1.trainer_mode=dypo``; the DYPO trainer, advantage estimator and
policy loss reach the Ray processes through the ``verl.plugins`` entry point. ``DRY_RUN=1`` resolves and prints
the full config, runs verl's and DYPO's config checks, and exits without starting Ray (works on CPU).
"""

from __future__ import annotations

import os

import hydra
from omegaconf import OmegaConf

from recipe_dypo.config import check_verl_config


def dry_run(config) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    OmegaConf.resolve(config)
    print(OmegaConf.to_yaml(config))
    dypo = check_verl_config(config)
    # verl's own checks (batch divisibility, micro-batch settings, ...) need the GPU count it would use.
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    grpo_w, gal_w = dypo.term_weights
    print(
        f"DRY_RUN ok: DYPO alpha={dypo.alpha} (GRPO weight {grpo_w}, GAL weight {gal_w}) beta={dypo.beta} "
        f"gamma={dypo.gamma} gal_reference={dypo.gal_reference}; "
        f"{config.trainer.nnodes} node(s) x {config.trainer.n_gpus_per_node} GPU(s), "
        f"engine={config.actor_rollout_ref.actor.strategy}, rollout={config.actor_rollout_ref.rollout.name}"
    )


@hydra.main(config_path="../configs", config_name="dypo_trainer", version_base=None)
def main(config) -> None:
    if os.environ.get("DRY_RUN", "0") not in ("", "0", "false", "False"):
        dry_run(config)
        return
    check_verl_config(config)
    from verl.trainer.main_ppo import main as verl_main

    # verl's hydra main is a decorated function; call its undecorated body with our composed config.
    verl_main.__wrapped__(config)


if __name__ == "__main__":
    main()
