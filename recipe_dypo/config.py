"""The ``dypo:`` config section and the checks that keep a launch honest before any GPU is touched."""

from __future__ import annotations

from dataclasses import dataclass, field

from recipe_dypo.grading import EASY_ROUTES, HARD_ROUTES
from recipe_dypo.losses import mixing_weights

# verl's GRPO advantage estimators; on every row DYPO trains they equal recipe_dypo.losses.grpo_advantages.
GRPO_ESTIMATORS = ("grpo", "grpo_vectorized")


@dataclass
class DypoConfig:
    alpha: float = 0.5
    beta: float = 1.0
    gamma: float = 1.0
    grpo_weight: float | None = None
    gal_weight: float | None = None
    success_threshold: float = 1.0
    gal_reference: bool = True
    sft_token_mean: bool = True
    seed: int = 1
    teacher_fields: dict = field(
        default_factory=lambda: {"teachers": "teachers", "target": "target", "target_list": "target_lst"}
    )
    max_teacher_tokens: int = 8192
    validate_data: bool = True
    easy_groups: str = "drop"
    hard_groups: str = "sft"
    teacher_names: list | None = None
    offpolicy_mixing: bool = False
    shaping_gamma: float = 0.1
    kl_coef: float = 0.0
    debug_dump_dir: str | None = None
    resume_without_state: bool = False
    on_bad_row: str = "skip"
    grad_metrics_interval: int = 1
    padding_row_tokens: int | None = None

    @property
    def term_weights(self) -> tuple[float, float]:
        """(GRPO weight, GAL weight) on mid prompts."""
        return mixing_weights(self.alpha, self.grpo_weight, self.gal_weight)

    @classmethod
    def from_config(cls, cfg) -> DypoConfig:
        """Build from the resolved ``config.dypo`` (DictConfig or dict)."""
        raw = dict(cfg) if cfg is not None else {}
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"Unknown dypo.* config keys: {unknown}; known keys: {sorted(known)}")
        if "teacher_fields" in raw:
            raw["teacher_fields"] = dict(raw["teacher_fields"])
        if raw.get("teacher_names") is not None:
            names = raw["teacher_names"]
            raw["teacher_names"] = [names] if isinstance(names, str) else [str(n) for n in names]
            if not raw["teacher_names"]:
                raise ValueError("dypo.teacher_names must be null (all teachers) or a non-empty list of names")
        out = cls(**raw)
        out.term_weights  # noqa: B018  (validates alpha and weights)
        if out.beta <= 0:
            raise ValueError(f"dypo.beta must be > 0, got {out.beta}")
        if out.gamma < 0:
            raise ValueError(f"dypo.gamma must be >= 0, got {out.gamma}")
        if out.easy_groups not in EASY_ROUTES:
            raise ValueError(f"dypo.easy_groups must be one of {EASY_ROUTES}, got {out.easy_groups!r}")
        if out.hard_groups not in HARD_ROUTES:
            raise ValueError(f"dypo.hard_groups must be one of {HARD_ROUTES}, got {out.hard_groups!r}")
        if out.offpolicy_mixing and (out.easy_groups, out.hard_groups) != ("rl", "rl"):
            raise ValueError(
                "dypo.offpolicy_mixing=true adds a teacher row to every group, so every group must stay: set "
                f"dypo.easy_groups=rl and dypo.hard_groups=rl (got {out.easy_groups}, {out.hard_groups})"
            )
        if out.shaping_gamma <= 0:
            raise ValueError(f"dypo.shaping_gamma must be > 0, got {out.shaping_gamma}")
        if out.kl_coef < 0:
            raise ValueError(f"dypo.kl_coef must be >= 0, got {out.kl_coef}")
        if out.on_bad_row not in ("skip", "stop"):
            raise ValueError(f"dypo.on_bad_row must be skip or stop, got {out.on_bad_row!r}")
        if out.padding_row_tokens is not None and out.padding_row_tokens < 2:
            raise ValueError(
                f"dypo.padding_row_tokens must be null or >= 2 (a prompt and a response token), got "
                f"{out.padding_row_tokens}"
            )
        if out.grad_metrics_interval < 0:
            raise ValueError(f"dypo.grad_metrics_interval must be >= 0 (0: never), got {out.grad_metrics_interval}")
        if out.max_teacher_tokens < 1:
            raise ValueError(f"dypo.max_teacher_tokens must be >= 1, got {out.max_teacher_tokens}")
        return out


