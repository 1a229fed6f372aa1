"""``python -m recipe_dypo.local {train,cold-start,teachers,variance}``: the CPU quickstart and its mechanism checks."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from recipe_dypo.local.driver import RunConfig


def add_run_args(p: argparse.ArgumentParser, out_dir: str) -> None:
    d = RunConfig()
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--prompts-per-step", type=int, default=d.prompts_per_step)
    p.add_argument("--n", type=int, default=d.n, help="rollouts per prompt")
    p.add_argument("--max-response-length", type=int, default=d.max_response_length)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--teachers", default=",".join(d.teachers), help="comma-separated: concise,verbose")
    p.add_argument("--train-size", type=int, default=d.train_size)
    p.add_argument("--test-size", type=int, default=d.test_size)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--model-size", default=d.model_size, choices=["tiny", "micro"])
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out-dir", default=out_dir)
    p.add_argument("--quiet", action="store_true", help="no per-step table")
    p.add_argument("overrides", nargs="*", help="hydra overrides of configs/dypo_trainer.yaml, e.g. dypo.alpha=0.2")


def run_config(args, **changes) -> RunConfig:
    cfg = RunConfig(
        steps=args.steps,
        prompts_per_step=args.prompts_per_step,
        n=args.n,
        max_response_length=args.max_response_length,
        lr=args.lr,
        seed=args.seed,
        teachers=tuple(t for t in args.teachers.split(",") if t),
        train_size=args.train_size,
        test_size=args.test_size,
        eval_every=args.eval_every,
        model_size=args.model_size,
        threads=args.threads,
        out_dir=args.out_dir,
        overrides=tuple(args.overrides),
    )
    return dataclasses.replace(cfg, **changes)


def cmd_train(args) -> dict:
    from recipe_dypo.local.run import run_training

    s = run_training(run_config(args, algo=args.algo), print_table=not args.quiet)
    print(
        f"held-out accuracy (greedy, {args.test_size} toy problems): "
        f"{s['heldout_acc_initial']:.3f} at step 0 -> {s['heldout_acc_final']:.3f} at step {s['steps']}"
    )
    print(
        f"offline-data ratio: {s['offline_ratio_first']:.2f} at step 1 -> {s['offline_ratio_last5_mean']:.2f} "
        f"(mean of the last 5 steps); teacher draws {s['teacher_draws']}"
    )
    print(f"metrics: {s['metrics']}\ncurves:  {s['png']}\nmodel:   {s['model']}\nwall time {s['wall_s']:.0f}s")
    return s


def cmd_compare(args, variants: list[tuple[str, dict]]) -> dict:
    """Runs the variants with the same steps and seed and prints their final numbers side by side."""
    from recipe_dypo.local.run import run_training

    results = {}
    for name, changes in variants:
        cfg = run_config(args, out_dir=os.path.join(args.out_dir, name), **changes)
        results[name] = run_training(cfg, print_table=not args.quiet)
    print(f"\n{'variant':<14}{'held-out acc':>14}{'reward (last 5)':>17}{'offline (last 5)':>18}  teacher draws")
    for name, s in results.items():
        print(
            f"{name:<14}{s['heldout_acc_initial']:>6.3f} ->{s['heldout_acc_final']:>6.3f}"
            f"{s['reward_last5_mean']:>17.3f}{s['offline_ratio_last5_mean']:>18.2f}  {s['teacher_draws']}"
        )
    with open(os.path.join(args.out_dir, "comparison.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars would break the per-step table
    parser = argparse.ArgumentParser(prog="python -m recipe_dypo.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="one run (the quickstart)")
    add_run_args(p, "outputs/quickstart")
    p.add_argument("--algo", choices=["dypo", "grpo"], default="dypo")
    p = sub.add_parser("cold-start", help="mechanism 2: plain GRPO vs DYPO from the same random init")
    add_run_args(p, "outputs/cold_start")
    p = sub.add_parser("teachers", help="mechanism 4: one teacher vs two teachers")
    add_run_args(p, "outputs/teachers")
    p = sub.add_parser("variance", help="mechanism 3: policy-gradient variance vs alpha at fixed parameters")
    from recipe_dypo.local.variance import add_variance_args

    add_variance_args(p)
    args = parser.parse_args(argv)
    if args.command == "train":
        cmd_train(args)
    elif args.command == "cold-start":
        cmd_compare(args, [("grpo", {"algo": "grpo"}), ("dypo", {"algo": "dypo"})])
    elif args.command == "teachers":
        cmd_compare(
            args, [("one_teacher", {"teachers": ("concise",)}), ("two_teachers", {"teachers": ("concise", "verbose")})]
        )
    else:
        from recipe_dypo.local.variance import cmd_variance

        cmd_variance(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
