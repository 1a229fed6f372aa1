"""Grading of generated responses with the project's reward (:mod:`recipe_dypo.reward`).

The evaluator never implements its own answer checking: it calls ``recipe_dypo.reward.score_batch`` (process pool,
per-item timeout) and normalises whatever comes back into ``{"score", "acc", "pred", "reason"}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _reward():
    # imported lazily so that `import recipe_dypo.eval` stays cheap and works before the reward module exists
    from recipe_dypo import reward

    return reward


def normalize_result(res: Any) -> dict:
    """Turn a reward result (float, bool, or dict) into ``{"score", "acc", "pred", "reason"}``."""
    if isinstance(res, Mapping):
        score = res.get("score", res.get("acc", 0.0))
        acc = res.get("acc", score)
        return {
            "score": float(score if score is not None else 0.0),
            "acc": bool(float(acc) >= 0.5) if acc is not None else False,
            "pred": None if res.get("pred") is None else str(res.get("pred")),
            "reason": None if res.get("reason") is None else str(res.get("reason")),
        }
    if res is None:
        return {"score": 0.0, "acc": False, "pred": None, "reason": "no_result"}
    score = float(res)
    return {"score": score, "acc": score >= 0.5, "pred": None, "reason": None}


def to_reward_item(rec: Mapping) -> dict:
    """The item dict that ``score_batch`` grades: the same keyword names as ``compute_score``."""
    return {
        "data_source": rec["data_source"],
        "solution_str": rec["response"],
        "ground_truth": rec["ground_truth"],
        "extra_info": rec.get("extra_info"),
    }


def grade_records(records: Sequence[Mapping], num_workers: int = 4, timeout_s: float = 5.0) -> list[dict]:
    """Grade many records (``data_source``, ``response``, ``ground_truth``[, ``extra_info``]) in one pool call."""
    if not records:
        return []
    reward = _reward()
    items = [to_reward_item(r) for r in records]
    results = reward.score_batch(items, num_workers=num_workers, timeout_s=timeout_s)
    results = list(results)
    if len(results) != len(items):
        raise RuntimeError(f"score_batch returned {len(results)} results for {len(items)} items")
    return [normalize_result(r) for r in results]


def grade_one(data_source: str, response: str, ground_truth: Any, extra_info: Mapping | None = None) -> dict:
    """Grade a single response in-process (no pool, no timeout); handy for debugging."""
    reward = _reward()
    res = reward.compute_score(data_source, response, ground_truth, extra_info=extra_info, return_dict=True)
    return normalize_result(res)


def iter_chunks(seq: Sequence, size: int) -> Iterable[Sequence]:
    size = max(1, int(size))
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
