"""The DYPO step between reward and actor update, independent of where the data lives.

The verl trainer (data in TransferQueue) and the fixed-parameter step of :mod:`recipe_dypo.gradstats` (data in
memory) call these functions, so there is one implementation of: grading and regrouping, building teacher rows
from token ids, and turning theta_old statistics into per-row loss coefficients plus the metrics researchers plot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from recipe_dypo.config import DypoConfig
from recipe_dypo.gating import DROP, EASY, EASY_ROUTES, HARD, HARD_ROUTES, MID, RL, SFT, grade_groups, group_ids
from recipe_dypo.losses import (
    ROLE_MID,
    ROLE_OFFPOLICY,
    ROLE_PAD,
    ROLE_TEACHER,
    RowCoefficients,
    gal_statistics,
    row_coefficients,
)
from recipe_dypo.teachers import Teacher, TeacherSampler, extract_teachers

# Reward of a teacher row mixed into a group: teacher solutions are correct (binary correctness reward).
TEACHER_SCORE = 1.0


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
    n_prompts = max(len(unique), 1)
    metrics = {
        "dypo/easy_ratio": float(np.mean(group_label == EASY)) if len(unique) else 0.0,
        "dypo/mid_ratio": float(np.mean(group_label == MID)) if len(unique) else 0.0,
        "dypo/hard_ratio": float(np.mean(group_label == HARD)) if len(unique) else 0.0,
        "dypo/num_prompts": float(len(unique)),
        "dypo/rollout_score_mean": float(scores.mean()) if len(scores) else 0.0,
        "dypo/rollout_acc": float(np.mean(scores >= success_threshold)) if len(scores) else 0.0,
        "dypo/prompt_pass_rate": float(np.mean(group_label != HARD)) if n_prompts else 0.0,
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


@dataclass
class TeacherChoice:
    teacher: Teacher | None  # None: the prompt has no teacher solution (counted, skipped)
    num_teachers: int


def teacher_field_keys(cfg: DypoConfig) -> dict:
    """``dypo.teacher_fields`` as the keyword arguments of :func:`recipe_dypo.teachers.extract_teachers`."""
    keys = cfg.teacher_fields
    return {
        "teachers_key": keys.get("teachers") or "teachers",
        "target_key": keys.get("target"),
        "target_list_key": keys.get("target_list"),
    }


def teachers_of(row_fields: dict, cfg: DypoConfig) -> list[Teacher]:
    """The prompt's teacher solutions, read from the fields named in ``cfg.teacher_fields``.

    With ``cfg.teacher_names`` set (e.g. the single-teacher ablation), only teachers of those names are kept.
    """
    teachers = extract_teachers(row_fields, **teacher_field_keys(cfg))
    if cfg.teacher_names is not None:
        teachers = [t for t in teachers if t.name in cfg.teacher_names]
    return teachers


def choose_teacher(row_fields: dict, sampler: TeacherSampler, cfg: DypoConfig) -> TeacherChoice:
    """Draw one teacher uniformly from the prompt's m solutions (a fresh draw every time the prompt is hard)."""
    teachers = teachers_of(row_fields, cfg)
    if not teachers:
        return TeacherChoice(None, 0)
    return TeacherChoice(teachers[sampler.draw(len(teachers))], len(teachers))


@dataclass
class TeacherRows:
    """One teacher row per prompt that has a teacher; ``sources[j]`` indexes the template of ``rows[j]``."""

    sources: list[int]
    rows: list[dict]
    teachers: list[Teacher]
    no_teacher: int
    truncated: int
    role: str = "teacher"  # tag dypo_role: "teacher" (SFT row) or "offpolicy" (group member, LUFFY-style mixing)

    def metrics(self, dropped_rollouts: int, draws: Counter) -> dict:
        return {
            "dypo/dropped_rollouts": float(dropped_rollouts),
            "dypo/teacher_rows": float(len(self.rows)),
            "dypo/teacher_truncated": float(self.truncated),
            "dypo/hard_without_teacher": float(self.no_teacher),
            **teacher_count_metrics(draws),
        }


def build_teacher_rows(templates: list[dict], sampler: TeacherSampler, cfg: DypoConfig, tokenize, draws: Counter):
    """Draw a teacher for each prompt, tokenise all draws in one batch and build their rows.

    Args:
        templates: one rollout's field dict per prompt needing a teacher row (hard prompts; every prompt when
            mixing); its prompt tokens and teacher fields are used.
        tokenize: ``texts -> [(ids, truncated)]``, e.g. :func:`teacher_response_ids` or a cached version of it.
        draws: per-teacher draw counter, updated in place.

    Returns:
        :class:`TeacherRows`; prompts without any teacher are counted in ``no_teacher`` and get no row.
    """
    drawn = []  # (template index, teacher)
    for i, template in enumerate(templates):
        choice = choose_teacher(template, sampler, cfg)
        if choice.teacher is not None:
            drawn.append((i, choice.teacher))
    tokens = tokenize([teacher.response for _, teacher in drawn]) if drawn else []
    rows, truncated = [], 0
    for (i, teacher), (ids, was_cut) in zip(drawn, tokens):
        truncated += was_cut
        draws[teacher.name] += 1
        rows.append(teacher_row(templates[i], ids, score=TEACHER_SCORE if cfg.offpolicy_mixing else 0.0))
    return TeacherRows(
        sources=[i for i, _ in drawn],
        rows=rows,
        teachers=[t for _, t in drawn],
        no_teacher=len(templates) - len(drawn),
        truncated=truncated,
        role="offpolicy" if cfg.offpolicy_mixing else "teacher",
    )


