"""One DYPO step at FIXED parameters, in one process: what the gradient measurements need, and nothing that trains.

Training runs through verl's real trainer only (``python -m recipe_dypo.main_dypo``; on CPU the quickstart).
Measuring a gradient estimator's variance needs something verl's loop does not do: many independent rollout
groups at one theta, and the gradient of each without an optimizer step. This module does one step's work up
to the loss, in the order of verl's ``PPOTrainer._step_once`` with the DYPO hooks of :mod:`recipe_dypo.trainer`:

    rollout (n per prompt) -> reward (recipe_dypo.reward.compute_score)
    -> regroup: plan_step, then build_teacher_rows for hard groups
    -> old / ref log-probs (forward passes)
    -> advantages: verl's compute_advantage with the configured estimator (``grpo``)
    -> coefficients_of_batch -> dypo_actor_loss (its gradient: :func:`workers.accumulate_loss_gradient`)

Every arrow except generation and the forward passes is a function the verl trainer calls too
(tests/test_gradstats.py checks the result against the DypoTrainer hooks on the same rollouts).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from recipe_dypo.coefficients import coefficients_of_batch, jagged_rows
from recipe_dypo.config import DypoConfig
from recipe_dypo.grading import plan_step, roles_from_tags
from recipe_dypo.gradstats import workers
from recipe_dypo.reward import compute_score
from recipe_dypo.teachers import TeacherSampler, build_teacher_rows, teacher_response_ids

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunConfig:
    """What a fixed-parameter step needs besides the ``dypo:`` / actor sections of configs/dypo_trainer.yaml."""

    algo: str = "dypo"  # "dypo" or "grpo"
    n: int = 4  # rollouts per prompt
    max_response_length: int = 24
    seed: int = 0
    overrides: tuple[str, ...] = field(default_factory=tuple)  # extra hydra overrides, e.g. "dypo.alpha=0.2"


def compose_verl_config(run: RunConfig):
    """configs/dypo_trainer.yaml composed over verl's ppo_trainer by hydra, as ``main_dypo`` does."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [
        "actor_rollout_ref.actor.use_dynamic_bsz=true",
        f"actor_rollout_ref.rollout.n={run.n}",
        f"data.max_response_length={run.max_response_length}",
        f"dypo.seed={run.seed + 1}",
        *run.overrides,
    ]
    config_dir = REPO_ROOT / "configs"
    if not (config_dir / "dypo_trainer.yaml").exists():
        raise FileNotFoundError(f"{config_dir}/dypo_trainer.yaml not found: run from a checkout (pip install -e .)")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="dypo_trainer", overrides=overrides)


@dataclass
class StepBatch:
    """The regrouped batch of one step: trajectories (verl field dicts) and their tags."""

    rows: list[dict]
    tags: list[dict]
    metrics: dict


