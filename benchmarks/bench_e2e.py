"""DYPO against plain verl GRPO in verl's REAL loop on the CPU backend: warm step time, measured in one run.

Both runs use the same tiny model, data, seeds, rollout count (4 prompts x 4 rollouts per step) and scripted
rewards (tests/e2e_reward.py: each group of four prompts is easy, mid, mid, hard), so DYPO exercises every
branch (easy dropped, GRPO + GAL on mid, SFT on hard) while GRPO trains on every group. Each is one launch of its
run script (DYPO: run_dypo_qwen2.5_7b.sh with the paper's settings, reference model on for GAL; GRPO:
run_grpo.sh, no reference model). The first WARMUP steps are excluded. Prints verl's phase breakdown
(timing_s/*) per run and the ratio DYPO / GRPO of the mean warm step. Target: <= 1.10.

    python benchmarks/bench_e2e.py                  # 8 steps each, 2 warm-up (about 4 minutes on 2 cores)
    python benchmarks/bench_e2e.py --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e_support import launch, write_graded_data  # noqa: E402

PHASES = ("gen", "reward", "old_log_prob", "ref", "adv", "update_actor", "update_weights", "step")


def warm_timings(run, warmup: int) -> dict[str, list[float]]:
    steps = sorted(s for s in run.metrics if s > warmup)
    return {phase: [run.metrics[s].get(f"timing_s/{phase}", 0.0) for s in steps] for phase in PHASES}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="leading steps left out (first-step compilation, caches)")
    p.add_argument("--engine", default="fsdp2", choices=("fsdp", "fsdp2"))
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")

    from recipe_dypo.toy.assets import build_tiny_assets

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        build_tiny_assets(root / "tiny")
        data = write_graded_data(root / "train.parquet", ["easy", "mid", "mid", "hard"] * args.steps)
        runs = {}
        for name, script in (("grpo", "run_grpo.sh"), ("dypo", "run_dypo_qwen2.5_7b.sh")):
            print(f"launching {name} ({script}, {args.steps} steps) ...", flush=True)
            runs[name] = launch(script, root / name, root / "tiny", data, args.steps, ENGINE=args.engine).check()
            print(f"  {name}: launch took {runs[name].seconds:.0f} s", flush=True)
        timings = {name: warm_timings(run, args.warmup) for name, run in runs.items()}

    n = args.steps - args.warmup
    print(f"\nwarm steps {args.warmup + 1}..{args.steps} ({n} per run), mean seconds per step [median]:")
    print(f"{'phase':16s} {'GRPO':>16s} {'DYPO':>16s} {'DYPO/GRPO':>10s}")
    for phase in PHASES:
        g, d = timings["grpo"][phase], timings["dypo"][phase]
        gm, dm = statistics.mean(g), statistics.mean(d)
        ratio = f"{dm / gm:10.2f}" if gm > 0 else f"{'-':>10s}"
        print(f"{phase:16s} {gm:8.3f} [{statistics.median(g):5.3f}] {dm:8.3f} [{statistics.median(d):5.3f}] {ratio}")
    step_ratio = statistics.mean(timings["dypo"]["step"]) / statistics.mean(timings["grpo"]["step"])
    print(f"\nwarm step DYPO / GRPO = {step_ratio:.2f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
