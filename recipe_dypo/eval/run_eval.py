"""Evaluator CLI: checkpoint -> per-sample JSONL -> graded JSONL -> per-benchmark metrics and ID/OOD averages.

    python -m recipe_dypo.eval --model CKPT --data data/eval/*.parquet --output-dir runs/eval/dypo_7b
    python -m recipe_dypo.eval --responses my_generations.jsonl --output-dir runs/eval/external

Output directory layout (everything is append-only JSONL, so an interrupted run resumes where it stopped):

* ``generations.jsonl``: one line per sample: prompt_id, sample_id, data_source, benchmark, ground_truth,
  response, num_tokens, truncated. Samples already present are not generated again.
* ``samples.jsonl``: the same plus pred (extracted answer), score, acc and reason. Samples already graded are
  not graded again.
* ``summary.json`` / ``summary.md``: per-benchmark avg@n and pass@k, the ID and OOD averages, model path, date,
  protocol. :mod:`recipe_dypo.eval.tables` reads ``summary.json`` to build measured table rows.

Prompt texts are not written to the outputs (GPQA's authors ask that its questions not be republished).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe_dypo.eval import metrics
from recipe_dypo.eval.generate import (
    Request,
    SamplingConfig,
    encode_prompt,
    load_tokenizer,
    make_generator,
    resolve_dtype,
)
from recipe_dypo.eval.generate import render_prompt as _render_prompt
from recipe_dypo.eval.grade import grade_records, iter_chunks

GENERATIONS_FILE = "generations.jsonl"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
DEFAULT_KS = (1, 2, 4, 8, 16, 32)


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class EvalPrompt:
    prompt_id: str
    data_source: str
    benchmark: str
    messages: list[dict]
    ground_truth: Any
    extra_info: dict | None = None
    source: str = ""
    row_index: int = -1


def _jsonable(x: Any) -> Any:
    """numpy / pyarrow values from parquet -> plain JSON types."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return _jsonable(x.tolist())
    return x


def make_prompt_id(benchmark: str, messages: Any, ground_truth: Any) -> str:
    """Content hash, so that ids survive row reordering and replicated rows (LUFFY's 32 AIME copies) collapse."""
    payload = json.dumps([_jsonable(messages), _jsonable(ground_truth)], sort_keys=True, ensure_ascii=False)
    return f"{benchmark}-{hashlib.sha1(payload.encode()).hexdigest()[:12]}"


def expand_data_paths(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(glob.glob(os.path.join(p, "*.parquet"))))
        elif any(ch in p for ch in "*?["):
            out.extend(sorted(glob.glob(p)))
        else:
            out.append(p)
    if not out:
        raise FileNotFoundError(f"no parquet files in {list(paths)}")
    return out


def load_eval_prompts(
    paths: Sequence[str],
    benchmarks: Sequence[str] | None = None,
    max_per_benchmark: int | None = None,
    dedupe: bool = True,
) -> list[EvalPrompt]:
    """Read verl-schema parquet files (data_source, prompt, reward_model.ground_truth, extra_info)."""
    import pandas as pd

    wanted = {metrics.canonical_benchmark(b) for b in benchmarks} if benchmarks else None
    prompts: list[EvalPrompt] = []
    seen: set[str] = set()
    per_bench: dict[str, int] = {}
    for path in expand_data_paths(paths):
        df = pd.read_parquet(path)
        for idx, row in enumerate(df.itertuples(index=False)):
            data_source = str(row.data_source)
            bench = metrics.canonical_benchmark(data_source)
            if wanted is not None and bench not in wanted:
                continue
            if max_per_benchmark is not None and per_bench.get(bench, 0) >= max_per_benchmark:
                continue
            messages = _jsonable(row.prompt)
            rm = _jsonable(row.reward_model)
            gt = rm["ground_truth"] if isinstance(rm, Mapping) else rm
            extra = _jsonable(getattr(row, "extra_info", None))
            pid = make_prompt_id(bench, messages, gt)
            if pid in seen:
                if dedupe:
                    continue
                pid = f"{pid}-r{idx}"
            seen.add(pid)
            per_bench[bench] = per_bench.get(bench, 0) + 1
            prompts.append(
                EvalPrompt(pid, data_source, bench, messages, gt, extra if isinstance(extra, dict) else None, path, idx)
            )
    return prompts


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # a run killed mid-write leaves a partial last line; skip it (the sample is redone)
                continue
    return out


