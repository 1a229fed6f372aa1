"""A full local run: toy data, tokenizer, tiny Qwen2 model, the training loop, evaluation and outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from recipe_dypo.local import report
from recipe_dypo.local.driver import LocalDypoTrainer, RunConfig, compose_verl_config, heldout_accuracy
from recipe_dypo.local.model import count_parameters, create_model, load_model
from recipe_dypo.local.tokenizer import build_or_load_tokenizer, corpus_from_rows

TOKENIZER_CORPUS_ROWS = 2048  # the tokenizer never depends on the run's teachers or sizes


def _make_toy_rows():
    """``data_prep.toy_data.make_toy_rows`` (data_prep lives at the repo root, next to recipe_dypo)."""
    import sys

    from recipe_dypo.local.driver import REPO_ROOT

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from data_prep.toy_data import make_toy_rows

    return make_toy_rows


def toy_rows(run: RunConfig) -> tuple[list[dict], list[dict]]:
    """(train rows with the run's teachers, held-out test rows) from the data package's toy generator."""
    make_toy_rows = _make_toy_rows()

    train = make_toy_rows(run.train_size, seed=run.seed, split="train", teachers=run.teachers)
    test = make_toy_rows(run.test_size, seed=run.seed, split="test", teachers=())
    return train, test


def tokenizer_for(out_root: Path):
    """The shared local BPE tokenizer under ``out_root/tokenizer`` (trained once on a fixed toy corpus)."""
    make_toy_rows = _make_toy_rows()
    path = out_root / "tokenizer"
    texts = None if (path / "tokenizer.json").exists() else corpus_from_rows(make_toy_rows(TOKENIZER_CORPUS_ROWS, 0))
    return build_or_load_tokenizer(path, texts)


def prompt_batches(n_rows: int, per_step: int, steps: int, seed: int):
    """Yields ``steps`` lists of row indices: epochs of a seeded permutation, ``per_step`` prompts each."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    for _ in range(steps):
        while len(order) < per_step:
            order += rng.permutation(n_rows).tolist()
        yield order[:per_step]
        order = order[per_step:]


def setup_run(run: RunConfig):
    """Seeds, threads, data, tokenizer, the saved-and-reloaded initial model and the reference model."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    out = Path(run.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = toy_rows(run)
    tokenizer = tokenizer_for(out.parent)
    init_dir = out / "init_model"
    model = create_model(init_dir, tokenizer, run.model_size, seed=run.seed)
    ref_model = load_model(init_dir).eval().requires_grad_(False)
    return train, test, tokenizer, model, ref_model


def run_training(run: RunConfig, show_progress: bool = True, print_table: bool = True) -> dict:
    """Train, print the per-step table, write metrics.jsonl / curves.png / model/ / summary.json under out_dir."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    out = Path(run.out_dir)
    train, test, tokenizer, model, ref_model = setup_run(run)
    trainer = LocalDypoTrainer(run, compose_verl_config(run), model, ref_model, tokenizer)
    log = report.MetricsLog(out / "metrics.jsonl")
    say = tqdm.write if show_progress else print
    say(
        f"[{run.algo}] {count_parameters(model) / 1e6:.2f}M-parameter Qwen2, vocab {len(tokenizer)}, "
        f"{run.steps} steps x {run.prompts_per_step} prompts x {run.n} rollouts, teachers={list(run.teachers)}"
    )
    acc0 = heldout_accuracy(model, tokenizer, test, run.max_response_length)
    if print_table:
        say(report.table_header())
    bar = tqdm(total=run.steps, desc=f"{run.algo} steps", disable=not show_progress, leave=False)
    records = []
    for step, idx in enumerate(prompt_batches(len(train), run.prompts_per_step, run.steps, run.seed), start=1):
        metrics = trainer.train_step([train[i] for i in idx])
        if step % run.eval_every == 0 or step == run.steps:
            metrics["eval/heldout_acc"] = heldout_accuracy(model, tokenizer, test, run.max_response_length)
        records.append(metrics)
        log.write(metrics)
        if print_table:
            say(report.table_row(metrics))
        bar.update(1)
        bar.set_postfix(
            reward=f"{metrics['dypo/rollout_score_mean']:.2f}", offline=f"{metrics['dypo/offline_data_ratio']:.2f}"
        )
    bar.close()
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    png = report.plot_curves(records, out / "curves.png", title=f"{run.algo} on toy_arith (CPU)")
    summary = {
        "algo": run.algo,
        "teachers": list(run.teachers),
        "steps": run.steps,
        "seed": run.seed,
        "heldout_acc_initial": acc0,
        "heldout_acc_final": records[-1]["eval/heldout_acc"] if records else acc0,
        "offline_ratio_first": records[0]["dypo/offline_data_ratio"] if records else None,
        "offline_ratio_last5_mean": float(np.mean([r["dypo/offline_data_ratio"] for r in records[-5:]])),
        "reward_last5_mean": float(np.mean([r["dypo/rollout_score_mean"] for r in records[-5:]])),
        "teacher_draws": dict(trainer.teacher_draws),
        "wall_s": time.perf_counter() - t_start,
        "metrics": str(out / "metrics.jsonl"),
        "png": str(png) if png else None,
        "model": str(out / "model"),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
