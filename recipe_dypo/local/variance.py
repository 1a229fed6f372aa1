"""Mechanism 3 (paper eq. 13/19): variance of the mixed policy gradient as a function of alpha.

At fixed parameters theta (a saved checkpoint), draw many independent rollout groups for a fixed set of prompts
and, for every draw, compute the gradient of the mid-prompt DYPO loss

    g_alpha = grad [ 1/Q_mid * sum_{q mid} ( alpha * L_GRPO(q) + (1 - alpha) * L_GAL(q) ) ]   at theta = theta_old

through the same path as training (regroup -> verl advantages -> step_coefficients -> dypo_actor_loss). All alphas
see the same draws. Reported: Var(g) = E ||g - E g||^2 (trace of the covariance, unbiased), ||E g||^2, and
the ratio Var(g_alpha) / Var(g_1.0). Hard prompts (SFT on a teacher) and easy prompts do not depend on alpha and
are left out; a draw with no mid prompt contributes g = 0 for every alpha.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from recipe_dypo.local import workers
from recipe_dypo.local.driver import LocalDypoTrainer, RunConfig, coefficients_for_rows, compose_verl_config
from recipe_dypo.local.model import load_model


def add_variance_args(p) -> None:
    p.add_argument("--model", default="outputs/quickstart/model", help="checkpoint dir (save_pretrained format)")
    p.add_argument("--reference", default=None, help="reference model dir for GAL (default: <model>/../init_model)")
    p.add_argument("--alphas", default="1.0,0.5,0.2")
    p.add_argument("--draws", type=int, default=32, help="independent rollout draws")
    p.add_argument("--prompts", type=int, default=16, help="fixed prompts per draw")
    p.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    p.add_argument("--max-response-length", type=int, default=RunConfig.max_response_length)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON result path (default: <model>/../variance.json)")


def flat_gradient(model, rows, coefs, actor_config, micro_batch_size: int = 64) -> torch.Tensor:
    """Gradient of ``dypo_actor_loss`` summed over micro-batches, flattened to (num_params,) float64."""
    from recipe_dypo.actor_loss import dypo_actor_loss

    model.zero_grad(set_to_none=True)
    workers.accumulate_loss_gradient(model, rows, coefs, dypo_actor_loss, actor_config, micro_batch_size)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return torch.cat([g.reshape(-1).double() for g in grads])


def variance_summary(grads: torch.Tensor) -> dict:
    """grads: (D, P) one gradient per draw. Trace of the unbiased covariance and squared norm of the mean."""
    mean = grads.mean(0)
    var = float(((grads - mean) ** 2).sum(1).sum() / max(len(grads) - 1, 1))
    return {"var_trace": var, "mean_sq_norm": float(mean @ mean)}


def measure_variance(
    trainer: LocalDypoTrainer, prompt_rows: list[dict], alphas: list[float], draws: int, progress=None
):
    """Gradients of the mid-prompt loss for every alpha over ``draws`` rollout draws; returns per-alpha summaries."""
    grads = {a: [] for a in alphas}
    mid_counts = []
    for d in range(draws):
        uids = [f"d{d}q{j}" for j in range(len(prompt_rows))]
        batch = trainer.regroup(trainer.rollout(prompt_rows, uids))
        keep = [i for i, t in enumerate(batch.tags) if t.get("dypo_role") != "teacher"]
        rows, tags = [batch.rows[i] for i in keep], [batch.tags[i] for i in keep]
        mid_counts.append(len({r["uid"] for r in rows}))
        if rows:
            batch = dataclasses.replace(batch, rows=rows, tags=tags)
            trainer.log_probs(batch)
            trainer.advantages(batch)
        for a in alphas:
            if not rows:
                grads[a].append(None)
                continue
            cfg = dataclasses.replace(trainer.dypo, alpha=a, grpo_weight=None, gal_weight=None)
            coefs, _ = coefficients_for_rows(rows, tags, cfg)
            grads[a].append(flat_gradient(trainer.model, rows, coefs, trainer.actor_config))
        if progress is not None:
            progress.update(1)
    size = sum(p.numel() for p in trainer.model.parameters())
    out = {}
    for a in alphas:
        stacked = torch.stack([g if g is not None else torch.zeros(size, dtype=torch.float64) for g in grads[a]])
        out[a] = variance_summary(stacked)
    base = out[max(alphas)]["var_trace"] if 1.0 not in out else out[1.0]["var_trace"]
    for a in alphas:
        out[a]["ratio_to_grpo"] = out[a]["var_trace"] / base if base > 0 else float("nan")
    return out, mid_counts


def cmd_variance(args) -> dict:
    from tqdm import tqdm

    from recipe_dypo.local.run import toy_rows

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model_dir = Path(args.model)
    ref_dir = Path(args.reference) if args.reference else model_dir.parent / "init_model"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_model(model_dir)
    ref_model = load_model(ref_dir).eval().requires_grad_(False)
    run = RunConfig(n=args.n, max_response_length=args.max_response_length, seed=args.seed, threads=args.threads)
    trainer = LocalDypoTrainer(run, compose_verl_config(run), model, ref_model, tokenizer)
    prompts = toy_rows(dataclasses.replace(run, train_size=args.prompts))[0]
    alphas = [float(a) for a in args.alphas.split(",")]
    with tqdm(total=args.draws, desc="rollout draws") as bar:
        result, mid_counts = measure_variance(trainer, prompts, alphas, args.draws, bar)
    print(
        f"\nmodel {model_dir}, {args.draws} draws x {args.prompts} prompts x {args.n} rollouts; "
        f"mid prompts per draw: mean {np.mean(mid_counts):.2f}, draws without any: {sum(c == 0 for c in mid_counts)}"
    )
    print(f"{'alpha':>6}{'Var(g)':>14}{'|E g|^2':>14}{'Var/Var_GRPO':>14}")
    for a in alphas:
        r = result[a]
        print(f"{a:>6.2f}{r['var_trace']:>14.4e}{r['mean_sq_norm']:>14.4e}{r['ratio_to_grpo']:>14.3f}")
    out_path = Path(args.out) if args.out else model_dir.parent / "variance.json"
    payload = {"alphas": {str(a): result[a] for a in alphas}, "mid_prompts_per_draw": mid_counts, "args": vars(args)}
    out_path.write_text(json.dumps(payload, indent=2))
    print(f"written to {out_path}")
    return payload