class JsonlAppender:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        torn = False
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        self.f = open(path, "a", encoding="utf-8")
        if torn:  # a killed run left a partial last line: terminate it so that new records stay parseable
            self.f.write("\n")

    def write(self, rec: Mapping) -> None:
        self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tqdm(total: int, desc: str, disable: bool = False):
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True)
    except ImportError:  # pragma: no cover
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline steps
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    model: str | None = None
    data: list[str] = field(default_factory=list)
    output_dir: str = "runs/eval"
    backend: str = "vllm"
    tokenizer: str | None = None
    label: str | None = None
    benchmarks: list[str] | None = None
    n_samples: str | None = None
    max_prompts_per_benchmark: int | None = None
    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 8192
    seed: int = 0
    use_chat_template: bool = True
    ks: tuple[int, ...] = DEFAULT_KS
    # hf backend
    batch_size: int = 8
    dtype: str = "auto"
    device: str | None = None
    # vllm backend
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    enforce_eager: bool = False
    chunk_prompts: int = 512
    # grading
    num_workers: int = 4
    grade_timeout: float = 5.0
    grade_chunk: int = 512
    # --responses mode
    responses: str | None = None
    quiet: bool = False


def plan_requests(prompts: Sequence[EvalPrompt], n_samples: Mapping[str, int], done: set[tuple[str, int]]):
    """For each prompt, the sample ids still to generate. Returns ``[(prompt, [sample_ids])]``."""
    plan = []
    for p in prompts:
        n = metrics.n_for(p.benchmark, n_samples)
        missing = [s for s in range(n) if (p.prompt_id, s) not in done]
        if missing:
            plan.append((p, missing))
    return plan


def generate_missing(cfg: EvalConfig, prompts: Sequence[EvalPrompt], n_samples: Mapping[str, int]) -> int:
    """Generate every (prompt, sample) not yet in generations.jsonl. Returns the number generated."""
    gen_path = os.path.join(cfg.output_dir, GENERATIONS_FILE)
    done = {(r["prompt_id"], int(r["sample_id"])) for r in read_jsonl(gen_path)}
    plan = plan_requests(prompts, n_samples, done)
    total = sum(len(m) for _, m in plan)
    if total == 0:
        return 0
    if not cfg.model:
        raise ValueError("--model is required to generate responses")
    tokenizer = load_tokenizer(cfg.model, cfg.tokenizer)
    generator = make_generator(
        cfg.backend,
        cfg.model,
        tokenizer=tokenizer,
        dtype=cfg.dtype,
        device=cfg.device,
        batch_size=cfg.batch_size,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        max_model_len=cfg.max_model_len,
        seed=cfg.seed,
        enforce_eager=cfg.enforce_eager,
    )
    sampling = SamplingConfig(cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.seed)
    bar = _tqdm(total, "generate", disable=cfg.quiet)
    with JsonlAppender(gen_path) as out:
        for chunk in iter_chunks(plan, cfg.chunk_prompts):
            requests = [
                Request(
                    prompt_ids=encode_prompt(tokenizer, _render_prompt(tokenizer, p.messages, cfg.use_chat_template)),
                    n=len(missing),
                    key=f"{p.prompt_id}:{','.join(map(str, missing))}",
                )
                for p, missing in chunk
            ]

            def on_done(i, completions, chunk=chunk):
                p, missing = chunk[i]
                for sid, comp in zip(missing, completions):
                    out.write(
                        {
                            "prompt_id": p.prompt_id,
                            "sample_id": sid,
                            "data_source": p.data_source,
                            "benchmark": p.benchmark,
                            "ground_truth": p.ground_truth,
                            "response": comp.text,
                            "num_tokens": comp.num_tokens,
                            "truncated": comp.truncated,
                        }
                    )
                out.flush()
                if bar is not None:
                    bar.update(len(missing))

            generator.generate(requests, sampling, on_done=on_done)
    if bar is not None:
        bar.close()
    return total


