"""DYPO and its baselines through verl's REAL training loop on the CPU backend (recipe_dypo/cpu).

Each fixture is one launch of a run_*.sh script with MODEL=tiny DEVICE=cpu: Ray, TransferQueue, FSDP/FSDP2 engine
workers on gloo, the agent loop with the hf rollout server, weight sync, checkpoint save/resume are verl's own.
The reward (tests/e2e_reward.py) grades prompts as the data says, so each step's mix of easy / mid / hard groups
is scripted. Launches take 60-90 s each on 2 cores; the module shares them between tests.
"""

from __future__ import annotations

import pytest
import torch

from tests.e2e_support import exact_sgd, gpu_micro_batching, gradient_error_at, launch, write_graded_data

pytestmark = pytest.mark.e2e

DYPO = "run_dypo_qwen2.5_7b.sh"
PAPER_WEIGHTS = dict(grpo_weight=0.5, gal_weight=0.5, beta=1.0, gamma=1.0)
# Steps of the main run: 1-2 mixed, 3 every group easy (nothing trains), 4 every group hard (pure SFT).
# Tokens per micro-batch in the GPU-micro-batching test: a toy row is 20-80 tokens, a rank holds 6-10 rows.
TOKEN_BUDGET = 128
# Steps 5-6 mixed again, so that the crash test's kills fall on steps that train.
MAIN_SCHEDULE = ["easy", "mid", "mid", "hard"] + ["mid", "hard", "mid", "easy"] + ["easy"] * 4 + ["hard"] * 4
MAIN_SCHEDULE += ["mid", "hard", "easy", "mid"] + ["hard", "mid", "mid", "easy"]
# SIGKILL points of the crash test (recipe_dypo.trainer.kill_point): during the step-3 rollout, after the step-5
# update (nothing saved), in the step-6 save (DYPO state written, verl's checkpoint not).
CRASH_POINTS = ("rollout:3", "update:5", "save:6")


@pytest.fixture(scope="module")
def main_run(tiny, workdir):
    """DYPO, FSDP2, 1 rank, reference model on: 6 steps, checkpoints at steps 2, 4 and 6."""
    data = write_graded_data(workdir / "main.parquet", MAIN_SCHEDULE)
    out = workdir / "main"
    return launch(
        DYPO, out, tiny, data, 6, "trainer.save_freq=2", f"dypo.debug_dump_dir={out / 'dump'}", ENGINE="fsdp2"
    ).check()


@pytest.fixture(scope="module")
def crashed_runs(tiny, workdir, main_run):
    """The main run, SIGKILLed (no clean-up) at each of CRASH_POINTS and relaunched with trainer.resume_mode=auto,
    until a launch finishes: four launches into one output folder, each with its own metrics file."""
    out = workdir / "crashed"
    runs = []
    for i, kill_at in enumerate([*CRASH_POINTS, None]):
        env = {"ENGINE": "fsdp2", "VERL_FILE_LOGGER_PATH": out / f"metrics_{i}.jsonl"}
        if kill_at:
            env["DYPO_TEST_KILL_AT"] = kill_at
        overrides = ("trainer.resume_mode=auto", "trainer.save_freq=2", f"dypo.debug_dump_dir={out / 'dump'}")
        runs.append(launch(DYPO, out, tiny, workdir / "main.parquet", 6, *overrides, **env))
    return runs


def test_every_branch_trains_in_the_real_loop(main_run):
    m = main_run.metrics
    assert sorted(m) == [1, 2, 3, 4, 5, 6]
    grades = [g for step in (1, 2) for g in main_run.regroup(step)["grades"]]
    assert {"easy", "mid", "hard"} <= set(grades), grades
    mixed = [m[1], m[2]]
    # Loss values of GRPO and the linearised GAL are ~0 at theta_old; the gradient each sends is not.
    for term in ("pg", "sft", "gal"):
        assert sum(step[f"actor/dypo_grad_logp/{term}"] for step in mixed) > 1e-3, term
    assert all(step["actor/dypo_sft_loss"] > 0 for step in mixed)
    assert all(step["dypo/skipped_update"] == 0 and step["actor/grad_norm"] > 0 for step in mixed)
    for step in (1, 2):  # one teacher row per hard prompt (4 rollouts each)
        regroup = main_run.regroup(step)
        hard, easy = regroup["grades"].count("hard") / 4, regroup["grades"].count("easy") / 4
        assert m[step]["dypo/teacher_rows"] == hard == len(regroup["teachers_drawn"])
        assert m[step]["dypo/offline_prompt_ratio"] == pytest.approx(hard / (4 - easy))  # Fig. 4's curve


