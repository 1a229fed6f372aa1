"""Step 1 of eq. (4): grade every prompt group easy, mid or hard, and plan the regrouped batch.

easy (all rollouts correct) -> dropped; hard (none correct) -> one teacher row (SFT); mid (mixed) -> GRPO + GAL.
Pure numpy/torch; no verl import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from recipe_dypo.config import DypoConfig

EASY, MID, HARD = "easy", "mid", "hard"

# Where the rollouts of a graded group go (``dypo.easy_groups`` / ``dypo.hard_groups``). The paper routes
# easy -> drop and hard -> sft; the other routes express the baselines and ablations on the same trainer.
DROP, RL, SFT = "drop", "rl", "sft"
EASY_ROUTES = (DROP, RL)
HARD_ROUTES = (SFT, RL, DROP)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def group_ids(uids) -> tuple[np.ndarray, np.ndarray]:
    """Map group ids to dense integers in first-appearance order.

    Args:
        uids: (N,) array-like of hashable group ids.

    Returns:
        unique_uids: (G,) object array, in order of first appearance.
        group_of_row: (N,) int64 array with ``unique_uids[group_of_row[i]] == uids[i]``.
    """
    uids = np.asarray(uids, dtype=object)
    _, first_index, inverse = np.unique(uids.astype(str), return_index=True, return_inverse=True)
    # np.unique sorts; re-rank groups by first appearance so outputs follow batch order.
    order = np.argsort(first_index, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group_of_row = rank[inverse.reshape(-1)].astype(np.int64)
    return uids[np.sort(first_index)], group_of_row


def grade_groups(scores, uids, success_threshold: float = 1.0) -> np.ndarray:
    """Label every rollout with its prompt group's difficulty.

    A rollout succeeds when ``score >= success_threshold`` (1.0 for binary correctness rewards).
    easy = all rollouts of the group succeed (dropped from the update), hard = none succeeds
    (trained by SFT on a teacher solution), mid = mixed (GRPO + GAL).

    Args:
        scores: (N,) tensor or array of per-rollout scalar scores.
        uids: (N,) array of group ids (rows of one prompt share a uid).
        success_threshold: score at or above which a rollout counts as a success.

    Returns:
        (N,) numpy array of str, one of "easy" / "mid" / "hard"; rows of one uid share a label.
    """
    scores = _as_numpy(scores).astype(np.float64).reshape(-1)
    if len(scores) != len(uids):
        raise ValueError(f"grade_groups: {len(scores)} scores but {len(uids)} uids")
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))[:5].tolist()
        raise ValueError(f"grade_groups: non-finite reward scores at rows {bad}")
    _, group_of_row = group_ids(uids)
    n_groups = int(group_of_row.max()) + 1 if len(group_of_row) else 0
    success = (scores >= success_threshold).astype(np.int64)
    successes = np.bincount(group_of_row, weights=success, minlength=n_groups)
    sizes = np.bincount(group_of_row, minlength=n_groups)
    group_label = np.where(successes == sizes, EASY, np.where(successes == 0, HARD, MID))
    return group_label[group_of_row].astype(str)


class Role(IntEnum):
    """What loss a row of the regrouped batch carries (the ``dypo_role`` tag the trainer writes)."""

    PAD = 0  # verl's padding rows and the placeholder of a step where nothing trains: no loss
    RL = 1  # an on-policy rollout trained with GRPO, plus GAL when its group is mid
    TEACHER = 2  # a teacher solution of a hard prompt, trained with SFT
    OFFPOLICY = 3  # a teacher solution inside its prompt's group (LUFFY-style mixing)


# Tag values of the rows the trainer adds or keeps specially; a rollout without a tag is an RL row.
TEACHER_TAG, OFFPOLICY_TAG, SKIPPED_TAG = "teacher", "offpolicy", "skipped"
_ROLE_OF_TAG = {TEACHER_TAG: Role.TEACHER, OFFPOLICY_TAG: Role.OFFPOLICY, SKIPPED_TAG: Role.PAD}


def roles_from_tags(tags: list[dict]) -> np.ndarray:
    """(N,) int64 :class:`Role` per row, from verl's trajectory tags (``is_padding``) and DYPO's ``dypo_role``."""
    return np.array(
        [Role.PAD if t.get("is_padding", False) else _ROLE_OF_TAG.get(t.get("dypo_role"), Role.RL) for t in tags],
        dtype=np.int64,
    )


@dataclass
class RegroupPlan:
    """Which rollouts stay, which go, and which prompts need a teacher row.

    Row indices refer to the batch as it came from the rollout.
    """

    labels: np.ndarray  # (N,) "easy" / "mid" / "hard"
    rl_rows: list[int]  # rollouts that train as RL rows: mid groups (plus easy / hard groups routed to "rl")
    dropped_rows: list[int]  # all other rollouts (easy groups and the rollouts of hard prompts, by default)
    teacher_groups: dict[str, list[int]]  # uid -> its rollout rows, for prompts that get a teacher row
    metrics: dict = field(default_factory=dict)


def plan_regroup(
    scores, uids, success_threshold: float = 1.0, easy: str = DROP, hard: str = SFT, mix_teachers: bool = False
) -> RegroupPlan:
    """Grade groups and decide the regrouped batch (paper eq. 4: easy dropped, hard -> SFT, mid -> GRPO + GAL).

    Args:
        scores: (N,) rollout scores. uids: (N,) prompt group ids.
        easy: "drop" (paper) or "rl" (keep the group as RL rows; its GRPO advantages are 0, as in plain GRPO).
        hard: "sft" (paper: one teacher row replaces the rollouts), "rl" (keep the rollouts, advantage 0) or "drop".
        mix_teachers: LUFFY-style mixing: every prompt gets a teacher row that joins its group (needs both
            easy and hard routed to "rl").
    """
    if easy not in EASY_ROUTES or hard not in HARD_ROUTES:
        raise ValueError(f"routes must be easy in {EASY_ROUTES} and hard in {HARD_ROUTES}, got {easy=} {hard=}")
    if mix_teachers and (easy, hard) != (RL, RL):
        raise ValueError(f"teacher mixing keeps every group: needs easy=rl and hard=rl, got {easy=} {hard=}")
    scores = np.asarray(scores, dtype=np.float64)
    uids = np.asarray(uids, dtype=object)
    labels = grade_groups(scores, uids, success_threshold)
    unique, group_of_row = group_ids(uids)
    group_label = np.empty(len(unique), dtype=object)
    group_label[group_of_row] = labels
    teacher_rows = np.arange(len(labels)) if mix_teachers else np.flatnonzero(labels == HARD) if hard == SFT else []
    teacher_groups: dict[str, list[int]] = {}
    for row in teacher_rows:
        teacher_groups.setdefault(str(uids[row]), []).append(int(row))
    keep = (labels == MID) | ((labels == EASY) & (easy == RL)) | ((labels == HARD) & (hard == RL))
    metrics = {
        "dypo/easy_ratio": float(np.mean(group_label == EASY)) if len(unique) else 0.0,
        "dypo/mid_ratio": float(np.mean(group_label == MID)) if len(unique) else 0.0,
        "dypo/hard_ratio": float(np.mean(group_label == HARD)) if len(unique) else 0.0,
        "dypo/num_prompts": float(len(unique)),
        "dypo/rollout_score_mean": float(scores.mean()) if len(scores) else 0.0,
        "dypo/rollout_acc": float(np.mean(scores >= success_threshold)) if len(scores) else 0.0,
        "dypo/prompt_pass_rate": float(np.mean(group_label != HARD)) if len(unique) else 0.0,
    }
    return RegroupPlan(
        labels=labels,
        rl_rows=np.flatnonzero(keep).tolist(),
        dropped_rows=np.flatnonzero(~keep).tolist(),
        teacher_groups=teacher_groups,
        metrics=metrics,
    )


def plan_step(scores, uids, cfg: DypoConfig) -> RegroupPlan:
    """:func:`plan_regroup` with the routes and threshold of the ``dypo`` config section."""
    return plan_regroup(
        scores,
        uids,
        cfg.success_threshold,
        easy=cfg.easy_groups,
        hard=cfg.hard_groups,
        mix_teachers=cfg.offpolicy_mixing,
    )
