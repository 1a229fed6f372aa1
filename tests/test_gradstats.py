"""recipe_dypo.gradstats: the fixed-parameter step the variance measurement uses is the verl trainer's DYPO step.

* ``test_fixed_step_matches_trainer_hooks`` feeds the same rollouts through :class:`FixedPolicyStep` and through the
  DypoTrainer hooks (``_dypo_regroup``, then ``_compute_advantage``: verl's base advantage code followed by
  ``_write_coefficients``). TransferQueue is replaced by an in-memory key-value store with the same calls, so
  no Ray is needed (tests/test_trainer_tq.py runs the hooks on the real TransferQueue). Teacher rows, advantages,
  coefficients, metrics and the actor loss must agree.
* the variance estimator's moments and the CLI on a micro model.
"""

import json
import math

import numpy as np
import pytest
import torch

from recipe_dypo.gradstats.fixed_step import FixedPolicyStep, RunConfig, compose_verl_config

K = 4
SCORES = {"easy": [1, 1, 1, 1], "hard": [0, 0, 0, 0], "mid1": [1, 0, 0, 1], "mid2": [0, 1, 0, 0], "hard2": [0] * 4}


class InMemoryTQ:
    """The four TransferQueue calls the DYPO hooks and verl's ``_compute_advantage`` make, on a dict."""

    def __init__(self):
        self.rows: dict[tuple[str, str], dict] = {}

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from transfer_queue import KVBatchMeta

        for i, key in enumerate(keys):
            row = self.rows.setdefault((partition_id, key), {})
            if fields is not None:
                row.update({k: getattr(v, "data", v) for k, v in fields[i].items()})
        return KVBatchMeta(keys=list(keys), tags=list(tags or [{} for _ in keys]), partition_id=partition_id)

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        rows = [self.rows[(partition_id, k)] for k in keys]
        if select_fields is not None:
            rows = [{f: r[f] for f in select_fields if f in r} for r in rows]
        return list_of_dict_to_tensordict(rows)

    def kv_clear(self, keys, partition_id):
        for k in keys:
            self.rows.pop((partition_id, k), None)


@pytest.fixture(scope="module")
def local_setup(tmp_path_factory):
    from recipe_dypo.toy.addition import addition_rows
    from recipe_dypo.toy.model import create_model, load_model
    from recipe_dypo.toy.tokenizer import save_char_tokenizer

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("gradstats")
    run = RunConfig(n=K, max_response_length=24)
    tokenizer = save_char_tokenizer(out / "tokenizer")
    model = create_model(out / "init", tokenizer, size="micro", seed=0)
    ref_model = load_model(out / "init").eval().requires_grad_(False)
    return run, addition_rows(0)[0][:8], tokenizer, model, ref_model, out


def scripted_rollouts(local: FixedPolicyStep, train: list[dict]) -> list[dict]:
    """Real sampled rollouts of five prompts, cut to varied lengths (ending in EOS), with scripted scores that make
    easy, mid and hard groups."""
    from recipe_dypo.gradstats.workers import trajectory

    rows = train[: len(SCORES)]
    rollouts = local.rollout(rows, list(SCORES))
    out = []
    for j, scores in enumerate(SCORES.values()):
        for i, score in enumerate(scores):
            r = rollouts[j * K + i]
            response = torch.cat(
                [r["responses"][: 3 + (5 * j + 3 * i) % 11], torch.tensor([local.tokenizer.eos_token_id])]
            )
            out.append(trajectory(r["prompts"], response, float(score), r["uid"], rows[j]))
    return out


