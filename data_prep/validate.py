"""Check a DYPO / verl parquet against the schema and report every bad row with its index and reason.

Checks: required columns, non-empty prompt with a user message, ground truth present, reward style ``rule``,
``extra_info.index`` an integer unique within its split, teachers (``extra_info.teachers``, ``target``,
``target_lst``) being strings, at least --min-teachers of them, within --max-teacher-tokens, and (with
--require-think) each with a complete ``<think>...</think>`` section.

Bad rows are never dropped silently: without --drop-invalid the tool exits 1 listing them; with it, it writes
the valid rows to --output and the bad ones (with a ``reject_reasons`` column) to --rejects and prints counts.
The same checks are available to code as ``recipe_dypo.data_schema.validate_parquet``.

    python -m data_prep.validate data/train.parquet --min-teachers 2 --max-teacher-tokens 8192 --tokenizer qwen
    python -m data_prep.validate data/train.parquet --drop-invalid --output data/train.clean.parquet
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import ensure_repo_on_path

ensure_repo_on_path()

from recipe_dypo.data_schema import (  # noqa: E402
    format_issues,
    make_token_counter,
    validate_dataframe,
    validate_parquet,
)

__all__ = ["validate_parquet", "validate_dataframe", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("path", help="parquet file to check")
    p.add_argument("--min-teachers", type=int, default=0, help="required teachers per row (default 0; 1+ for training)")
    p.add_argument("--max-teacher-tokens", type=int, default=None, help="token budget per teacher solution")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="token budget per prompt")
    p.add_argument(
        "--tokenizer", default=None, help="token counter: approx (default, ~3.5 chars/token), qwen, or a path"
    )
    p.add_argument("--require-think", action="store_true", help="teachers need a complete <think>...</think> section")
    p.add_argument("--allow-duplicate-index", action="store_true", help="do not check extra_info.index uniqueness")
    p.add_argument("--drop-invalid", action="store_true", help="write valid rows to --output and bad ones to --rejects")
    p.add_argument("--output", default=None, help="clean parquet (default <path>.clean.parquet)")
    p.add_argument("--rejects", default=None, help="rejected rows parquet (default <path>.rejects.parquet)")
    p.add_argument("--max-report", type=int, default=50, help="issues listed in full (default 50)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    path = Path(args.path)
    if not path.exists():
        print(f"error: {path} not found", file=sys.stderr)
        return 2
    df = pd.read_parquet(path)
    counter = make_token_counter(args.tokenizer) if (args.max_teacher_tokens or args.max_prompt_tokens) else None
    issues = validate_dataframe(
        df,
        min_teachers=args.min_teachers,
        max_teacher_tokens=args.max_teacher_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        token_counter=counter,
        require_think=args.require_think,
        check_duplicate_index=not args.allow_duplicate_index,
        show_progress=len(df) > 10_000,
    )
    bad_rows = sorted({i.row for i in issues})
    if not issues:
        print(f"{path}: {len(df)} rows, all valid")
        return 0
    print(f"{path}: {len(df)} rows, {len(bad_rows)} invalid")
    print(format_issues(issues, limit=args.max_report))
    if not args.drop_invalid:
        return 1
    reasons = defaultdict(list)
    for i in issues:
        reasons[i.row].append(f"{i.field}: {i.reason}")
    bad = set(bad_rows)
    mask = [i not in bad for i in range(len(df))]
    clean = df[mask].reset_index(drop=True)
    rejects = df[[not m for m in mask]].reset_index(drop=True)
    rejects["reject_reasons"] = [json.dumps(reasons[i]) for i in bad_rows]
    out = Path(args.output or str(path.with_suffix("")) + ".clean.parquet")
    rej = Path(args.rejects or str(path.with_suffix("")) + ".rejects.parquet")
    clean.to_parquet(out)
    rejects.to_parquet(rej)
    print(f"kept {len(clean)} rows -> {out}; dropped {len(rejects)} rows -> {rej}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
