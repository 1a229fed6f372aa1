"""DYPO's part of a checkpoint: the teacher-draw RNG and the per-teacher draw counts, in ``dypo_state.json``
beside verl's ``actor/`` folder, so a resumed run draws the same teachers as an uninterrupted one."""

from __future__ import annotations

import json
import os
from collections import Counter

from recipe_dypo.teachers import TeacherSampler

STATE_FILE = "dypo_state.json"


def save_dypo_state(folder: str, sampler: TeacherSampler, draws: Counter) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, STATE_FILE), "w") as f:
        json.dump({"teacher_sampler": sampler.state_dict(), "teacher_draws": dict(draws)}, f)


def load_dypo_state(folder: str, sampler: TeacherSampler, draws: Counter) -> bool:
    """Restore ``sampler`` and ``draws`` from ``folder``; False when the folder has no state file."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        state = json.load(f)
    sampler.load_state_dict(state["teacher_sampler"])
    draws.clear()
    draws.update(state.get("teacher_draws", {}))
    return True


def resumed_folder(trainer_config) -> str | None:
    """The checkpoint folder verl resumed from (``trainer.resume_mode``: ``resume_path`` or the latest)."""
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    if trainer_config.resume_mode == "resume_path":
        return trainer_config.resume_from_path
    root = trainer_config.default_local_dir
    return find_latest_ckpt_path(root if os.path.isabs(root) else os.path.join(os.getcwd(), root))
