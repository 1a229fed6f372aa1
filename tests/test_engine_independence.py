"""DYPO's actor loss is engine-independent by construction: in the GRPO limit it is verl's own ``ppo_loss``.

GRPO limit: every group mixed ("mid"), alpha = 1 (grpo_weight 1, gal_weight 0), no teacher rows, no GAL, no KL.
Then the DYPO micro-batch loss, fed the per-row coefficient fields the DYPO trainer writes
(``DypoTrainer._write_coefficients``, run here on an in-memory stand-in for TransferQueue), must give the value
and the gradient with respect to the log-probs of verl's ``ppo_loss`` with ``loss_agg_mode=seq-mean-token-mean``
and ``policy_loss.loss_mode=vanilla`` (composed from configs/grpo_trainer.yaml), on the same micro-batches.

Both loss functions see only a micro-batch TensorDict, so whatever an engine does around them (FSDP sums the
micro-batch losses and averages gradients over data-parallel ranks; Megatron multiplies by num_micro_batch and
its schedule divides it back out; the per-token-loss regime rescales linearly) applies to both alike: equal
micro-batch losses make equal steps on every engine. The data flow below replays verl's: the trainer's
``_update_actor`` extra_info (``global_batch_size = ppo_mini_batch_size * rollout.n``), ``_balance_batch``'s
equal-size seqlen partition into dp shards, ``train_mini_batch``'s ``make_iterator`` into mini-batches,
``forward_backward_batch``'s all-reduced ``batch_num_tokens`` and ``dp_size``, and ``prepare_micro_batches``
with dynamic batch sizes (uneven micro-batches), with verl's no-padding layout (nested ``input_ids``, response
fields, full-sequence ``log_probs`` as the engine returns them).

Precision notes (measured, not hidden by tolerances):

* verl's seq-mean-token-mean divides by ``token_count + 1e-8`` with ``token_count`` an int64 sum of a bool mask;
  ``int64 + 1e-8`` is a float32 tensor (torch's default dtype), where ``n + 1e-8 == n`` for every n >= 1. So the
  division is exact by |tau|, as DYPO's ``1 / (Q * G * |tau|)`` is. (Under ``torch.set_default_dtype(float64)``
  the 1e-8 would survive and give relative differences up to 1e-8 / |tau|.)
* The trainer stores the coefficients in TransferQueue as float32 (``.float()``), so the coefficients the actor
  reads differ from the float64 ones ``step_coefficients`` computes by float32 rounding (<= 2**-24 relative).
  The tests check float64 coefficients to 1e-10 and account for the float32 rounding exactly.
* verl's seq-mean divides by ``global_batch_size``, the configured ``ppo_mini_batch_size * rollout.n``, padding
  rows included; DYPO divides by the trained rows Q * G. They agree whenever the batch has no padding rows,
  which is always so in the GRPO limit (the batch is ``train_batch_size * n`` rows, a multiple of the mini-batch,
  which verl requires to be a multiple of dp). With padding rows (only possible when DYPO drops rows) DYPO is
  verl times total_rows / (Q * G): test_padding_rows_are_counted_by_verl_not_by_dypo pins that down.
"""

from functools import cache
from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.seqlen_balancing import calculate_workload, get_seqlen_balanced_partitions
from verl.workers.engine.utils import prepare_micro_batches
from verl.workers.utils.losses import ppo_loss

from recipe_dypo import coefficients as dypo_coefficients
from recipe_dypo import trainer as dypo_trainer
from recipe_dypo.actor_loss import dypo_actor_loss
from recipe_dypo.coefficients import COEF_FIELDS, RowCoefficients, StepSettings
from recipe_dypo.config import check_verl_config, compose_config
from recipe_dypo.grading import Role
from recipe_dypo.losses import grpo_advantages
from tests.test_exactness import advantages_via_verl, make_batch

K = 4  # rollouts per prompt
N_PROMPTS = 6  # 24 rows: divisible by dp 1, 2, 3 and by the mini-batch sizes used below
REL = 1e-10
FLOAT32_ROUNDING = 2.0**-24


