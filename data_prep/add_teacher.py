"""Merge another teacher's traces (JSONL) into the ``extra_info.teachers`` list of a DYPO training parquet.

Each JSONL line is one trace: ``{"index": int, "prompt_hash": str, "teacher": str, "response": str, ...}``
(what generate_teacher_traces.py writes). It is joined to the training row with the same
``extra_info.prompt_hash`` (robust to reordering; the hash ignores system prompts) or, when a line has no
``prompt_hash`` or --key index is given, the same ``extra_info.index``. Unmatched, duplicate, over-limit and
malformed lines are counted and reported; nothing is dropped silently.

    python -m data_prep.add_teacher --input data/train.parquet --traces data/qwen3-235b-a22b.jsonl \\
        --teacher-name qwen3-235b-a22b --output data/train_2t.parquet --min-teachers 2
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import DropLog, ensure_repo_on_path, load_rows, read_jsonl, write_parquet

ensure_repo_on_path()

from recipe_dypo.data_schema import (  # noqa: E402
    TEACHERS_KEY,
    format_issues,
    get_teachers,
    has_complete_think,
    make_token_counter,
    prompt_hash,
    validate_dataframe,
)


def merge_traces(rows: list[dict], trace_files: Sequence[str], args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Add traces to ``rows`` (modified in place and returned) and return the counters of what happened."""
    by_hash: dict[str, int] = {}
    by_index: dict[int, int] = {}
    for pos, row in enumerate(rows):
        extra = row.get("extra_info") or {}
        h = extra.get("prompt_hash") or prompt_hash(row.get("prompt"))
        extra["prompt_hash"] = h
        row["extra_info"] = extra
        by_hash.setdefault(h, pos)
        if isinstance(extra.get("index"), int):
            by_index.setdefault(extra["index"], pos)
        teachers, issues = get_teachers(row)
        if issues:
            i = issues[0]
            raise ValueError(f"--input row {pos}: {i.field}: {i.reason}")
        if args.absorb_target:  # LUFFY target / target_lst become explicit entries: every teacher in one list
            unique, seen = [], set()
            for t in teachers:
                if t["response"] not in seen:
                    seen.add(t["response"])
                    unique.append(t)
            extra[TEACHERS_KEY] = unique
        else:
            extra[TEACHERS_KEY] = [
                t for t in teachers if t["name"] not in ("target",) and "target_lst[" not in t["name"]
            ]

    count_tokens = make_token_counter(args.tokenizer) if args.max_teacher_tokens else None
    skipped = DropLog("trace lines")
    added_per_key: Counter[tuple[int, str]] = Counter()
    stats = Counter()
    for path in trace_files:
        for line_no, rec, err in read_jsonl(path):
            stats["lines"] += 1
            where = f"{path}:{line_no}"
            try:
                if err:
                    raise ValueError(("<line>", err))
                response = rec.get("response")
                if not isinstance(response, str):
                    raise ValueError(("response", "teacher not a string"))
                if not response.strip():
                    raise ValueError(("response", "empty response"))
                name = args.teacher_name or rec.get("teacher") or rec.get("name")
                if not isinstance(name, str) or not name.strip():
                    raise ValueError(("teacher", "no teacher name (give --teacher-name)"))
                pos = None
                if args.key in ("auto", "prompt_hash") and isinstance(rec.get("prompt_hash"), str):
                    pos = by_hash.get(rec["prompt_hash"])
                    if pos is None:
                        raise ValueError(("prompt_hash", "no training row with this prompt hash"))
                elif args.key in ("auto", "index") and isinstance(rec.get("index"), int):
                    pos = by_index.get(rec["index"])
                    if pos is None:
                        raise ValueError(("index", "no training row with this index"))
                else:
                    raise ValueError((args.key if args.key != "auto" else "index/prompt_hash", "missing join key"))
                if args.require_think and not has_complete_think(response):
                    raise ValueError(("response", "no complete <think>...</think> section"))
                if count_tokens is not None and count_tokens(response) > args.max_teacher_tokens:
                    raise ValueError(("response", f"longer than {args.max_teacher_tokens} tokens"))
                teachers = rows[pos]["extra_info"][TEACHERS_KEY]
                if any(t["response"] == response for t in teachers):
                    raise ValueError(("response", "duplicate of a trace already in the row"))
                if added_per_key[(pos, name)] >= args.max_per_teacher:
                    raise ValueError(("response", f"more than --max-per-teacher {args.max_per_teacher} for this row"))
            except ValueError as e:
                field, reason = e.args[0] if isinstance(e.args[0], tuple) else ("<line>", str(e))
                if args.strict or (field == "<line>" and not args.skip_bad_lines):
                    raise ValueError(f"{where}: {field}: {reason}") from None
                skipped.drop(where, field, reason)
                continue
            k = added_per_key[(pos, name)]
            teachers.append({"name": name if k == 0 else f"{name}#{k + 1}", "response": response})
            added_per_key[(pos, name)] += 1
            stats["added"] += 1
    stats["rows_with_new_teacher"] = len({pos for pos, _ in added_per_key})
    return rows, {"stats": stats, "skipped": skipped}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--input", required=True, help="training parquet (from prepare_train.py)")
    p.add_argument("--traces", required=True, action="append", help="teacher JSONL (repeatable)")
    p.add_argument("--output", required=True, help="output parquet path")
    p.add_argument("--teacher-name", default=None, help="teacher name to record (default: each line's 'teacher')")
    p.add_argument(
        "--key",
        choices=("auto", "prompt_hash", "index"),
        default="auto",
        help="join key (default auto: hash, else index)",
    )
    p.add_argument("--max-per-teacher", type=int, default=1, help="traces kept per row and teacher (default 1)")
    p.add_argument("--require-think", action="store_true", help="skip traces without a complete <think> section")
    p.add_argument("--max-teacher-tokens", type=int, default=None, help="skip traces longer than this many tokens")
    p.add_argument("--tokenizer", default=None, help="token counter for budgets: approx (default), qwen, or a path")
    p.add_argument("--min-teachers", type=int, default=0, help="rows must end with at least this many teachers")
    p.add_argument(
        "--drop-short", action="store_true", help="drop rows under --min-teachers (counted) instead of failing"
    )
    p.add_argument("--no-absorb-target", dest="absorb_target", action="store_false",
                   help="do not copy LUFFY target/target_lst into extra_info.teachers")  # fmt: skip
    p.add_argument(
        "--skip-bad-lines", action="store_true", help="count and skip malformed JSONL lines instead of failing"
    )
    p.add_argument("--strict", action="store_true", help="fail on any unmatched / duplicate / over-limit trace")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = load_rows(args.input)
    print(f"read {len(rows)} rows from {args.input}")
    try:
        rows, info = merge_traces(rows, args.traces, args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stats, skipped = info["stats"], info["skipped"]
    print(f"read {stats['lines']} trace line(s); added {stats['added']} to {stats['rows_with_new_teacher']} row(s)")
    skipped.report()
    counts = Counter(len(r["extra_info"][TEACHERS_KEY]) for r in rows)
    print("teachers per row: " + ", ".join(f"{k}: {v} rows" for k, v in sorted(counts.items())))
    short = [i for i, r in enumerate(rows) if len(r["extra_info"][TEACHERS_KEY]) < args.min_teachers]
    if short:
        if not args.drop_short:
            print(
                f"error: {len(short)} row(s) have fewer than {args.min_teachers} teachers, e.g. rows {short[:10]} "
                "(use --drop-short to drop them)",
                file=sys.stderr,
            )
            return 1
        keep = set(range(len(rows))) - set(short)
        rows = [r for i, r in enumerate(rows) if i in keep]
        print(f"dropped {len(short)} row(s) with fewer than {args.min_teachers} teachers")
    issues = validate_dataframe(rows, min_teachers=args.min_teachers)
    if issues:
        print(format_issues(issues), file=sys.stderr)
        return 1
    write_parquet(rows, args.output)
    print(f"wrote {len(rows)} rows to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
