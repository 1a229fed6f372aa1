"""The CPU quickstart, shortened: ``bash scripts/quickstart.sh --steps 3`` through verl's real trainer.

The full quickstart (110 steps, 8-11 min on 2 cores) is measured by hand and reported in the README; CI runs 3
steps of the same script and checks what it writes: summary.json with exactly the documented keys, a cold start
where (nearly) every prompt is hard (offline-data ratio at step 1 >= 0.9), and the curves.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from recipe_dypo.toy.quickstart import SUMMARY_KEYS, read_metrics, rollout_gradient_steps, summarize

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_short_quickstart(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "OUT_DIR": str(out), "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "quickstart.sh"), "--steps", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["steps"] == 3
    assert summary["offline_prompt_ratio_first"] >= 0.9
    assert summary["heldout_acc_start"] == 0.0  # a random model answers no held-out addition
    assert 0 < summary["wall_s"] < 900
    assert (out / "curves.png").stat().st_size > 20_000
    metrics = read_metrics(out / "dypo" / "metrics.jsonl")
    assert sorted(s for s in metrics if s > 0) == [1, 2, 3]
    assert metrics[1]["dypo/num_prompts"] == 32.0 and metrics[1]["dypo/teacher_rows"] >= 29
    assert "summary.json" in proc.stdout and "held-out" in proc.stderr + proc.stdout


def _step(global_step, ratio, adv_max=0.0, heldout=None):
    data = {"training/global_step": global_step, "dypo/offline_prompt_ratio": ratio, "critic/advantages/max": adv_max}
    if heldout is not None:
        data["val-core/toy_arith/acc/mean@1"] = heldout
    return data


def test_summary_from_metrics():
    metrics = {0: {"val-core/toy_arith/acc/mean@1": 0.0}}
    ratios = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    for s, r in enumerate(ratios, start=1):
        metrics[s] = _step(s, r, adv_max=1.5 if r < 0.75 else 0.0, heldout=0.35 if s == 7 else None)
    summary = summarize(metrics, wall_s=12.34)
    assert summary == {
        "heldout_acc_start": 0.0,
        "heldout_acc_end": 0.35,
        "offline_prompt_ratio_first": 1.0,
        "offline_prompt_ratio_last5": pytest.approx((0.8 + 0.7 + 0.6 + 0.5 + 0.4) / 5),
        "steps": 7,
        "wall_s": 12.3,
    }
    assert tuple(summary) == SUMMARY_KEYS
    assert rollout_gradient_steps(metrics) == 4


def test_summary_refuses_a_run_without_metrics():
    with pytest.raises(RuntimeError, match="no training or validation metrics"):
        summarize({0: {}}, wall_s=1.0)