# ---------------------------------------------------------------------------------------------- configs
@cache
def dypo_setup(n_mini: int, weights: tuple[str, ...]):
    """(ActorConfig, DypoConfig, global_batch_size) of configs/dypo_trainer.yaml in the GRPO limit."""
    cfg = compose_config(
        [
            f"data.train_batch_size={N_PROMPTS}",
            f"actor_rollout_ref.actor.ppo_mini_batch_size={N_PROMPTS // n_mini}",
            f"actor_rollout_ref.rollout.n={K}",
            *weights,
        ]
    )
    dypo = check_verl_config(cfg)
    assert dypo.term_weights == (1.0, 0.0) and dypo.kl_coef == 0.0 and not dypo.offpolicy_mixing
    actor = cfg.actor_rollout_ref.actor
    return omega_conf_to_dataclass(actor), dypo, actor.ppo_mini_batch_size * cfg.actor_rollout_ref.rollout.n


@cache
def verl_setup(n_mini: int):
    """verl's own GRPO (configs/grpo_trainer.yaml) with the paper's per-sequence token mean."""
    cfg = compose_config(
        [
            f"data.train_batch_size={N_PROMPTS}",
            f"actor_rollout_ref.actor.ppo_mini_batch_size={N_PROMPTS // n_mini}",
            f"actor_rollout_ref.rollout.n={K}",
            "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean",
        ],
        config_name="grpo_trainer",
    )
    actor = cfg.actor_rollout_ref.actor
    assert cfg.algorithm.adv_estimator == "grpo" and not actor.use_kl_loss and actor.entropy_coeff == 0
    assert actor.policy_loss.loss_mode == "vanilla"
    return omega_conf_to_dataclass(actor), actor.ppo_mini_batch_size * cfg.actor_rollout_ref.rollout.n


ALPHA_ONE = ("dypo.alpha=1.0",)
WEIGHTS_ONE_ZERO = ("dypo.grpo_weight=1.0", "dypo.gal_weight=0.0")


def test_both_sides_clip_alike():
    dypo_cfg, _, _ = dypo_setup(1, ALPHA_ONE)
    verl_cfg, _ = verl_setup(1)
    assert dypo_cfg.policy_loss.loss_mode == verl_cfg.policy_loss.loss_mode == "vanilla"
    for name in ("clip_ratio", "clip_ratio_low", "clip_ratio_high", "clip_ratio_c", "entropy_coeff"):
        assert getattr(dypo_cfg, name) == getattr(verl_cfg, name), name
    assert verl_cfg.clip_ratio_c == 3.0 and verl_cfg.clip_ratio == 0.2


# ---------------------------------------------------------------------------------------------- data
def nested(tensors):
    return torch.nested.as_nested_tensor(list(tensors), layout=torch.jagged)


def make_step(seed: int, n_prompts: int = N_PROMPTS, n_pad: int = 0):
    """Rows of mixed groups (tests/test_exactness.make_batch: responses of 1-6 tokens) with float64 log-probs.

    ``log_prob != old_log_prob``: ratios N(0, 0.3) in log space, and every row's first token at e^1.3 = 3.7,
    outside 1 +- 0.2 and beyond verl's dual-clip bound 3 for negative advantages.
    """
    rows = make_batch(seed, n_mid_groups=n_prompts, k=K, n_teacher=0, n_pad=n_pad)
    g = torch.Generator().manual_seed(1000 + seed)
    for r in rows:
        n = len(r["response"])
        log_prob = -(0.05 + 2.0 * torch.rand(n, generator=g, dtype=torch.float64))
        delta = 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        delta[::4] = 1.3
        r["log_prob"] = log_prob
        r["old_log_prob"] = log_prob - delta
        r["ref_log_prob"] = log_prob - 0.2 * torch.randn(n, generator=g, dtype=torch.float64)
        # the model's output over the whole sequence; position t holds log pi(x_{t+1} | x_<=t) (verl's layout)
        full = -torch.rand(len(r["prompt"]) + n, generator=g, dtype=torch.float64)
        p = len(r["prompt"])
        full[p - 1 : p - 1 + n] = log_prob
        r["full_log_prob"] = full
    return rows


def verl_advantages(rows, estimator: str):
    """Outcome advantages from verl's compute_advantage with a registered estimator, float64."""
    return advantages_via_verl(rows, estimator, dtype=torch.float64)


