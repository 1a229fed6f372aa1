"""Every training script resolves its full hydra config on CPU with DRY_RUN=1 (verl's and DYPO's checks run).

Covers the DYPO scripts (FSDP and Megatron), the baselines (GRPO, SFT, SFT->RL, HPT-style switch) and the
ablations (Tables 3-5), and checks that they share one setup.
"""

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from recipe_dypo.dry_run import CONFIG_BEGIN, CONFIG_END

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("run_*.sh"))
# OmegaConf, not PyYAML: the config says lr 1e-6, which YAML 1.1 reads as a string but OmegaConf as a float.
PAPER_SETUP = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "paper_setup.yaml"))


@functools.cache
def _dry_run(script, overrides, env_items):
    full_env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, **dict(env_items)}
    return subprocess.run(
        ["bash", str(REPO / "scripts" / script), *overrides], capture_output=True, text=True, env=full_env, timeout=600
    )


def dry_run(script, *overrides, **env):
    """Run a script with DRY_RUN=1 (memoised: each launch imports verl, ~10 s on 2 cores)."""
    return _dry_run(script, tuple(overrides), tuple(sorted(env.items())))


def resolved_configs(stdout: str) -> list[dict]:
    """Every config a dry run printed, in launch order."""
    chunks = stdout.split(CONFIG_BEGIN)[1:]
    return [yaml.safe_load(chunk.split(CONFIG_END)[0]) for chunk in chunks]


def resolved_config(stdout: str) -> dict:
    (cfg,) = resolved_configs(stdout)
    return cfg


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_there_are_scripts_for_every_table_row():
    assert {"run_dypo_qwen2.5_7b.sh", "run_dypo_qwen3_4b_base.sh"} <= set(SCRIPTS)
    assert {"run_dypo_qwen2.5_7b_megatron.sh", "run_dypo_qwen3_4b_base_megatron.sh"} <= set(SCRIPTS)
    baselines = {"run_grpo.sh", "run_sft.sh", "run_sft_then_rl.sh", "run_hpt_switch.sh", "run_luffy_mix.sh"}
    ablations = {"run_ablation_no_gal.sh", "run_ablation_single_teacher.sh", "run_sweep_alpha_beta.sh"}
    assert baselines | ablations <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_resolves(script):
    out = dry_run(script)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    configs = resolved_configs(out.stdout)
    assert configs and out.stdout.count("DRY_RUN ok") == len(configs)
    rl = [c for c in configs if "actor_rollout_ref" in c]
    assert out.stdout.count("All configuration checks passed") == len(rl)


def test_paper_settings_of_the_7b_script():
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b.sh").stdout)
    actor, rollout = cfg["actor_rollout_ref"]["actor"], cfg["actor_rollout_ref"]["rollout"]
    assert (cfg["trainer"]["nnodes"], cfg["trainer"]["n_gpus_per_node"]) == (2, 8)
    assert rollout["n"] == 8 and rollout["temperature"] == 1.0 and actor["optim"]["lr"] == 1e-6
    assert cfg["data"]["max_response_length"] == 8192 and cfg["dypo"]["max_teacher_tokens"] == 8192
    assert (cfg["dypo"]["alpha"], cfg["dypo"]["beta"], cfg["dypo"]["gamma"]) == (0.5, 1.0, 1.0)
    assert (cfg["dypo"]["easy_groups"], cfg["dypo"]["hard_groups"], cfg["dypo"]["teacher_names"]) == (
        "drop",
        "sft",
        None,
    )
    assert cfg["algorithm"]["adv_estimator"] == "grpo" and actor["policy_loss"]["loss_mode"] == "vanilla"
    assert cfg["trainer"]["v1"]["trainer_mode"] == "dypo" and actor["strategy"] == "fsdp"
    assert actor["use_kl_loss"] is True and actor["kl_loss_coef"] == 0.0  # reference model on, KL term off
    assert cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen2.5-Math-7B"


