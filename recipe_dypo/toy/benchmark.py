"""The toy benchmark suite of the toy tables: the paper's evaluation structure, at a size a CPU trains in minutes.

Four columns, each a family of short arithmetic prompts the character tokenizer spells (recipe_dypo/toy/tokenizer.py):

* in-distribution (trained on, scored on held-out prompts): ``add`` ("17+8", operands 0-29), ``sub`` ("31-9",
  0 <= b <= a <= 39), ``max`` ("max(42,7)", operands 0-99);
* out-of-distribution (never trained on): ``add3`` ("4+8+3", three single digits): a composition of a trained
  skill in a format the training set does not contain.

Each column holds :data:`HELDOUT_PER_TASK` held-out prompts (128: one prompt moves a column by 0.8 points). The
remaining prompts of the ID families are the training set, each with two teacher solutions of the same length
(two styles, so the multi-teacher draw has a real choice, as in recipe_dypo/toy/addition.py):

* ``forward``: ``<think>17+8=25</think>\\boxed{25}``;
* ``swapped``: the operands the other way round (``8+17``, ``max(7,42)``), or for subtraction the check by
  addition (``22+9=31``).

The base model's "pre-training text" (recipe_dypo/toy/base_model.py) is the training prompts, half of them answered
in a third, short style, ``\\boxed{25}``, half worked in a teacher style (:func:`pretraining_texts`).
Everything is a pure function of the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from recipe_dypo.data_schema import prompt_hash

TEACHER_STYLES = ("forward", "swapped")
ID_TASKS = ("add", "sub", "max")
OOD_TASKS = ("add3",)
TASKS = ID_TASKS + OOD_TASKS
HELDOUT_PER_TASK = 128
TRAIN_MAX_PROMPTS = 800  # the max family has 10k prompts; a training set of this many keeps the tasks balanced


def data_source(task: str) -> str:
    """``toy_<task>``: the eval's benchmark key (recipe_dypo.eval.metrics.canonical_benchmark keeps it as is)."""
    return f"toy_{task}"


def _operands(task: str) -> list[tuple[int, ...]]:
    if task == "add":
        return [(a, b) for a in range(30) for b in range(30)]
    if task == "sub":
        return [(a, b) for a in range(40) for b in range(a + 1)]
    if task == "max":
        return [(a, b) for a in range(100) for b in range(100) if a != b]
    if task == "add3":
        return [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    raise ValueError(f"unknown toy task {task!r}; choose from {TASKS}")


_QUESTION: dict[str, Callable[..., str]] = {
    "add": lambda a, b: f"{a}+{b}",
    "sub": lambda a, b: f"{a}-{b}",
    "max": lambda a, b: f"max({a},{b})",
    "add3": lambda a, b, c: f"{a}+{b}+{c}",
}
_ANSWER: dict[str, Callable[..., int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "max": max,
    "add3": lambda a, b, c: a + b + c,
}


def question(task: str, operands: tuple[int, ...]) -> str:
    return _QUESTION[task](*operands)


def answer(task: str, operands: tuple[int, ...]) -> int:
    return _ANSWER[task](*operands)


def teacher_solution(style: str, task: str, operands: tuple[int, ...]) -> str:
    """The solution of one prompt in one of :data:`TEACHER_STYLES` (ID tasks only)."""
    y = answer(task, operands)
    a, b = operands
    if style == "forward":
        work = f"{question(task, operands)}={y}"
    elif style == "swapped":
        work = {"add": f"{b}+{a}={y}", "sub": f"{y}+{b}={a}", "max": f"max({b},{a})={y}"}[task]
    else:
        raise ValueError(f"unknown teacher style {style!r}; choose from {TEACHER_STYLES}")
    return f"<think>{work}</think>\\boxed{{{y}}}"


def base_style_answer(task: str, operands: tuple[int, ...]) -> str:
    """The short answer style of the base model's pre-training text."""
    return f"\\boxed{{{answer(task, operands)}}}"


def split_task(task: str, seed: int = 0) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(training operands, held-out operands) of one task; OOD tasks have no training part."""
    pool = _operands(task)
    random.Random(f"toy-benchmark:{task}:{seed}").shuffle(pool)
    held, rest = sorted(pool[:HELDOUT_PER_TASK]), pool[HELDOUT_PER_TASK:]
    if task in OOD_TASKS:
        return [], held
    return rest[:TRAIN_MAX_PROMPTS], held


def row(task: str, operands: tuple[int, ...], split: str, index: int, teachers=TEACHER_STYLES) -> dict:
    """One dataset row in the DYPO verl schema (docs/data.md)."""
    prompt = [{"role": "user", "content": question(task, operands)}]
    return {
        "data_source": data_source(task),
        "prompt": prompt,
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": str(answer(task, operands))},
        "extra_info": {
            "split": split,
            "index": index,
            "prompt_hash": prompt_hash(prompt),
            "teachers": [{"name": s, "response": teacher_solution(s, task, operands)} for s in teachers],
        },
    }


def training_rows(seed: int = 0) -> list[dict]:
    """The training set: every ID task's training prompts, interleaved by a seeded shuffle, two teachers each."""
    rows = [row(t, ops, "train", 0) for t in ID_TASKS for ops in split_task(t, seed)[0]]
    random.Random(f"toy-benchmark:train:{seed}").shuffle(rows)
    for i, r in enumerate(rows):
        r["extra_info"]["index"] = i
    return rows


def heldout_rows(task: str, seed: int = 0) -> list[dict]:
    """One benchmark column: the task's held-out prompts, without teachers."""
    return [row(task, ops, "test", i, ()) for i, ops in enumerate(split_task(task, seed)[1])]


PRETRAIN_WORKED_FRACTION = 0.5


def pretraining_texts(seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer) of every training prompt: the base model's pre-training text. Half the answers (drawn by
    ``seed``) are worked in one of the teacher styles, the rest in the short style. With short answers only, the
    base model had never seen ``<think>``: SFT's first 40 steps at lr 1e-4 then broke both formats (held-out ID
    average 42 -> 2.5, measured) instead of teaching one, unlike a real base model that has met worked solutions."""
    rng = random.Random(f"toy-benchmark:pretrain:{seed}")
    texts = []
    for t in ID_TASKS:
        for ops in split_task(t, seed)[0]:
            worked = rng.random() < PRETRAIN_WORKED_FRACTION
            style = rng.choice(TEACHER_STYLES)
            texts.append((question(t, ops), teacher_solution(style, t, ops) if worked else base_style_answer(t, ops)))
    return texts
