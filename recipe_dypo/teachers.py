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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Teacher:
    name: str
    response: str


def _message_text(msg, where: str) -> str:
    if isinstance(msg, str):
        return msg
    if isinstance(msg, Mapping) and "content" in msg:
        if not isinstance(msg["content"], str):
            raise TypeError(f"{where}: message content must be a str, got {type(msg['content']).__name__}")
        return msg["content"]
    raise TypeError(f"{where}: expected a str or a {{'role','content'}} message, got {type(msg).__name__}")


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str | Mapping):
        return [value]
    if isinstance(value, Sequence) or hasattr(value, "tolist"):
        return list(value.tolist() if hasattr(value, "tolist") else value)
    return [value]


def extract_teachers(
    row: Mapping,
    teachers_key: str = "teachers",
    target_key: str | None = "target",
    target_list_key: str | None = "target_lst",
) -> list[Teacher]:
    """Collect the teacher solutions of one prompt row.

    Args:
        row: the prompt's fields, e.g. ``{"extra_info": {...}, "target": [...], ...}``.
        teachers_key: key inside ``row["extra_info"]`` holding ``[{name, response}, ...]``.
        target_key / target_list_key: LUFFY columns (None disables).

    Returns:
        Teachers in source order, without duplicates and empty responses. May be empty.

    Raises:
        TypeError / ValueError naming the field when an entry is malformed.
    """
    found: list[Teacher] = []
    extra_info = row.get("extra_info") or {}
    for i, entry in enumerate(_as_list(extra_info.get(teachers_key) if isinstance(extra_info, Mapping) else None)):
        where = f"extra_info.{teachers_key}[{i}]"
        if not isinstance(entry, Mapping) or "response" not in entry:
            raise ValueError(f"{where}: expected {{'name': str, 'response': str}}, got {entry!r:.80}")
        if not isinstance(entry["response"], str):
            raise TypeError(f"{where}.response must be a str, got {type(entry['response']).__name__}")
        found.append(Teacher(name=str(entry.get("name") or f"teacher{i}"), response=entry["response"]))
    if target_key and row.get(target_key) is not None:
        for i, msg in enumerate(_as_list(row[target_key])):
            found.append(Teacher(name="target", response=_message_text(msg, f"{target_key}[{i}]")))
    if target_list_key and row.get(target_list_key) is not None:
        for i, msg in enumerate(_as_list(row[target_list_key])):
            found.append(Teacher(name=f"target_lst{i}", response=_message_text(msg, f"{target_list_key}[{i}]")))
    unique, seen = [], set()
    for t in found:
        if t.response.strip() and t.response not in seen:
            seen.add(t.response)
            unique.append(t)
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
