"""The DYPO objective (paper eq. 4 / 24) as small tensor functions.

    L = 1/Q * [ sum_{q hard} gamma * L_SFT(q)  +  sum_{q mid} ( alpha * L_GRPO(q) + (1 - alpha) * L_GAL(q) ) ]

Q is the number of prompts that train this step (hard + mid; easy prompts are dropped).

* ``L_SFT(q)``  = -log pi_theta(tau_tgt | q) / |tau_tgt| (token mean; ``sft_token_mean=False`` gives the sum),
  tau_tgt one teacher solution drawn uniformly from the prompt's teachers.
* ``L_GRPO(q)`` = 1/G sum_i 1/|tau_i| sum_t clipped-surrogate(ratio_it, A_i), A = (R - mean_G) / (std_G + eps).
* ``L_GAL(q)``  = mean over (success s, failure f) pairs of -log sigmoid(beta * (r_s - r_f)),
  r = sum over response tokens of (log pi_theta - log pi_ref)  (or of log pi_theta when reference-free).

:func:`dypo_objective` evaluates L on a whole batch as the paper writes it: the specification and the tests' float64
oracle. Training does not call it: the trainer turns everything that couples rows (group sizes, GAL's pairs, Q)
into per-row coefficients at theta_old (:mod:`recipe_dypo.coefficients`) and the actor runs
:func:`recipe_dypo.actor_loss.dypo_actor_loss`, a plain sum over a micro-batch's own rows. Summed over any split
into micro-batches and data-parallel shards, its gradient at theta = theta_old equals the gradient of
:func:`dypo_objective` (tests/test_exactness.py checks this to 1e-6 in float64).

The other functions are the terms: :func:`gal_loss`, :func:`grpo_advantages` (verl's ``grpo`` estimator gives the
same values; this float64 version is the oracle), :func:`clipped_surrogate`, :func:`shaped_objective` (LUFFY-style
off-policy rows) and :func:`kl_estimate`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recipe_dypo.grading import Role, group_ids


def group_matrix(group_of_row: np.ndarray) -> torch.Tensor:
    """Rows of each group laid out as a padded matrix.

    Args:
        group_of_row: (N,) int array of dense group indices in [0, G).

    Returns:
        (G, K) int64 tensor of row indices, K the largest group size, -1 where a group is shorter.
    """
    group_of_row = np.asarray(group_of_row, dtype=np.int64)
    n_groups = int(group_of_row.max()) + 1 if len(group_of_row) else 0
    order = np.argsort(group_of_row, kind="stable")
    sizes = np.bincount(group_of_row, minlength=n_groups)
    width = int(sizes.max()) if n_groups else 0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if n_groups else np.zeros(0, dtype=np.int64)
    slot = np.arange(len(order)) - np.repeat(starts, sizes)
    matrix = np.full((n_groups, width), -1, dtype=np.int64)
    matrix[group_of_row[order], slot] = order
    return torch.from_numpy(matrix)


def _pair_terms(seq_log_ratio: torch.Tensor, scores, uids, beta: float, success_threshold: float):
    """Per-group (success, failure) pair margins.

    Returns:
        margin: (G, K, K) beta-free margins d = r_s - r_f, 0 where not a pair.
        pair_mask: (G, K, K) bool, True for (success, failure) pairs of one group.
        pairs_per_group: (G,) number of pairs.
    """
    scores = torch.as_tensor(np.asarray(scores, dtype=np.float64) if not torch.is_tensor(scores) else scores)
    _, group_of_row = group_ids(uids)
    rows = group_matrix(group_of_row).to(seq_log_ratio.device)
    valid = rows >= 0
    safe = rows.clamp(min=0)
    r = seq_log_ratio[safe]  # (G, K)
    success = (scores.to(seq_log_ratio.device)[safe] >= success_threshold) & valid
    failure = (~success) & valid
    pair_mask = success.unsqueeze(2) & failure.unsqueeze(1)
    margin = (r.unsqueeze(2) - r.unsqueeze(1)) * pair_mask
    return margin, pair_mask, pair_mask.sum(dim=(1, 2))


def gal_loss(seq_log_ratio, scores, uids, beta: float = 1.0, success_threshold: float = 1.0) -> torch.Tensor:
    """Group Alignment Loss on a full batch.

    L_GAL = mean over groups with at least one (success, failure) pair of
            mean over that group's pairs of -log sigmoid(beta * (r_s - r_f)).

    Args:
        seq_log_ratio: (N,) tensor, r = sum over response tokens of log pi_theta - log pi_ref. Differentiable.
        scores: (N,) per-rollout scores; success means ``score >= success_threshold``.
        uids: (N,) group ids.
        beta: GAL temperature.

    Returns:
        Scalar tensor. A zero that keeps the autograd path when no group has a pair (never NaN).
    """
    margin, pair_mask, n_pairs = _pair_terms(seq_log_ratio, scores, uids, beta, success_threshold)
    has_pairs = n_pairs > 0
    if not bool(has_pairs.any()):
        return seq_log_ratio.sum() * 0.0
    pair_loss = F.softplus(-beta * margin) * pair_mask  # -log sigmoid(x) == softplus(-x)
    group_loss = pair_loss.sum(dim=(1, 2))[has_pairs] / n_pairs[has_pairs]
    return group_loss.mean()


def gal_statistics(seq_log_ratio, scores, uids, beta: float = 1.0, success_threshold: float = 1.0) -> dict:
    """GAL value and the diagnostics researchers plot: pair accuracy (d > 0) and mean margin."""
    with torch.no_grad():
        margin, pair_mask, n_pairs = _pair_terms(seq_log_ratio, scores, uids, beta, success_threshold)
        total = int(n_pairs.sum())
        loss = gal_loss(seq_log_ratio, scores, uids, beta, success_threshold)
    if total == 0:
        return {"gal_loss": 0.0, "gal_pair_acc": float("nan"), "gal_margin_mean": float("nan"), "gal_pairs": 0}
    d = margin[pair_mask]
    return {
        "gal_loss": float(loss),
        "gal_pair_acc": float((d > 0).double().mean()),
        "gal_margin_mean": float(d.double().mean()),
        "gal_pairs": total,
    }


def grpo_advantages(scores, uids, eps: float = 1e-6, norm_by_std: bool = True) -> torch.Tensor:
    """Group-normalised outcome advantages A = (R - mean_G) / (std_G + eps); 0 for singleton groups.

    std is the unbiased sample std, as in verl's GRPO.

    Args:
        scores: (N,) per-rollout scores. uids: (N,) group ids.

    Returns:
        (N,) float tensor.
    """
    scores = torch.as_tensor(np.asarray(scores, dtype=np.float64) if not torch.is_tensor(scores) else scores)
    _, group_of_row = group_ids(uids)
    rows = group_matrix(group_of_row)
    valid = rows >= 0
    r = torch.where(valid, scores[rows.clamp(min=0)], torch.zeros((), dtype=scores.dtype))
    size = valid.sum(dim=1, keepdim=True)
    mean = r.sum(dim=1, keepdim=True) / size
    var = (((r - mean) * valid) ** 2).sum(dim=1, keepdim=True) / (size - 1).clamp(min=1)
    adv = (r - mean) / (var.sqrt() + eps) if norm_by_std else r - mean
    adv = torch.where(size > 1, adv, torch.zeros_like(adv))
    out = torch.zeros_like(scores)
    out[rows[valid]] = adv[valid]
    return out


def mixing_weights(alpha: float = 0.5, grpo_weight: float | None = None, gal_weight: float | None = None):
    """Weights of the GRPO and GAL terms on mid prompts: (alpha, 1 - alpha) in the paper.

    The authors' released code instead adds GAL with weight 0.001 on top of the full RL loss, which is
    ``grpo_weight=1.0, gal_weight=0.001`` (preset ``released_code``).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"dypo.alpha must be in [0, 1], got {alpha}")
    grpo = alpha if grpo_weight is None else float(grpo_weight)
    gal = 1.0 - alpha if gal_weight is None else float(gal_weight)
    if grpo < 0 or gal < 0:
        raise ValueError(f"DYPO term weights must be >= 0, got grpo_weight={grpo}, gal_weight={gal}")
    return grpo, gal