def grade_missing(
    cfg: EvalConfig, records: Sequence[Mapping], extra_info: Mapping[str, dict] | None = None
) -> list[dict]:
    """Grade records not yet in samples.jsonl (or graded there for a different response text); returns the graded
    records for the given (prompt, sample) keys. A later line for the same key supersedes an earlier one."""
    samples_path = os.path.join(cfg.output_dir, SAMPLES_FILE)
    graded = {(r["prompt_id"], int(r["sample_id"])): r for r in read_jsonl(samples_path)}

    def up_to_date(r: Mapping) -> bool:  # graded already, and for the same response text
        g = graded.get((r["prompt_id"], int(r["sample_id"])))
        return g is not None and g.get("response") == r.get("response")

    todo = [r for r in records if not up_to_date(r)]
    if todo:
        bar = _tqdm(len(todo), "grade", disable=cfg.quiet)
        with JsonlAppender(samples_path) as out:
            for chunk in iter_chunks(todo, cfg.grade_chunk):
                items = []
                for r in chunk:
                    item = dict(r)
                    if extra_info is not None and item.get("extra_info") is None:
                        item["extra_info"] = extra_info.get(r["prompt_id"])
                    items.append(item)
                results = grade_records(items, num_workers=cfg.num_workers, timeout_s=cfg.grade_timeout)
                for r, res in zip(chunk, results):
                    rec = {k: v for k, v in r.items() if k != "extra_info"}
                    rec.update(res)
                    out.write(rec)
                    graded[(r["prompt_id"], int(r["sample_id"]))] = rec
                out.flush()
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
    return [graded[(r["prompt_id"], int(r["sample_id"]))] for r in records]


def build_summary(cfg: EvalConfig, graded: Sequence[Mapping], n_samples: Mapping[str, int] | None) -> dict:
    per_bench = metrics.aggregate_records(graded, ks=cfg.ks, n_samples=n_samples)
    scores = metrics.table_scores(per_bench)
    truncated = sum(1 for r in graded if r.get("truncated"))
    return {
        "label": cfg.label or (os.path.basename(os.path.normpath(cfg.model)) if cfg.model else None),
        "model": cfg.model,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "responses" if cfg.responses else "generate",
        "responses_file": cfg.responses,
        "backend": None if cfg.responses else cfg.backend,
        "data": list(cfg.data),
        "protocol": {
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_new_tokens": cfg.max_new_tokens,
            "seed": cfg.seed,
            "dtype": resolve_dtype(cfg.model, cfg.dtype) if cfg.model and not cfg.responses else None,
            "chat_template": cfg.use_chat_template,
            "n_samples": dict(n_samples) if n_samples is not None else None,
            "max_prompts_per_benchmark": cfg.max_prompts_per_benchmark,
        },
        "num_samples": len(graded),
        "num_truncated": truncated,
        "benchmarks": per_bench,
        "scores": scores,
        "id_avg": scores.get("id_avg"),
        "ood_avg": scores.get("ood_avg"),
        "complete": bool(per_bench) and all(m["complete"] for m in per_bench.values()),
    }


def summary_markdown(summary: Mapping) -> str:
    lines = [
        f"# Evaluation: {summary.get('label')}",
        "",
        f"- model: `{summary.get('model')}`",
        f"- date: {summary.get('date')}",
        f"- mode: {summary.get('mode')}; backend: {summary.get('backend')}",
        f"- protocol: {json.dumps(summary.get('protocol'), sort_keys=True)}",
        "",
        "| Benchmark | prompts | n | avg@n (%) | pass@k (%) | complete |",
        "|---|---:|---:|---:|---|---|",
    ]
    for bench, m in summary["benchmarks"].items():
        pk = ", ".join(f"@{k}: {100 * v:.1f}" for k, v in m["pass@k"].items())
        lines.append(
            f"| {metrics.display_name(bench)} | {m['num_prompts']} | {m['n']} | {m['score']:.1f} | {pk} | "
            f"{'yes' if m['complete'] else 'NO'} |"
        )
    for key in ("id_avg", "ood_avg"):
        v = summary.get(key)
        lines.append(f"| **{metrics.display_name(key)}** | | | {'n/a' if v is None else f'{v:.1f}'} | | |")
    return "\n".join(lines) + "\n"