def test_every_rl_run_shares_the_paper_setup():
    """DYPO, GRPO, SFT->RL stage 2, the HPT-style switch and the ablations differ only in their algorithm."""
    shared = flatten(PAPER_SETUP)
    runs = {
        "dypo": resolved_config(dry_run("run_dypo_qwen2.5_7b.sh").stdout),
        "grpo": resolved_config(dry_run("run_grpo.sh").stdout),
        "sft->rl stage 2": resolved_configs(dry_run("run_sft_then_rl.sh").stdout)[1],
        "hpt": resolved_config(dry_run("run_hpt_switch.sh").stdout),
        "luffy": resolved_config(dry_run("run_luffy_mix.sh").stdout),
        "no gal": resolved_config(dry_run("run_ablation_no_gal.sh").stdout),
        "1 teacher": resolved_config(dry_run("run_ablation_single_teacher.sh").stdout),
    }
    deliberate = {"luffy": {"actor_rollout_ref.rollout.n": 7}}  # LUFFY: 7 rollouts + 1 teacher per group
    for name, cfg in runs.items():
        flat = flatten(cfg)
        # ppo_mini_batch_size is interpolated from the batch size; compare the resolved value.
        expected = {**shared, "actor_rollout_ref.actor.ppo_mini_batch_size": shared["data.train_batch_size"]}
        expected.update(deliberate.get(name, {}))
        differing = {k: (v, flat.get(k)) for k, v in expected.items() if flat.get(k) != v}
        assert not differing, f"{name}: {differing}"
        assert flat["data.train_files"].endswith("data/train_2t.parquet"), name
        assert (flat["trainer.nnodes"], flat["actor_rollout_ref.rollout.tensor_model_parallel_size"]) == (2, 2)


def test_grpo_baseline_is_plain_verl():
    cfg = resolved_config(dry_run("run_grpo.sh").stdout)
    actor = cfg["actor_rollout_ref"]["actor"]
    assert cfg["algorithm"]["adv_estimator"] == "grpo" and cfg["trainer"]["v1"]["trainer_mode"] == "sync"
    assert actor["policy_loss"]["loss_mode"] == "vanilla" and actor["use_kl_loss"] is False
    assert "dypo" not in cfg and cfg["trainer"]["experiment_name"] == "grpo-qwen2.5-math-7b"
    cfg = resolved_config(dry_run("run_grpo.sh", MODEL="qwen3-4b-base").stdout)
    assert cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen3-4B-Base" and cfg["trainer"]["nnodes"] == 1


def test_sft_baseline_is_verl_sft_trainer():
    out = dry_run("run_sft.sh")
    cfg = resolved_config(out.stdout)
    # default SFT data: the DeepSeek-R1 traces only (Table 1's SFT baseline = Table 3's "+ SFT")
    assert cfg["data"]["messages_key"] == "messages" and cfg["data"]["train_files"].endswith("data/sft_1t.parquet")
    assert cfg["data"]["max_length"] == 1024 + 8192
    assert "hf_model" in cfg["checkpoint"]["save_contents"] and cfg["model"]["path"] == "Qwen/Qwen2.5-Math-7B"
    assert cfg["engine"]["strategy"] == "fsdp" and (cfg["trainer"]["nnodes"], cfg["trainer"]["n_gpus_per_node"]) == (
        2,
        8,
    )
    assert (cfg["optim"]["lr"], cfg["optim"]["lr_scheduler_type"], cfg["optim"]["lr_warmup_steps_ratio"]) == (
        1e-6, "constant", 0.0
    )  # paper §4.1: lr fixed at 1e-6  # fmt: skip
    out = dry_run("run_sft.sh", ENGINE="megatron")
    cfg = resolved_config(out.stdout)
    assert cfg["engine"]["_target_"] == "verl.workers.config.McoreEngineConfig" and "engine=megatron" in out.stdout
    assert cfg["optim"]["lr_decay_style"] == "constant" and cfg["engine"]["tensor_model_parallel_size"] == 2


