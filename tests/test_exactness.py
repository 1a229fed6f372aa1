"""The DYPO loss is exact under any sharding: summed over micro-batches and data-parallel shards, the gradient of
the actor loss at theta = theta_old equals the gradient of the full-batch objective (paper eq. 4).

The actor loss runs through verl's real plumbing: the no-padding TensorDict layout, ``no_padding_2_padding``,
verl's ``vanilla`` policy loss and ``grpo`` advantage estimator from their registries, verl's
``compute_advantage`` and the ActorConfig composed by hydra from configs/dypo_trainer.yaml.
"""

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from recipe_dypo.actor_loss import dypo_actor_loss
from recipe_dypo.coefficients import RowCoefficients, StepSettings, row_coefficients
from recipe_dypo.grading import Role, grade_groups
from recipe_dypo.losses import dypo_objective, gal_loss, shaped_objective

V = 11  # vocabulary of the bigram toy policy
SHAPING_GAMMA = 0.07  # not the default 0.1, so the test sees the value travel through the TensorDict


def seq_log_probs(theta, tokens):
    """verl layout: position t holds log pi(x_{t+1} | x_t); the last position is 0."""
    logp = torch.log_softmax(theta[tokens[:-1]], dim=-1).gather(1, tokens[1:, None]).squeeze(1)
    return torch.cat([logp, logp.new_zeros(1)])


def make_batch(seed, n_mid_groups=3, k=4, n_teacher=2, n_pad=2, n_mixed_groups=0):
    """Mid groups, SFT teacher rows, padding; ``n_mixed_groups`` adds LUFFY-style groups: k on-policy rollouts
    (all correct, all wrong or mixed) plus one off-policy teacher row with score 1 in the same group."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for q in range(n_mixed_groups):
        prompt = torch.randint(0, V, (3,), generator=g)
        scores = [[1.0] * k, [0.0] * k, [1.0] + [0.0] * (k - 1)][q % 3]
        for i in range(k):
            resp = torch.randint(0, V, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g)
            rows.append(dict(prompt=prompt, response=resp, score=scores[i], uid=f"x{q}", role=Role.RL))
        resp = torch.randint(0, V, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g)
        rows.append(dict(prompt=prompt, response=resp, score=1.0, uid=f"x{q}", role=Role.OFFPOLICY))
    for q in range(n_mid_groups):
        prompt = torch.randint(0, V, (int(torch.randint(2, 5, (1,), generator=g)),), generator=g)
        scores = [1.0, 0.0] + [float(torch.randint(0, 2, (1,), generator=g)) for _ in range(k - 2)]
        for i in range(k):
            resp = torch.randint(0, V, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g)
            rows.append(dict(prompt=prompt, response=resp, score=scores[i], uid=f"m{q}", role=Role.RL))
    for t in range(n_teacher):
        prompt = torch.randint(0, V, (3,), generator=g)
        resp = torch.randint(0, V, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g)
        rows.append(dict(prompt=prompt, response=resp, score=0.0, uid=f"t{t}", role=Role.TEACHER))
    for p in range(n_pad):  # verl's synthetic padding rows: one response token, masked out
        rows.append(
            dict(
                prompt=torch.zeros(4, dtype=torch.long),
                response=torch.zeros(1, dtype=torch.long),
                score=0.0,
                uid=f"pad{p}",
                role=Role.PAD,
            )
        )
    return rows


def advantages_via_verl(rows, estimator: str = "grpo", dtype=torch.float32):
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    width = max(len(r["response"]) for r in rows)
    mask = torch.zeros(len(rows), width, dtype=dtype)
    rewards = torch.zeros(len(rows), width, dtype=dtype)
    for i, r in enumerate(rows):
        n = len(r["response"]) if r["role"] != Role.PAD else 0
        mask[i, :n] = 1
        if n:
            rewards[i, n - 1] = r["score"]
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array([r["uid"] for r in rows], dtype=object)},
    )
    out = compute_advantage(data, adv_estimator=estimator, config={"norm_adv_by_std_in_grpo": True})
    return [out.batch["advantages"][i, : len(r["response"])] for i, r in enumerate(rows)]


def micro_batch(rows, idx, theta, old_lp, adv, coefs, dp_size, total_rows, ref_lp=None, kl_coef=0.0):
    """One micro-batch in the layout verl's engines hand to a loss function."""

    def nested(ts):
        return torch.nested.as_nested_tensor(list(ts), layout=torch.jagged)

    seqs = [torch.cat([rows[i]["prompt"], rows[i]["response"]]) for i in idx]
    log_probs = nested([seq_log_probs(theta, s) for s in seqs])
    resp_mask = [torch.full((len(rows[i]["response"]),), float(rows[i]["role"] != Role.PAD)) for i in idx]
    batch_num_tokens = int(sum(float(len(r["response"])) for r in rows if r["role"] != Role.PAD))
    td = TensorDict(
        {
            "prompts": nested([rows[i]["prompt"] for i in idx]),
            "responses": nested([rows[i]["response"] for i in idx]),
            "response_mask": nested(resp_mask),
            "old_log_probs": nested([old_lp[i] for i in idx]),
            "advantages": nested([adv[i] for i in idx]),
            **({"ref_log_prob": nested([ref_lp[i] for i in idx])} if ref_lp is not None else {}),
            **{name: getattr(coefs, attr)[idx] for attr, name in RowCoefficients.FIELDS.items()},
        },
        batch_size=[len(idx)],
    )
    from verl.utils import tensordict_utils as tu

    tu.assign_non_tensor(td, dp_size=dp_size, batch_num_tokens=batch_num_tokens, global_batch_size=len(rows))
    tu.assign_non_tensor(td, **StepSettings(total_rows, SHAPING_GAMMA, kl_coef).as_dict())
    return td, {"log_probs": log_probs}


