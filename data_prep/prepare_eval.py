"""Write the paper's evaluation sets as verl parquet, one file and one ``data_source`` per benchmark.

In-distribution (math): aime24, aime25, amc, math500, minerva (+ olympiad_bench on request).
Out-of-distribution (multiple choice): arc_c (ARC-Challenge), gpqa_diamond (GPQA-Diamond).

Sources: a local folder laid out like ``../shared/benchmarks`` (``luffy/valid.all.parquet``,
``luffy/valid.arc_c.parquet``, ``luffy/valid.gpqa.parquet``, ``hpt/*.json``), or the Hugging Face hub (--hub).
LUFFY's files repeat AIME/AMC rows 32 times for avg@32; the copies are removed here (counted), because the
evaluator samples n responses per prompt instead. Multiple-choice options are shuffled with --seed, relabelled
A, B, C, ... (ARC rows numbered 1-4 included), the gold letter rewritten, and the prompt asks for a boxed letter.

    python -m data_prep.prepare_eval --source-dir ../shared/benchmarks --output-dir data/eval
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import DropLog, ensure_repo_on_path, load_rows, write_parquet

ensure_repo_on_path()

from recipe_dypo.data_schema import as_list, format_issues, validate_dataframe  # noqa: E402

MATH_BENCHMARKS = ("aime24", "aime25", "amc", "math500", "minerva")
CHOICE_BENCHMARKS = ("arc_c", "gpqa_diamond")
DEFAULT_BENCHMARKS = MATH_BENCHMARKS + CHOICE_BENCHMARKS
EXTRA_BENCHMARKS = ("olympiad_bench",)

# (LUFFY file, LUFFY data_source), HPT json file, hub (id, config, split)
SOURCES = {
    "aime24": (("valid.all.parquet", "aime"), "AIME24.json", ("HuggingFaceH4/aime_2024", None, "train")),
    "aime25": (("valid.all.parquet", "aime25"), "AIME25.json", ("math-ai/aime25", None, "test")),
    "amc": (("valid.all.parquet", "amc"), "AMC23.json", ("math-ai/amc23", None, "test")),
    "math500": (("valid.all.parquet", "math"), "MATH-500.json", ("HuggingFaceH4/MATH-500", None, "test")),
    "minerva": (("valid.all.parquet", "minerva"), "Minerva.json", ("math-ai/minervamath", None, "test")),
    "olympiad_bench": (("valid.all.parquet", "olympiad_bench"), "Olympiad-Bench.json", None),
    "arc_c": (("valid.arc_c.parquet", "arc_c"), None, ("allenai/ai2_arc", "ARC-Challenge", "test")),
    "gpqa_diamond": (("valid.gpqa.parquet", "gpqa"), "GPQA.json", ("Idavidrein/gpqa", "gpqa_diamond", "train")),
}

CHOICE_INSTRUCTION = "Answer with the letter of the correct option in \\boxed{}, for example \\boxed{A}."
LETTERS = "ABCDEFGHIJ"
_OPTION_LINE = re.compile(r"^\s*\(?([A-J]|[1-9])[).]\s+(.*)$")


class BadRow(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def strip_boxed(answer: str) -> str:
    """``\\boxed{204}`` -> ``204`` (HPT writes some AIME answers boxed); other answers unchanged."""
    s = answer.strip()
    m = re.fullmatch(r"\\boxed\s*\{(.*)\}", s, flags=re.S)
    return m.group(1).strip() if m else s


def split_options(text: str) -> tuple[str, list[str], list[str]]:
    """Split a multiple-choice question into (stem, labels, option texts).

    The options are the last run of lines labelled ``A)``/``A.`` ``B)`` ... (or ``1)`` ``2)`` ...), consecutive
    from the first label; unlabelled lines inside the run continue the previous option.
    """
    lines = text.rstrip().split("\n")
    starts = [i for i, line in enumerate(lines) if (m := _OPTION_LINE.match(line)) and m.group(1) in ("A", "1")]
    for start in reversed(starts):
        first = _OPTION_LINE.match(lines[start]).group(1)
        seq = LETTERS if first == "A" else "123456789"
        labels, options = [], []
        for line in lines[start:]:
            m = _OPTION_LINE.match(line)
            if m and len(labels) < len(seq) and m.group(1) == seq[len(labels)]:
                labels.append(m.group(1))
                options.append(m.group(2).strip())
            elif line.strip() and options:
                options[-1] += "\n" + line.strip()
        if len(labels) >= 2 and all(o for o in options):
            stem = "\n".join(lines[:start]).strip()
            return stem, labels, options
    raise BadRow("prompt", "no labelled options (A) B) ... or 1) 2) ...) found")


def _strip_answer_format_header(stem: str) -> str:
    """Drop an instruction paragraph asking for ``ANSWER: $LETTER`` (replaced by the boxed-letter instruction)."""
    paras = stem.split("\n\n")
    if len(paras) > 1 and ("$LETTER" in paras[0] or "ANSWER:" in paras[0]):
        return "\n\n".join(paras[1:]).strip()
    return stem


def build_choice_row(stem: str, labels: list[str], options: list[str], gold: str, rng: random.Random | None) -> dict:
    gold = strip_boxed(gold).strip().strip("()").strip()
    if gold not in labels:
        raise BadRow("reward_model.ground_truth", f"answer {gold!r} is not one of the option labels {labels}")
    order = list(range(len(options)))
    if rng is not None:
        rng.shuffle(order)
    new_gold = LETTERS[order.index(labels.index(gold))]
    body = "\n".join(f"{LETTERS[k]}) {options[j]}" for k, j in enumerate(order))
    text = f"{_strip_answer_format_header(stem)}\n\n{body}\n\n{CHOICE_INSTRUCTION}"
    return {"user": text, "gold": new_gold, "order": order, "original_answer": gold}


def _user_and_system(prompt) -> tuple[str, list[dict]]:
    msgs = as_list(prompt)
    if isinstance(prompt, str):
        return prompt, []
    if not msgs:
        raise BadRow("prompt", "empty prompt")
    users = [m["content"] for m in msgs if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users or not isinstance(users[-1], str) or not users[-1].strip():
        raise BadRow("prompt", "empty prompt (no user message)")
    systems = [dict(m) for m in msgs if isinstance(m, Mapping) and m.get("role") == "system"]
    return users[-1], systems


def load_benchmark(name: str, args: argparse.Namespace) -> tuple[list[dict], str]:
    """Raw records ``{"user", "system", "gold", "source_index"}`` and a provenance string."""
    luffy, hpt, hub = SOURCES[name]
    if args.hub:
        if hub is None:
            raise SystemExit(f"{name}: no hub source known; use --source-dir")
        hub_id, config, split = hub
        import datasets

        try:
            ds = (
                datasets.load_dataset(hub_id, config, split=split)
                if config
                else datasets.load_dataset(hub_id, split=split)
            )
        except Exception as e:
            raise SystemExit(f"{name}: could not load {hub_id} from the hub ({e}); use --source-dir") from e
        return [_from_hub_record(name, dict(r), i) for i, r in enumerate(ds)], f"hub:{hub_id}"
    root = Path(args.source_dir)
    luffy_path = root / "luffy" / luffy[0] if luffy else None
    hpt_path = root / "hpt" / hpt if hpt else None
    order = (
        [("hpt", hpt_path), ("luffy", luffy_path)]
        if args.prefer == "hpt"
        else [("luffy", luffy_path), ("hpt", hpt_path)]
    )
    for kind, path in order:
        if path is None or not path.exists():
            continue
        if kind == "luffy":
            recs = []
            for i, r in enumerate(load_rows(str(path))):
                if r.get("data_source") != luffy[1]:
                    continue
                try:
                    user, systems = _user_and_system(r.get("prompt"))
                    gold = (r.get("reward_model") or {}).get("ground_truth")
                except BadRow as e:
                    recs.append({"error": e, "source_index": i})
                    continue
                recs.append({"user": user, "system": systems, "gold": gold, "source_index": i})
            return recs, f"luffy/{luffy[0]}:{luffy[1]}"
        recs = []
        for i, r in enumerate(load_rows(str(path))):
            recs.append({"user": r.get("prompt"), "system": [], "gold": r.get("answer"), "source_index": i})
        return recs, f"hpt/{hpt}"
    raise FileNotFoundError(f"{name}: none of {[str(p) for _, p in order if p]} exists")


def _from_hub_record(name: str, r: dict, i: int) -> dict:  # pragma: no cover - needs network
    if name == "arc_c":
        choices = r["choices"]
        opts = "\n".join(f"{lab}) {txt}" for lab, txt in zip(choices["label"], choices["text"]))
        return {"user": f"{r['question']}\n\n{opts}", "system": [], "gold": r["answerKey"], "source_index": i}
    if name == "gpqa_diamond":
        opts = [r["Correct Answer"], r["Incorrect Answer 1"], r["Incorrect Answer 2"], r["Incorrect Answer 3"]]
        body = "\n".join(f"{LETTERS[k]}) {o.strip()}" for k, o in enumerate(opts))
        return {"user": f"{r['Question'].strip()}\n\n{body}", "system": [], "gold": "A", "source_index": i}
    text = next((r[k] for k in ("problem", "question", "prompt", "Problem", "Question") if r.get(k)), None)
    gold = next((r[k] for k in ("answer", "Answer", "final_answer", "solution") if r.get(k) is not None), None)
    if isinstance(gold, list):
        gold = gold[0] if gold else None
    return {"user": text, "system": [], "gold": None if gold is None else str(gold), "source_index": i}


def build_benchmark(
    name: str, records: Sequence[dict], provenance: str, args: argparse.Namespace
) -> tuple[list, DropLog, int]:
    """Rows for one benchmark, the drop log and the number of repeated copies removed."""
    drops = DropLog(f"{name} rows")
    rows, seen = [], set()
    repeats = 0
    is_choice = name in CHOICE_BENCHMARKS
    for rec in records:
        i = rec["source_index"]
        try:
            if "error" in rec:
                raise rec["error"]
            user, gold = rec["user"], rec["gold"]
            if not isinstance(user, str) or not user.strip():
                raise BadRow("prompt", "empty prompt")
            if isinstance(gold, int | float) and not isinstance(gold, bool):
                gold = str(gold)
            if not isinstance(gold, str) or not gold.strip():
                raise BadRow("ground_truth", "missing ground truth")
            key = (user.strip(), gold.strip())
            if key in seen:
                repeats += 1
                continue
            seen.add(key)
            extra = {"split": "test", "index": len(rows), "benchmark": name, "source": provenance, "source_index": i}
            if is_choice:
                stem, labels, options = split_options(user)
                rng = None if args.no_shuffle_options else random.Random(f"{args.seed}:{name}:{len(rows)}")
                built = build_choice_row(stem, labels, options, gold, rng)
                user, gold = built["user"], built["gold"]
                extra.update(
                    answer_type="choice", option_order=built["order"], original_answer=built["original_answer"]
                )
            else:
                gold = strip_boxed(gold)
                extra.update(answer_type="math")
        except BadRow as e:
            if args.strict:
                raise SystemExit(f"{name} ({provenance}) row {i}: {e.field}: {e.reason}") from None
            drops.drop(i, e.field, e.reason)
            continue
        if args.no_system_prompt:
            system = []
        elif args.system_prompt is not None:
            system = [{"role": "system", "content": args.system_prompt}]
        else:
            system = [{"role": "system", "content": m["content"]} for m in rec.get("system") or []]
        rows.append(
            {
                "data_source": name,
                "prompt": system + [{"role": "user", "content": user}],
                "ability": "multiple_choice" if is_choice else "math",
                "reward_model": {"style": "rule", "ground_truth": gold},
                "extra_info": extra,
            }
        )
    return rows, drops, repeats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source-dir", help="folder with luffy/*.parquet and/or hpt/*.json (like ../shared/benchmarks)")
    src.add_argument("--hub", action="store_true", help="download from the Hugging Face hub instead (needs network)")
    p.add_argument("--output-dir", required=True, help="writes <benchmark>.parquet files here")
    p.add_argument(
        "--benchmarks",
        default=",".join(DEFAULT_BENCHMARKS),
        help=f"comma-separated, from {DEFAULT_BENCHMARKS + EXTRA_BENCHMARKS} (default: the paper's seven)",
    )
    p.add_argument("--prefer", choices=("luffy", "hpt"), default="luffy", help="which local file wins (default luffy)")
    p.add_argument("--seed", type=int, default=0, help="option-shuffle seed (default 0)")
    p.add_argument("--no-shuffle-options", action="store_true", help="keep the source's option order")
    p.add_argument("--system-prompt", default=None, help="system prompt for every row (default: the source's, if any)")
    p.add_argument("--no-system-prompt", action="store_true", help="write prompts without a system message")
    p.add_argument("--strict", action="store_true", help="fail on the first bad row instead of dropping it")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    unknown = [b for b in names if b not in SOURCES]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; choose from {list(SOURCES)}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    summary = Counter()
    from tqdm import tqdm

    for name in tqdm(names, desc="benchmarks", unit="set"):
        records, provenance = load_benchmark(name, args)
        rows, drops, repeats = build_benchmark(name, records, provenance, args)
        issues = validate_dataframe(rows)
        if issues:
            print(format_issues(issues), file=sys.stderr)
            return 1
        write_parquet(rows, out / f"{name}.parquet")
        print(
            f"{name}: read {len(records)} rows from {provenance}; removed {repeats} repeated copies; "
            f"dropped {drops.total}; wrote {len(rows)} to {out / (name + '.parquet')}"
        )
        if drops.total:
            drops.report()
        summary["written"] += len(rows)
        summary["dropped"] += drops.total
    print(f"total: wrote {summary['written']} rows, dropped {summary['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