def shaped_objective(log_prob: torch.Tensor, advantages: torch.Tensor, shaping_gamma: float = 0.1) -> torch.Tensor:
    """Per-token loss of an off-policy (teacher) token in LUFFY-style mixing: -A * f(pi), f(p) = p / (p + gamma).

    The teacher's own probabilities are unknown, so the importance ratio is pi_theta itself, reshaped by f to
    keep gradients alive on low-probability tokens; no clipping. All args (..., T).
    """
    prob = log_prob.exp()
    return -advantages * prob / (prob + shaping_gamma)


def kl_estimate(log_prob: torch.Tensor, ref_log_prob: torch.Tensor, kind: str = "low_var_kl") -> torch.Tensor:
    """Per-token estimate of D_KL(pi_theta || pi_ref): verl's ``kl_penalty`` (``actor.kl_loss_type``), (..., T)."""
    from verl.trainer.ppo.core_algos import kl_penalty

    return kl_penalty(logprob=log_prob, ref_logprob=ref_log_prob, kl_penalty=kind)


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_low: float = 0.2, clip_high: float = 0.2):
    """Per-token PPO/GRPO clipped loss -min(ratio * A, clip(ratio) * A); all args (..., T)."""
    ratio = torch.exp(log_prob - old_log_prob)
    return torch.maximum(-advantages * ratio, -advantages * ratio.clamp(1 - clip_low, 1 + clip_high))