def trainer_coefficients(rows, dypo, monkeypatch):
    """The coefficient fields exactly as ``DypoTrainer._write_coefficients`` computes and stores them.

    TransferQueue is replaced by an in-memory store holding what verl's earlier stages wrote (uid, rm_scores,
    response_mask, old_log_probs, ref_log_prob). Returns (float64 RowCoefficients as ``step_coefficients``
    returned them to the trainer, float32 TensorDict the trainer put into TransferQueue, trainer metrics).
    """
    keys = [f"{r['uid']}_{i}_0" for i, r in enumerate(rows)]
    tags = [{"is_padding": True} if r["role"] == Role.PAD else {} for r in rows]
    rewards = []
    for r in rows:
        reward = torch.zeros(len(r["response"]))
        reward[-1] = r["score"]
        rewards.append(reward)
    store = {
        "uid": [r["uid"] for r in rows],
        "rm_scores": nested(rewards),
        "response_mask": nested([torch.full((len(r["response"]),), int(r["role"] != Role.PAD)) for r in rows]),
        "old_log_probs": nested([r["old_log_prob"] for r in rows]),
        "ref_log_prob": nested([r["ref_log_prob"] for r in rows]),
    }
    seen = {}

    def kv_batch_get(keys, partition_id, select_fields):
        assert list(keys) == all_keys and partition_id == "train"
        return {name: store[name] for name in select_fields}

    def kv_batch_put(keys, partition_id, fields):
        seen["put"] = fields
        return "batch-meta"

    real_step_coefficients = dypo_coefficients.step_coefficients

    def spy(*args, **kwargs):
        out = real_step_coefficients(*args, **kwargs)
        seen["coefs"] = out[0]
        return out

    all_keys = keys
    metrics = {}
    with monkeypatch.context() as m:
        m.setattr(dypo_trainer, "tq", SimpleNamespace(kv_batch_get=kv_batch_get, kv_batch_put=kv_batch_put))
        m.setattr(dypo_coefficients, "step_coefficients", spy)
        trainer = SimpleNamespace(dypo=dypo, global_steps=1)
        assert dypo_trainer.DypoTrainer._write_coefficients(trainer, keys, tags, "train", metrics) == "batch-meta"
    return seen["coefs"], seen["put"], metrics


def global_batch(rows, advantages, coefs: dict):
    """The update batch in verl's no-padding layout, plus ``row_id`` for the stand-in model."""
    td = TensorDict(
        {
            "input_ids": nested([torch.cat([r["prompt"], r["response"]]) for r in rows]),
            "prompts": nested([r["prompt"] for r in rows]),
            "responses": nested([r["response"] for r in rows]),
            "response_mask": nested([torch.full((len(r["response"]),), int(r["role"] != Role.PAD)) for r in rows]),
            "old_log_probs": nested([r["old_log_prob"] for r in rows]),
            "ref_log_prob": nested([r["ref_log_prob"] for r in rows]),
            "advantages": nested(advantages),
            "row_id": torch.arange(len(rows)),
            **{name: coefs[name] for name in COEF_FIELDS},
        },
        batch_size=[len(rows)],
    )
    td["loss_mask"] = td["response_mask"]  # verl.workers.utils.padding: loss_mask is the response mask
    return td


