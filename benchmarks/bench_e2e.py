"""DYPO against verl's GRPO in verl's REAL loop on the CPU backend: warm step time, phases and memory, one run.

Four launches of the run scripts a GPU user runs, with the same tiny model, data, seeds, rollout count (4 prompts x
4 rollouts per step) and scripted rewards (tests/e2e_reward.py: each group of four prompts is easy, mid, mid, hard,
and every mid group mixed), so DYPO exercises every branch (easy dropped, GRPO + GAL on mid, SFT on hard) while
GRPO trains on every group:

    grpo        run_grpo.sh, no reference model
    grpo_kl     run_grpo.sh with verl's KL loss (use_kl_loss=true, kl_loss_coef=0.001): the usual verl GRPO
                configuration, whose reference forward is the one DYPO's GAL uses
    dypo        run_dypo_qwen2.5_7b.sh, the paper's settings (reference model on for GAL)
    dypo_noref  the same with reference-free GAL (dypo.gal_reference=false, no reference model)

Each ratio is taken against the fair peer: DYPO / GRPO with reference (target <= 1.00: the same forward passes,
fewer rows trained), DYPO / GRPO (<= 1.10) and reference-free DYPO / GRPO (<= 1.05). The first WARMUP steps are
left out; phases are verl's timing_s/*. Memory: the peak resident set (RSS) of the largest process of the launch
(the colocated actor/rollout/reference worker) and of all of them together, sampled every 0.5 s.

    python benchmarks/bench_e2e.py                  # 8 steps each, 2 warm-up (about 9 minutes on 2 cores)
    python benchmarks/bench_e2e.py --steps 3 --warmup 1 --runs grpo,dypo
    python benchmarks/bench_e2e.py --repeat 2          # each run twice, interleaved (machine noise: see docs)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e_support import launch, write_graded_data  # noqa: E402

PHASES = ("gen", "reward", "dypo_regroup", "old_log_prob", "ref", "adv", "update_actor", "update_weights", "step")


def warm_timings(run, warmup: int) -> dict[str, list[float]]:
    steps = sorted(s for s in run.metrics if s > warmup)
    return {phase: [run.metrics[s].get(f"timing_s/{phase}", 0.0) for s in steps] for phase in PHASES}


RUNS = {
    "grpo": ("run_grpo.sh", ()),
    "grpo_kl": (
        "run_grpo.sh",
        ("actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.kl_loss_coef=0.001"),
    ),
    "dypo": ("run_dypo_qwen2.5_7b.sh", ()),
    "dypo_noref": (
        "run_dypo_qwen2.5_7b.sh",
        ("dypo.gal_reference=false", "actor_rollout_ref.actor.use_kl_loss=false"),
    ),
}
# (numerator, denominator, target)
RATIOS = (("dypo", "grpo_kl", 1.00), ("dypo", "grpo", 1.10), ("dypo_noref", "grpo", 1.05))


class PeakMemory:
    """Peak RSS (bytes) over every descendant of this process, sampled in a thread: the largest single process,
    and the sum over all of them at one instant."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.largest, self.total = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        import psutil

        me = psutil.Process(os.getpid())
        while not self._stop.wait(self.interval):
            rss = []
            for proc in me.children(recursive=True):
                try:
                    rss.append(proc.memory_info().rss)
                except psutil.Error:  # ended between the listing and the read
                    pass
            if rss:
                self.largest, self.total = max(self.largest, max(rss)), max(self.total, sum(rss))

    def absorb(self, other: PeakMemory) -> None:
        self.largest, self.total = max(self.largest, other.largest), max(self.total, other.total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2, help="leading steps left out (first-step compilation, caches)")
    p.add_argument("--engine", default="fsdp2", choices=("fsdp", "fsdp2"))
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    p.add_argument(
        "--repeat", type=int, default=1, help="launch the set this many times, interleaved; warm steps pooled"
    )
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    names = [n for n in args.runs.split(",") if n]
    if unknown := sorted(set(names) - set(RUNS)):
        p.error(f"unknown runs {unknown}; choose from {list(RUNS)}")

    from recipe_dypo.toy.assets import build_tiny_assets

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        build_tiny_assets(root / "tiny")
        schedule = ["easy", "mid", "mid", "hard"] * args.steps
        data = write_graded_data(root / "train.parquet", schedule, mixed_mid=True)
        timings = {name: {phase: [] for phase in PHASES} for name in names}
        memory = {name: PeakMemory() for name in names}
        for rep in range(args.repeat):  # interleaved, so a slow spell of the machine hits every run alike
            for name in names:
                script, overrides = RUNS[name]
                print(f"launching {name} ({script} {' '.join(overrides)}, {args.steps} steps) ...", flush=True)
                with PeakMemory() as peak:
                    run = launch(
                        script, root / f"{name}_{rep}", root / "tiny", data, args.steps, *overrides, ENGINE=args.engine
                    )
                run.check()
                memory[name].absorb(peak)
                for phase, values in warm_timings(run, args.warmup).items():
                    timings[name][phase] += values
                print(f"  {name}: launch took {run.seconds:.0f} s", flush=True)

    n = (args.steps - args.warmup) * args.repeat
    print(f"\nwarm steps {args.warmup + 1}..{args.steps} of {args.repeat} launch(es) ({n} per run), mean s per step:")
    print(f"{'phase':16s}" + "".join(f"{name:>12s}" for name in names))
    for phase in PHASES:
        print(f"{phase:16s}" + "".join(f"{statistics.mean(timings[name][phase]):12.3f}" for name in names))
    print(f"{'peak RSS, MiB':16s}" + "".join(f"{memory[name].largest / 2**20:12.0f}" for name in names))
    print(f"{'  all processes':16s}" + "".join(f"{memory[name].total / 2**20:12.0f}" for name in names))

    print("\nratios (warm step; peak RSS of the largest process):")
    for num, den, target in RATIOS:
        if num in timings and den in timings:
            step = statistics.mean(timings[num]["step"]) / statistics.mean(timings[den]["step"])
            rss = memory[num].largest / memory[den].largest
            verdict = "met" if step <= target else "missed"
            print(f"  {num} / {den}: step {step:.2f} (target <= {target:.2f}: {verdict}), peak RSS {rss:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
