"""The paper's tables at toy scale, end to end: build, train every row, evaluate, render. Resumable.

    bash scripts/reproduce_toy_tables.sh [--tables 1,3,4,5] [--seeds 1,2,3] [--out outputs/toy_tables]

1. Assets, once (``<out>/assets``): the toy benchmark suite (recipe_dypo/toy/benchmark.py: three ID columns and
   one OOD column of 128 held-out prompts each, a training set with two teacher styles per prompt, the SFT files
   with one and with both teachers) and the pre-trained base model (recipe_dypo/toy/base_model.py).
2. Every run a table needs, per seed, through the launch script a GPU user runs, with
   ``MODEL=tiny DEVICE=cpu SCALE=toy`` (configs/scale/toy.yaml and sft_toy.yaml: the same budget for every row,
   40 optimiser steps of 32 prompts). SFT -> RL starts from the SFT row's checkpoint of the same seed.
3. Each final checkpoint evaluated with ``scripts/eval.sh`` (``python -m recipe_dypo.eval``, hf backend; the
   paper's decoding scaled down: temperature 0.6, top-p 1, 32 new tokens, avg@4 per prompt); the base model too.
4. The tables rendered by recipe_dypo/toy/tables.py into ``<out>/tables/`` (Markdown and CSV).

A finished run leaves ``train.done`` and its evaluation ``eval/summary.json``; both are skipped when run again.
verl's output of each run is in ``<out>/runs/<seed>/<run>/log.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEEDS = (1, 2, 3)
EVAL_SAMPLES = 4
EVAL_MAX_NEW_TOKENS = 32  # = max_response_length of configs/scale/toy.yaml
FIRST_TEACHER = "forward"  # the toy's "DeepSeek-R1": the one teacher of single-teacher rows


@dataclass(frozen=True)
class Run:
    """One training run: a launch script of scripts/, its environment and overrides."""

    script: str
    kind: str  # "sft", "grpo" (grpo_trainer config) or "dypo" (dypo_trainer config)
    env: dict = field(default_factory=dict)
    overrides: tuple = ()
    after: str | None = None  # a run whose checkpoint this one starts from (SFT -> RL)


RUNS: dict[str, Run] = {
    "sft_1t": Run("run_sft.sh", "sft", {"SFT_TEACHERS": "1"}),
    "sft_2t": Run("run_sft.sh", "sft", {"SFT_TEACHERS": "2"}),
    "grpo": Run("run_grpo.sh", "grpo"),
    "sft_1t_then_grpo": Run("run_sft_then_rl.sh", "grpo", {"SFT_TEACHERS": "1", "STAGES": "rl"}, after="sft_1t"),
    "sft_2t_then_grpo": Run("run_sft_then_rl.sh", "grpo", {"SFT_TEACHERS": "2", "STAGES": "rl"}, after="sft_2t"),
    # LUFFY's k-1 rollouts + 1 teacher solution per prompt: 3 + 1 at k = 4 (the preset's 7 + 1 is for k = 8)
    "luffy": Run("run_luffy_mix.sh", "dypo", overrides=("actor_rollout_ref.rollout.n=3",)),
    "hpt": Run("run_hpt_switch.sh", "dypo"),
    "dypo": Run("run_dypo_qwen2.5_7b.sh", "dypo"),
    "dypo_no_gal": Run("run_ablation_no_gal.sh", "dypo"),
    "dypo_1t": Run("run_ablation_single_teacher.sh", "dypo", {"TEACHER": FIRST_TEACHER}),
    "dypo_alpha0.2": Run("run_dypo_qwen2.5_7b.sh", "dypo", overrides=("dypo.alpha=0.2",)),
    "dypo_alpha0.8": Run("run_dypo_qwen2.5_7b.sh", "dypo", overrides=("dypo.alpha=0.8",)),
}
BASE = "base"  # the base model, evaluated without training

# table -> [(paper row it stands for or None, toy row label, run)] in the paper's row order. The toy's second
# teacher plays Table 3's 235B teacher (one teacher size here).
TABLE_ROWS: dict[str, list[tuple[str | None, str, str]]] = {
    "table1": [
        ("Qwen2.5-Math-7B", "Base (pre-trained tiny Qwen2)", BASE),
        ("SFT", "SFT", "sft_1t"),
        ("RL", "RL (GRPO)", "grpo"),
        ("SFT → RL", "SFT → RL", "sft_1t_then_grpo"),
        ("LUFFY", "LUFFY-style", "luffy"),
        (None, "HPT-style", "hpt"),
        ("DYPO", "DYPO", "dypo"),
    ],
    "table3": [
        ("Qwen2.5-Math-7B", "Base (pre-trained tiny Qwen2)", BASE),
        ("+ SFT", "+ SFT", "sft_1t"),
        ("+ Multi-Teacher", "+ Multi-Teacher", "sft_2t"),
        ("+ RL", "+ RL", "sft_2t_then_grpo"),
        ("+ Dynamic Grading", "+ Dynamic Grading", "dypo_no_gal"),
        ("+ GAL (DYPO)", "+ GAL (DYPO)", "dypo"),
    ],
    "table4": [
        ("DYPO (Single-Teacher)", "DYPO (Single-Teacher)", "dypo_1t"),
        ("DYPO (2-Teacher)", "DYPO (2-Teacher)", "dypo"),
    ],
    "table5": [
        ("alpha=0.2, beta=1", "alpha=0.2, beta=1", "dypo_alpha0.2"),
        ("alpha=0.5, beta=1", "alpha=0.5, beta=1", "dypo"),
        ("alpha=0.8, beta=1", "alpha=0.8, beta=1", "dypo_alpha0.8"),
    ],
}


def table_key(name: str) -> str:
    key = str(name).strip().lower()
    key = f"table{key}" if key.isdigit() else key
    if key not in TABLE_ROWS:
        raise SystemExit(f"--tables: unknown table {name!r}; choose from 1, 3, 4, 5")
    return key


def runs_needed(tables: list[str]) -> list[str]:
    """Runs the tables need, each once, in an order where a run comes after the one it starts from."""
    wanted = {run for t in tables for _, _, run in TABLE_ROWS[t]}
    wanted |= {RUNS[r].after for r in wanted if r in RUNS and RUNS[r].after}
    order = [BASE] + [r for r in RUNS if r in wanted]
    return [r for r in order if r in wanted]


# ---------------------------------------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------------------------------------

ASSETS_VERSION = 2  # 2: worked answers in the pre-training text


def build_assets(out: Path, seed: int = 0) -> dict:
    """Benchmark parquets, training and SFT parquets, base model under ``out``; reused when already built."""
    from data_prep.common import write_parquet
    from data_prep.make_sft_data import main as make_sft_data
    from recipe_dypo.toy import benchmark
    from recipe_dypo.toy.base_model import PRETRAIN_STEPS, build_base_model
    from recipe_dypo.toy.tokenizer import save_char_tokenizer

    manifest_path = out / "assets.json"
    wanted = {"version": ASSETS_VERSION, "seed": seed, "pretrain_steps": PRETRAIN_STEPS}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("args") == wanted:
            return manifest
    write_parquet(benchmark.training_rows(seed), out / "train_2t.parquet")
    for task in benchmark.TASKS:
        write_parquet(benchmark.heldout_rows(task, seed), out / "eval" / f"{task}.parquet")
    quiet = ["--input", str(out / "train_2t.parquet")]
    make_sft_data([*quiet, "--output", str(out / "sft_1t.parquet"), "--teacher", FIRST_TEACHER])
    make_sft_data([*quiet, "--output", str(out / "sft_2t.parquet")])
    save_char_tokenizer(out / "tokenizer")
    facts = build_base_model(out / "base", out / "tokenizer", seed=seed)
    manifest = {"args": wanted, "base_model": str(out / "base"), **facts}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# ---------------------------------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------------------------------


def seed_overrides(kind: str, seed: int) -> list[str]:
    """What a seed changes: the data order, the rollout sampling and (DYPO's trainer) the teacher draws."""
    if kind == "sft":
        return [f"trainer.seed={seed}"]
    out = [f"data.seed={seed}", f"actor_rollout_ref.rollout.seed={seed}"]
    return out + ([f"dypo.seed={seed}"] if kind == "dypo" else [])


def final_hf_dir(ckpt: Path) -> Path:
    """The Hugging Face weights of the last checkpoint under ``ckpt`` (RL: actor/huggingface; SFT: huggingface)."""
    steps = sorted(ckpt.glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not steps:
        raise FileNotFoundError(f"no checkpoint under {ckpt}")
    for candidate in (steps[-1] / "actor" / "huggingface", steps[-1] / "huggingface"):
        if (candidate / "config.json").exists():
            return candidate
    raise FileNotFoundError(f"{steps[-1]} has no huggingface/ weights")


def _base_env(assets: Path, python: str) -> dict:
    return {
        **os.environ,
        "MODEL": "tiny",
        "DEVICE": "cpu",
        "SCALE": "toy",
        "PYTHON": python,
        "TINY_DIR": str(assets / "tiny"),
        "MODEL_PATH": str(assets / "base"),
        "DATA_DIR": str(assets),
        "TRAIN_FILE": str(assets / "train_2t.parquet"),
        "VAL_FILE": str(assets / "eval" / "add.parquet"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }


def train(name: str, seed: int, seed_dir: Path, assets: Path, python: str, extra: list[str]) -> Path:
    """Train one run (skipped when ``train.done`` exists); returns its final Hugging Face weights."""
    run, run_dir = RUNS[name], seed_dir / name
    ckpt = run_dir / "ckpt"
    if not (run_dir / "train.done").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **_base_env(assets, python),
            **run.env,
            "EXP_NAME": f"toy-{name}-s{seed}",
            "CKPT_DIR": str(ckpt),
            "VERL_FILE_LOGGER_PATH": str(run_dir / "metrics.jsonl"),
        }
        overrides = [*run.overrides, *seed_overrides(run.kind, seed), *extra]
        if run.kind == "sft":
            env["SFT_CKPT_DIR"] = str(ckpt)
        else:
            # a partial run left by a crash starts again: the toy runs save one checkpoint, at the end
            overrides.append("trainer.resume_mode=disable")
        if run.after:
            env["SFT_CKPT_DIR"] = str(seed_dir / run.after / "ckpt")
        start = time.monotonic()
        with open(run_dir / "log.txt", "w") as log:
            proc = subprocess.run(
                ["bash", str(REPO / "scripts" / run.script), *overrides],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if proc.returncode != 0:
            raise RuntimeError(
                f"run {name} (seed {seed}) failed with exit code {proc.returncode}; see {run_dir / 'log.txt'}"
            )
        (run_dir / "train.done").write_text(json.dumps({"wall_s": round(time.monotonic() - start, 1)}))
    return final_hf_dir(ckpt)


def evaluate(model: Path, label: str, seed: int, out: Path, assets: Path, python: str) -> dict:
    """``scripts/eval.sh`` on the toy benchmark suite (skipped when ``out/summary.json`` exists)."""
    from recipe_dypo.toy import benchmark

    summary = out / "summary.json"
    if not summary.exists():
        env = {
            **_base_env(assets, python),
            "MODEL": str(model),
            "LABEL": label,
            "OUT": str(out),
            "BACKEND": "hf",
            "DATA": str(assets / "eval"),
            "BENCHMARKS": " ".join(benchmark.data_source(t) for t in benchmark.TASKS),
            "N_SAMPLES": f"default={EVAL_SAMPLES}",
            "TEMPERATURE": "0.6",
            "MAX_NEW_TOKENS": str(EVAL_MAX_NEW_TOKENS),
            "SEED": str(seed),
            "WORKERS": "2",
        }
        start = time.monotonic()
        cmd = ["bash", str(REPO / "scripts" / "eval.sh"), "--device", "cpu", "--batch-size", "256", "--quiet"]
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "log.txt", "w") as log:
            proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"evaluation of {model} failed (exit {proc.returncode}); see {out / 'log.txt'}")
        data = json.loads(summary.read_text())
        data["eval_wall_s"] = round(time.monotonic() - start, 1)
        summary.write_text(json.dumps(data, indent=1))
    return json.loads(summary.read_text())


def main(argv=None) -> int:
    from tqdm import tqdm

    from recipe_dypo.toy import tables as toy_tables

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", default="1,3,4,5", help="comma-separated: 1, 3, 4, 5 (default all)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds (default 1,2,3)")
    p.add_argument("--out", default="outputs/toy_tables", help="everything goes here (default outputs/toy_tables)")
    p.add_argument("--runs", default=None, help="comma-separated subset of the runs the tables need (e.g. dypo,grpo)")
    p.add_argument("--render-only", action="store_true", help="render the tables from the finished runs")
    p.add_argument(
        "overrides", nargs="*", help="hydra overrides for every RL run (tests: trainer.total_training_steps=2)"
    )
    args = p.parse_args(argv)
    tables = [table_key(t) for t in args.tables.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out = Path(args.out).resolve()
    assets, python = out / "assets", sys.executable
    if not args.render_only:
        start = time.monotonic()
        facts = build_assets(assets)
        print(f"assets: {assets} (base model pre-trained {facts['pretrain_steps']} steps)", file=sys.stderr)
        needed = runs_needed(tables)
        if args.runs:
            chosen = [r for r in args.runs.split(",") if r]
            unknown = [r for r in chosen if r not in needed]
            if unknown:
                raise SystemExit(f"--runs: {unknown} not needed by tables {tables}; they need {needed}")
            needed = [r for r in needed if r in chosen]
        plan = [(seed, name) for seed in seeds for name in needed]
        rl_extra = list(args.overrides)
        sft_extra = [o for o in rl_extra if o.startswith("trainer.total_training_steps=")]
        with tqdm(plan, desc="toy tables", unit="run") as bar:
            for seed, name in bar:
                bar.set_postfix_str(f"seed {seed}: {name}")
                seed_dir = out / "runs" / str(seed)
                if name == BASE:
                    model, label = assets / "base", "base"
                else:
                    extra = sft_extra if RUNS[name].kind == "sft" else rl_extra
                    model, label = train(name, seed, seed_dir, assets, python, extra), name
                evaluate(model, label, seed, seed_dir / name / "eval", assets, python)
        print(f"runs finished in {time.monotonic() - start:.0f} s", file=sys.stderr)
    written = toy_tables.write_all(out, tables, seeds)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
