"""The benchmark scripts still run against the current code (tiny sizes; their timings are not checked here)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(script, *args):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_driver_runs():
    out = run("bench_driver.py", "--prompts", "8", "--k", "4", "--tokens", "64", "--repeat", "1")
    for line in ("driver: verl GRPO compute_advantage", "actor loss fwd+bwd", "with off-policy rows"):
        assert line in out


def test_bench_reward_runs():
    out = run("bench_reward.py", "--n", "20", "--workers", "1")
    assert "score_batch(num_workers=1):" in out and "responses/s" in out, out
