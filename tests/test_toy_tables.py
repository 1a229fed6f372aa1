"""The toy tables: benchmark suite, base model, renderer, and the pipeline end to end for a couple of steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_dypo.reward import compute_score
from recipe_dypo.toy import benchmark, reproduce
from recipe_dypo.toy import tables as toy_tables

REPO = Path(__file__).resolve().parents[1]


def _score(row, text):
    s = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"])
    return float(s["score"] if isinstance(s, dict) else s)


def test_benchmark_columns_are_held_out_and_sized():
    train = benchmark.training_rows()
    assert len(train) == (900 - 128) + (820 - 128) + 800  # add, sub (b <= a < 40), max capped at 800
    train_prompts = {r["prompt"][0]["content"] for r in train}
    for task in benchmark.TASKS:
        held = benchmark.heldout_rows(task)
        assert len(held) == benchmark.HELDOUT_PER_TASK == 128
        assert {r["data_source"] for r in held} == {f"toy_{task}"}
        assert not train_prompts & {r["prompt"][0]["content"] for r in held}, task
        assert all(r["extra_info"]["teachers"] == [] for r in held)
    assert benchmark.training_rows() == train  # a pure function of the seed
    assert benchmark.training_rows(seed=1) != train


def test_teacher_solutions_are_correct_and_equally_long():
    for r in benchmark.training_rows()[:300]:
        forward, swapped = (t["response"] for t in r["extra_info"]["teachers"])
        assert len(forward) == len(swapped), (forward, swapped)
        assert _score(r, forward) == 1.0 and _score(r, swapped) == 1.0
    row = benchmark.row("sub", (31, 9), "train", 0)
    assert [t["response"] for t in row["extra_info"]["teachers"]] == [
        "<think>31-9=22</think>\\boxed{22}",
        "<think>22+9=31</think>\\boxed{22}",
    ]
    # the base model's short style is graded like any answer
    assert _score(row, benchmark.base_style_answer("sub", (31, 9))) == 1.0


def test_every_teacher_solution_fits_the_toy_response_length():
    """A teacher row longer than max_response_length is cut, and so is a model that imitates it (an earlier
    24-token limit cut every `max` solution: 25 tokens + EOS)."""
    import yaml

    from recipe_dypo.toy.tokenizer import char_tokenizer

    tok = char_tokenizer()
    limit = yaml.safe_load((REPO / "configs" / "scale" / "toy.yaml").read_text())["data"]["max_response_length"]
    assert reproduce.EVAL_MAX_NEW_TOKENS == limit
    longest = max(
        len(tok.encode(t["response"], add_special_tokens=False)) + 1  # + EOS
        for r in benchmark.training_rows()
        for t in r["extra_info"]["teachers"]
    )
    assert longest == 26 and longest <= limit
    prompt = max(
        len(tok.apply_chat_template(r["prompt"], add_generation_prompt=True)) for r in benchmark.training_rows()
    )
    assert prompt <= yaml.safe_load((REPO / "configs" / "scale" / "toy.yaml").read_text())["data"]["max_prompt_length"]


def test_runs_needed_put_sft_before_its_rl_stage():
    assert reproduce.runs_needed(["table4"]) == ["dypo", "dypo_1t"]
    table3 = reproduce.runs_needed(["table3"])
    assert table3[0] == "base" and table3.index("sft_2t") < table3.index("sft_2t_then_grpo")
    assert set(reproduce.runs_needed(["table1"])) == {
        "base",
        "sft_1t",
        "grpo",
        "sft_1t_then_grpo",
        "luffy",
        "hpt",
        "dypo",
    }


def _summary(path: Path, scores: dict):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(
        json.dumps({"benchmarks": {f"toy_{t}": {"score": v} for t, v in scores.items()}})
    )


def test_table_renders_means_and_paired_differences(tmp_path):
    runs = tmp_path / "runs"
    _summary(runs / "1" / "dypo" / "eval", {"add": 60, "sub": 30, "max": 90, "add3": 10})
    _summary(runs / "2" / "dypo" / "eval", {"add": 70, "sub": 40, "max": 90, "add3": 20})
    _summary(runs / "1" / "dypo_1t" / "eval", {"add": 50, "sub": 30, "max": 70, "add3": 10})
    _summary(runs / "2" / "dypo_1t" / "eval", {"add": 70, "sub": 40, "max": 60, "add3": 10})
    scores = toy_tables.load_scores(tmp_path, [1, 2])
    assert scores["dypo"][1]["id_avg"] == pytest.approx(60.0) and scores["dypo"][2]["ood_avg"] == 20.0
    assert toy_tables.paired_differences(scores["dypo"], scores["dypo_1t"], "id_avg") == pytest.approx([10.0, 10.0])
    markdown, rows = toy_tables.render_table("table4", scores)
    # DYPO (2-Teacher): ID avg 60 and 66.67 -> 63.3 ± 4.7; OOD 15.0 ± 7.1
    assert (
        "| **DYPO (2-Teacher)** | DYPO (2-Teacher) | 2 | 65.0 ± 7.1 | 35.0 ± 7.1 | 90.0 ± 0.0 | 63.3 ± 4.7 |"
        in markdown
    )
    assert "| DYPO (Single-Teacher) | 2 | +10.0 ± 0.0 | +5.0 ± 7.1 | +10.0, +10.0 |" in markdown
    assert "32.8" in markdown  # the paper's own Table 4 printed beside
    assert len(rows) == 4 and rows[0][:5] == ["table4", "DYPO (Single-Teacher)", "DYPO (Single-Teacher)", "dypo_1t", 1]
    # a run without results is an empty row, not a made-up one
    markdown1, _ = toy_tables.render_table("table1", scores)
    assert "| SFT | SFT | 0 | – | – |" in markdown1


def test_table_wall_time_sums_the_runs_it_needs(tmp_path):
    runs = tmp_path / "runs"
    for seed, (dypo_s, one_s) in {1: (300.0, 280.0), 2: (310.0, 290.0)}.items():
        for run, train_s, eval_s in (("dypo", dypo_s, 12.0), ("dypo_1t", one_s, 10.0)):
            _summary(runs / str(seed) / run / "eval", {"add": 50, "sub": 30, "max": 70, "add3": 10})
            summary = runs / str(seed) / run / "eval" / "summary.json"
            summary.write_text(json.dumps({**json.loads(summary.read_text()), "eval_wall_s": eval_s}))
            (runs / str(seed) / run / "train.done").write_text(json.dumps({"wall_s": train_s}))
    # seed 3's DYPO has no train.done (a run cut off after a stale evaluation): seed 3 is left out, not half-counted
    _summary(runs / "3" / "dypo" / "eval", {"add": 50, "sub": 30, "max": 70, "add3": 10})
    times = toy_tables.load_times(tmp_path, [1, 2, 3])
    assert times["dypo"] == {1: (300.0, 12.0), 2: (310.0, 12.0)}
    assert toy_tables.table_time("table4", times) == {1: (580.0, 22.0), 2: (600.0, 22.0)}
    assert toy_tables.table_time("table1", times) == {}  # Table 1's other runs have not run
    toy_tables.write_all(tmp_path, ["table4"], [1, 2, 3])
    markdown = (tmp_path / "tables" / "table4.md").read_text()
    assert "seed 1: 602 s (580 s training, 22 s evaluation), seed 2: 622 s" in markdown
    assert "20.4 min in all" in markdown
    header, first = (tmp_path / "tables" / "table4.csv").read_text().splitlines()[:2]
    assert header.endswith(",train_wall_s,eval_wall_s") and first.endswith(",280,10")


def test_seed_overrides_match_each_trainer_config():
    assert reproduce.seed_overrides("sft", 3) == ["trainer.seed=3"]
    assert "dypo.seed=3" not in reproduce.seed_overrides("grpo", 3)
    assert "dypo.seed=3" in reproduce.seed_overrides("dypo", 3)


@pytest.mark.e2e
def test_pipeline_two_steps_sft_then_rl_eval_render(tmp_path):
    """The rows whose code paths differ, for two steps each: verl's SFT trainer under torchrun on the CPU backend,
    the SFT -> RL hand-over of its checkpoint to an RL row (GRPO), evaluation of each checkpoint and of the base
    model with recipe_dypo.eval, and Table 1 rendered with measured rows. The RL stage is also the e2e test of
    the GRPO baseline. (DYPO rows run the launch every e2e test of tests/test_e2e_cpu.py runs.)"""
    out = tmp_path / "toy"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    cmd = [
        sys.executable,
        "-m",
        "recipe_dypo.toy.reproduce",
        "--tables",
        "1",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--runs",
        "base,sft_1t,sft_1t_then_grpo",
        "trainer.total_training_steps=2",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seed_dir = out / "runs" / "1"
    assert (
        "== stage 2: GRPO from " + str(seed_dir / "sft_1t" / "ckpt" / "global_step_2" / "huggingface")
        in (seed_dir / "sft_1t_then_grpo" / "log.txt").read_text()
    )
    for run in ("base", "sft_1t", "sft_1t_then_grpo"):
        summary = json.loads((seed_dir / run / "eval" / "summary.json").read_text())
        assert summary["complete"] and summary["num_samples"] == 4 * 4 * 128, run
        assert set(summary["benchmarks"]) == {f"toy_{t}" for t in benchmark.TASKS}
    for run in ("sft_1t", "sft_1t_then_grpo"):
        assert (seed_dir / run / "train.done").exists()
    sft_steps = [json.loads(line) for line in (seed_dir / "sft_1t" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in sft_steps if "train/loss" in m["data"]] == [1, 2]
    rl_log = (seed_dir / "sft_1t_then_grpo" / "metrics.jsonl").read_text().splitlines()
    rl_steps = {m["step"]: m["data"] for m in map(json.loads, rl_log) if "critic/score/mean" in m["data"]}
    # the GRPO row (run_grpo.sh and stage 2 are the same rl_launch of verl's GRPO): it trains, the rollout server
    # gets the updated weights, and no DYPO metric appears
    assert sorted(rl_steps) == [1, 2] and all(rl_steps[s]["actor/grad_norm"] > 0 for s in (1, 2))
    assert rl_steps[2]["training/rollout_probs_diff_max"] < 1e-4
    assert not any(k.startswith("dypo/") for k in rl_steps[1])
    table = (out / "tables" / "table1.md").read_text()
    assert "| SFT → RL | SFT → RL | 1 |" in table and "| RL (GRPO) | RL | 0 | – |" in table
    csv_rows = (out / "tables" / "table1.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 3  # header + base, SFT, SFT -> RL for seed 1
    # resumable: a second invocation skips every finished run and evaluation
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "runs finished in" in again.stderr
    assert int(again.stderr.split("runs finished in ")[1].split(" s")[0]) < 30
