"""``DRY_RUN=1``: resolve a launch's full hydra config on CPU, run the checks verl and DYPO would run, print it.

Works for the three kinds of config the scripts launch: DYPO (``trainer.v1.trainer_mode=dypo``), plain verl RL
(GRPO, stage 2 of SFT->RL) and verl's SFT trainer (SFT baseline, stage 1 of SFT->RL). No Ray, no GPU, no hub.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from recipe_dypo.config import check_verl_config


def is_dypo(config) -> bool:
    return OmegaConf.select(config, "trainer.v1.trainer_mode") == "dypo"


CONFIG_BEGIN, CONFIG_END = "----- resolved config -----", "----- end of resolved config -----"


def print_config(config) -> None:
    """Print the resolved config between markers (tests and tools parse it back with ``yaml.safe_load``)."""
    OmegaConf.resolve(config)
    print(CONFIG_BEGIN)
    print(OmegaConf.to_yaml(config), end="")
    print(CONFIG_END, flush=True)


def _get(config, key: str):
    return OmegaConf.select(config, key, throw_on_missing=False) or "(unset)"


def dry_run_rl(config) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    print_config(config)
    dypo = check_verl_config(config) if is_dypo(config) else None
    # verl's own checks (batch divisibility, micro-batch settings, ...) need the GPU count it would use.
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    if dypo is not None:
        grpo_w, gal_w = dypo.term_weights
        what = (
            f"DYPO alpha={dypo.alpha} (GRPO weight {grpo_w}, GAL weight {gal_w}) beta={dypo.beta} "
            f"gamma={dypo.gamma} gal_reference={dypo.gal_reference} easy->{dypo.easy_groups} "
            f"hard->{dypo.hard_groups} teachers={dypo.teacher_names or 'all'}"
            + (f" offpolicy_mixing(shaping_gamma={dypo.shaping_gamma})" if dypo.offpolicy_mixing else "")
        )
    else:
        what = f"verl trainer_mode={config.trainer.v1.trainer_mode} adv_estimator={config.algorithm.adv_estimator}"
    print(
        f"DRY_RUN ok: {what}; {config.trainer.nnodes} node(s) x {config.trainer.n_gpus_per_node} GPU(s), "
        f"engine={config.actor_rollout_ref.actor.strategy}, rollout={_get(config, 'actor_rollout_ref.rollout.name')}, "
        f"model={_get(config, 'actor_rollout_ref.model.path')}"
    )


def dry_run_sft(config) -> None:
    """verl's SFT trainer builds these dataclasses first (``SFTTrainer._build_config``); the model config is left
    out because it downloads the model's HF config."""
    from verl.utils.config import omega_conf_to_dataclass

    print_config(config)
    for section in ("engine", "optim", "checkpoint", "profiler"):
        omega_conf_to_dataclass(config[section])
    custom = config.data.get("custom_cls") or {}
    if custom.get("path"):
        from verl.utils.import_utils import load_extern_object

        load_extern_object(custom.path, custom.name)  # the dataset class verl's SFT trainer will build
    data, trainer = config.data, config.trainer
    world = trainer.nnodes * trainer.n_gpus_per_node
    if data.train_batch_size % world:
        raise ValueError(f"data.train_batch_size={data.train_batch_size} is not divisible by {world} GPUs")
    print(
        f"DRY_RUN ok: verl SFT trainer, {trainer.nnodes} node(s) x {trainer.n_gpus_per_node} GPU(s), "
        f"engine={config.engine.get('strategy', 'megatron')}, model={config.model.path}, data={data.train_files}, "
        f"lr={config.optim.lr}, epochs={trainer.total_epochs}, save_contents={list(config.checkpoint.save_contents)}"
    )


def dry_run(config) -> None:
    if "actor_rollout_ref" in config:
        dry_run_rl(config)
    elif "engine" in config and "optim" in config:
        dry_run_sft(config)
    else:
        raise ValueError("DRY_RUN: neither a verl RL config (actor_rollout_ref) nor an SFT config (engine, optim)")
