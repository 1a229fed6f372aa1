"""Teacher solutions that travel with each prompt, and the uniform teacher draw for hard prompts.

A hard prompt (no rollout correct) is trained on ONE teacher trajectory drawn uniformly from the
prompt's m teacher solutions, with a fresh draw every time the prompt is hard (paper eq. 9-11:
uniform mixing of teachers is what keeps the multi-teacher SFT target unbiased).

Accepted sources, merged in this order and de-duplicated by text:
  1. ``extra_info.teachers``: list of ``{"name": str, "response": str}`` (the DYPO field),
  2. LUFFY ``target``: one assistant message (``[{"role": "assistant", "content": ...}]``, a dict or a str),
  3. LUFFY ``target_lst``: a list of such messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Teacher:
    name: str
    response: str


def extract_teachers(
    row: Mapping,
    teachers_key: str = "teachers",
    target_key: str | None = "target",
    target_list_key: str | None = "target_lst",
) -> list[Teacher]:
    """The teacher solutions of one prompt row that a draw can select: those
    :func:`recipe_dypo.data_schema.get_teachers` parses (the same names the start-up checks see), without empty
    responses and without repeats of an earlier teacher's text.

    Args:
        row: the prompt's fields, e.g. ``{"extra_info": {...}, "target": [...], ...}``.
        teachers_key: key inside ``row["extra_info"]`` holding ``[{name, response}, ...]``.
        target_key / target_list_key: LUFFY columns (None disables).

    Raises:
        ValueError naming the field when an entry is malformed.
    """
    from recipe_dypo.data_schema import get_teachers

    found, issues = get_teachers(row, teachers_key, target_key, target_list_key)
    if issues:
        raise ValueError("; ".join(f"{issue.field}: {issue.reason}" for issue in issues))
    unique, seen = [], set()
    for t in found:
        if t["response"].strip() and t["response"] not in seen:
            seen.add(t["response"])
            unique.append(Teacher(name=t["name"], response=t["response"]))
    return unique


class TeacherSampler:
    """Uniform draw of one teacher per hard prompt, with a checkpointable RNG.

    The state is saved with verl's checkpoints so a resumed run draws the same teachers as an
    uninterrupted one.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def draw(self, num_teachers: int) -> int:
        """Index of the teacher to train on, uniform over ``range(num_teachers)``."""
        if num_teachers < 1:
            raise ValueError("draw() needs at least one teacher")
        return int(self._rng.integers(num_teachers))

    def state_dict(self) -> dict:
        return {"seed": self.seed, "bit_generator": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._rng = np.random.default_rng(self.seed)
        self._rng.bit_generator.state = state["bit_generator"]
