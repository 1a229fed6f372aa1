"""Build the DYPO training parquet from LUFFY's OpenR1-Math subset (or any local file in that shape).

Input rows (LUFFY, hub id ``Elliott/Openr1-Math-46k-8192``, or a local parquet / JSONL with the same columns):
``prompt`` (chat list, or a plain string / ``problem`` / ``question`` column), ``reward_model.ground_truth``
(or ``answer``), ``target`` (one assistant message starting ``<think>\\n``) and optionally ``target_lst``.
Output rows: ``data_source, prompt, ability, reward_model{style, ground_truth},
extra_info{split, index, prompt_hash, source_index, teachers: [{name, response}, ...]}`` and ``target``
(kept for LUFFY compatibility unless --no-keep-target). Every dropped row is counted by reason.

    python -m data_prep.prepare_train --input Elliott/Openr1-Math-46k-8192 --output data/train.parquet
    python -m data_prep.prepare_train --input luffy_train.parquet --output data/train.parquet --limit 1000
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import DropLog, ensure_repo_on_path, load_rows, write_parquet

ensure_repo_on_path()

from recipe_dypo.data_schema import (  # noqa: E402
    TEACHERS_KEY,
    as_list,
    format_issues,
    has_complete_think,
    is_missing,
    make_token_counter,
    message_text,
    prompt_hash,
    validate_dataframe,
)

DEFAULT_INPUT = "Elliott/Openr1-Math-46k-8192"


class BadRow(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def _prompt(raw: Mapping, drop_system: bool, system_prompt: str | None) -> list[dict]:
    value = raw.get("prompt")
    if is_missing(value) or (isinstance(value, str) and not value.strip()):
        for alt in ("problem", "question"):
            if isinstance(raw.get(alt), str) and raw[alt].strip():
                value = raw[alt]
                break
    if isinstance(value, str):
        msgs = [{"role": "user", "content": value}] if value.strip() else []
    else:
        lst = as_list(value)
        if lst is None:
            raise BadRow("prompt", "missing (no prompt / problem / question)")
        msgs = []
        for k, m in enumerate(lst):
            if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or not m.get("role"):
                raise BadRow(f"prompt[{k}]", "not a {'role', 'content'} message with string content")
            msgs.append({"role": str(m["role"]), "content": m["content"]})
    if drop_system or system_prompt is not None:
        msgs = [m for m in msgs if m["role"] != "system"]
    if system_prompt:
        msgs = [{"role": "system", "content": system_prompt}] + msgs
    if not any(m["role"] == "user" and m["content"].strip() for m in msgs):
        raise BadRow("prompt", "empty prompt (no non-empty user message)")
    return msgs


def _ground_truth(raw: Mapping) -> str:
    rm = raw.get("reward_model")
    gt = rm.get("ground_truth") if isinstance(rm, Mapping) else None
    if is_missing(gt) and not is_missing(raw.get("answer")):
        gt = raw["answer"]
    if isinstance(gt, int | float) and not isinstance(gt, bool):
        gt = str(gt)
    if not isinstance(gt, str) or not gt.strip():
        raise BadRow("reward_model.ground_truth", "missing ground truth")
    return gt.strip()


def _teachers(raw: Mapping, teacher_name: str) -> list[dict]:
    teachers: list[dict] = []
    extra = raw.get("extra_info")
    existing = extra.get(TEACHERS_KEY) if isinstance(extra, Mapping) else None
    for k, t in enumerate(as_list(existing) or []):
        if not isinstance(t, Mapping) or not isinstance(t.get("response"), str):
            raise BadRow(f"extra_info.{TEACHERS_KEY}[{k}].response", "teacher not a string")
        teachers.append({"name": str(t.get("name") or f"teacher{k}"), "response": t["response"]})
    if not is_missing(raw.get("target")):
        value = raw["target"]
        msgs = [value] if isinstance(value, str | Mapping) else as_list(value)
        if not msgs:
            raise BadRow("target", f"not a message or a list of messages ({type(value).__name__})")
        if len(msgs) != 1:
            raise BadRow("target", f"expected one assistant message, got {len(msgs)}")
        text = message_text(msgs[0])
        if text is None:
            raise BadRow("target[0].content", "teacher not a string")
        teachers.append({"name": teacher_name, "response": text})
    for k, m in enumerate(as_list(raw.get("target_lst")) or []):
        text = message_text(m)
        if text is None:
            raise BadRow(f"target_lst[{k}]", "teacher not a string")
        teachers.append({"name": f"{teacher_name}#{k + 1}" if k else teacher_name, "response": text})
    unique, seen = [], set()
    for t in teachers:  # target_lst[0] usually repeats target
        if t["response"] not in seen:
            seen.add(t["response"])
            unique.append(t)
    return unique


def convert_rows(raw_rows: Sequence[Mapping], args: argparse.Namespace) -> tuple[list[dict], DropLog]:
    """Map input rows to DYPO rows; returns the rows and the log of dropped ones (raises in --strict mode)."""
    drops = DropLog("rows")
    count_tokens = make_token_counter(args.tokenizer) if args.max_teacher_tokens else None
    out: list[dict] = []
    seen_prompts: dict[str, int] = {}
    iterator = raw_rows
    if not args.quiet:
        from tqdm import tqdm

        iterator = tqdm(raw_rows, desc="converting", unit="row")
    for i, raw in enumerate(iterator):
        try:
            if not isinstance(raw, Mapping):
                raise BadRow("<row>", f"not a record ({type(raw).__name__})")
            prompt = _prompt(raw, args.drop_system_prompt, args.system_prompt)
            gt = _ground_truth(raw)
            teachers = _teachers(raw, args.teacher_name)
            if args.require_think:
                bad = [t["name"] for t in teachers if not has_complete_think(t["response"])]
                teachers = [t for t in teachers if has_complete_think(t["response"])]
                if bad and not teachers:
                    raise BadRow("target", "teacher has no complete <think>...</think> section")
            if count_tokens is not None:
                fits = [t for t in teachers if count_tokens(t["response"]) <= args.max_teacher_tokens]
                if teachers and not fits:
                    raise BadRow("target", f"every teacher is longer than {args.max_teacher_tokens} tokens")
                teachers = fits
            if len(teachers) < args.min_teachers:
                raise BadRow(f"extra_info.{TEACHERS_KEY}", f"fewer than {args.min_teachers} teacher(s)")
            key = prompt_hash(prompt)
            if args.dedupe and key in seen_prompts:
                raise BadRow("prompt", "duplicate prompt")
            seen_prompts.setdefault(key, i)
        except BadRow as e:
            if args.strict:
                raise ValueError(f"input row {i}: {e.field}: {e.reason}") from None
            drops.drop(i, e.field, e.reason)
            continue
        extra = raw.get("extra_info") if isinstance(raw.get("extra_info"), Mapping) else {}
        source_index = extra.get("index", i)
        ds = args.data_source or raw.get("data_source")
        row = {
            "data_source": ds if isinstance(ds, str) and ds.strip() else "openr1",
            "prompt": prompt,
            "ability": raw.get("ability") if isinstance(raw.get("ability"), str) else "math",
            "reward_model": {"style": "rule", "ground_truth": gt},
            "extra_info": {
                "split": args.split_name,
                "index": len(out),
                "source_index": int(source_index) if isinstance(source_index, int | float) else i,
                "prompt_hash": key,
                TEACHERS_KEY: teachers,
            },
        }
        if args.keep_target and teachers:
            row["target"] = [{"role": "assistant", "content": teachers[0]["response"]}]
        out.append(row)
    return out, drops


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--input", default=DEFAULT_INPUT, help=f"hub id or local .parquet/.jsonl/.json (default {DEFAULT_INPUT})"
    )
    p.add_argument("--hub-split", default="train", help="split to load from the hub (default train)")
    p.add_argument("--output", required=True, help="output parquet path")
    p.add_argument("--split-name", default="train", help="value of extra_info.split (default train)")
    p.add_argument(
        "--teacher-name", default="deepseek-r1", help="teacher name for LUFFY's target (default deepseek-r1)"
    )
    p.add_argument("--data-source", default=None, help="override data_source (default: the input's, else 'openr1')")
    p.add_argument("--drop-system-prompt", action="store_true", help="remove system messages from prompts")
    p.add_argument("--system-prompt", default=None, help="replace system messages by this text")
    p.add_argument("--min-teachers", type=int, default=1, help="drop rows with fewer teachers (default 1; 0 keeps all)")
    p.add_argument("--require-think", action="store_true", help="drop teachers without a complete <think> section")
    p.add_argument("--max-teacher-tokens", type=int, default=None, help="drop teachers longer than this many tokens")
    p.add_argument("--tokenizer", default=None, help="token counter for budgets: approx (default), qwen, or a path")
    p.add_argument("--no-dedupe", dest="dedupe", action="store_false", help="keep repeated prompts")
    p.add_argument("--no-keep-target", dest="keep_target", action="store_false", help="do not write LUFFY's target")
    p.add_argument("--limit", type=int, default=None, help="use only the first N input rows (after --shuffle)")
    p.add_argument("--shuffle", action="store_true", help="shuffle input rows with --seed before --limit")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad row instead of dropping it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raw = load_rows(args.input, split=args.hub_split)
    print(f"read {len(raw)} rows from {args.input}")
    if args.shuffle:
        random.Random(args.seed).shuffle(raw)
    if args.limit is not None:
        print(f"--limit {args.limit}: skipping {max(0, len(raw) - args.limit)} rows")
        raw = raw[: args.limit]
    rows, drops = convert_rows(raw, args)
    drops.report()
    issues = validate_dataframe(rows, min_teachers=args.min_teachers)
    if issues:  # a bug here, not bad input: converted rows must always validate
        print(format_issues(issues), file=sys.stderr)
        return 2
    if not rows:
        print("error: no rows left to write", file=sys.stderr)
        return 1
    write_parquet(rows, args.output)
    n_teachers = sum(len(r["extra_info"][TEACHERS_KEY]) for r in rows)
    print(f"wrote {len(rows)} rows ({n_teachers} teacher solutions) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
