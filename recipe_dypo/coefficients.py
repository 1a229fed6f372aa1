"""The loss contract between the trainer and the actor: eq. (4) turned into per-row weights at theta_old.

Everything in eq. (4) that couples rows (the 1/Q normalisation, group sizes, GAL's (success, failure) pairs) is
evaluated once per step on the driver, from statistics verl already has (old and reference log-probs), and written
next to each row as four coefficients. The actor loss (:mod:`recipe_dypo.actor_loss`) then is a plain sum over its
own rows, so any split into micro-batches and data-parallel shards gives the same gradient.

    trainer (_compute_advantage hook) -- RowCoefficients.fields() --> TransferQueue --> actor loss (from_fields)
    trainer (_update_actor hook)      -- StepSettings.write()     --> batch.extra_info --> actor loss (read)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from recipe_dypo.grading import Role, group_ids
from recipe_dypo.losses import gal_loss, gal_statistics

if TYPE_CHECKING:
    from recipe_dypo.config import DypoConfig


@dataclass
class RowCoefficients:
    """Per-row weights (N,) of the terms of the micro-batch loss; each attribute owns its TransferQueue field."""

    pg: torch.Tensor  # multiplies sum_t clipped-surrogate(A) of an RL row: grpo_weight / (Q * G_q * |tau|)
    sft: torch.Tensor  # multiplies sum_t -log pi(y_t) of a teacher row: gamma / (Q * |tau|)  (or gamma / Q)
    gal: torch.Tensor  # multiplies sum_t log pi(y_t): d L_GAL-part / d r_row at theta_old
    offpolicy: torch.Tensor  # multiplies sum_t shaped_objective(A) of an off-policy row, same weight as pg
    num_prompts: int = 0  # Q, the prompts that train this step

    FIELDS: ClassVar[dict[str, str]] = {
        "pg": "dypo_pg_coef",
        "sft": "dypo_sft_coef",
        "gal": "dypo_gal_coef",
        "offpolicy": "dypo_offpolicy_coef",
    }

    @classmethod
    def zeros(cls, n: int) -> RowCoefficients:
        return cls(*(torch.zeros(n, dtype=torch.float64) for _ in cls.FIELDS))

    def fields(self) -> dict[str, torch.Tensor]:
        """``{field name: (N,) float32}``, what the trainer writes next to each row."""
        return {name: getattr(self, attr).float() for attr, name in self.FIELDS.items()}

    @classmethod
    def from_fields(cls, data, dtype: torch.dtype | None = None) -> RowCoefficients:
        """Read back from a micro-batch (any mapping holding the fields), cast to ``dtype``."""
        return cls(*(data[name].to(dtype) if dtype else data[name] for name in cls.FIELDS.values()))


COEF_FIELDS = tuple(RowCoefficients.FIELDS.values())


@dataclass(frozen=True)
class StepSettings:
    """Per-step scalars the actor loss needs besides the rows; they travel in the batch's ``extra_info``."""

    total_rows: int | None = None  # rows in the whole update batch: with mini-batches, n_mini = total / mini rows
    shaping_gamma: float = 0.1  # LUFFY-style f(p) = p / (p + shaping_gamma) on off-policy rows
    kl_coef: float = 0.0  # the paper's beta_KL, on RL rows only (dypo.kl_coef)
    grad_metrics: bool = True  # report actor/dypo_grad_logp/* this step (dypo.grad_metrics_interval)

    KEYS: ClassVar[dict[str, str]] = {
        "total_rows": "dypo_total_rows",
        "shaping_gamma": "dypo_shaping_gamma",
        "kl_coef": "dypo_kl_coef",
        "grad_metrics": "dypo_grad_metrics",
    }

    def as_dict(self) -> dict:
        return {key: getattr(self, attr) for attr, key in self.KEYS.items()}

    def write(self, extra_info: dict) -> None:
        extra_info.update(self.as_dict())

    @classmethod
    def read(cls, data) -> StepSettings:
        from verl.utils.tensordict_utils import get_non_tensor_data

        found = {attr: get_non_tensor_data(data=data, key=key, default=None) for attr, key in cls.KEYS.items()}
        return cls(**{attr: value for attr, value in found.items() if value is not None})