def sharded_gradient(rows, theta_old, ref_theta, actor_config, dp_size, micro_sizes_seed, weights, **kw):
    theta = theta_old.clone().requires_grad_(True)
    with torch.no_grad():
        old_lp = [
            seq_log_probs(theta_old, torch.cat([r["prompt"], r["response"]]))[len(r["prompt"]) - 1 : -1] for r in rows
        ]
        ref_lp = [
            seq_log_probs(ref_theta, torch.cat([r["prompt"], r["response"]]))[len(r["prompt"]) - 1 : -1] for r in rows
        ]
    adv = advantages_via_verl(rows)
    roles = np.array([r["role"] for r in rows])
    ratio_old = torch.stack([(o - (rf if kw.get("gal_reference", True) else 0)).sum() for o, rf in zip(old_lp, ref_lp)])
    coefs = row_coefficients(
        roles,
        [r["score"] for r in rows],
        [r["uid"] for r in rows],
        [len(r["response"]) for r in rows],
        ratio_old,
        grpo_weight=weights[0],
        gal_weight=weights[1],
        beta=kw.get("beta", 1.0),
        gamma=kw.get("gamma", 1.0),
    )
    rng = np.random.default_rng(micro_sizes_seed)
    perm = rng.permutation(len(rows))
    shard_grads = []
    for shard in np.array_split(perm, dp_size):
        theta.grad = None
        cuts = np.sort(rng.choice(np.arange(1, len(shard)), size=min(2, len(shard) - 1), replace=False))
        for mb in np.split(shard, cuts):
            td, model_output = micro_batch(
                rows, torch.as_tensor(mb), theta, old_lp, adv, coefs, dp_size, len(rows), ref_lp, kw.get("kl_coef", 0.0)
            )
            loss, _ = dypo_actor_loss(actor_config, model_output, td)
            loss.backward()
        shard_grads.append(theta.grad.clone())
    return torch.stack(shard_grads).mean(0)  # data-parallel all-reduce averages gradients


def reference_gradient(rows, theta_old, ref_theta, weights, gal_reference=True, beta=1.0, gamma=1.0, kl_coef=0.0):
    theta = theta_old.clone().requires_grad_(True)
    resp = lambda th, r: seq_log_probs(th, torch.cat([r["prompt"], r["response"]]))[len(r["prompt"]) - 1 : -1]  # noqa
    live = [resp(theta, r) for r in rows]
    with torch.no_grad():
        old = [resp(theta_old, r) for r in rows]
        ref = [resp(ref_theta, r) for r in rows] if gal_reference or kl_coef else None
    loss = dypo_objective(
        live,
        old,
        ref,
        [r["role"] for r in rows],
        [r["score"] for r in rows],
        [r["uid"] for r in rows],
        grpo_weight=weights[0],
        gal_weight=weights[1],
        beta=beta,
        gamma=gamma,
        shaping_gamma=SHAPING_GAMMA,
        kl_coef=kl_coef,
    )
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


@pytest.mark.parametrize("dp_size", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "weights,beta,gamma,gal_reference",
    [((0.5, 0.5), 1.0, 1.0, True), ((0.2, 0.8), 2.0, 0.5, True), ((1.0, 0.001), 0.1, 1.0, False)],
)
def test_sharded_gradient_equals_full_batch(actor_config, dp_size, seed, weights, beta, gamma, gal_reference):
    torch.manual_seed(seed)
    theta_old = torch.randn(V, V, dtype=torch.float64)
    ref_theta = theta_old + 0.3 * torch.randn(V, V, dtype=torch.float64)
    rows = make_batch(seed)
    kw = dict(beta=beta, gamma=gamma, gal_reference=gal_reference)
    want = reference_gradient(rows, theta_old, ref_theta, weights, **kw)
    got = sharded_gradient(rows, theta_old, ref_theta, actor_config, dp_size, seed + 10, weights, **kw)
    assert want.abs().max() > 1e-3  # a real gradient, not a vacuous zero
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dp_size", [1, 3])
def test_sharded_gradient_with_offpolicy_rows_equals_full_batch(actor_config, dp_size):
    """LUFFY-style groups (a teacher row inside the group, shaped loss, easy/hard groups kept) are exact too."""
    torch.manual_seed(7)
    theta_old = torch.randn(V, V, dtype=torch.float64)
    ref_theta = theta_old + 0.3 * torch.randn(V, V, dtype=torch.float64)
    rows = make_batch(7, n_mid_groups=2, n_teacher=1, n_mixed_groups=3)
    assert sum(r["role"] == Role.OFFPOLICY for r in rows) == 3
    want = reference_gradient(rows, theta_old, ref_theta, (1.0, 0.0))
    got = sharded_gradient(rows, theta_old, ref_theta, actor_config, dp_size, 11, (1.0, 0.0))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # The off-policy rows matter: without them the gradient differs.
    plain = [r for r in rows if r["role"] != Role.OFFPOLICY]
    assert (reference_gradient(plain, theta_old, ref_theta, (1.0, 0.0)) - want).abs().max() > 1e-3