def test_sft_then_rl_starts_stage_2_from_the_sft_checkpoint():
    sft, rl = resolved_configs(dry_run("run_sft_then_rl.sh", "trainer.total_epochs=2").stdout)
    sft_dir = sft["trainer"]["default_local_dir"]
    assert rl["actor_rollout_ref"]["model"]["path"] == f"{sft_dir}/global_step_LAST/huggingface"
    assert rl["algorithm"]["adv_estimator"] == "grpo" and rl["trainer"]["total_epochs"] == 2
    assert sft["trainer"]["total_epochs"] == 3  # overrides after the script name go to stage 2 only
    (rl_only,) = resolved_configs(dry_run("run_sft_then_rl.sh", STAGES="rl").stdout)
    assert rl_only["actor_rollout_ref"]["model"]["path"] == rl["actor_rollout_ref"]["model"]["path"]


def test_sft_then_rl_finds_the_last_sft_checkpoint(tmp_path):
    """Stage 2 reads verl's checkpoint tracker, as it will after a real stage 1."""
    ckpt = tmp_path / "sft"
    (ckpt / "global_step_40" / "huggingface").mkdir(parents=True)
    (ckpt / "global_step_40" / "huggingface" / "config.json").write_text("{}")
    (ckpt / "latest_checkpointed_iteration.txt").write_text("40")
    (rl,) = resolved_configs(dry_run("run_sft_then_rl.sh", STAGES="rl", SFT_CKPT_DIR=str(ckpt)).stdout)
    assert rl["actor_rollout_ref"]["model"]["path"] == f"{ckpt}/global_step_40/huggingface"
    uncached = _dry_run.__wrapped__  # the checkpoint folder changes between calls
    (ckpt / "global_step_40" / "huggingface" / "config.json").unlink()
    out = uncached("run_sft_then_rl.sh", (), (("SFT_CKPT_DIR", str(ckpt)), ("STAGES", "rl")))
    assert out.returncode != 0 and "global_step_40/huggingface has no config.json (was hf_model saved?)" in out.stderr
    (ckpt / "latest_checkpointed_iteration.txt").unlink()
    out = uncached("run_sft_then_rl.sh", (), (("SFT_CKPT_DIR", str(ckpt)), ("STAGES", "rl")))
    assert out.returncode != 0 and "no SFT checkpoint under" in out.stderr


def test_teacher_size_and_sft_teachers_select_table3_data():
    """Table 3's "+ RL (32B)": SFT on both teachers of the 32B setting, then GRPO on that setting's prompts; the
    file names are those data_prep/teacher_sizes.py (and scripts/prepare_teacher_data.sh) write."""
    from data_prep.teacher_sizes import second_teacher

    setting = second_teacher("32b")
    sft, rl = resolved_configs(dry_run("run_sft_then_rl.sh", TEACHER_SIZE="32b", SFT_TEACHERS="2").stdout)
    assert sft["data"]["train_files"].endswith(f"data/{setting.sft_file}")
    assert rl["data"]["train_files"].endswith(f"data/{setting.train_file}")
    assert sft["trainer"]["default_local_dir"] == "checkpoints/sft-2t-t32b-for-rl-qwen2.5-math-7b"
    assert rl["trainer"]["experiment_name"] == "sft-2t-t32b-then-grpo-qwen2.5-math-7b"
    for env, message in ((dict(TEACHER_SIZE="70b"), "TEACHER_SIZE must be 235b, 32b or 8b, got '70b'"),
                         (dict(SFT_TEACHERS="3"), "SFT_TEACHERS must be 1 (DeepSeek-R1 only) or 2")):  # fmt: skip
        out = dry_run("run_sft.sh", **env)
        assert out.returncode != 0 and message in out.stderr


