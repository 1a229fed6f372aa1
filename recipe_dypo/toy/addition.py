"""The toy task: single-digit addition with two teacher styles and a held-out set of unseen pairs.

A prompt is ``"a+b"`` (0 <= a, b <= 9), the answer ``\\boxed{a+b}``. Of the 100 pairs, a fixed random 20 are
held out (the validation set, never trained on) and 80 train. Every training row carries two teacher
solutions, so the multi-teacher draw of DYPO has a real choice:

* ``forward``: the sum written out first, ``<think>3+5=8</think>\\boxed{8}``;
* ``swapped``: the same with the operands in the other order, ``<think>5+3=8</think>\\boxed{8}``.

The two styles have the same length on purpose. GAL compares sequence log-ratios summed over tokens; with one
style 7 tokens longer than the other (``\\boxed{8}`` against the worked sum, an earlier version of this task),
a pair's margin d was dominated by which style each rollout used rather than by whether it was right (|d| up to
~25 nats), and that run stopped improving once mid groups appeared (held-out 0.15 after 150 steps).

A randomly initialised model answers nothing correctly, so at the start every group is hard and DYPO trains by
SFT on a teacher; as the model learns, groups turn mixed (GRPO + GAL) and then all-correct (dropped). The held-out
pairs measure whether it learned addition rather than the 80 training answers.
"""

from __future__ import annotations

import random

from recipe_dypo.data_schema import TOY_DATA_SOURCE, prompt_hash

TEACHER_STYLES = ("forward", "swapped")
HELDOUT_PAIRS = 20


def teacher_solution(style: str, a: int, b: int) -> str:
    """The solution of ``a+b`` in one of :data:`TEACHER_STYLES`."""
    if style == "forward":
        return f"<think>{a}+{b}={a + b}</think>\\boxed{{{a + b}}}"
    if style == "swapped":
        return f"<think>{b}+{a}={a + b}</think>\\boxed{{{a + b}}}"
    raise ValueError(f"unknown teacher style {style!r}; choose from {TEACHER_STYLES}")


def split_pairs(seed: int = 0, heldout: int = HELDOUT_PAIRS) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train pairs, held-out pairs): all 100 pairs (a, b), ``heldout`` of them drawn by ``seed``."""
    pairs = [(a, b) for a in range(10) for b in range(10)]
    held = set(random.Random(f"toy-addition:{seed}").sample(pairs, heldout))
    return [p for p in pairs if p not in held], sorted(held)


def addition_row(a: int, b: int, split: str, index: int, teachers=TEACHER_STYLES) -> dict:
    """One dataset row in the DYPO verl schema (docs/data.md "Data schema")."""
    prompt = [{"role": "user", "content": f"{a}+{b}"}]
    return {
        "data_source": TOY_DATA_SOURCE,
        "prompt": prompt,
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": str(a + b)},
        "extra_info": {
            "split": split,
            "index": index,
            "prompt_hash": prompt_hash(prompt),
            "teachers": [{"name": s, "response": teacher_solution(s, a, b)} for s in teachers],
        },
    }


def addition_rows(seed: int = 0, teachers=TEACHER_STYLES) -> tuple[list[dict], list[dict]]:
    """(train rows with ``teachers``, held-out rows without teachers); a pure function of the arguments."""
    train, held = split_pairs(seed)
    return (
        [addition_row(a, b, "train", i, teachers) for i, (a, b) in enumerate(train)],
        [addition_row(a, b, "test", i, ()) for i, (a, b) in enumerate(held)],
    )
