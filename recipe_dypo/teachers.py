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

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from recipe_dypo.grading import OFFPOLICY_TAG, TEACHER_TAG

if TYPE_CHECKING:
    from recipe_dypo.config import DypoConfig

# Reward of a teacher row mixed into a group: teacher solutions are correct (binary correctness reward).
TEACHER_SCORE = 1.0
# Fields of a dataloader row that can carry teachers (extra_info.teachers, LUFFY target / target_lst).
TEACHER_SOURCE_FIELDS = ("extra_info", "target", "target_lst")


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


def teacher_field_keys(cfg: DypoConfig) -> dict:
    """``dypo.teacher_fields`` as the keyword arguments of :func:`extract_teachers`."""
    keys = cfg.teacher_fields
    return {
        "teachers_key": keys.get("teachers") or "teachers",
        "target_key": keys.get("target"),
        "target_list_key": keys.get("target_list"),
    }


def teachers_of(row_fields: Mapping, cfg: DypoConfig) -> list[Teacher]:
    """The prompt's teacher solutions, read from the fields named in ``cfg.teacher_fields``.

    With ``cfg.teacher_names`` set (e.g. the single-teacher ablation), only teachers of those names are kept.
    """
    teachers = extract_teachers(row_fields, **teacher_field_keys(cfg))
    if cfg.teacher_names is not None:
        teachers = [t for t in teachers if t.name in cfg.teacher_names]
    return teachers


def draw_teacher(row_fields: Mapping, sampler: TeacherSampler, cfg: DypoConfig) -> Teacher | None:
    """ONE teacher drawn uniformly from the prompt's m solutions (a fresh draw every time the prompt is hard);
    None when the prompt has none."""
    teachers = teachers_of(row_fields, cfg)
    return teachers[sampler.draw(len(teachers))] if teachers else None


@dataclass
class TeacherRows:
    """One teacher row per prompt that has a teacher; ``sources[j]`` indexes the template of ``rows[j]``."""

    sources: list[int]
    rows: list[dict]
    teachers: list[Teacher]
    no_teacher: int
    truncated: int
    role: str = TEACHER_TAG  # the rows' dypo_role tag: SFT rows, or group members under LUFFY-style mixing
    bad: list[str] = field(default_factory=list)  # "row <index>: <reason>" of each prompt skipped as malformed

    def metrics(self, dropped_rollouts: int, draws: Counter) -> dict:
        return {
            "dypo/dropped_rollouts": float(dropped_rollouts),
            "dypo/teacher_rows": float(len(self.rows)),
            "dypo/teacher_truncated": float(self.truncated),
            "dypo/hard_without_teacher": float(self.no_teacher),
            "dypo/bad_teacher_rows": float(len(self.bad)),
            **{f"dypo/teacher_draws/{name}": float(count) for name, count in sorted(draws.items())},
        }


NO_TEACHER_ROWS = TeacherRows(sources=[], rows=[], teachers=[], no_teacher=0, truncated=0)


def build_teacher_rows(templates: list[dict], sampler: TeacherSampler, cfg: DypoConfig, tokenize, draws: Counter):
    """Draw a teacher for each prompt, tokenise all draws in one batch and build their rows.

    Args:
        templates: one rollout's field dict per prompt needing a teacher row (hard prompts; every prompt when
            mixing); its prompt tokens and teacher fields are used.
        tokenize: ``texts -> [(ids or None, truncated)]``, e.g. :func:`teacher_response_ids` or a cached version.
        draws: per-teacher draw counter, updated in place.

    Returns:
        :class:`TeacherRows`; prompts without any teacher are counted in ``no_teacher`` and get no row. A prompt
        whose teacher fields are malformed or whose drawn teacher does not tokenise (possible with
        ``dypo.validate_data=false``) is named by its ``extra_info.index``: ``dypo.on_bad_row=stop`` raises
        ValueError, ``skip`` leaves it out and lists it in ``bad``.
    """
    drawn, bad, no_teacher = [], [], 0  # (template index, teacher), (template index, reason)
    for i, template in enumerate(templates):
        try:
            teacher = draw_teacher(template, sampler, cfg)
        except (TypeError, ValueError) as exc:
            bad.append((i, f"malformed teacher field: {exc}"))
            continue
        if teacher is None:
            no_teacher += 1
        else:
            drawn.append((i, teacher))
    tokens = tokenize([teacher.response for _, teacher in drawn]) if drawn else []
    score = TEACHER_SCORE if cfg.offpolicy_mixing else 0.0
    kept, rows, truncated = [], [], 0
    for (i, teacher), (ids, was_cut) in zip(drawn, tokens):
        if ids is None:
            bad.append((i, f"teacher {teacher.name!r} does not tokenise"))
            continue
        truncated += was_cut
        draws[teacher.name] += 1
        kept.append((i, teacher))
        rows.append(teacher_row(templates[i], ids, score=score))
    named = [f"row {(templates[i].get('extra_info') or {}).get('index')}: {why}" for i, why in sorted(bad)]
    if named and cfg.on_bad_row == "stop":
        raise ValueError(f"{len(named)} training row(s) cannot give a teacher row (dypo.on_bad_row=stop): {named}")
    return TeacherRows(
        sources=[i for i, _ in kept],
        rows=rows,
        teachers=[t for _, t in kept],
        no_teacher=no_teacher,
        truncated=truncated,
        role=OFFPOLICY_TAG if cfg.offpolicy_mixing else TEACHER_TAG,
        bad=named,
    )