def teacher_response_ids(tokenizer, texts: list[str], max_tokens: int) -> list[tuple[list[int], bool]]:
    """Token ids of teacher responses as the policy would emit them: text tokens then EOS, cut to max_tokens.

    Tokenises the whole list in one call (the fast tokenizer parallelises a batch).

    Returns:
        one (ids, truncated) per text.
    """
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    out = []
    for ids in encoded:
        ids = list(ids) + eos
        out.append((ids[:max_tokens], True) if len(ids) > max_tokens else (ids, False))
    return out


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

    row = {k: (v.clone() if isinstance(v, torch.Tensor) else _copy(v)) for k, v in template.items()}
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


def _copy(value):
    import copy

    return copy.deepcopy(value)


# Tag of the one rollout kept on a step where nothing trains (verl's pipeline needs a real row); no loss.
SKIPPED_ROLE = "skipped"
TAG_ROLES = {"teacher": ROLE_TEACHER, "offpolicy": ROLE_OFFPOLICY, SKIPPED_ROLE: ROLE_PAD}


def row_roles(tags: list[dict]) -> np.ndarray:
    """Roles from trajectory tags: verl's padding rows and a skipped step's placeholder (ROLE_PAD), DYPO teacher
    rows (SFT or off-policy), and RL rollouts."""
    return np.array(
        [ROLE_PAD if t.get("is_padding", False) else TAG_ROLES.get(t.get("dypo_role"), ROLE_MID) for t in tags],
        dtype=np.int64,
    )


def check_finite(name: str, values: torch.Tensor, row_of_value: torch.Tensor, step: int, uids) -> None:
    """Raise a clear error naming the step and rows if log-probs are NaN/inf (a NaN loss would hide it)."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        rows = sorted(set(row_of_value[bad].tolist()))
        raise FloatingPointError(
            f"DYPO step {step}: non-finite {name} in {len(rows)} row(s) {rows[:8]} "
            f"(uids {[str(uids[r]) for r in rows[:4]]}); refusing to build a NaN loss"
        )


def step_coefficients(
    roles: np.ndarray,
    scores,
    uids,
    response_lengths,
    old_seq_logp,
    ref_seq_logp,
    cfg: DypoConfig,
) -> tuple[RowCoefficients, dict]:
    """Per-row loss coefficients and theta_old metrics for one DYPO step.

    Args:
        roles: (N,) ROLE_* per row. scores, uids, response_lengths: (N,).
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
    mid = roles == ROLE_MID
    teacher = roles == ROLE_TEACHER
    offline = teacher | (roles == ROLE_OFFPOLICY)
    trained = int(mid.sum() + offline.sum())
    metrics = {
        "dypo/trained_prompts": float(coefs.num_prompts),
        "dypo/trained_rows": float(trained),
        "dypo/offline_data_ratio": float(offline.sum() / trained) if trained else 0.0,
        # Fig. 4 (left) of the paper: share of the trained prompts that learn from a teacher row (one per prompt)
        "dypo/offline_prompt_ratio": float(offline.sum() / coefs.num_prompts) if coefs.num_prompts else 0.0,
        "dypo/padding_rows": float((roles == ROLE_PAD).sum()),
    }
    lengths = torch.as_tensor(np.asarray(response_lengths, dtype=np.float64)).clamp(min=1)
    if teacher.any():
        nll = -old[torch.from_numpy(teacher)]
        per = nll / lengths[torch.from_numpy(teacher)] if cfg.sft_token_mean else nll
        metrics["dypo/sft_loss"] = float(per.mean())
    else:
        metrics["dypo/sft_loss"] = 0.0
    if mid.any():
        stats = gal_statistics(
            ratio[torch.from_numpy(mid)],
            np.asarray(scores, dtype=np.float64)[mid],
            np.asarray(uids, dtype=object)[mid],
            beta=cfg.beta,
            success_threshold=cfg.success_threshold,
        )
        metrics.update({f"dypo/{k}": float(v) for k, v in stats.items()})
    else:
        metrics.update({"dypo/gal_loss": 0.0, "dypo/gal_pairs": 0.0})
    return coefs, metrics


def teacher_count_metrics(draws: Counter) -> dict:
    return {f"dypo/teacher_draws/{name}": float(count) for name, count in sorted(draws.items())}