def dypo_objective(
    log_probs: list[torch.Tensor],
    old_log_probs: list[torch.Tensor],
    ref_log_probs: list[torch.Tensor] | None,
    roles,
    scores,
    uids,
    grpo_weight: float = 0.5,
    gal_weight: float = 0.5,
    beta: float = 1.0,
    gamma: float = 1.0,
    success_threshold: float = 1.0,
    sft_token_mean: bool = True,
    clip_ratio: float = 0.2,
    shaping_gamma: float = 0.1,
    kl_coef: float = 0.0,
    kl_type: str = "low_var_kl",
) -> torch.Tensor:
    """Eq. (4) on a whole batch, written the way the paper states it (the reference for tests).

    ``kl_coef`` > 0 adds the paper's beta_KL * D_KL(pi_theta || pi_ref) inside L_GRPO (eq. 3): per token of the
    on-policy rollouts, averaged like the surrogate, so it carries alpha on mid prompts and never touches teacher
    rows (needs ``ref_log_probs``).

    Off-policy rows (LUFFY-style mixing, not part of eq. 4) are members of their prompt's group: they enter the
    group's advantages and its per-sequence mean with :func:`shaped_objective` in place of the clipped surrogate.

    Args:
        log_probs / old_log_probs / ref_log_probs: lists of N (T_i,) response-token log-prob tensors;
            ``ref_log_probs=None`` means reference-free GAL.
        roles: (N,) Role per row (:class:`recipe_dypo.grading.Role`). scores, uids: (N,) as for
            :func:`grade_groups`.
    """
    roles = np.asarray(roles)
    uids = np.asarray(uids, dtype=object)
    rl = np.flatnonzero((roles == Role.RL) | (roles == Role.OFFPOLICY))
    teacher = np.flatnonzero(roles == Role.TEACHER)
    groups = list(dict.fromkeys(uids[rl].tolist()))
    num_prompts = len(groups) + len(teacher)
    total = log_probs[0].sum() * 0.0
    if num_prompts == 0:
        return total
    for i in teacher:
        nll = -log_probs[i].sum()
        total = total + gamma * (nll / len(log_probs[i]) if sft_token_mean else nll)
    scores = np.asarray(scores, dtype=np.float64)
    adv = dict(zip(rl.tolist(), grpo_advantages(scores[rl], uids[rl])))
    for g in groups:
        members = [i for i in rl if uids[i] == g]
        per_sequence = [
            (
                clipped_surrogate(log_probs[i], old_log_probs[i], adv[i], clip_ratio, clip_ratio)
                + (kl_coef * kl_estimate(log_probs[i], ref_log_probs[i], kl_type) if kl_coef else 0.0)
            ).mean()
            if roles[i] == Role.RL
            else shaped_objective(log_probs[i], adv[i], shaping_gamma).mean()
            for i in members
        ]
        grpo = sum(per_sequence) / len(members)
        on_policy = [i for i in members if roles[i] == Role.RL]
        ratios = torch.stack(
            [log_probs[i].sum() - (ref_log_probs[i].sum() if ref_log_probs is not None else 0.0) for i in on_policy]
        )
        gal = gal_loss(ratios, scores[on_policy], [g] * len(on_policy), beta, success_threshold)
        total = total + grpo_weight * grpo + gal_weight * gal
    return total / num_prompts
