"""The loss the actor runs on every micro-batch, installed with ``actor_rollout_wg.set_loss_fn``.

It is the same function for every engine (FSDP/FSDP2, Megatron) and rollout server: it reads only verl's
no-padding TensorDict (``model_output["log_probs"]``, ``old_log_probs``, ``advantages``, ``response_mask``)
and the loss contract of :mod:`recipe_dypo.coefficients` (four per-row coefficients, three per-step settings).

    loss_mb = dp_size * n_mini * sum_{rows in mb} [ c_pg  * sum_t surrogate(A)_t
                                                  + c_sft * sum_t -log pi(y_t)
                                                  + c_gal * sum_t (log pi(y_t) - log pi_old(y_t))
                                                  + c_off * sum_t -A_t * f(pi(y_t))
                                                  + kl_coef * c_pg * sum_t KL_t(pi || pi_ref) ]

(c_off is non-zero only for teacher rows mixed into groups, LUFFY-style, with f(p) = p / (p + shaping_gamma).)

verl averages gradients over data-parallel ranks (hence dp_size) and sums micro-batches; ``n_mini`` (number of
mini-batches in the step, 1 by default) restores the per-mini-batch scale verl uses. The GAL term is the
linearisation of L_GAL at theta_old: equal value 0 and equal gradient there. See :mod:`recipe_dypo.losses`.
The surrogate is verl's own policy loss (``actor.policy_loss.loss_mode``, ``vanilla``: clip plus dual clip) with
``token-sum`` aggregation; the advantages arrive multiplied by c_pg, and the clipped surrogate is positively
homogeneous in A, so the scaling is exact.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from recipe_dypo.coefficients import RowCoefficients, StepSettings
from recipe_dypo.losses import kl_estimate, shaped_objective

TERMS = ("pg", "sft", "gal", "offpolicy", "kl")


def logp_gradient_l1(terms: dict, inputs: dict, mask) -> dict:
    """How much gradient each loss term sends into the model: sum over response tokens of |dL_term / d log pi(y_t)|.

    At theta_old the GRPO term's value is 0 (advantages sum to 0 in a group) and so is the linearised GAL term's,
    so loss values cannot show that a branch trains; these can. Each term is computed from its own alias of the
    log-probs (``inputs[name]``), so one backward over the loss's element-wise graph gives every term's gradient
    separately; autograd stops at the aliases and never enters the model's graph. One host sync for all terms.

    Args:
        terms: name -> scalar loss tensor (a term without a graph, e.g. an absent off-policy term, gives 0).
        inputs: name -> the (bs, T) log-prob alias that term was computed from. mask: (bs, T) bool.
    """
    live = [name for name, value in terms.items() if value.requires_grad]
    out = dict.fromkeys(terms, 0.0)
    if not live:
        return out
    grads = torch.autograd.grad(
        sum(terms[name] for name in live), [inputs[name] for name in live], retain_graph=True, allow_unused=True
    )
    zero = mask.new_zeros((), dtype=torch.float32)
    sums = [zero if grad is None else (grad.abs() * mask).sum().float() for grad in grads]
    out.update(zip(live, torch.stack(sums).tolist()))
    return out


def dypo_actor_loss(config, model_output, data: TensorDict, dp_group=None):
    """DYPO micro-batch loss with verl's loss-function signature.

    Args:
        config: verl ``ActorConfig`` (clip ratios, policy_loss.loss_mode, entropy coefficient, kl_loss_type).
        model_output: ``{"log_probs": nested (bs, seq_j), "entropy": optional}``.
        data: micro-batch TensorDict; nested ``response_mask``/``old_log_probs``/``advantages`` (bs, resp_j),
            dense :class:`RowCoefficients` fields (bs,), non-tensor ``dp_size``, ``batch_num_tokens``,
            ``global_batch_size`` and the :class:`StepSettings`.

    Returns:
        (loss scalar tensor, metrics dict)
    """
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)

    dp_size = data["dp_size"]
    config.global_batch_info["dp_size"] = dp_size
    config.global_batch_info["batch_num_tokens"] = data["batch_num_tokens"]
    config.global_batch_info["global_batch_size"] = data["global_batch_size"]
    config.global_batch_info["loss_scale_factor"] = config.loss_scale_factor
    step = StepSettings.read(data)
    mini_rows = data["global_batch_size"]
    n_mini = step.total_rows / mini_rows if step.total_rows and mini_rows else 1.0

    coef = RowCoefficients.from_fields(data, log_prob.dtype)
    fields = ["response_mask", "old_log_probs", "advantages"]
    fields += [k for k in ("rollout_is_weights", "ref_log_prob") if k in data]
    data = data.select(*fields).to_padded_tensor()
    mask = data["response_mask"].to(bool)
    old_log_prob = data["old_log_probs"]

    # with gradient metrics, each term reads its own alias of the log-probs (see logp_gradient_l1)
    probe = step.grad_metrics and log_prob.requires_grad
    lp = {name: log_prob.view_as(log_prob) if probe else log_prob for name in TERMS}

    policy_loss_fn = get_policy_loss_fn(config.policy_loss.get("loss_mode", "vanilla"))
    rl_rows = (coef.pg > 0).unsqueeze(-1)
    pg_loss, pg_metrics = policy_loss_fn(
        old_log_prob=old_log_prob,
        log_prob=lp["pg"],
        advantages=data["advantages"] * coef.pg.unsqueeze(-1),
        response_mask=mask & rl_rows,
        loss_agg_mode="token-sum",
        config=config,
        rollout_is_weights=data.get("rollout_is_weights", None),
    )
    sft_loss = (coef.sft.unsqueeze(-1) * -lp["sft"] * mask).sum() * dp_size
    gal_loss = (coef.gal.unsqueeze(-1) * (lp["gal"] - old_log_prob) * mask).sum() * dp_size
    if bool((coef.offpolicy != 0).any()):  # only LUFFY-style mixing has off-policy rows; skip the graph otherwise
        shaped = shaped_objective(lp["offpolicy"], data["advantages"], step.shaping_gamma)
        off_loss = (coef.offpolicy.unsqueeze(-1) * shaped * mask).sum() * dp_size
    else:
        off_loss = log_prob.new_zeros(())
    if step.kl_coef:  # the paper's KL inside L_GRPO: on-policy RL rows only, weighted like their surrogate
        kld = kl_estimate(lp["kl"], data["ref_log_prob"], config.kl_loss_type)
        kl_loss = (step.kl_coef * coef.pg.unsqueeze(-1) * kld * mask).sum() * dp_size
    else:
        kl_loss = log_prob.new_zeros(())
    loss = (pg_loss + sft_loss + gal_loss + off_loss + kl_loss) * n_mini

    summed = AggregationType.SUM  # each micro-batch holds a partial sum of the step objective
    metrics = Metric.from_dict(pg_metrics, aggregation=AggregationType.MEAN)
    metrics["actor/pg_loss"] = Metric(value=pg_loss * n_mini, aggregation=summed)
    metrics["actor/dypo_sft_loss"] = Metric(value=sft_loss * n_mini, aggregation=summed)
    metrics["actor/dypo_gal_linear"] = Metric(value=gal_loss * n_mini, aggregation=summed)
    metrics["actor/dypo_offpolicy_loss"] = Metric(value=off_loss * n_mini, aggregation=summed)
    metrics["actor/dypo_kl_loss"] = Metric(value=kl_loss * n_mini, aggregation=summed)
    if probe:
        terms = {"pg": pg_loss, "sft": sft_loss, "gal": gal_loss, "offpolicy": off_loss, "kl": kl_loss}
        for name, value in logp_gradient_l1(terms, lp, mask).items():
            metrics[f"actor/dypo_grad_logp/{name}"] = Metric(value=value * n_mini, aggregation=summed)

    if entropy is not None and config.entropy_coeff != 0:
        entropy_loss = agg_loss(entropy, mask, config.loss_agg_mode, **config.global_batch_info)
        loss = loss - config.entropy_coeff * entropy_loss
        metrics["actor/entropy_loss"] = Metric(value=entropy_loss, aggregation=summed)
    # verl's own KL loss (actor.kl_loss_coef) is refused by check_verl_config: it would weigh every row, teacher
    # rows included; the paper's KL term is the kl_loss above (dypo.kl_coef).
    return loss, metrics