# ---------------------------------------------------------------------------------------------- engine
def run_engine(loss_fn, config, td, leaves, dp: int, global_batch_size: int, extra_info: dict, max_tokens: int):
    """One training step as verl's FSDP engine runs it, with ``dp`` simulated data-parallel ranks.

    Returns (per-mini-batch objective, per-row gradient wrt the full-sequence log-probs, (rows, response tokens)
    of each micro-batch per (mini-batch, rank)). The objective of a mini-batch is (1/dp) * the sum over ranks and
    micro-batches of the loss (each rank backpropagates its sum; the all-reduce averages gradients over ranks),
    so its gradient is the one the optimizer sees.
    """
    for leaf in leaves:
        leaf.grad = None
    # _balance_batch: equal-size, seqlen-balanced partitions; the dispatcher hands rank r the r-th chunk
    seqlens = td["input_ids"].offsets().diff()
    parts = get_seqlen_balanced_partitions(calculate_workload(seqlens).tolist(), k_partitions=dp, equal_size=True)
    td = tu.index_select_tensor_dict(td, [j for part in parts for j in part])
    shards = tu.chunk_tensordict(td, dp)
    # train_mini_batch: extra_info travels as non-tensor data; mini-batches of global_batch_size / dp per rank
    mini_rows = global_batch_size // dp
    minis = []
    for rank, shard in enumerate(shards):
        tu.assign_non_tensor(shard, global_batch_size=global_batch_size, **extra_info)
        it = tu.make_iterator(shard, mini_rows, epochs=1, seed=42 + rank, dataloader_kwargs={"shuffle": True})
        minis.append(list(it))
    n_mini = len(minis[0])
    assert all(len(m) == n_mini for m in minis) and n_mini * global_batch_size == len(td)
    values, n_micro = [], []
    for j in range(n_mini):
        # forward_backward_batch: all-reduced token count, dp size, then dynamic-bsz micro-batches
        batch_num_tokens = sum(int(m[j]["loss_mask"].values().sum()) for m in minis)
        total = 0.0
        for rank in range(dp):
            mini = minis[rank][j]
            tu.assign_non_tensor(mini, batch_num_tokens=batch_num_tokens, dp_size=dp)
            # train_batch's engine defaults: dynamic batch size with a token budget per micro-batch
            tu.assign_non_tensor(mini, use_dynamic_bsz=True, max_token_len_per_gpu=max_tokens)
            micro_batches, _ = prepare_micro_batches(mini, dp_group=None, same_micro_num_in_dp=True)
            n_micro.append([(len(micro), int(micro["loss_mask"].values().sum())) for micro in micro_batches])
            for micro in micro_batches:
                # the model: full-sequence log-probs of the micro-batch's rows, nested as the engine returns them
                flat = torch.cat([leaves[int(i)] for i in micro["row_id"]])
                log_probs = torch.nested.nested_tensor_from_jagged(flat, offsets=micro["input_ids"].offsets())
                loss, _ = loss_fn(config=config, model_output={"log_probs": log_probs}, data=micro)
                loss.backward()
                total += float(loss.detach())
        values.append(total / dp)
    grads = [leaf.grad / dp for leaf in leaves]
    return torch.tensor(values, dtype=torch.float64), grads, n_micro


def run_both(rows, coefs, dypo_cfg, verl_cfg, gbs, dp, dypo_adv=None, verl_adv=None, total_rows=None):
    leaves = [r["full_log_prob"].clone().requires_grad_(True) for r in rows]
    max_tokens = int(1.3 * max(len(r["prompt"]) + len(r["response"]) for r in rows))  # 1-3 rows per micro-batch
    dypo_adv = verl_advantages(rows, "grpo") if dypo_adv is None else dypo_adv
    verl_adv = verl_advantages(rows, "grpo") if verl_adv is None else verl_adv
    dypo_extra = StepSettings(total_rows=len(rows) if total_rows is None else total_rows).as_dict()
    got = run_engine(
        dypo_actor_loss, dypo_cfg, global_batch(rows, dypo_adv, coefs), leaves, dp, gbs, dypo_extra, max_tokens
    )
    zero = {name: torch.zeros(len(rows)) for name in COEF_FIELDS}  # verl's loss never reads them
    want = run_engine(ppo_loss, verl_cfg, global_batch(rows, verl_adv, zero), leaves, dp, gbs, {}, max_tokens)
    return got, want


def rel_diffs(got, want):
    """(max relative difference of the mini-batch objectives, max element-wise relative difference of the
    gradient over non-zero entries); asserts the gradients vanish at the same entries."""
    (v_got, g_got, _), (v_want, g_want, _) = got, want
    value_rel = float(((v_got - v_want).abs() / v_want.abs()).max())
    grad_rel = 0.0
    for a, b in zip(g_got, g_want):
        assert torch.equal(a == 0, b == 0)
        nz = b != 0
        if nz.any():
            grad_rel = max(grad_rel, float(((a[nz] - b[nz]).abs() / b[nz].abs()).max()))
    return value_rel, grad_rel


def coef_dict(coefs):
    return {name: getattr(coefs, attr) for attr, name in RowCoefficients.FIELDS.items()}