def test_all_easy_step_skips_and_all_hard_step_is_pure_sft(main_run):
    m = main_run.metrics
    assert m[3]["dypo/easy_ratio"] == 1.0 and m[3]["dypo/skipped_update"] == 1.0
    assert m[3]["dypo/dropped_rollouts"] == 16 and "actor/grad_norm" not in m[3]
    assert m[4]["dypo/hard_ratio"] == 1.0 and m[4]["dypo/teacher_rows"] == 4 and m[4]["dypo/skipped_update"] == 0
    assert m[4]["actor/dypo_grad_logp/pg"] == 0 and m[4]["actor/dypo_grad_logp/gal"] == 0
    assert m[4]["actor/dypo_grad_logp/sft"] > 0 and m[4]["actor/grad_norm"] > 0
    assert m[4]["dypo/offline_data_ratio"] == 1.0 and m[4]["dypo/offline_prompt_ratio"] == 1.0


def test_teacher_rows_stay_out_of_rollout_correction(main_run):
    """Rollout and trainer log-probs agree on sampled rows (the weight sync works); teacher rows, which the rollout
    never sampled, are excluded (before the fix they showed a diff of ~1.0 on every step with a teacher row)."""
    m = main_run.metrics
    for step in (1, 2, 3):
        assert m[step]["training/rollout_probs_diff_max"] < 1e-4, (step, m[step]["training/rollout_probs_diff_max"])
    assert "training/rollout_probs_diff_max" not in m[4]  # teacher rows only: nothing was sampled
    # verl's rollout correction sees teacher rows with importance ratio 1 (before the fix: kl 0.19 on a step
    # with one teacher row among 13, log-ppl gap 0.39)
    for step in (1, 2, 3, 4):
        assert abs(m[step]["rollout_corr/kl"]) < 1e-6 and m[step]["rollout_corr/log_ppl_abs_diff"] < 1e-5, step


def test_a_kill_at_any_phase_resumes_into_the_uninterrupted_run(main_run, crashed_runs):
    *killed, final = crashed_runs
    for run, point in zip(killed, CRASH_POINTS):
        assert run.returncode != 0 and f"DYPO_TEST_KILL_AT={point}: killing the trainer process" in run.log, point
    final.check()
    # Steps each launch finished (verl logs a step's metrics at its end): every launch resumed from the last
    # complete checkpoint; the step-6 save that was killed left checkpoint 4 as the latest, so 5 runs again.
    finished = [sorted(json_steps(final.out / f"metrics_{i}.jsonl")) for i in range(4)]
    assert finished == [[1, 2], [3, 4], [5], [5, 6]], finished
    crashed = final  # its dump folder holds the last launch to run each step
    for step in (3, 4, 5, 6):
        original, resumed = main_run.regroup(step), crashed.regroup(step)
        # (rollouts reach the trainer in completion order, which differs between runs)
        assert graded_rollouts(resumed) == graded_rollouts(original), step
        assert resumed["teacher_of_prompt"] == original["teacher_of_prompt"], step
        assert resumed["teacher_draws"] == original["teacher_draws"], step
    for step in (4, 5, 6):  # step 3 is all easy: no update
        original, resumed = rows_by_tokens(main_run.update_batch(step)), rows_by_tokens(crashed.update_batch(step))
        assert resumed.keys() == original.keys(), step  # the same sampled responses and teacher rows
        for tokens, old_log_probs in original.items():  # computed with the weights the previous steps left
            torch.testing.assert_close(resumed[tokens], old_log_probs, rtol=0, atol=1e-5)


def graded_rollouts(regroup: dict) -> list[tuple]:
    return sorted(zip(regroup["prompt_index"], regroup["grades"], regroup["scores"]))


def json_steps(path) -> dict[int, dict]:
    import json

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): r["data"] for r in records}


def rows_by_tokens(dump: dict) -> dict[tuple, torch.Tensor]:
    """{input_ids of a non-padding row: its old log-probs} of an update batch dump."""
    rows = dump["rows"]
    keep = [i for i, tag in enumerate(dump["tags"]) if not tag.get("is_padding")]
    return {tuple(rows["input_ids"][i].tolist()): rows["old_log_probs"][i] for i in keep}


def _gradient_check(run, tiny, lr: float, step: int = 1, **objective_kwargs):
    return gradient_error_at(run, tiny, lr, step, **PAPER_WEIGHTS, **objective_kwargs)