def test_hpt_switch_and_no_gal_presets():
    hpt = resolved_config(dry_run("run_hpt_switch.sh").stdout)
    assert (hpt["dypo"]["easy_groups"], hpt["dypo"]["hard_groups"]) == ("rl", "sft")
    assert (hpt["dypo"]["grpo_weight"], hpt["dypo"]["gal_weight"], hpt["dypo"]["gal_reference"]) == (1.0, 0.0, False)
    assert hpt["actor_rollout_ref"]["actor"]["use_kl_loss"] is False  # no reference model without GAL
    no_gal = resolved_config(dry_run("run_ablation_no_gal.sh").stdout)
    assert (no_gal["dypo"]["easy_groups"], no_gal["dypo"]["hard_groups"]) == ("drop", "sft")
    assert (no_gal["dypo"]["grpo_weight"], no_gal["dypo"]["gal_weight"]) == (1.0, 0.0)


def test_luffy_style_mixing_preset():
    cfg = resolved_config(dry_run("run_luffy_mix.sh").stdout)
    dypo = cfg["dypo"]
    assert dypo["offpolicy_mixing"] is True and dypo["shaping_gamma"] == 0.1
    assert (dypo["easy_groups"], dypo["hard_groups"], dypo["grpo_weight"], dypo["gal_weight"]) == ("rl", "rl", 1.0, 0.0)
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 7
    out = dry_run("run_dypo_qwen2.5_7b.sh", "dypo.offpolicy_mixing=true")
    assert out.returncode != 0 and "dypo.offpolicy_mixing=true adds a teacher row to every group" in out.stderr


def test_single_teacher_ablation():
    cfg = resolved_config(dry_run("run_ablation_single_teacher.sh").stdout)
    assert cfg["dypo"]["teacher_names"] == ["deepseek-r1"] and cfg["trainer"]["v1"]["trainer_mode"] == "dypo"
    cfg = resolved_config(dry_run("run_ablation_single_teacher.sh", TEACHER="qwen3-235b-a22b").stdout)
    assert cfg["dypo"]["teacher_names"] == ["qwen3-235b-a22b"]


def test_alpha_beta_sweep_resolves_every_cell():
    out = dry_run("run_sweep_alpha_beta.sh")
    cells = {(c["dypo"]["alpha"], c["dypo"]["beta"]) for c in resolved_configs(out.stdout)}
    assert cells == {(a, b) for a in (0.2, 0.5, 0.8) for b in (0.1, 1, 2)}
    out = dry_run("run_sweep_alpha_beta.sh", ALPHAS="0.2", BETAS="2", SEEDS="7 8")
    (cfg,) = resolved_configs(out.stdout)
    assert (cfg["dypo"]["seed"], cfg["data"]["seed"], cfg["actor_rollout_ref"]["rollout"]["seed"]) == (7, 7, 7)
    assert cfg["trainer"]["experiment_name"] == "dypo-a0.2-b2-s7-qwen2.5-math-7b"
    assert "seeds: 7 8" in out.stderr


def test_megatron_and_sglang_variants():
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b_megatron.sh", ROLLOUT="sglang").stdout)
    assert cfg["actor_rollout_ref"]["actor"]["strategy"] == "megatron"
    assert cfg["actor_rollout_ref"]["rollout"]["name"] == "sglang"
    assert cfg["trainer"]["v1"]["trainer_mode"] == "dypo"
    cfg = resolved_config(dry_run("run_grpo.sh", ENGINE="megatron").stdout)
    assert cfg["actor_rollout_ref"]["actor"]["strategy"] == "megatron"