def check_verl_config(config) -> DypoConfig:
    """Validate the parts of a full verl config that DYPO depends on; returns the parsed ``dypo`` section.

    Raises ValueError with the offending key and the override that fixes it.
    """
    dypo = DypoConfig.from_config(config.get("dypo"))
    actor = config.actor_rollout_ref.actor
    problems = []
    if config.algorithm.adv_estimator not in GRPO_ESTIMATORS:
        problems.append(
            f"algorithm.adv_estimator={config.algorithm.adv_estimator}: DYPO's RL term is GRPO (set it to grpo)"
        )
    if actor.policy_loss.get("loss_mode") != "vanilla":
        problems.append(
            f"actor_rollout_ref.actor.policy_loss.loss_mode={actor.policy_loss.get('loss_mode')}: DYPO's GRPO term "
            "is verl's clipped surrogate (set it to vanilla)"
        )
    if config.trainer.v1.trainer_mode != "dypo" or not config.trainer.use_v1:
        problems.append("trainer.v1.trainer_mode must be dypo with trainer.use_v1=true")
    if dypo.gal_reference and not (actor.use_kl_loss or config.algorithm.get("use_kl_in_reward", False)):
        problems.append(
            "dypo.gal_reference=true needs verl's reference model: set actor_rollout_ref.actor.use_kl_loss=true "
            "(kl_loss_coef=0 keeps the KL term off), or use reference-free GAL with dypo.gal_reference=false"
        )
    if actor.use_kl_loss and actor.get("kl_loss_coef", 0.0) != 0:
        problems.append(
            f"actor_rollout_ref.actor.kl_loss_coef={actor.kl_loss_coef}: verl's KL loss would apply to every row, "
            "teacher rows included, without the alpha weight; set it to 0.0 and use dypo.kl_coef (KL on RL rows only)"
        )
    if dypo.kl_coef > 0 and not actor.use_kl_loss:
        problems.append(
            f"dypo.kl_coef={dypo.kl_coef} needs verl's reference model: set actor_rollout_ref.actor.use_kl_loss=true "
            "(with kl_loss_coef=0.0)"
        )
    if config.actor_rollout_ref.rollout.n < 2:
        problems.append(f"actor_rollout_ref.rollout.n={config.actor_rollout_ref.rollout.n}: DYPO grades groups of k>=2")
    rollout_corr = config.algorithm.get("rollout_correction") or {}
    if rollout_corr.get("bypass_mode", False):
        problems.append(
            "algorithm.rollout_correction.bypass_mode=true uses rollout log-probs as theta_old, and DYPO's teacher "
            "rows have none (they were never sampled): keep bypass_mode=false (verl recomputes theta_old)"
        )
    if config.algorithm.get("filter_groups", {}) and config.algorithm.filter_groups.get("enable", False):
        problems.append("algorithm.filter_groups.enable=true: DYPO grades groups itself (easy groups are dropped)")
    if problems:
        raise ValueError("DYPO config problems:\n  - " + "\n  - ".join(problems))
    return dypo


def compose_config(overrides=(), config_name: str = "dypo_trainer"):
    """Compose configs/<config_name>.yaml over verl's ppo_trainer exactly as ``main_dypo`` does (no Ray, no GPU)."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = Path(__file__).resolve().parents[1] / "configs"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))
