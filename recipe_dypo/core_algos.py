"""verl registrations: advantage estimator ``dypo`` and policy loss ``dypo``.

Imported by the ``verl.plugins`` entry point (:mod:`recipe_dypo.plugin`), so these exist in every Ray worker.
"""

from __future__ import annotations

import numpy as np
import torch
from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, register_adv_est, register_policy_loss

from recipe_dypo.losses import grpo_advantages


@register_adv_est("dypo")
def compute_dypo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    config=None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO outcome advantages for the rows DYPO trains with RL.

    After DYPO's regrouping the batch holds whole mid groups plus one teacher row per hard prompt; a group of
    one row (a teacher row) has no baseline and gets advantage 0 (its loss is SFT, weighted elsewhere).

    Args:
        token_level_rewards: (bs, response_length). response_mask: (bs, response_length).
        index: (bs,) group ids.

    Returns:
        advantages, returns: (bs, response_length), equal, zero outside the response.
    """
    norm_by_std = True if config is None else bool(config.get("norm_adv_by_std_in_grpo", True))
    scores = token_level_rewards.sum(dim=-1).double()
    adv = grpo_advantages(scores, index, eps=epsilon, norm_by_std=norm_by_std).to(token_level_rewards.dtype)
    advantages = adv.unsqueeze(-1) * response_mask
    return advantages, advantages


@register_policy_loss("dypo")
def compute_policy_loss_dypo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-sum",
    config=None,
    rollout_is_weights: torch.Tensor | None = None,
):
    """The GRPO term of DYPO: verl's clipped (dual-clip) surrogate, summed over tokens.

    ``advantages`` arrive multiplied by each row's DYPO weight alpha / (Q * G * |tau|), so a plain token sum
    (times dp_size, which verl's "token-sum" applies) is the paper's per-prompt, per-sequence mean; the clipped
    surrogate is positively homogeneous in A, so the scaling is exact. ``loss_agg_mode`` is ignored.

    Shapes: all (bs, response_length).
    """
    return compute_policy_loss_vanilla(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode="token-sum",
        config=config,
        rollout_is_weights=rollout_is_weights,
    )