def test_released_code_preset_and_overrides():
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b.sh", PRESET="released_code").stdout)
    assert (cfg["dypo"]["grpo_weight"], cfg["dypo"]["gal_weight"], cfg["dypo"]["beta"]) == (1.0, 0.001, 0.1)
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b.sh", PRESET="released_script", NNODES="1").stdout)
    actor = cfg["actor_rollout_ref"]["actor"]
    assert (cfg["dypo"]["grpo_weight"], cfg["dypo"]["gal_weight"], cfg["dypo"]["beta"]) == (1.0, 0.001, 0.1)
    assert cfg["dypo"]["gal_reference"] is False and actor["use_kl_loss"] is False
    assert (actor["optim"]["lr"], cfg["data"]["train_batch_size"], actor["ppo_mini_batch_size"]) == (5e-7, 16, 16)
    assert (actor["entropy_coeff"], actor["optim"]["clip_grad"], cfg["trainer"]["total_epochs"]) == (0.01, 80.0, 3)
    assert cfg["actor_rollout_ref"]["rollout"]["val_kwargs"]["top_p"] == 0.95 and cfg["trainer"]["nnodes"] == 1
    cfg = resolved_config(dry_run("run_dypo_qwen3_4b_base.sh", "dypo.alpha=0.2").stdout)
    assert cfg["dypo"]["alpha"] == 0.2 and cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen3-4B-Base"


def test_bad_configs_fail_clearly():
    out = dry_run("run_dypo_qwen2.5_7b.sh", "dypo.alpha=1.5")
    assert out.returncode != 0 and "dypo.alpha must be in [0, 1], got 1.5" in out.stderr + out.stdout
    out = dry_run("run_dypo_qwen2.5_7b.sh", "actor_rollout_ref.actor.use_kl_loss=false")
    assert out.returncode != 0 and "dypo.gal_reference=true needs verl's reference model" in out.stderr + out.stdout
    out = dry_run("run_dypo_qwen2.5_7b.sh", "actor_rollout_ref.actor.use_kl_loss=false", "dypo.gal_reference=false")
    assert out.returncode == 0, out.stderr[-2000:]
    out = dry_run("run_dypo_qwen2.5_7b.sh", "dypo.easy_groups=sft")
    assert out.returncode != 0 and "dypo.easy_groups must be one of ('drop', 'rl'), got 'sft'" in out.stderr
    out = dry_run("run_dypo_qwen2.5_7b.sh", PRESET="nope")
    assert out.returncode != 0 and "PRESET=nope: no configs/preset/nope.yaml" in out.stderr
    out = dry_run("run_grpo.sh", MODEL="llama")
    assert out.returncode != 0 and "MODEL must be qwen2.5-math-7b, qwen3-4b-base or tiny, got 'llama'" in out.stderr


def test_cpu_tiny_launch_resolves_and_refuses_megatron(tmp_path):
    """MODEL=tiny DEVICE=cpu: the CPU backend and tiny scale on top of the paper setup; presets still win."""
    env = dict(MODEL="tiny", DEVICE="cpu", TINY_DIR=str(tmp_path / "tiny"))
    cfg = resolved_config(dry_run("run_dypo_qwen2.5_7b.sh", **env).stdout)
    rollout, actor = cfg["actor_rollout_ref"]["rollout"], cfg["actor_rollout_ref"]["actor"]
    assert (cfg["trainer"]["device"], rollout["name"], rollout["n"], cfg["data"]["train_batch_size"]) == (
        "cpu", "hf", 4, 4
    )  # fmt: skip
    assert cfg["ray_kwargs"]["ray_init"]["num_gpus"] == cfg["trainer"]["n_gpus_per_node"] == 1
    assert actor["fsdp_config"]["mixed_precision"]["param_dtype"] == "fp32"
    assert cfg["actor_rollout_ref"]["model"]["path"] == str(tmp_path / "tiny" / "model")
    cfg = resolved_config(dry_run("run_luffy_mix.sh", **env).stdout)
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 7  # the preset's value, not the tiny scale's
    out = dry_run("run_dypo_qwen2.5_7b.sh", ENGINE="megatron", **env)
    assert out.returncode != 0 and "DEVICE=cpu runs the FSDP engines only" in out.stderr
