"""DYPO's overhead against verl's GRPO, measured in one run (ratios, not absolute targets).

1. Driver side, per step: DYPO's grading + teacher rows + GAL statistics/coefficients + advantages (the work the
   trainer adds between reward and update, TransferQueue I/O excluded since verl's own steps pay it too) against
   verl's GRPO ``compute_advantage`` on the same batch. Target: <= 2x.
2. Actor side, per micro-batch: forward + backward of the DYPO loss against verl's vanilla PPO loss
   (``verl.workers.utils.losses.ppo_loss``) on the same micro-batch and log-probs. Target: <= 1.2x.

    python benchmarks/bench_driver.py                       # 512 prompts x 8 rollouts x 4096 tokens
    python benchmarks/bench_driver.py --prompts 64 --tokens 1024   # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tensordict import TensorDict

from recipe_dypo.coefficients import StepSettings, coefficients_of_batch
from recipe_dypo.config import DypoConfig
from recipe_dypo.grading import Role, plan_regroup, roles_from_tags
from recipe_dypo.teachers import teacher_response_ids, teacher_row


def timed(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def make_rollouts(prompts: int, k: int, tokens: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    uids = np.repeat(np.array([f"u{i}" for i in range(prompts)], dtype=object), k)
    # difficulty mix like mid-training: a third easy, a third hard, a third mixed
    p_correct = np.repeat(rng.choice([0.0, 1.0, 0.5], size=prompts), k)
    scores = (rng.random(prompts * k) < p_correct).astype(np.float32)
    lengths = rng.integers(tokens // 4, tokens + 1, size=prompts * k)
    return uids, scores, lengths


def grpo_advantage_verl(uids, scores, lengths, tokens):
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    mask = (torch.arange(tokens)[None, :] < torch.from_numpy(lengths)[:, None]).float()
    rewards = torch.zeros_like(mask)
    rewards[torch.arange(len(lengths)), torch.from_numpy(lengths) - 1] = torch.from_numpy(scores)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": uids}
    )
    return lambda: compute_advantage(data, adv_estimator="grpo", num_repeat=8), data


def dypo_driver_step(uids, scores, lengths, tokens, tokenizer, teacher_texts, cfg):
    """Everything the DYPO trainer computes on the driver for one step, on in-memory tensors.

    Inputs verl produces either way (the regrouped batch's old/ref log-probs, its dense reward tensors) are built
    before timing; what is timed is DYPO's own work.
    """
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    plan = plan_regroup(scores, uids, cfg.success_threshold)
    keep = plan.rl_rows
    texts = [teacher_texts[i % len(teacher_texts)] for i, _ in enumerate(plan.teacher_groups)]
    teacher_ids = [ids for ids, _ in teacher_response_ids(tokenizer, texts, tokens)]
    teacher_lengths = [len(ids) for ids in teacher_ids]
    new_lengths = np.concatenate([lengths[keep], teacher_lengths]).astype(np.int64)
    new_uids = np.concatenate([uids[keep], np.array(list(plan.teacher_groups), dtype=object)])
    new_scores = np.concatenate([scores[keep], np.zeros(len(texts), dtype=np.float32)])
    tags = [{}] * len(keep) + [{"dypo_role": "teacher"}] * len(texts)
    g = torch.Generator().manual_seed(1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.from_numpy(new_lengths).cumsum(0)])

    def jagged(values):
        return torch.nested.nested_tensor_from_jagged(values, offsets=offsets)

    n_tokens = int(offsets[-1])
    token_rewards = torch.zeros(n_tokens)
    token_rewards[offsets[1:] - 1] = torch.from_numpy(new_scores)
    stored = {  # the fields the trainer reads from TransferQueue
        "uid": new_uids,
        "rm_scores": jagged(token_rewards),
        "response_mask": jagged(torch.ones(n_tokens)),
        "old_log_probs": jagged(-torch.rand(n_tokens, generator=g)),
        "ref_log_prob": jagged(-torch.rand(n_tokens, generator=g)),
    }
    width = int(new_lengths.max())
    mask = (torch.arange(width)[None, :] < torch.from_numpy(new_lengths)[:, None]).float()
    rewards = torch.zeros_like(mask)
    rewards[torch.arange(len(new_lengths)), torch.from_numpy(new_lengths) - 1] = torch.from_numpy(new_scores)
    adv_input = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask}, non_tensors={"uid": new_uids}
    )
    template = {"prompts": torch.arange(200), "position_ids": torch.arange(200)}

    def run():
        plan_regroup(scores, uids, cfg.success_threshold)
        # teacher token ids come from the trainer's cache, filled while the rollout of this batch ran
        rows = [teacher_row(template, ids) for ids in teacher_ids]
        roles = roles_from_tags(tags)
        _, metrics = coefficients_of_batch(stored, roles, cfg, step=0)
        compute_advantage(adv_input, adv_estimator="grpo", config={"norm_adv_by_std_in_grpo": True})
        return roles, metrics, rows

    def tokenize():
        teacher_response_ids(tokenizer, texts, tokens)

    return run, tokenize


def micro_batch(rows: int, tokens: int, seed: int = 0):
    """A verl no-padding micro-batch plus fake model log-probs that require grad."""
    from verl.utils import tensordict_utils as tu

    g = torch.Generator().manual_seed(seed)
    prompt_len = 128
    resp = torch.randint(tokens // 2, tokens + 1, (rows,), generator=g)

    def nested(ts):
        return torch.nested.as_nested_tensor(list(ts), layout=torch.jagged)

    td = TensorDict(
        {
            "prompts": nested([torch.zeros(prompt_len, dtype=torch.long)] * rows),
            "responses": nested([torch.zeros(int(n), dtype=torch.long) for n in resp]),
            "response_mask": nested([torch.ones(int(n)) for n in resp]),
            "old_log_probs": nested([-torch.rand(int(n), generator=g) for n in resp]),
            "advantages": nested([torch.full((int(n),), float(torch.randn(1, generator=g))) for n in resp]),
            "dypo_pg_coef": torch.rand(rows, generator=g) * 1e-4,
            "dypo_sft_coef": torch.zeros(rows),
            "dypo_gal_coef": torch.randn(rows, generator=g) * 1e-3,
            "dypo_offpolicy_coef": torch.zeros(rows),  # DYPO has no off-policy rows (LUFFY-style mixing only)
        },
        batch_size=[rows],
    )
    td["dypo_sft_coef"][: rows // 4] = 1e-4
    tu.assign_non_tensor(
        td, dp_size=1, batch_num_tokens=int(resp.sum()), global_batch_size=rows * 8, **StepSettings(rows * 8).as_dict()
    )
    leaf = (-torch.rand(int(resp.sum() + rows * prompt_len), generator=g)).requires_grad_(True)
    return td, leaf


def loss_timer(loss_fn, config, td, leaf):
    offsets = torch.cat(
        [
            torch.zeros(1, dtype=torch.int64),
            (td["prompts"].offsets().diff() + td["responses"].offsets().diff()).cumsum(0),
        ]
    )

    def run():
        leaf.grad = None
        log_probs = torch.nested.nested_tensor_from_jagged(leaf * 1.0, offsets=offsets)
        loss, _ = loss_fn(config=config, model_output={"log_probs": log_probs}, data=td.clone())
        loss.backward()

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--micro-rows", type=int, default=8, help="rows per actor micro-batch")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.utils.losses import ppo_loss

    from recipe_dypo.actor_loss import dypo_actor_loss
    from recipe_dypo.config import compose_config as compose_dypo_config
    from recipe_dypo.tokenizer_files import load_qwen_tokenizer

    tokenizer = load_qwen_tokenizer()
    rng = np.random.default_rng(0)
    words = ["Let", "x", "be", "the", "sum", "so", "we", "get", "\\frac{1}{2}", "=", "+", "therefore", "<think>"]
    # teacher solutions of about args.tokens tokens, like the 8k-token OpenR1 traces
    teacher_texts = [" ".join(rng.choice(words, size=int(args.tokens * 0.9))) for _ in range(16)]
    uids, scores, lengths = make_rollouts(args.prompts, args.k, args.tokens)
    cfg = DypoConfig(max_teacher_tokens=args.tokens)

    grpo_fn, _ = grpo_advantage_verl(uids, scores, lengths, args.tokens)
    dypo_fn, tokenize_fn = dypo_driver_step(uids, scores, lengths, args.tokens, tokenizer, teacher_texts, cfg)
    roles, metrics, _ = dypo_fn()
    t_grpo = timed(grpo_fn, args.repeat)
    t_dypo = timed(dypo_fn, args.repeat)
    t_tok = timed(tokenize_fn, max(1, args.repeat // 2))
    n_teacher = int((roles == Role.TEACHER).sum())
    print(
        f"batch: {args.prompts} prompts x {args.k} rollouts x <= {args.tokens} tokens; after regrouping "
        f"{int((roles == Role.RL).sum())} mid rows + {n_teacher} teacher rows"
    )
    print(
        f"driver: verl GRPO compute_advantage {t_grpo * 1e3:8.1f} ms | DYPO driver step {t_dypo * 1e3:8.1f} ms "
        f"| ratio {t_dypo / t_grpo:.2f}x (target <= 2x)"
    )
    print(
        f"        teacher tokenisation {t_tok * 1e3:8.1f} ms ({t_tok / t_grpo:.2f}x GRPO), in a background thread "
        "while the batch's rollout generates (off the critical path)"
    )

    config = omega_conf_to_dataclass(
        compose_dypo_config(["actor_rollout_ref.actor.use_dynamic_bsz=true"]).actor_rollout_ref.actor
    )
    td, leaf = micro_batch(args.micro_rows, args.tokens)
    vanilla_config = omega_conf_to_dataclass(
        compose_dypo_config(
            [
                "actor_rollout_ref.actor.use_dynamic_bsz=true",
                "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla",
                "actor_rollout_ref.actor.use_kl_loss=false",
            ]
        ).actor_rollout_ref.actor
    )
    t_ppo = timed(loss_timer(ppo_loss, vanilla_config, td, leaf), args.repeat * 3)
    t_dl = timed(loss_timer(dypo_actor_loss, config, td, leaf), args.repeat * 3)
    print(
        f"actor loss fwd+bwd ({args.micro_rows} rows x <= {args.tokens} tokens): verl ppo_loss "
        f"{t_ppo * 1e3:7.2f} ms | DYPO loss {t_dl * 1e3:7.2f} ms | ratio {t_dl / t_ppo:.2f}x (target <= 1.2x)"
    )
    # LUFFY-style mixing: one row in eight is an off-policy teacher row with the policy-shaped term
    mixed = td.clone()
    mixed["dypo_offpolicy_coef"][: max(1, args.micro_rows // 8)] = 1e-4
    mixed["dypo_pg_coef"][: max(1, args.micro_rows // 8)] = 0.0
    t_mix = timed(loss_timer(dypo_actor_loss, config, mixed, leaf), args.repeat * 3)
    print(
        f"        with off-policy rows (LUFFY-style preset) {t_mix * 1e3:7.2f} ms | ratio {t_mix / t_ppo:.2f}x ppo_loss"
    )


if __name__ == "__main__":
    main()
