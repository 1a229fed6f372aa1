"""Teacher solutions of a DYPO training parquet -> verl SFT parquet (the SFT-only and SFT->RL baselines).

Each output row is a chat ``messages`` list: the prompt's messages followed by one assistant turn holding a
teacher solution, the format of verl's ``MultiTurnSFTDataset`` (``data.messages_key=messages``).

    python -m data_prep.make_sft_data --input data/train_2t.parquet --output data/sft_2t.parquet
    python -m data_prep.make_sft_data --input data/train_2t.parquet --output data/sft_1t.parquet --teacher deepseek-r1

By default every teacher solution becomes a row (multi-teacher SFT: m rows per prompt). ``--one-per-prompt``
keeps one solution per prompt drawn uniformly with ``--seed`` (the same distribution as DYPO's SFT target).
Prompts with no (selected) teacher are dropped and counted; the report lists rows per teacher.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import DropLog, ensure_repo_on_path, load_rows, write_parquet

ensure_repo_on_path()

from recipe_dypo.data_schema import get_teachers  # noqa: E402


def prompt_messages(prompt, index: int) -> list[dict]:
    """The row's prompt as chat messages (verl RL rows store a list of {role, content})."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) and "role" in m for m in prompt):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    raise ValueError(f"row {index}: prompt must be a string or a list of {{role, content}} messages")


def sft_rows(rows: list[dict], teachers: Sequence[str] | None, one_per_prompt: bool, seed: int, drops: DropLog):
    """Yield ``(sft_row, teacher_name)`` for every kept teacher solution."""
    rng = random.Random(seed)
    wanted = set(teachers) if teachers else None
    for i, row in enumerate(rows):
        found, issues = get_teachers(row)
        if issues:
            raise ValueError(f"row {i}: {issues[0].field}: {issues[0].reason}")
        chosen = [t for t in found if wanted is None or t["name"] in wanted]
        if not chosen:
            drops.drop(i, "extra_info.teachers", "no teacher" if not found else "no selected teacher")
            continue
        if one_per_prompt:
            chosen = [chosen[rng.randrange(len(chosen))]]
        messages = prompt_messages(row.get("prompt"), i)
        extra = row.get("extra_info") or {}
        for t in chosen:
            yield {
                "messages": messages + [{"role": "assistant", "content": t["response"]}],
                "data_source": row.get("data_source"),
                "extra_info": {"index": extra.get("index", i), "teacher": t["name"]},
            }, t["name"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="DYPO training parquet (with teacher solutions)")
    p.add_argument("--output", required=True, help="output SFT parquet")
    p.add_argument("--teacher", action="append", default=None, help="keep only this teacher name (repeatable)")
    p.add_argument("--one-per-prompt", action="store_true", help="one uniformly drawn teacher per prompt")
    p.add_argument("--seed", type=int, default=1, help="seed of --one-per-prompt draws (default 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = load_rows(args.input)
    drops = DropLog("prompts")
    out, per_teacher = [], Counter()
    for row, name in sft_rows(rows, args.teacher, args.one_per_prompt, args.seed, drops):
        out.append(row)
        per_teacher[name] += 1
    if args.teacher:
        unknown = sorted(set(args.teacher) - set(per_teacher))
        if unknown:
            print(f"error: teacher(s) {unknown} not found in {args.input}", file=sys.stderr)
            return 2
    if not out:
        print(f"error: no teacher solutions in {args.input}", file=sys.stderr)
        return 2
    write_parquet(out, args.output)
    print(f"{args.input}: {len(rows)} prompts -> {args.output}: {len(out)} SFT rows; per teacher {dict(per_teacher)}")
    drops.report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