def write_summary(cfg: EvalConfig, summary: Mapping) -> None:
    with open(os.path.join(cfg.output_dir, SUMMARY_JSON), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=False)
        f.write("\n")
    with open(os.path.join(cfg.output_dir, SUMMARY_MD), "w", encoding="utf-8") as f:
        f.write(summary_markdown(summary))


def _selected(records: Iterable[Mapping], prompts: Sequence[EvalPrompt], n_samples: Mapping[str, int]) -> list[dict]:
    limits = {p.prompt_id: metrics.n_for(p.benchmark, n_samples) for p in prompts}
    out, seen = [], set()
    for r in records:
        key = (r["prompt_id"], int(r["sample_id"]))
        if r["prompt_id"] in limits and int(r["sample_id"]) < limits[r["prompt_id"]] and key not in seen:
            seen.add(key)
            out.append(dict(r))
    return out


def evaluate(cfg: EvalConfig) -> dict:
    """Generate (resumable), grade (resumable), aggregate, write summary. Returns the summary dict."""
    os.makedirs(cfg.output_dir, exist_ok=True)
    if cfg.responses:
        return grade_responses(cfg)
    n_samples = metrics.parse_n_samples(cfg.n_samples)
    prompts = load_eval_prompts(cfg.data, cfg.benchmarks, cfg.max_prompts_per_benchmark)
    if not prompts:
        raise ValueError("no prompts selected")
    generate_missing(cfg, prompts, n_samples)
    records = _selected(read_jsonl(os.path.join(cfg.output_dir, GENERATIONS_FILE)), prompts, n_samples)
    extra = {p.prompt_id: p.extra_info for p in prompts}
    graded = grade_missing(cfg, records, extra_info=extra)
    summary = build_summary(cfg, graded, n_samples)
    write_summary(cfg, summary)
    return summary


def normalize_response_record(rec: Mapping, i: int) -> dict:
    """Accept responses from other tools: required ``response`` (or ``output``/``completion``/``text``) and
    ``data_source`` (or ``benchmark``); ``ground_truth`` may be ``gts``/``gt``/``answer`` (or joined from --data);
    ``prompt_id`` defaults to ``prompt_index``/``index``/line number, ``sample_id`` to 0."""
    out = dict(rec)
    if "response" not in out:
        for k in ("output", "completion", "text", "generation"):
            if k in out:
                out["response"] = out[k]
                break
        else:
            raise KeyError(f"record {i} has no 'response' field")
    if "data_source" not in out:
        if "benchmark" not in out:
            raise KeyError(f"record {i} has neither 'data_source' nor 'benchmark'")
        out["data_source"] = out["benchmark"]
    if out.get("ground_truth") is None:
        for k in ("gts", "gt", "answer"):  # verl's validation dumps write "gts"
            if out.get(k) is not None:
                out["ground_truth"] = out[k]
                break
    out["benchmark"] = metrics.canonical_benchmark(out.get("benchmark") or out["data_source"])
    if "prompt_id" not in out:
        out["prompt_id"] = f"{out['benchmark']}-{out.get('prompt_index', out.get('index', i))}"
    out["prompt_id"] = str(out["prompt_id"])
    out["sample_id"] = int(out.get("sample_id", 0))
    return out


