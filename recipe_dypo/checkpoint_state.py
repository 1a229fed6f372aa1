"""DYPO's part of a checkpoint: the teacher-draw RNG and the per-teacher draw counts, in ``dypo_state.json``
beside verl's ``actor/`` folder, so a resumed run draws the same teachers as an uninterrupted one.

Crash consistency: the trainer writes this file before verl's save, which ends by marking the checkpoint complete
(``latest_checkpointed_iteration.txt``); the file itself is written to a temporary name and renamed. A crash at
any instant therefore leaves either the previous complete checkpoint or the new one, each with its own state. On
resume the state must exist, parse and name the step of its folder; otherwise the run stops with an error naming
the file, unless ``dypo.resume_without_state=true`` accepts teacher draws reseeded from ``dypo.seed``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter

from recipe_dypo.teachers import TeacherSampler

logger = logging.getLogger(__name__)

STATE_FILE = "dypo_state.json"
ACCEPT_RESEED = "dypo.resume_without_state=true"


class DypoStateError(RuntimeError):
    """The checkpoint verl resumes from has no usable DYPO state."""


def save_dypo_state(folder: str, step: int, sampler: TeacherSampler, draws: Counter) -> str:
    """Write ``<folder>/dypo_state.json`` atomically (temporary file, fsync, rename); returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STATE_FILE)
    state = {"global_step": int(step), "teacher_sampler": sampler.state_dict(), "teacher_draws": dict(draws)}
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def step_of_folder(folder: str) -> int:
    match = re.search(r"global_step_(\d+)$", os.path.normpath(folder))
    if match is None:
        raise DypoStateError(f"{folder}: not a verl checkpoint folder (global_step_N)")
    return int(match.group(1))


def read_dypo_state(folder: str, resume_without_state: bool = False) -> dict | None:
    """The DYPO state of the checkpoint in ``folder``, checked against the folder's step.

    Returns None (with a warning) only when the state is missing or unusable and ``resume_without_state`` is set.
    Raises:
        DypoStateError naming the file, what is wrong and the override.
    """
    path = os.path.join(folder, STATE_FILE)
    step = step_of_folder(folder)
    try:
        with open(path) as f:
            state = json.load(f)
        problem = None
        if state.get("global_step") != step:
            problem = f"it belongs to step {state.get('global_step')}, the checkpoint is step {step}"
        elif "teacher_sampler" not in state:
            problem = "it has no teacher_sampler entry"
    except FileNotFoundError:
        problem = "the file is missing"
    except (OSError, ValueError) as exc:
        problem = f"it cannot be read ({exc})"
    if problem is None:
        return state
    message = (
        f"{path}: {problem}. Resuming from it would restart the teacher draws from dypo.seed, so the resumed run "
        f"would not continue the run that was started. Set {ACCEPT_RESEED} to resume anyway."
    )
    if not resume_without_state:
        raise DypoStateError(message)
    logger.warning("%s (accepted: %s)", message, ACCEPT_RESEED)
    return None


def apply_dypo_state(state: dict, sampler: TeacherSampler, draws: Counter) -> None:
    sampler.load_state_dict(state["teacher_sampler"])
    draws.clear()
    draws.update(state.get("teacher_draws", {}))


def resumed_folder(trainer_config) -> str | None:
    """The checkpoint folder verl will resume from (``trainer.resume_mode``), or None when it starts fresh."""
    from verl.utils.checkpoint.checkpoint_manager import find_latest_ckpt_path

    if trainer_config.resume_mode == "disable":
        return None
    if trainer_config.resume_mode == "resume_path":
        return trainer_config.resume_from_path
    root = trainer_config.default_local_dir
    return find_latest_ckpt_path(root if os.path.isabs(root) else os.path.join(os.getcwd(), root))