def row_coefficients(
    roles,
    scores,
    uids,
    response_lengths,
    seq_log_ratio_old,
    grpo_weight: float = 0.5,
    gal_weight: float = 0.5,
    beta: float = 1.0,
    gamma: float = 1.0,
    success_threshold: float = 1.0,
    sft_token_mean: bool = True,
) -> RowCoefficients:
    """Turn the batch-coupled DYPO objective into per-row coefficients, evaluated at theta_old.

    GAL couples rows through pairs. Its gradient is sum_rows (dL/dr_row) * grad r_row, and dL/dr_row only
    needs the sequence log-ratios, which verl already has at theta_old (old_log_probs, ref_log_prob). So
    the GAL coefficient of a row is the autograd derivative of :func:`gal_loss` at those values.

    Args:
        roles: (N,) :class:`Role` per row.
        scores: (N,) rollout scores (only RL rows are read).
        uids: (N,) group ids; the rollouts of a prompt share one.
        response_lengths: (N,) number of response tokens of each row.
        seq_log_ratio_old: (N,) r at theta_old (sum over response of old - ref log-probs; old only if reference-free).
        grpo_weight, gal_weight: alpha and 1 - alpha in the paper (see :func:`recipe_dypo.losses.mixing_weights`).

    Returns:
        :class:`RowCoefficients` with float64 tensors of shape (N,).
    """
    roles = np.asarray(roles)
    on_policy = roles == Role.RL
    teacher = roles == Role.TEACHER
    in_group = on_policy | (roles == Role.OFFPOLICY)  # an off-policy row is a member of its prompt's group
    uids = np.asarray(uids, dtype=object)
    lengths = torch.as_tensor(np.asarray(response_lengths), dtype=torch.float64).clamp(min=1)
    coefs = RowCoefficients.zeros(len(roles))
    coefs.num_prompts = num_prompts = len(set(uids[in_group].tolist())) + int(teacher.sum())
    if num_prompts == 0:
        return coefs
    group_idx = torch.from_numpy(np.flatnonzero(in_group))
    if len(group_idx):
        _, group_of_row = group_ids(uids[in_group])
        group_size = torch.from_numpy(np.bincount(group_of_row)[group_of_row]).double()
        weight = grpo_weight / (num_prompts * group_size * lengths[group_idx])
        is_on_policy = torch.from_numpy(on_policy[in_group])
        coefs.pg[group_idx] = torch.where(is_on_policy, weight, 0.0)
        coefs.offpolicy[group_idx] = torch.where(is_on_policy, 0.0, weight)
    rl_idx = torch.from_numpy(np.flatnonzero(on_policy))
    if len(rl_idx):
        r = torch.as_tensor(np.asarray(seq_log_ratio_old, dtype=np.float64))[rl_idx].clone().requires_grad_(True)
        rl_scores = np.asarray(scores, dtype=np.float64)[on_policy]
        loss = gal_loss(r, rl_scores, uids[on_policy], beta=beta, success_threshold=success_threshold)
        (grad,) = torch.autograd.grad(loss, r)
        # gal_loss averages over the groups that have pairs (the mid ones); DYPO averages over all Q prompts.
        n_pair_groups = count_mid_groups(rl_scores, uids[on_policy], success_threshold)
        if n_pair_groups:
            coefs.gal[rl_idx] = gal_weight * n_pair_groups / num_prompts * grad
    teacher_idx = torch.from_numpy(np.flatnonzero(teacher))
    if len(teacher_idx):
        norm = lengths[teacher_idx] if sft_token_mean else torch.ones(len(teacher_idx), dtype=torch.float64)
        coefs.sft[teacher_idx] = gamma / (num_prompts * norm)
    return coefs


def count_mid_groups(scores, uids, success_threshold: float) -> int:
    """Groups with at least one success and one failure (the groups GAL has pairs in)."""
    _, group_of_row = group_ids(uids)
    success = np.asarray(scores) >= success_threshold
    n_groups = int(group_of_row.max()) + 1
    wins = np.bincount(group_of_row, weights=success, minlength=n_groups)
    sizes = np.bincount(group_of_row, minlength=n_groups)
    return int(((wins > 0) & (wins < sizes)).sum())