# ---------------------------------------------------------------------------------------------- tests
def test_the_batch_exercises_clipping_and_the_grpo_limit(monkeypatch):
    rows = make_step(0)
    _, dypo, _ = dypo_setup(1, ALPHA_ONE)
    coefs, stored, metrics = trainer_coefficients(rows, dypo, monkeypatch)
    lengths = [len(r["response"]) for r in rows]
    assert len(set(lengths)) >= 4 and all(r["role"] == Role.RL for r in rows)
    assert metrics["dypo/trained_prompts"] == N_PROMPTS and metrics["dypo/offline_data_ratio"] == 0.0
    assert coefs.num_prompts == N_PROMPTS and bool((coefs.pg > 0).all())
    for name in ("sft", "gal", "offpolicy"):
        assert bool((getattr(coefs, name) == 0).all()), name
    adv = verl_advantages(rows, "grpo")
    ratio = torch.cat([torch.exp(r["log_prob"] - r["old_log_prob"]) for r in rows])
    a = torch.cat(adv)
    assert bool(((a > 0) & (ratio > 1.2)).any()) and bool(((a < 0) & (ratio < 0.8)).any())
    assert bool(((a < 0) & (ratio > 3.0)).any())  # verl's dual clip
    assert bool(((ratio > 0.8) & (ratio < 1.2)).any())  # and unclipped tokens
    # verl's grpo estimator, which DYPO runs, equals the float64 oracle recipe_dypo.losses.grpo_advantages
    oracle = grpo_advantages([r["score"] for r in rows], [r["uid"] for r in rows])
    for x, want in zip(adv, oracle):
        torch.testing.assert_close(x, torch.full_like(x, float(want)), rtol=0, atol=1e-14)
    # the trainer stores its float64 coefficients as float32, nothing else
    for name in COEF_FIELDS:
        assert stored[name].dtype == torch.float32
        assert torch.equal(stored[name], coef_dict(coefs)[name].float()), name


@pytest.mark.parametrize("weights", [ALPHA_ONE, WEIGHTS_ONE_ZERO], ids=["alpha1", "grpo1_gal0"])
@pytest.mark.parametrize("n_mini", [1, 2])
@pytest.mark.parametrize("dp", [1, 2, 3])
def test_grpo_limit_equals_verl_ppo_loss(monkeypatch, dp, n_mini, weights):
    """Float64 coefficients (what step_coefficients returns to the trainer): equal to 1e-10 relative."""
    rows = make_step(dp + 10 * n_mini)
    dypo_cfg, dypo, gbs = dypo_setup(n_mini, weights)
    verl_cfg, verl_gbs = verl_setup(n_mini)
    assert gbs == verl_gbs == len(rows) // n_mini
    coefs, _, _ = trainer_coefficients(rows, dypo, monkeypatch)
    got, want = run_both(rows, coef_dict(coefs), dypo_cfg, verl_cfg, gbs, dp)
    sizes = got[2]  # (rows, response tokens) of each micro-batch, per (mini-batch, rank)
    assert all(len(s) >= 2 for s in sizes) and max(rows for s in sizes for rows, _ in s) >= 2  # several per rank
    assert any(len(set(s)) > 1 for s in sizes)  # of uneven sizes
    value_rel, grad_rel = rel_diffs(got, want)
    assert want[0].abs().min() > 1e-3  # a real value (log_prob != old_log_prob), not 0 = 0
    assert max(float(g.abs().max()) for g in want[1]) > 1e-3
    assert value_rel <= REL and grad_rel <= REL, (value_rel, grad_rel)


