"""Dynamic difficulty grading (paper §3, eq. 4): every prompt group is easy, mid or hard.

Pure numpy/torch; no verl import.
"""

from __future__ import annotations

import numpy as np
import torch

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
