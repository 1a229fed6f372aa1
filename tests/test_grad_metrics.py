"""The per-term gradient metrics of the actor loss (``actor/dypo_grad_logp/*``), computed in one backward over the
loss's element-wise graph, equal each term's own gradient taken alone; switched off they are absent and the loss
and its gradient are unchanged (``dypo.grad_metrics_interval``)."""

import sys
from pathlib import Path

import pytest
import torch
from verl.utils import tensordict_utils as tu

from recipe_dypo.actor_loss import dypo_actor_loss
from recipe_dypo.coefficients import COEF_FIELDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_actor_loss import actor_configs, micro_batch, offsets_of  # noqa: E402

TERM_COEF = {"pg": "dypo_pg_coef", "sft": "dypo_sft_coef", "gal": "dypo_gal_coef", "offpolicy": "dypo_offpolicy_coef"}


def run_loss(td, config, leaf):
    leaf.grad = None
    log_probs = torch.nested.nested_tensor_from_jagged(leaf * 1.0, offsets=offsets_of(td))
    loss, metrics = dypo_actor_loss(config=config, model_output={"log_probs": log_probs}, data=td.clone())
    loss.backward()
    return loss.detach(), leaf.grad.clone(), {k: m.aggregate() for k, m in metrics.items()}


@pytest.fixture(scope="module")
def batch():
    td = micro_batch(8, 24)
    td["dypo_offpolicy_coef"][0] = 3e-4  # one LUFFY-style off-policy row, so every term has a gradient
    td["dypo_pg_coef"][0] = 0.0
    return td


def test_each_term_metric_is_that_terms_own_gradient(batch):
    config, _ = actor_configs()
    offsets = offsets_of(batch)
    leaf = (-torch.rand(int(offsets[-1]), generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    _, _, metrics = run_loss(batch, config, leaf)
    for term, field in TERM_COEF.items():
        alone = batch.clone()
        for other in COEF_FIELDS:
            if other != field:
                alone[other] = torch.zeros_like(alone[other])
        _, grad, _ = run_loss(alone, config, leaf)
        want = float(grad.abs().sum())  # prompt and masked tokens get no gradient
        assert want > 0, term
        assert metrics[f"actor/dypo_grad_logp/{term}"] == pytest.approx(want, rel=1e-5), term
    assert metrics["actor/dypo_grad_logp/kl"] == 0.0  # dypo.kl_coef = 0


def test_switched_off_metrics_are_absent_and_change_nothing(batch):
    config, _ = actor_configs()
    leaf = (-torch.rand(int(offsets_of(batch)[-1]), generator=torch.Generator().manual_seed(4))).requires_grad_(True)
    loss_on, grad_on, metrics_on = run_loss(batch, config, leaf)
    quiet = batch.clone()
    tu.assign_non_tensor(quiet, dypo_grad_metrics=False)
    loss_off, grad_off, metrics_off = run_loss(quiet, config, leaf)
    assert any(k.startswith("actor/dypo_grad_logp/") for k in metrics_on)
    assert not any(k.startswith("actor/dypo_grad_logp/") for k in metrics_off)
    assert torch.equal(loss_on, loss_off) and torch.equal(grad_on, grad_off)