def trainer_path(config, tokenizer, rollouts, model, ref_model, monkeypatch):
    """The DypoTrainer hooks on the in-memory store; returns (kept keys, tags, stored rows, metrics)."""
    import verl.trainer.ppo.v1.trainer_base as trainer_base
    from transfer_queue import KVBatchMeta
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    import recipe_dypo.trainer as dypo_trainer
    from recipe_dypo.gradstats import workers

    store = InMemoryTQ()
    monkeypatch.setattr(dypo_trainer, "tq", store)
    monkeypatch.setattr(trainer_base, "tq", store)
    trainer = dypo_trainer.DypoTrainer(config)
    trainer.tokenizer = tokenizer
    trainer.global_steps = 1
    keys = [f"{r['uid']}_{i % K}_0" for i, r in enumerate(rollouts)]
    tags = [{"prompt_len": len(r["prompts"]), "response_len": len(r["responses"])} for r in rollouts]
    fields = [
        {
            k: r[k]
            for k in (
                "prompts",
                "responses",
                "response_mask",
                "input_ids",
                "attention_mask",
                "position_ids",
                "rm_scores",
                "uid",
                "extra_info",
            )
        }
        for r in rollouts
    ]
    store.kv_batch_put(keys, "train", list_of_dict_to_tensordict(fields), tags)
    metrics = {}
    batch = trainer._dypo_regroup(KVBatchMeta(keys=keys, tags=tags, partition_id="train"), metrics)
    rows = [store.rows[("train", k)] for k in batch.keys]
    old, _ = workers.response_log_probs(model, rows)
    ref, _ = workers.response_log_probs(ref_model, rows)
    store.kv_batch_put(
        batch.keys,
        "train",
        list_of_dict_to_tensordict([{"old_log_probs": o.float(), "ref_log_prob": r.float()} for o, r in zip(old, ref)]),
    )
    trainer._compute_advantage(batch, metrics)
    return batch.keys, batch.tags, [store.rows[("train", k)] for k in batch.keys], metrics


def test_fixed_step_matches_trainer_hooks(local_setup, monkeypatch):
    from recipe_dypo.actor_loss import dypo_actor_loss
    from recipe_dypo.coefficients import COEF_FIELDS
    from recipe_dypo.gradstats import workers

    run, train, tokenizer, model, ref_model, _ = local_setup
    config = compose_verl_config(run)
    local = FixedPolicyStep(run, config, model, ref_model, tokenizer)
    rollouts = scripted_rollouts(local, train)
    batch, coefs, local_metrics = local.prepare([dict(r) for r in rollouts])
    keys, tags, tq_rows, tq_metrics = trainer_path(config, tokenizer, rollouts, model, ref_model, monkeypatch)

    # same rows in the same order: the mid rollouts, then one teacher row per hard prompt (same teacher draw)
    assert [k.split("_")[0] for k in keys] == [r["uid"] for r in batch.rows]
    assert [t.get("dypo_role") for t in tags] == [t.get("dypo_role") for t in batch.tags]
    assert sum(t.get("dypo_role") == "teacher" for t in tags) == 2
    for mine, theirs in zip(batch.rows, tq_rows):
        for name in ("prompts", "responses", "response_mask", "input_ids", "position_ids"):
            torch.testing.assert_close(mine[name], theirs[name], rtol=0, atol=0)
        torch.testing.assert_close(mine["advantages"], theirs["advantages"].float(), rtol=0, atol=1e-6)
    for name in COEF_FIELDS:
        theirs = torch.stack([torch.as_tensor(r[name]) for r in tq_rows]).float()
        torch.testing.assert_close(coefs[name], theirs, rtol=1e-6, atol=1e-9)
    assert coefs["dypo_gal_coef"].abs().sum() > 0 and coefs["dypo_sft_coef"].abs().sum() > 0
    shared = [k for k in local_metrics if k.startswith("dypo/") and k in tq_metrics]
    assert len(shared) >= 15
    for k in shared:
        assert local_metrics[k] == pytest.approx(tq_metrics[k], rel=1e-6, abs=1e-9), k
    assert local_metrics["dypo/easy_ratio"] == 0.2 and local_metrics["dypo/hard_ratio"] == 0.4

    # the actor loss on the trainer path's stored fields equals the local driver's
    tq_coefs = {name: torch.stack([torch.as_tensor(r[name]) for r in tq_rows]).float() for name in COEF_FIELDS}
    for r in tq_rows:
        r["advantages"] = r["advantages"].float()
    losses = []
    for rows, cf in ((batch.rows, coefs), (tq_rows, tq_coefs)):
        model.zero_grad(set_to_none=True)
        totals = workers.accumulate_loss_gradient(model, rows, cf, dypo_actor_loss, local.actor_config, 7)
        losses.append((totals, torch.cat([p.grad.reshape(-1) for p in model.parameters()])))
    assert losses[0][0]["loss"] == pytest.approx(losses[1][0]["loss"], rel=1e-6, abs=1e-9)
    assert losses[0][0]["sft"] > 0
    torch.testing.assert_close(losses[0][1], losses[1][1], rtol=1e-5, atol=1e-8)