def test_gpu_shaped_launch_on_two_nodes_applies_the_eq4_gradient(tiny, workdir):
    """The 7B launch's shape at toy scale: a running Ray cluster of two nodes (a head and a worker node, separate
    raylets, on this machine), RAY_ADDRESS set, NNODES=2 GPUS_PER_NODE=1 (2 ranks, FSDP2), and the GPU launch's
    micro-batching: remove-padding, dynamic batch size with a token budget that splits each rank's rows into several
    uneven micro-batches (update, old and reference log-probs), gradient checkpointing. One trainer rank and one
    rollout server ran on each node, and inside the workers (with verl's padding rows) the applied gradient is the
    gradient of eq. (4) on the whole batch, with GAL against the reference model and the paper's KL term on, at the
    first step and at the second (where the policy has moved away from the reference)."""
    from tests.ray_cluster import ROLLOUT_SERVERS, TRAINER_WORKER, actor_nodes, cluster_node_ids, two_node_cluster

    data = write_graded_data(workdir / "grad2.parquet", ["easy", "mid", "mid", "hard"] * 2)
    out = workdir / "two_nodes"
    with two_node_cluster() as address:
        run = launch(
            DYPO,
            out,
            tiny,
            data,
            2,
            *exact_sgd(0.05),  # small enough that step 2 still samples diverse responses (mixed groups)
            *gpu_micro_batching(TOKEN_BUDGET),
            "dypo.kl_coef=0.05",
            "dypo.padding_row_tokens=null",  # a GPU launch's: verl's 128-token padding rows
            f"dypo.debug_dump_dir={out / 'dump'}",
            ENGINE="fsdp2",
            NNODES=2,
            GPUS_PER_NODE=1,
            RAY_ADDRESS=address,
        ).check()
        nodes, both = actor_nodes(address), set(cluster_node_ids(address))
    assert len(both) == 2 and nodes[TRAINER_WORKER] == both, nodes
    assert set().union(*(nodes.get(name, set()) for name in ROLLOUT_SERVERS)) == both, nodes
    for step in (1, 2):  # at step 1 pi_theta = pi_ref, so the KL term's gradient is 0; at step 2 it is not
        tokens = sum(int(ids.numel()) for ids in run.update_batch(step)["rows"]["input_ids"])
        assert tokens > 2 * 2 * TOKEN_BUDGET, tokens  # 2 ranks, each at least 3 micro-batches
        result = _gradient_check(run, tiny, 0.05, step, kl_coef=0.05)
        assert result["padding_rows"] > 0 and result["rows"] >= 5, (step, result)
        # theta moves by only 0.05 * g here, so single entries of small-gradient tensors are limited by the float32
        # storage of theta (up to 6e-4 of that tensor's largest entry, measured); the whole-gradient error is not
        assert result["rel_err"] < 1e-5, (step, result)
        assert run.metrics[step]["actor/grad_norm"] == pytest.approx(result["grad_norm"], rel=1e-5)
    assert run.metrics[1]["actor/dypo_grad_logp/kl"] < 1e-6 < 1e-4 < run.metrics[2]["actor/dypo_grad_logp/kl"]


def test_worker_gradient_equals_eq4_reference_free_fsdp1(tiny, workdir):
    """Reference-free GAL (no reference model) on the FSDP1 engine, 1 rank."""
    data = write_graded_data(workdir / "grad1.parquet", ["mid", "hard", "mid", "easy"])
    out = workdir / "grad_fsdp1_reffree"
    run = launch(
        DYPO,
        out,
        tiny,
        data,
        1,
        *exact_sgd(1.0),
        "dypo.gal_reference=false",
        "actor_rollout_ref.actor.use_kl_loss=false",
        f"dypo.debug_dump_dir={out / 'dump'}",
        ENGINE="fsdp",
    ).check()
    assert "ref_log_prob" not in run.update_batch(1)["rows"]
    result = _gradient_check(run, tiny, 1.0)
    assert result["rel_err"] < 1e-5 and result["max_rel_err"] < 2e-5, result


def test_hpt_style_baseline(tiny, workdir):
    data = write_graded_data(workdir / "hpt.parquet", ["easy", "mid", "hard", "mid"])
    out = workdir / "hpt"
    run = launch("run_hpt_switch.sh", out, tiny, data, 1, f"dypo.debug_dump_dir={out / 'dump'}").check()
    m, grades = run.metrics[1], run.regroup(1)["grades"]
    kept_rl = sum(g != "hard" for g in grades)  # easy groups stay as RL rows (advantage 0)
    assert "easy" in grades and m["dypo/rl_rows"] == kept_rl and m["dypo/teacher_rows"] == grades.count("hard") / 4
    assert m["actor/dypo_grad_logp/gal"] == 0 and m["actor/dypo_grad_logp/sft"] > 0


def test_luffy_style_baseline(tiny, workdir):
    data = write_graded_data(workdir / "luffy.parquet", ["easy", "mid", "hard", "mid"])
    out = workdir / "luffy"
    run = launch("run_luffy_mix.sh", out, tiny, data, 1, f"dypo.debug_dump_dir={out / 'dump'}").check()
    m = run.metrics[1]
    assert m["dypo/teacher_rows"] == 4 and m["dypo/rl_rows"] == 4 * 7  # a teacher joins each group of 7
    assert m["actor/dypo_grad_logp/offpolicy"] > 0 and m["actor/dypo_grad_logp/sft"] == 0
    assert m["training/rollout_probs_diff_max"] < 1e-4