@pytest.mark.parametrize("dp_size", [1, 3])
def test_kl_term_is_exact_and_only_on_rl_rows(actor_config, dp_size):
    """The paper's beta_KL * KL inside L_GRPO (dypo.kl_coef): exact under sharding, weighted by alpha like the
    surrogate, and absent from teacher rows."""
    torch.manual_seed(3)
    theta_old = torch.randn(V, V, dtype=torch.float64)
    ref_theta = theta_old + 0.3 * torch.randn(V, V, dtype=torch.float64)
    rows = make_batch(3)
    kw = dict(kl_coef=0.3)
    want = reference_gradient(rows, theta_old, ref_theta, (0.5, 0.5), **kw)
    got = sharded_gradient(rows, theta_old, ref_theta, actor_config, dp_size, 13, (0.5, 0.5), **kw)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    kl_part = want - reference_gradient(rows, theta_old, ref_theta, (0.5, 0.5))
    assert kl_part.abs().max() > 1e-3
    # weighted like the GRPO term: alpha 0.2 instead of 0.5 scales it by 0.4 exactly
    kl_part_02 = reference_gradient(rows, theta_old, ref_theta, (0.2, 0.8), **kw) - reference_gradient(
        rows, theta_old, ref_theta, (0.2, 0.8)
    )
    torch.testing.assert_close(kl_part_02, 0.4 * kl_part, rtol=0, atol=1e-9)
    # teacher rows get no KL: on a batch of teacher rows only the worker's gradient does not move
    teachers = make_batch(3, n_mid_groups=0, n_teacher=3)
    with_kl = sharded_gradient(teachers, theta_old, ref_theta, actor_config, dp_size, 13, (0.5, 0.5), kl_coef=0.3)
    without = sharded_gradient(teachers, theta_old, ref_theta, actor_config, dp_size, 13, (0.5, 0.5))
    torch.testing.assert_close(with_kl, without, rtol=0, atol=0)


def test_shaped_objective_values():
    """-A * p / (p + gamma) and its derivative -A * gamma * p / (p + gamma)^2 with respect to log p."""
    log_p = torch.tensor([np.log(0.3)], dtype=torch.float64, requires_grad=True)
    loss = shaped_objective(log_p, torch.tensor([2.0], dtype=torch.float64), shaping_gamma=0.1)
    (grad,) = torch.autograd.grad(loss.sum(), log_p)
    torch.testing.assert_close(loss, torch.tensor([-1.5], dtype=torch.float64))
    torch.testing.assert_close(grad, torch.tensor([-0.375], dtype=torch.float64))


def test_gal_part_alone_matches_gal_loss(actor_config):
    """With only mid groups and alpha=0, the actor loss gradient is exactly grad of gal_loss on the full batch."""
    torch.manual_seed(3)
    theta_old = torch.randn(V, V, dtype=torch.float64)
    ref_theta = torch.randn(V, V, dtype=torch.float64)
    rows = make_batch(3, n_mid_groups=4, n_teacher=0, n_pad=0)
    theta = theta_old.clone().requires_grad_(True)
    ratios = torch.stack(
        [
            (
                seq_log_probs(theta, torch.cat([r["prompt"], r["response"]]))
                - seq_log_probs(ref_theta, torch.cat([r["prompt"], r["response"]]))
            )[len(r["prompt"]) - 1 : -1].sum()
            for r in rows
        ]
    )
    loss = gal_loss(ratios, [r["score"] for r in rows], [r["uid"] for r in rows], beta=1.0)
    (want,) = torch.autograd.grad(loss, theta)
    got = sharded_gradient(rows, theta_old, ref_theta, actor_config, 2, 5, (0.0, 1.0))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_grading_of_the_test_batch():
    rows = make_batch(0)
    labels = grade_groups([r["score"] for r in rows], [r["uid"] for r in rows])
    assert (labels[:12] == "mid").all()  # every mid group has a success and a failure by construction