def step_coefficients(
    roles: np.ndarray, scores, uids, response_lengths, old_seq_logp, ref_seq_logp, cfg: DypoConfig
) -> tuple[RowCoefficients, dict]:
    """Per-row loss coefficients and theta_old metrics for one DYPO step.

    Args:
        roles: (N,) :class:`Role` per row. scores, uids, response_lengths: (N,).
        old_seq_logp: (N,) sum over response tokens of old_log_probs (theta_old = the rollout policy).
        ref_seq_logp: (N,) same under pi_ref, or None for reference-free GAL.
    """
    old = torch.as_tensor(np.asarray(old_seq_logp, dtype=np.float64))
    ratio = old - torch.as_tensor(np.asarray(ref_seq_logp, dtype=np.float64)) if ref_seq_logp is not None else old
    grpo_w, gal_w = cfg.term_weights
    coefs = row_coefficients(
        roles,
        scores,
        uids,
        response_lengths,
        ratio,
        grpo_weight=grpo_w,
        gal_weight=gal_w,
        beta=cfg.beta,
        gamma=cfg.gamma,
        success_threshold=cfg.success_threshold,
        sft_token_mean=cfg.sft_token_mean,
    )
    on_policy = roles == Role.RL
    teacher = roles == Role.TEACHER
    offline = teacher | (roles == Role.OFFPOLICY)
    trained = int(on_policy.sum() + offline.sum())
    metrics = {
        "dypo/trained_prompts": float(coefs.num_prompts),
        "dypo/trained_rows": float(trained),
        "dypo/rl_rows": float(on_policy.sum()),
        "dypo/offline_data_ratio": float(offline.sum() / trained) if trained else 0.0,
        # Fig. 4 (left) of the paper: share of the trained prompts that learn from a teacher row (one per prompt)
        "dypo/offline_prompt_ratio": float(offline.sum() / coefs.num_prompts) if coefs.num_prompts else 0.0,
        "dypo/padding_rows": float((roles == Role.PAD).sum()),
    }
    lengths = torch.as_tensor(np.asarray(response_lengths, dtype=np.float64)).clamp(min=1)
    if teacher.any():
        nll = -old[torch.from_numpy(teacher)]
        per = nll / lengths[torch.from_numpy(teacher)] if cfg.sft_token_mean else nll
        metrics["dypo/sft_loss"] = float(per.mean())
    else:
        metrics["dypo/sft_loss"] = 0.0
    if on_policy.any():
        stats = gal_statistics(
            ratio[torch.from_numpy(on_policy)],
            np.asarray(scores, dtype=np.float64)[on_policy],
            np.asarray(uids, dtype=object)[on_policy],
            beta=cfg.beta,
            success_threshold=cfg.success_threshold,
        )
        metrics.update({f"dypo/{k}": float(v) for k, v in stats.items()})
    else:
        metrics.update({"dypo/gal_loss": 0.0, "dypo/gal_pairs": 0.0})
    return coefs, metrics


def coefficients_of_batch(data, roles: np.ndarray, cfg: DypoConfig, step: int) -> tuple[RowCoefficients, dict]:
    """:func:`step_coefficients` on a batch of rows as verl stores them.

    Args:
        data: mapping with ``uid`` (N,) and jagged nested (N, R_i) ``rm_scores``, ``response_mask``,
            ``old_log_probs`` and, when ``cfg.gal_reference``, ``ref_log_prob``.
        roles: (N,) :class:`Role`; padding rows are excluded from every sum and check.
        step: the training step, named in the error raised on non-finite log-probs.
    """
    uids = np.array([str(u) for u in data["uid"]], dtype=object)
    mask = data["response_mask"]
    row_of = nested_row_index(mask)
    live = torch.from_numpy(roles != Role.PAD)[row_of] & mask.values().bool()

    def sequence_sums(name: str) -> torch.Tensor:
        values = data[name].values().double()
        check_finite(name, values[live], row_of[live], step, uids)
        return nested_row_sums(torch.nested.nested_tensor_from_jagged(values * live, offsets=mask.offsets()))

    return step_coefficients(
        roles,
        nested_row_sums(data["rm_scores"]).numpy(),
        uids,
        nested_row_sums(mask).numpy(),
        sequence_sums("old_log_probs"),
        sequence_sums("ref_log_prob") if cfg.gal_reference else None,
        cfg,
    )


def jagged_rows(rows) -> torch.Tensor:
    """Rows of different lengths (an iterable of 1-D tensors) as one jagged nested tensor (bs, j), the layout of
    verl's no-padding TensorDicts."""
    return torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)


def nested_row_index(values: torch.Tensor) -> torch.Tensor:
    """Row index of every element of a jagged nested tensor (bs, j)."""
    lengths = values.offsets().diff()
    return torch.repeat_interleave(torch.arange(len(lengths)), lengths)


def nested_row_sums(values: torch.Tensor) -> torch.Tensor:
    """Per-row sums of a jagged nested tensor (bs, j) -> (bs,), accumulated in float64."""
    if not values.is_nested:
        return values.double().sum(dim=-1)
    sums = torch.zeros(len(values.offsets()) - 1, dtype=torch.float64)
    return sums.index_add_(0, nested_row_index(values), values.values().double())


def check_finite(name: str, values: torch.Tensor, row_of_value: torch.Tensor, step: int, uids) -> None:
    """Raise a clear error naming the step and rows if log-probs are NaN/inf (a NaN loss would hide it)."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = sorted(set(row_of_value[bad].tolist()))
        raise FloatingPointError(
            f"DYPO step {step}: non-finite {name} in {len(rows)} row(s) {rows[:8]} "
            f"(uids {[str(uids[r]) for r in rows[:4]]}); refusing to build a NaN loss"
        )
