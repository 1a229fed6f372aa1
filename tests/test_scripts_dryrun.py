"""Every training script resolves its full hydra config on CPU with DRY_RUN=1 (verl's and DYPO's checks run)."""

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("run_*.sh"))


@functools.cache
def _dry_run(script, overrides, env_items):
    return _run(script, overrides, dict(env_items))


def dry_run(script, *overrides, **env):
    """Run a script with DRY_RUN=1 (memoised: each launch imports verl, ~10 s on 2 cores)."""
    return _dry_run(script, tuple(overrides), tuple(sorted(env.items())))


def _run(script, overrides, env):
    full_env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **env}
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / script), *overrides], capture_output=True, text=True, env=full_env, timeout=300
    )
    return out


def resolved_config(stdout: str) -> dict:
    """The YAML the dry run printed (everything before the 'DRY_RUN ok' summary)."""
    text = stdout.split("DRY_RUN ok")[0]
    start = text.index("actor_rollout_ref:")
    return yaml.safe_load(text[start:].split("[validate_config]")[0])


def test_there_are_fsdp_and_megatron_scripts():
    assert {"run_dypo_qwen2.5_7b.sh", "run_dypo_qwen3_4b_base.sh"} <= set(SCRIPTS)
    assert {"run_dypo_qwen2.5_7b_megatron.sh", "run_dypo_qwen3_4b_base_megatron.sh"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_resolves(script):
    out = dry_run(script)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "DRY_RUN ok" in out.stdout and "All configuration checks passed" in out.stdout


def test_paper_settings_of_the_7b_script():
    out = dry_run("run_dypo_qwen2.5_7b.sh")
    cfg = resolved_config(out.stdout)
    actor, rollout = cfg["actor_rollout_ref"]["actor"], cfg["actor_rollout_ref"]["rollout"]
    assert (cfg["trainer"]["nnodes"], cfg["trainer"]["n_gpus_per_node"]) == (2, 8)
    assert rollout["n"] == 8 and rollout["temperature"] == 1.0 and actor["optim"]["lr"] == 1e-6
    assert cfg["data"]["max_response_length"] == 8192 and cfg["dypo"]["max_teacher_tokens"] == 8192
    assert (cfg["dypo"]["alpha"], cfg["dypo"]["beta"], cfg["dypo"]["gamma"]) == (0.5, 1.0, 1.0)
    assert cfg["algorithm"]["adv_estimator"] == "dypo" and actor["policy_loss"]["loss_mode"] == "dypo"
    assert cfg["trainer"]["v1"]["trainer_mode"] == "dypo" and actor["strategy"] == "fsdp"
    assert actor["use_kl_loss"] is True and actor["kl_loss_coef"] == 0.0  # reference model on, KL term off


def test_megatron_and_sglang_variants():
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b_megatron.sh", ROLLOUT="sglang").stdout)
    assert cfg["actor_rollout_ref"]["actor"]["strategy"] == "megatron"
    assert cfg["actor_rollout_ref"]["rollout"]["name"] == "sglang"
    assert cfg["algorithm"]["adv_estimator"] == "dypo"


def test_released_code_preset_and_overrides():
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b.sh", PRESET="released_code").stdout)
    assert (cfg["dypo"]["grpo_weight"], cfg["dypo"]["gal_weight"], cfg["dypo"]["beta"]) == (1.0, 0.001, 0.1)
    cfg = resolved_config(dry_run("run_dypo_qwen3_4b_base.sh", "dypo.alpha=0.2").stdout)
    assert cfg["dypo"]["alpha"] == 0.2 and cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen3-4B-Base"


def test_bad_configs_fail_clearly():
    out = dry_run("run_dypo_qwen2.5_7b.sh", "dypo.alpha=1.5")
    assert out.returncode != 0 and "dypo.alpha must be in [0, 1], got 1.5" in out.stderr + out.stdout
    out = dry_run("run_dypo_qwen2.5_7b.sh", "actor_rollout_ref.actor.use_kl_loss=false")
    assert out.returncode != 0 and "dypo.gal_reference=true needs verl's reference model" in out.stderr + out.stdout
    out = dry_run("run_dypo_qwen2.5_7b.sh", "actor_rollout_ref.actor.use_kl_loss=false", "dypo.gal_reference=false")
    assert out.returncode == 0, out.stderr[-2000:]
