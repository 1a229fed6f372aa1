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

# What the Ray workers need from this process's environment (VERL_PLATFORM=cpu, the file logger's path, DYPO_*
# test hooks, offline mode). A cluster that ray.init starts inherits all of it; the nodes of a cluster that is
# already running were started elsewhere (`ray start`) and do not, so it travels in the job's runtime_env.
WORKER_ENV_PREFIXES = ("VERL_", "DYPO_")
WORKER_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS")
VERL_SETS_ITSELF = ("VERL_FULL_DETERMINISM", "VERL_RL_INSIGHT_ENABLE")  # verl's run_ppo decides these later


def joining_a_cluster(config) -> bool:
    """With a Ray cluster already running (``RAY_ADDRESS`` or ``ray_kwargs.ray_init.address``; how a multi-node
    run starts), ray.init joins it and refuses to be told the resources ("When connecting to an existing
    cluster, num_cpus and num_gpus must not be provided"): those come from each node's ``ray start``. Drop them
    from verl's ray_init and hand this process's worker settings to the job's runtime_env (verl merges
    ``ray_init.runtime_env`` over its defaults, verl/trainer/main_ppo.py:71); the config's own values win."""
    from omegaconf import open_dict

    ray_init = config.get("ray_kwargs", {}).get("ray_init", None)
    if ray_init is None or not (os.environ.get("RAY_ADDRESS") or ray_init.get("address")):
        return False
    forward = {
        key: value
        for key, value in os.environ.items()
        if (key.startswith(WORKER_ENV_PREFIXES) or key in WORKER_ENV) and key not in VERL_SETS_ITSELF
    }
    with open_dict(ray_init):
        for key in ("num_cpus", "num_gpus"):
            ray_init.pop(key, None)
        if ray_init.get("runtime_env") is None:
            ray_init.runtime_env = {}
        if ray_init.runtime_env.get("env_vars") is None:
            ray_init.runtime_env.env_vars = {}
        env_vars = ray_init.runtime_env.env_vars
        for key, value in forward.items():
            env_vars.setdefault(key, value)
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

        cpu.activate()  # sets VERL_PLATFORM=cpu for the Ray workers started below
    joining_a_cluster(config)  # after activate(): on a running cluster the workers get it through runtime_env
    from verl.trainer.main_ppo import main as verl_main

    # verl's hydra main is a decorated function; call its undecorated body with our composed config.
    verl_main.__wrapped__(config)


if __name__ == "__main__":
    main()