def test_moments_give_unbiased_trace_and_signal():
    from recipe_dypo.gradstats.variance import Moments

    draws = [torch.tensor([1.0, 0.0], dtype=torch.float64), None, torch.tensor([3.0, 2.0], dtype=torch.float64)]
    m = Moments(torch.zeros(2, dtype=torch.float64))
    for g in draws:
        m.add(g)
    stacked = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 2.0]])  # a draw without a mixed group counts as g = 0
    var = float(np.var(stacked, axis=0, ddof=1).sum())
    mean = stacked.mean(0)
    s = m.summary()
    assert s["var"] == pytest.approx(var)
    assert s["mean_sq_norm"] == pytest.approx(float(mean @ mean) - var / 3)
    assert s["nv"] == pytest.approx(var / (float(mean @ mean) - var / 3))


def test_variance_cli_on_a_micro_model(local_setup, tmp_path, monkeypatch):
    """Every prompt measured under both estimators with the same draws; GRPO's and the mixed estimator's
    gradients differ (so the ratio is a measurement, not 1 by construction). A random micro model never answers
    correctly, so the reward here is scripted: 1 for responses whose hash is odd (groups of 4 mostly mixed)."""
    import hashlib

    from data_prep.common import write_parquet
    from recipe_dypo.gradstats import fixed_step
    from recipe_dypo.gradstats.__main__ import main

    def scripted_score(data_source, text, ground_truth, return_dict=False):
        score = float(hashlib.sha256(text.encode()).digest()[0] % 2)
        return {"score": score, "reason": "scripted"} if return_dict else score

    monkeypatch.setattr(fixed_step, "compute_score", scripted_score)

    run, train, tokenizer, model, ref_model, out = local_setup
    model.save_pretrained(tmp_path / "theta")
    tokenizer.save_pretrained(tmp_path / "theta")
    write_parquet(train[:3], tmp_path / "prompts.parquet")
    result_path = tmp_path / "variance.json"
    argv = ["variance", "--model", str(tmp_path / "theta"), "--reference", str(out / "init")]
    argv += ["--data", str(tmp_path / "prompts.parquet"), "--draws", "6", "--min-mixed", "3", "--threads", "1"]
    main([*argv, "--out", str(result_path)])
    result = json.loads(result_path.read_text())
    assert result["prompts_total"] == 3 and result["prompts_measured"] >= 2
    grpo, mixed = result["alphas"]["1.0"], result["alphas"]["0.5"]
    assert grpo["median_raw_var_ratio_to_grpo"] == 1.0 and grpo["prompts_nv_below_grpo"] == 0
    assert math.isfinite(mixed["median_raw_var_ratio_to_grpo"]) and mixed["median_raw_var_ratio_to_grpo"] != 1.0
    assert grpo["resolved"] + grpo["unresolved"] == result["prompts_measured"]
    if grpo["resolved"]:
        assert grpo["median_nv_ratio_to_grpo"] == 1.0