def grade_responses(cfg: EvalConfig) -> dict:
    """``--responses FILE`` mode: grade an existing JSONL of generations (from this tool or any server)."""
    raw = read_jsonl(cfg.responses)
    if not raw:
        raise ValueError(f"no records in {cfg.responses}")
    records = [normalize_response_record(r, i) for i, r in enumerate(raw)]
    extra: dict[str, dict] = {}
    if cfg.data:  # join ground truth / extra_info from the eval parquet(s) by prompt id
        by_id = {p.prompt_id: p for p in load_eval_prompts(cfg.data, cfg.benchmarks, dedupe=True)}
        for r in records:
            p = by_id.get(r["prompt_id"])
            if p is not None:
                r.setdefault("ground_truth", p.ground_truth)
                extra[r["prompt_id"]] = p.extra_info
    missing_gt = [r["prompt_id"] for r in records if r.get("ground_truth") is None]
    if missing_gt:
        raise KeyError(f"{len(missing_gt)} records have no ground_truth (pass --data to join it); e.g. {missing_gt[0]}")
    if cfg.benchmarks:
        wanted = {metrics.canonical_benchmark(b) for b in cfg.benchmarks}
        records = [r for r in records if r["benchmark"] in wanted]
    # drop any fields of an earlier grading so that the responses are graded afresh
    records = [{k: v for k, v in r.items() if k not in ("score", "acc", "pred", "reason")} for r in records]
    dedup: dict[tuple[str, int], dict] = {}
    for r in records:
        dedup.setdefault((r["prompt_id"], r["sample_id"]), r)
    graded = grade_missing(cfg, list(dedup.values()), extra_info=extra or None)
    n_samples = metrics.parse_n_samples(cfg.n_samples) if cfg.n_samples else None
    summary = build_summary(cfg, graded, n_samples)
    write_summary(cfg, summary)
    return summary


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m recipe_dypo.eval",
        description="DYPO evaluator: generate (vLLM or transformers), grade with recipe_dypo.reward, aggregate.",
    )
    p.add_argument("--model", help="HF checkpoint directory (or hub id when online)")
    p.add_argument("--data", nargs="*", default=[], help="eval parquet files, directories or globs")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--backend", choices=["vllm", "hf"], default="vllm")
    p.add_argument("--tokenizer", default=None, help="tokenizer path if it differs from --model")
    p.add_argument("--label", default=None, help="name of this run in tables (default: model directory name)")
    p.add_argument("--benchmarks", nargs="*", default=None, help="subset, e.g. aime24 math500 gpqa_diamond")
    p.add_argument(
        "--n-samples",
        default=None,
        help="samples per prompt: 'aime24=32,aime25=32,amc=32,default=1' (the default) or one integer for all",
    )
    p.add_argument("--max-prompts-per-benchmark", type=int, default=None, help="smoke tests: first N prompts each")
    p.add_argument("--temperature", type=float, default=0.6)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-chat-template", dest="use_chat_template", action="store_false")
    p.add_argument("--ks", default=",".join(map(str, DEFAULT_KS)), help="pass@k values to report (k <= n only)")
    p.add_argument("--batch-size", type=int, default=8, help="hf backend: sequences per generate() call")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights/compute dtype of either backend (default auto: the checkpoint's own dtype)",
    )
    p.add_argument("--device", default=None, help="hf backend device (default cuda if available)")
    p.add_argument("--tensor-parallel-size", "--tp", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--chunk-prompts", type=int, default=512, help="prompts per generation chunk (resume unit)")
    p.add_argument("--num-workers", type=int, default=4, help="grading processes")
    p.add_argument("--grade-timeout", type=float, default=5.0, help="seconds per graded sample")
    p.add_argument("--grade-chunk", type=int, default=512)
    p.add_argument("--responses", default=None, help="only grade this JSONL of existing generations")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    d = vars(args).copy()
    d["ks"] = tuple(int(k) for k in str(d["ks"]).split(",") if k.strip())
    known = {f for f in EvalConfig.__dataclass_fields__}
    return EvalConfig(**{k: v for k, v in d.items() if k in known})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if not args.responses and not args.model:
        build_parser().error("--model is required unless --responses is given")
    if not args.responses and not args.data:
        build_parser().error("--data is required unless --responses is given")
    cfg = config_from_args(args)
    summary = evaluate(cfg)
    if not cfg.quiet:
        sys.stdout.write(summary_markdown(summary))
    return summary


__all__ = [
    "EvalConfig",
    "EvalPrompt",
    "build_summary",
    "evaluate",
    "grade_responses",
    "load_eval_prompts",
    "main",
    "make_prompt_id",
    "read_jsonl",
]


def cli() -> int:
    """Console-script entry point (``dypo-eval``): like :func:`main` but returns an exit status."""
    main()
    return 0
