"""DYPO's driver-side overhead against verl's GRPO, measured in one run (ratios, not absolute targets).

Per step: DYPO's grading + teacher rows + GAL statistics/coefficients + advantages (the work the trainer adds
between reward and update, TransferQueue I/O excluded since verl's own steps pay it too) against verl's GRPO
``compute_advantage`` on the same batch. Target: <= 2x. The actor side is benchmarks/bench_actor_loss.py.

    python benchmarks/bench_driver.py                       # 512 prompts x 8 rollouts x 4096 tokens
    python benchmarks/bench_driver.py --prompts 64 --tokens 1024   # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recipe_dypo.coefficients import coefficients_of_batch
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--micro-rows", type=int, default=8, help="rows per actor micro-batch")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

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


if __name__ == "__main__":
    main()
