"""Deterministic toy data set: short integer arithmetic word problems with synthetic teacher solutions.

Used by the CPU quickstart (a tiny model trains on it) and by tests. Every row is in the DYPO verl schema
(``data_source="toy_arith"``) with one solution per requested teacher style, each written as
``<think>\\n...\\n</think>\\n... \\boxed{answer}``. Prompts stay under ~40 tokens and solutions under ~60.

    python -m data_prep.toy_data --output-dir data/toy --train-size 512 --test-size 64 --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import ensure_repo_on_path, write_parquet

ensure_repo_on_path()

from recipe_dypo.data_schema import TOY_DATA_SOURCE, prompt_hash  # noqa: E402

INSTRUCTION = "Think in <think></think>, then give the answer in \\boxed{}."
TEACHER_STYLES = ("concise", "verbose")

NAMES = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Max", "Sam", "Tom", "Zoe")
ITEMS = ("apples", "pens", "cards", "coins", "shells", "stamps", "books", "marbles")


def _problem(rng: random.Random) -> tuple[str, int, dict]:
    """One problem: (text, answer, steps) where steps describe the arithmetic for the teacher writers."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.choice(("add", "sub", "mul", "div", "mul_sub"))
    if kind == "add":
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        text = f"{name} has {a} {item} and gets {b} more. How many {item} now?"
        return text, a + b, {"expr": f"{a} + {b}", "why": f"{name} starts with {a} and gains {b}"}
    if kind == "sub":
        a = rng.randint(10, 90)
        b = rng.randint(1, a - 1)
        text = f"{name} has {a} {item} and gives away {b}. How many are left?"
        return text, a - b, {"expr": f"{a} - {b}", "why": f"{name} starts with {a} and loses {b}"}
    if kind == "mul":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        text = f"{name} has {a} bags with {b} {item} each. How many {item} in all?"
        return text, a * b, {"expr": f"{a} * {b}", "why": f"{a} bags of {b} each"}
    if kind == "div":
        b, q = rng.randint(2, 9), rng.randint(2, 12)
        a = b * q
        text = f"{name} shares {a} {item} equally among {b} friends. How many does each get?"
        return text, q, {"expr": f"{a} / {b}", "why": f"{a} split into {b} equal parts"}
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    c = rng.randint(1, a * b - 1)
    text = f"{name} buys {a} packs of {b} {item} and loses {c}. How many are left?"
    return text, a * b - c, {"expr": f"{a} * {b} - {c}", "why": f"{a} packs of {b} is {a * b}, minus {c}"}


def teacher_solution(style: str, steps: dict, answer: int) -> str:
    """A synthetic teacher solution in one of :data:`TEACHER_STYLES`."""
    if style == "concise":
        return f"<think>\n{steps['expr']} = {answer}\n</think>\nThe answer is \\boxed{{{answer}}}."
    if style == "verbose":
        return (
            f"<think>\n{steps['why']}, so {steps['expr']} = {answer}. Check: yes.\n</think>\n"
            f"So the result is {answer}. Final answer: \\boxed{{{answer}}}"
        )
    raise ValueError(f"unknown teacher style {style!r}; choose from {TEACHER_STYLES}")


def make_toy_rows(
    n: int, seed: int = 0, split: str = "train", teachers: Sequence[str] = TEACHER_STYLES, start_index: int = 0
) -> list[dict]:
    """``n`` distinct toy rows, a pure function of ``(n, seed, split, teachers)``.

    Args:
        n: number of rows.
        seed: RNG seed; combined with ``split`` so train and test draw different problems.
        split: written to ``extra_info.split``.
        teachers: teacher styles, each row gets one solution per style (names = styles); ``()`` for none.
        start_index: first ``extra_info.index``.
    """
    for style in teachers:
        if style not in TEACHER_STYLES:
            raise ValueError(f"unknown teacher style {style!r}; choose from {TEACHER_STYLES}")
    rng = random.Random(f"toy-arith:{seed}:{split}")
    rows, seen = [], set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct toy problems")
        text, answer, steps = _problem(rng)
        if text in seen:
            continue
        seen.add(text)
        prompt = [{"role": "user", "content": f"{text} {INSTRUCTION}"}]
        rows.append(
            {
                "data_source": TOY_DATA_SOURCE,
                "prompt": prompt,
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(answer)},
                "extra_info": {
                    "split": split,
                    "index": start_index + len(rows),
                    "prompt_hash": prompt_hash(prompt),
                    "teachers": [{"name": s, "response": teacher_solution(s, steps, answer)} for s in teachers],
                },
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--output-dir", required=True, help="writes train.parquet and test.parquet here")
    p.add_argument("--train-size", type=int, default=512, help="training rows (default 512)")
    p.add_argument("--test-size", type=int, default=64, help="test rows, written without teachers (default 64)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    p.add_argument(
        "--teachers",
        default=",".join(TEACHER_STYLES),
        help=f"comma-separated teacher styles for training rows, from {TEACHER_STYLES} (default: both)",
    )
    args = p.parse_args(argv)
    styles = tuple(s for s in args.teachers.split(",") if s)
    out = Path(args.output_dir)
    train = make_toy_rows(args.train_size, args.seed, "train", styles)
    test = make_toy_rows(args.test_size, args.seed, "test", ())
    train_texts = {r["prompt"][0]["content"] for r in train}
    overlap = sum(r["prompt"][0]["content"] in train_texts for r in test)
    write_parquet(train, out / "train.parquet")
    write_parquet(test, out / "test.parquet")
    print(f"wrote {len(train)} train rows ({len(styles)} teacher(s) each) to {out / 'train.parquet'}")
    print(f"wrote {len(test)} test rows to {out / 'test.parquet'} ({overlap} prompt(s) also in train); dropped 0 rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
