"""The public pure functions: exact definitions, checked against brute force and against verl's own GRPO."""

import itertools
import math

import numpy as np
import pytest
import torch

from recipe_dypo.grading import grade_groups
from recipe_dypo.losses import gal_loss, gal_statistics, grpo_advantages, mixing_weights
from recipe_dypo.teachers import Teacher, TeacherSampler, extract_teachers


def test_grade_groups_labels_every_row():
    scores = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 1])
    uids = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "d", "e", "a"])
    labels = grade_groups(scores, uids)
    assert labels.tolist() == ["easy"] * 3 + ["hard"] * 3 + ["mid", "mid", "easy", "hard", "easy"]
    assert isinstance(labels, np.ndarray)


def test_grade_groups_threshold_for_non_binary_rewards():
    scores = np.array([0.7, 0.9, 0.2, 0.3])
    uids = np.array([1, 1, 2, 2])
    assert grade_groups(scores, uids, success_threshold=0.5).tolist() == ["easy", "easy", "hard", "hard"]
    assert grade_groups(scores, uids, success_threshold=0.8).tolist() == ["mid", "mid", "hard", "hard"]


def test_grade_groups_rejects_nan_scores():
    with pytest.raises(ValueError, match="non-finite reward scores at rows \\[1\\]"):
        grade_groups(np.array([1.0, np.nan]), np.array(["a", "a"]))


def brute_force_gal(r, scores, uids, beta, thr=1.0):
    per_group = []
    for g in dict.fromkeys(uids):
        rows = [i for i, u in enumerate(uids) if u == g]
        pairs = [(s, f) for s in rows for f in rows if scores[s] >= thr and scores[f] < thr]
        if pairs:
            per_group.append(sum(-math.log(1 / (1 + math.exp(-beta * (r[s] - r[f])))) for s, f in pairs) / len(pairs))
    return sum(per_group) / len(per_group)


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.0])
def test_gal_loss_matches_brute_force(beta):
    rng = np.random.default_rng(0)
    uids = np.repeat(np.array(["g0", "g1", "g2", "g3", "g4"]), 8)
    scores = rng.integers(0, 2, size=len(uids)).astype(float)
    scores[8:16] = 1.0  # an all-success group contributes nothing
    r = torch.tensor(rng.normal(size=len(uids)) * 3, dtype=torch.float64, requires_grad=True)
    loss = gal_loss(r, scores, uids, beta=beta)
    assert loss.item() == pytest.approx(brute_force_gal(r.tolist(), scores, uids.tolist(), beta), rel=1e-12)
    loss.backward()
    assert torch.all(r.grad[8:16] == 0) and r.grad.abs().sum() > 0


def test_gal_loss_without_pairs_is_a_zero_with_gradient_path():
    r = torch.tensor([0.3, -2.0, 1.0], requires_grad=True)
    loss = gal_loss(r, [1.0, 1.0, 0.0], ["a", "a", "b"])
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(r.grad, torch.zeros(3))


def test_gal_statistics_pair_accuracy_and_margin():
    r = torch.tensor([2.0, 0.5, 1.0, 3.0])  # pairs: (0,1) d=1.5, (0,2) d=1.0, (3? fail) -> group b: (3 s, none)
    stats = gal_statistics(r, [1, 0, 0, 1], ["a", "a", "a", "b"])
    assert stats["gal_pairs"] == 2 and stats["gal_pair_acc"] == 1.0 and stats["gal_margin_mean"] == pytest.approx(1.25)


def test_grpo_advantages_match_verl_grpo():
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    rng = np.random.default_rng(1)
    uids = np.repeat(np.arange(6).astype(str), 8).astype(object)
    scores = rng.integers(0, 2, size=48).astype(np.float32)
    rewards = torch.zeros(48, 5)
    rewards[:, -1] = torch.from_numpy(scores)
    verl_adv, _ = compute_grpo_outcome_advantage(rewards, torch.ones(48, 5), uids)
    ours = grpo_advantages(torch.from_numpy(scores).double(), uids)
    torch.testing.assert_close(ours.float(), verl_adv[:, 0], atol=1e-5, rtol=1e-5)


def test_mixing_weights():
    assert mixing_weights(0.2) == (0.2, pytest.approx(0.8))
    assert mixing_weights(0.5, grpo_weight=1.0, gal_weight=0.001) == (1.0, 0.001)
    with pytest.raises(ValueError, match="alpha"):
        mixing_weights(1.5)


def test_extract_teachers_all_sources_dedup_and_order():
    row = {
        "extra_info": {"teachers": [{"name": "qwen3", "response": "A"}, {"name": "r1", "response": "B"}]},
        "target": [{"role": "assistant", "content": "B"}],
        "target_lst": [{"role": "assistant", "content": "C"}, "D"],
    }
    assert extract_teachers(row) == [
        Teacher("qwen3", "A"),
        Teacher("r1", "B"),
        Teacher("target_lst0", "C"),
        Teacher("target_lst1", "D"),
    ]
    assert extract_teachers({"target": "E"}) == [Teacher("target", "E")]
    assert extract_teachers({"extra_info": {}}) == []


def test_extract_teachers_names_the_bad_field():
    with pytest.raises(ValueError, match=r"extra_info.teachers\[1\].response: teacher not a string"):
        extract_teachers({"extra_info": {"teachers": [{"name": "a", "response": "x"}, {"response": 3}]}})
    with pytest.raises(ValueError, match=r"extra_info.teachers\[0\]"):
        extract_teachers({"extra_info": {"teachers": ["just a string"]}})


def test_teacher_sampler_is_uniform():
    sampler = TeacherSampler(seed=0)
    n, m = 30000, 3
    counts = np.bincount([sampler.draw(m) for _ in range(n)], minlength=m)
    chi2 = (((counts - n / m) ** 2) / (n / m)).sum()
    assert chi2 < 13.8  # p = 0.001 for 2 degrees of freedom
    assert set(itertools.chain([sampler.draw(1) for _ in range(10)])) == {0}