def teacher_response_ids(tokenizer, texts: list[str], max_tokens: int) -> list[tuple[list[int] | None, bool]]:
    """Token ids of teacher responses as the policy would emit them: text tokens then EOS, cut to max_tokens.

    Tokenises the whole list in one call (the fast tokenizer parallelises a batch). If the batch fails, the texts
    are tokenised one by one and a text the tokenizer refuses (e.g. a lone surrogate) gets ``None``.

    Returns:
        one (ids or None, truncated) per text.
    """
    if not texts:
        return []
    try:
        encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    except (TypeError, ValueError):
        encoded = [_tokenize_one(tokenizer, text) for text in texts]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    out = []
    for ids in encoded:
        if ids is None:
            out.append((None, False))
            continue
        ids = list(ids) + eos
        out.append((ids[:max_tokens], True) if len(ids) > max_tokens else (ids, False))
    return out


def _tokenize_one(tokenizer, text) -> list[int] | None:
    try:
        return tokenizer([text], add_special_tokens=False)["input_ids"][0]
    except (TypeError, ValueError):
        return None


def teacher_row(template: dict, response_ids: list[int], score: float = 0.0) -> dict:
    """A trajectory for the teacher solution, built from token ids (never decoded by a rollout engine).

    Args:
        template: one rollout of the same prompt (verl's per-trajectory field dict); its prompt tokens are kept.
        response_ids: teacher token ids.
        score: reward placed on the last token (an off-policy group member counts as a success; an SFT row's
            reward is never read).

    Returns:
        A new field dict with response tensors, masks and positions for ``prompts + teacher response``.
    """
    from verl.trainer.ppo.padding_utils import build_padding_position_ids

    row = {k: (v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)) for k, v in template.items()}
    prompts = template["prompts"]
    responses = torch.tensor(response_ids, dtype=prompts.dtype)
    input_ids = torch.cat([prompts, responses])
    attention_mask = torch.ones_like(input_ids)
    response_mask = torch.ones_like(responses)
    row.update(
        responses=responses,
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=build_padding_position_ids(template.get("position_ids"), attention_mask),
        response_mask=response_mask,
        loss_mask=response_mask,
        rm_scores=torch.zeros(len(responses), dtype=torch.float32),
    )
    row["rm_scores"][-1] = score
    if "rollout_log_probs" in template:
        row["rollout_log_probs"] = torch.zeros(len(responses), dtype=torch.float32)
    # Per-token side data of the rollout does not apply to the teacher's tokens.
    for key in ("routed_experts", "teacher_ids", "teacher_logprobs"):
        row.pop(key, None)
    return row


def unwrap(value):
    """A non-tensor field value as stored by verl/TransferQueue (possibly wrapped in ``NonTensorData``)."""
    return getattr(value, "data", value) if not isinstance(value, torch.Tensor) else value


def row_dicts(batch) -> list[dict]:
    """The rows of a TensorDict read from TransferQueue as plain dicts, ``{field: unwrap(batch[i][field])}``, built
    one column at a time: indexing the TensorDict row by row rebuilds every field for every row (0.2 s a step for
    32 rows on CPU, py-spy)."""
    columns = {}
    for name in batch.keys():
        column = batch.get(name)
        if isinstance(column, torch.Tensor):
            columns[name] = list(column.unbind(0))
        elif hasattr(column, "tolist"):  # a stack of per-row non-tensor values
            columns[name] = [unwrap(v) for v in column.tolist()]
        else:  # anything else: verl's per-row indexing
            columns[name] = [unwrap(batch[i][name]) for i in range(len(batch))]
    return [{name: col[i] for name, col in columns.items()} for i in range(len(batch))]


def prompt_rows(batch, fields=TEACHER_SOURCE_FIELDS) -> list[dict]:
    """Per-prompt dicts of the given non-tensor fields of a dataloader TensorDict (missing fields are skipped)."""
    columns = {}
    for name in fields:
        if name in batch.keys():
            values = batch[name]
            values = values.tolist() if hasattr(values, "tolist") else list(values)
            columns[name] = [unwrap(v) for v in values]
    return [{name: col[i] for name, col in columns.items()} for i in range(len(batch))]


def batch_teacher_texts(batch, cfg: DypoConfig) -> list[str]:
    """Every teacher response of a dataloader batch, for tokenising ahead of the regroup. A malformed entry is
    skipped here; it is reported with its field name if its prompt turns out hard (extract_teachers raises then)."""
    texts = []
    for row in prompt_rows(batch):
        try:
            texts.extend(t.response for t in teachers_of(row, cfg))
        except (TypeError, ValueError):
            continue
    return texts
