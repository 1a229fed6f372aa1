"""``dypo.debug_dump_dir``: what each step graded and the exact batch the actor update consumed, written by the
trainer so a test (tests/test_e2e_cpu.py) can recompute eq. (4) on that batch and compare the applied gradient."""

from __future__ import annotations

import json
import os
from collections import Counter

import torch
import transfer_queue as tq
from transfer_queue import KVBatchMeta

from recipe_dypo.coefficients import COEF_FIELDS, nested_row_sums
from recipe_dypo.grading import RegroupPlan
from recipe_dypo.teachers import TeacherRows, unwrap

UPDATE_FIELDS = ("uid", "rm_scores", "input_ids", "response_mask", "old_log_probs", "advantages", *COEF_FIELDS)


def dump_regroup(
    folder: str, step: int, batch: KVBatchMeta, plan: RegroupPlan, built: TeacherRows, draws: Counter
) -> str:
    """``<folder>/regroup_step_<step>.json``: each rollout's prompt (``extra_info.index``), score and grade, the
    teachers drawn this step and the running draw counts. Called before the dropped rollouts leave TransferQueue."""
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_info", "rm_scores"])
    infos = [unwrap(v) for v in data["extra_info"]]
    record = {
        "step": step,
        "prompt_index": [(info or {}).get("index") for info in infos],
        "scores": nested_row_sums(data["rm_scores"]).tolist(),
        "grades": [str(label) for label in plan.labels],
        "teachers_drawn": [t.name for t in built.teachers],
        "teacher_of_prompt": {
            str((row.get("extra_info") or {}).get("index")): t.name for row, t in zip(built.rows, built.teachers)
        },
        "teacher_draws": dict(draws),
    }
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"regroup_step_{step}.json")
    with open(path, "w") as f:
        json.dump(record, f)
    return path


def dump_update_batch(folder: str, step: int, batch: KVBatchMeta) -> str:
    """``<folder>/update_step_<step>.pt``: every row of the update batch (verl's padding included) with its tags."""
    fields = list(UPDATE_FIELDS) + (["ref_log_prob"] if "ref_log_prob" in (batch.fields or []) else [])
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
    rows = {name: [v.clone() for v in data[name].unbind(0)] for name in fields if name != "uid"}
    rows["uid"] = [str(u) for u in data["uid"]]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"update_step_{step}.pt")
    torch.save({"step": step, "keys": list(batch.keys), "tags": [dict(t) for t in batch.tags], "rows": rows}, path)
    return path
