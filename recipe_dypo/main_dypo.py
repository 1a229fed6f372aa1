"""Entry point: ``python -m recipe_dypo.main_dypo [hydra overrides]``.

Runs verl's own v1 task runner with ``trainer.v1.trainer_mode=dypo``; the DYPO trainer, advantage estimator and
policy loss reach the Ray processes through the ``verl.plugins`` entry point. ``--config-name grpo_trainer``
runs plain verl GRPO on the same shared setup (the baseline; nothing of DYPO is used). ``DRY_RUN=1`` resolves
and prints the full config, runs verl's and DYPO's config checks, and exits without starting Ray (works on CPU);
it also resolves ``--config-name sft_trainer`` (verl's SFT trainer, launched with torchrun by the scripts).

``trainer.device=cpu`` (``+backend=cpu``, or ``DEVICE=cpu`` in the scripts) selects the CPU backend of
:mod:`recipe_dypo.cpu` in this process before Ray starts, so every Ray worker runs on verl's ``cpu`` platform.
"""

from __future__ import annotations

import os

import hydra

from recipe_dypo.config import check_verl_config
from recipe_dypo.dry_run import dry_run, is_dypo


def joining_a_cluster(config) -> bool:
    """With a Ray cluster already running (``RAY_ADDRESS`` or ``ray_kwargs.ray_init.address``; how a multi-node
    run starts), ray.init joins it and refuses to be told the resources ("When connecting to an existing
    cluster, num_cpus and num_gpus must not be provided"): those come from each node's ``ray start``. Drop them
    from verl's ray_init (the CPU backend sets them for the local cluster it starts otherwise)."""
    from omegaconf import open_dict

    ray_init = config.get("ray_kwargs", {}).get("ray_init", None)
    if ray_init is None or not (os.environ.get("RAY_ADDRESS") or ray_init.get("address")):
        return False
    with open_dict(ray_init):
        for key in ("num_cpus", "num_gpus"):
            ray_init.pop(key, None)
    return True


@hydra.main(config_path="../configs", config_name="dypo_trainer", version_base=None)
def main(config) -> None:
    if os.environ.get("DRY_RUN", "0") not in ("", "0", "false", "False"):
        dry_run(config)
        return
    if "actor_rollout_ref" not in config:
        raise SystemExit(
            "this is not an RL config: launch verl's SFT trainer with torchrun (see scripts/run_sft.sh); "
            "python -m recipe_dypo.main_dypo only dry-runs it (DRY_RUN=1)"
        )
    if is_dypo(config):
        check_verl_config(config)
    if config.trainer.get("device") == "cpu":
        from recipe_dypo import cpu

        cpu.activate()  # sets VERL_PLATFORM=cpu, which the Ray workers started below inherit
    joining_a_cluster(config)
    from verl.trainer.main_ppo import main as verl_main

    # verl's hydra main is a decorated function; call its undecorated body with our composed config.
    verl_main.__wrapped__(config)


if __name__ == "__main__":
    main()