@pytest.mark.parametrize("n_mini", [1, 2])
@pytest.mark.parametrize("dp", [1, 2, 3])
def test_float32_stored_coefficients_differ_only_by_their_rounding(monkeypatch, dp, n_mini):
    """The coefficients the actor actually reads are float32 (TransferQueue field). Scaling row i's verl
    advantages by rho_i = c32_i / c64_i (the surrogate is positively homogeneous in A) gives verl's loss to
    1e-10, so the rounding is the only difference; raw, the gradients differ by at most 2**-24 relative."""
    rows = make_step(dp + 10 * n_mini)
    dypo_cfg, dypo, gbs = dypo_setup(n_mini, ALPHA_ONE)
    verl_cfg, _ = verl_setup(n_mini)
    coefs, stored, _ = trainer_coefficients(rows, dypo, monkeypatch)
    c32 = {name: stored[name] for name in COEF_FIELDS}
    rho = c32["dypo_pg_coef"].double() / coefs.pg
    verl_adv = verl_advantages(rows, "grpo")
    got, want = run_both(rows, c32, dypo_cfg, verl_cfg, gbs, dp, verl_adv=verl_adv)
    value_rel, grad_rel = rel_diffs(got, want)
    assert grad_rel <= FLOAT32_ROUNDING * (1 + 1e-6), grad_rel
    assert value_rel < 1e-6, value_rel
    scaled = [a * float(s) for a, s in zip(verl_adv, rho)]
    got, want = run_both(rows, c32, dypo_cfg, verl_cfg, gbs, dp, verl_adv=scaled)
    value_rel, grad_rel = rel_diffs(got, want)
    assert value_rel <= REL and grad_rel <= REL, (value_rel, grad_rel)


@pytest.mark.parametrize("dp", [2, 3])
def test_a_wrong_coefficient_is_caught(monkeypatch, dp):
    """The comparison can fail: one row's pg coefficient off by 1e-6, or the mini-batch count ignored."""
    rows = make_step(5)
    dypo_cfg, dypo, gbs = dypo_setup(2, ALPHA_ONE)
    verl_cfg, _ = verl_setup(2)
    coefs, _, _ = trainer_coefficients(rows, dypo, monkeypatch)
    good = coef_dict(coefs)
    got, want = run_both(rows, good, dypo_cfg, verl_cfg, gbs, dp)
    assert max(rel_diffs(got, want)) <= REL
    row = next(i for i, g in enumerate(want[1]) if i >= len(rows) // 3 and bool((g != 0).any()))
    bad = {name: c.clone() for name, c in good.items()}
    bad["dypo_pg_coef"][row] *= 1 + 1e-6
    got, want = run_both(rows, bad, dypo_cfg, verl_cfg, gbs, dp)
    _, grad_rel = rel_diffs(got, want)
    assert grad_rel > 1e-7  # ~1e-6, far above the 1e-10 the correct coefficients reach
    per_row = [float((a - b).abs().max()) for a, b in zip(got[1], want[1])]
    assert max(per_row[:row] + per_row[row + 1 :]) <= REL * max(float(g.abs().max()) for g in want[1])
    assert per_row[row] > 0
    # without dypo_total_rows the loss cannot restore verl's per-mini-batch scale (2 mini-batches: half)
    got, want = run_both(rows, good, dypo_cfg, verl_cfg, gbs, dp, total_rows=0)
    torch.testing.assert_close(got[0], want[0] / 2, rtol=REL, atol=0)


@pytest.mark.parametrize("dp", [1, 2, 3])
def test_padding_rows_are_counted_by_verl_not_by_dypo(monkeypatch, dp):
    """The one case where the normalisations differ, and why: verl's seq-mean-token-mean divides by
    global_batch_size = ppo_mini_batch_size * rollout.n, padding rows included (they drop out of the numerator
    only: seq_mask), while DYPO divides by the rows it trains (Q * G). With 20 real rows padded to 24, DYPO is
    exactly 24/20 times verl. In the GRPO limit there are no padding rows (see the module docstring)."""
    rows = make_step(3, n_prompts=5, n_pad=4)
    assert len(rows) == N_PROMPTS * K
    dypo_cfg, dypo, gbs = dypo_setup(1, ALPHA_ONE)
    verl_cfg, _ = verl_setup(1)
    coefs, _, metrics = trainer_coefficients(rows, dypo, monkeypatch)
    assert metrics["dypo/trained_prompts"] == 5 and metrics["dypo/padding_rows"] == 4
    got, want = run_both(rows, coef_dict(coefs), dypo_cfg, verl_cfg, gbs, dp)
    factor = len(rows) / (5 * K)
    scaled = (want[0] * factor, [g * factor for g in want[1]], want[2])
    value_rel, grad_rel = rel_diffs(got, scaled)
    assert value_rel <= REL and grad_rel <= REL, (value_rel, grad_rel)
