"""Reward throughput: responses/s of the batched scorer against serial grading in one process.

Responses are built from real benchmark answers (``../shared/benchmarks`` MATH-500 + Minerva + GPQA/ARC when
present, else the toy set): half correct ``<think>...</think> ... \\boxed{gt}``, half with a wrong answer.

    python benchmarks/bench_reward.py --n 1000 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipe_dypo import reward  # noqa: E402


def build_items(n: int, seed: int = 0) -> tuple[list[tuple[str, str, str]], str]:
    shared = REPO.parent / "shared" / "benchmarks" / "luffy"
    pool: list[tuple[str, str]] = []
    if (shared / "valid.all.parquet").exists():
        import pandas as pd

        df = pd.read_parquet(shared / "valid.all.parquet")
        df = df[df.data_source.isin(["math", "minerva"])]
        pool += [(ds, rm["ground_truth"]) for ds, rm in zip(df.data_source, df.reward_model)]
        arc = pd.read_parquet(shared / "valid.arc_c.parquet")
        pool += [("arc_c", rm["ground_truth"]) for rm in arc.reward_model[:200]]
        source = "MATH-500 + Minerva + ARC-c answers from ../shared/benchmarks"
    else:
        from data_prep.toy_data import make_toy_rows

        pool = [(r["data_source"], r["reward_model"]["ground_truth"]) for r in make_toy_rows(500, seed)]
        source = "toy_arith answers (../shared/benchmarks not found)"
    rng = random.Random(seed)
    items = []
    for k in range(n):
        ds, gt = pool[rng.randrange(len(pool))]
        ans = gt if k % 2 == 0 else ("B" if gt == "A" else "A") if ds == "arc_c" else f"{gt}+1"
        items.append((ds, f"<think>\nworking it out step by step ...\n</think>\nThe answer is \\boxed{{{ans}}}.", gt))
    return items, source


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="responses to grade (default 1000)")
    p.add_argument("--workers", default="1,2,4", help="comma-separated worker counts for score_batch")
    p.add_argument("--timeout", type=float, default=5.0, help="per-sample timeout (default 5 s)")
    args = p.parse_args()
    # every measurement gets its own responses (same distribution, other seed), so no run profits from the
    # parse caches that an earlier run filled with the same strings
    sets = iter(build_items(args.n, seed) for seed in range(100))
    items, source = next(sets)
    print(f"{len(items)} responses per run ({source}); {os.cpu_count()} CPUs")

    for it in build_items(50, 999)[0]:  # imports and warms math-verify in this process
        reward.grade(*it)
    t = time.perf_counter()
    serial = [reward.grade(*it)["score"] for it in items]
    dt = time.perf_counter() - t
    print(f"serial grade() in-process, no timeout:      {len(items) / dt:8.1f} responses/s")

    reward.compute_score("math", "\\boxed{1}", "1")  # start one pool worker
    items, _ = next(sets)
    serial = [reward.grade(*it)["score"] for it in items]  # reference scores (untimed)
    t = time.perf_counter()
    one = [reward.compute_score(*it, timeout_s=args.timeout) for it in items]
    dt = time.perf_counter() - t
    print(f"serial compute_score() (pool, 1 in flight): {len(items) / dt:8.1f} responses/s")
    assert one == serial, "compute_score disagrees with grade()"

    for w in [int(x) for x in args.workers.split(",") if x]:
        reward.score_batch(items[: 2 * w], num_workers=w)  # start workers outside the timing
        items, _ = next(sets)
        serial = [reward.grade(*it)["score"] for it in items]  # reference scores (untimed)
        t = time.perf_counter()
        res = reward.score_batch(items, num_workers=w, timeout_s=args.timeout)
        dt = time.perf_counter() - t
        assert [r["score"] for r in res] == serial, "score_batch disagrees with grade()"
        print(f"score_batch(num_workers={w}):                 {len(items) / dt:8.1f} responses/s")
    print(f"accuracy of the last synthetic set: {sum(serial) / len(serial):.3f} (about 0.5 by construction)")
    reward.shutdown_pool()
    return 0


if __name__ == "__main__":
    sys.exit(main())