class FixedPolicyStep:
    """DYPO's (or the GRPO baseline's) step up to the loss, on a local model. See the module docstring."""

    def __init__(self, run: RunConfig, verl_config, model, ref_model, tokenizer):
        from omegaconf import OmegaConf
        from verl.utils.config import omega_conf_to_dataclass

        self.run = run
        self.config = verl_config
        self.dypo = DypoConfig.from_config(OmegaConf.to_container(verl_config.dypo, resolve=True))
        if self.dypo.offpolicy_mixing:
            raise ValueError("the fixed-parameter step covers DYPO and GRPO only, not the LUFFY-style baseline")
        self.actor_config = omega_conf_to_dataclass(verl_config.actor_rollout_ref.actor)
        self.model, self.ref_model, self.tokenizer = model, ref_model, tokenizer
        self.teacher_sampler = TeacherSampler(self.dypo.seed)
        self.teacher_draws: Counter = Counter()

    # ---------------------------------------------------------------- rollout + reward (workers)
    def rollout(self, prompt_rows: list[dict], uids: list[str]) -> list[dict]:
        """n sampled responses per prompt, graded by ``compute_score``; returns B * n trajectories."""
        prompts = workers.encode_prompts(self.tokenizer, prompt_rows)
        repeated = [p for p in prompts for _ in range(self.run.n)]
        responses, _ = workers.generate(self.model, self.tokenizer, repeated, self.run.max_response_length)
        out = []
        for k, response in enumerate(responses):
            row = prompt_rows[k // self.run.n]
            text = self.tokenizer.decode(response.tolist(), skip_special_tokens=True)
            score = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"])
            out.append(workers.trajectory(repeated[k], response, float(score), uids[k // self.run.n], row))
        return out

    # ---------------------------------------------------------------- hook 1: regroup (DypoTrainer._dypo_regroup)
    def regroup(self, rollouts: list[dict]) -> StepBatch:
        """Grade groups; keep mid rollouts, replace each hard group by one teacher row, drop the rest."""
        scores = np.array([float(r["rm_scores"].sum()) for r in rollouts])
        uids = np.array([r["uid"] for r in rollouts], dtype=object)
        plan = plan_step(scores, uids, self.dypo)
        metrics = dict(plan.metrics)
        if self.run.algo == "grpo":  # the baseline trains every group; all-wrong groups get advantage 0
            return StepBatch(list(rollouts), [{} for _ in rollouts], metrics | {"dypo/teacher_rows": 0.0})
        tokenize = partial(teacher_response_ids, self.tokenizer, max_tokens=self.dypo.max_teacher_tokens)
        templates = [rollouts[rows[0]] for rows in plan.teacher_groups.values()]
        built = build_teacher_rows(templates, self.teacher_sampler, self.dypo, tokenize, self.teacher_draws)
        teacher_rows = built.rows
        teacher_tags = [{"dypo_role": built.role, "dypo_teacher": t.name} for t in built.teachers]
        metrics.update(built.metrics(len(plan.dropped_rows), self.teacher_draws))
        rows = [rollouts[r] for r in plan.rl_rows] + teacher_rows
        tags = [{} for _ in plan.rl_rows] + teacher_tags
        return StepBatch(rows, tags, metrics)

    # ---------------------------------------------------------------- hook 2: log-probs, advantages, coefficients
    def log_probs(self, batch: StepBatch) -> None:
        """verl's compute_log_prob / compute_ref_log_prob: fills ``old_log_probs`` (and ``ref_log_prob``)."""
        old, _ = workers.response_log_probs(self.model, batch.rows)
        ref = workers.response_log_probs(self.ref_model, batch.rows)[0] if self.dypo.gal_reference else None
        for i, row in enumerate(batch.rows):
            row["old_log_probs"] = old[i].float()
            if ref is not None:
                row["ref_log_prob"] = ref[i].float()

    def advantages(self, batch: StepBatch) -> None:
        """verl's ``compute_advantage`` on a padded DataProto; fills each row's ``advantages`` (R,)."""
        estimator = "grpo" if self.run.algo == "grpo" else self.config.algorithm.adv_estimator
        adv = verl_advantages(batch.rows, estimator, self.config.algorithm)
        for row, a in zip(batch.rows, adv):
            row["advantages"] = a

    def coefficients(self, batch: StepBatch) -> tuple[dict[str, torch.Tensor], dict]:
        """Per-row DYPO coefficients from theta_old statistics (:mod:`recipe_dypo.coefficients`)."""
        cfg = dataclasses.replace(self.dypo, alpha=1.0, grpo_weight=None, gal_weight=None)
        cfg = cfg if self.run.algo == "grpo" else self.dypo
        coefs, metrics = coefficients_for_rows(batch.rows, batch.tags, cfg)
        return coefs, metrics

    # ---------------------------------------------------------------- one step
    def prepare(self, rollouts: list[dict]) -> tuple[StepBatch, dict[str, torch.Tensor], dict]:
        """Everything between reward and the actor update, on given rollouts (no parameter change)."""
        batch = self.regroup(rollouts)
        metrics = dict(batch.metrics)
        if not batch.rows:
            return batch, {}, metrics
        self.log_probs(batch)
        self.advantages(batch)
        coefs, step_metrics = self.coefficients(batch)
        metrics.update(step_metrics)
        return batch, coefs, metrics


def verl_advantages(rows: list[dict], estimator: str, algorithm_config) -> list[torch.Tensor]:
    """Advantages of each row from verl's ``compute_advantage`` (the function verl's v1 trainer reaches).

    Returns:
        list of N (R_i,) float tensors.
    """
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    width = max(len(r["responses"]) for r in rows)
    mask = torch.zeros(len(rows), width)
    rewards = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        mask[i, : len(r["responses"])] = r["response_mask"].float()
        rewards[i, : len(r["responses"])] = r["rm_scores"]
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array([r["uid"] for r in rows], dtype=object)},
    )
    out = compute_advantage(
        data,
        adv_estimator=estimator,
        norm_adv_by_std_in_grpo=algorithm_config.get("norm_adv_by_std_in_grpo", True),
        config=algorithm_config,
    )
    return [out.batch["advantages"][i, : len(r["responses"])].float() for i, r in enumerate(rows)]


def coefficients_for_rows(rows: list[dict], tags: list[dict], cfg: DypoConfig):
    """:func:`coefficients_of_batch` on in-memory rows; returns ({coef field: (N,) float32}, metrics)."""

    def jagged(name):
        return jagged_rows(r[name].double() for r in rows)

    fields = ["rm_scores", "response_mask", "old_log_probs"] + (["ref_log_prob"] if cfg.gal_reference else [])
    data = {"uid": [r["uid"] for r in rows], **{name: jagged(name) for name in fields}}
    coefs, metrics = coefficients_of_batch(data, roles_from_tags(tags), cfg, step=0)
    return coefs.fields(), metrics
