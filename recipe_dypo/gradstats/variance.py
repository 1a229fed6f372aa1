"""The paper's variance claim (eq. 13/19): on mid prompts, Var(g_mix) < Var(g_GRPO), measured at fixed parameters.

Estimator. Fix theta (a checkpoint, e.g. the quickstart's final weights) and pi_ref (the initial weights). For each
training prompt q, draw D independent groups of n rollouts from pi_theta. For every draw and every alpha, take the
gradient of that prompt's mid-prompt DYPO loss at theta = theta_old,

    g_alpha(q, d) = grad [ alpha * L_GRPO(q) + (1 - alpha) * L_GAL(q) ]     (alpha = 1: plain GRPO),

through the training path (regroup -> verl advantages -> coefficients -> dypo_actor_loss). A draw whose
group is not mixed gives g = 0 for every alpha (GRPO's advantages vanish and GAL has no pair). All alphas see the
same draws. Per prompt and alpha:

    Var = tr Cov(g) (unbiased, over the D draws),   |E g|^2 = |mean g|^2 - Var / D (unbiased),
    normalised variance NV = Var / |E g|^2.

Raw variances are not comparable across alpha (the mixed loss also changes the gradient's scale), so the claim is
judged on NV, over the prompts whose groups were mixed in at least ``--min-mixed`` draws.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from recipe_dypo.gradstats import workers
from recipe_dypo.gradstats.fixed_step import FixedPolicyStep, RunConfig, coefficients_for_rows, compose_verl_config


def add_variance_args(p) -> None:
    p.add_argument("--model", required=True, help="theta: a Hugging Face model dir (e.g. a run's final weights)")
    p.add_argument("--reference", required=True, help="pi_ref for GAL: the run's initial model dir")
    p.add_argument("--data", required=True, help="training parquet whose prompts are measured")
    p.add_argument("--alphas", default="1.0,0.5", help="comma-separated; 1.0 is plain GRPO (default 1.0,0.5)")
    p.add_argument("--draws", type=int, default=32, help="independent groups per prompt (default 32)")
    p.add_argument("--n", type=int, default=4, help="rollouts per group (default 4, as the quickstart)")
    p.add_argument("--max-response-length", type=int, default=24)
    p.add_argument("--min-mixed", type=int, default=4, help="keep prompts mixed in at least this many draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="JSON result path")


def flat_gradient(model, rows, coefs, actor_config) -> torch.Tensor:
    """Gradient of ``dypo_actor_loss`` on ``rows``, flattened to (num_params,) float64."""
    from recipe_dypo.actor_loss import dypo_actor_loss

    model.zero_grad(set_to_none=True)
    workers.accumulate_loss_gradient(model, rows, coefs, dypo_actor_loss, actor_config, len(rows))
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    return torch.cat([g.reshape(-1).double() for g in grads])


@dataclasses.dataclass
class Moments:
    """Running sums of per-draw gradients of one prompt under one alpha."""

    total: torch.Tensor  # (P,) sum of g
    sq_norms: float = 0.0  # sum of |g|^2
    draws: int = 0

    def add(self, g: torch.Tensor | None) -> None:
        self.draws += 1
        if g is not None:
            self.total += g
            self.sq_norms += float(g @ g)

    def summary(self) -> dict:
        d = self.draws
        mean = self.total / d
        var = (self.sq_norms - d * float(mean @ mean)) / (d - 1)
        signal = float(mean @ mean) - var / d
        return {"var": var, "mean_sq_norm": signal, "nv": var / signal if signal > 0 else float("inf")}


def measure(step: FixedPolicyStep, prompts: list[dict], alphas: list[float], draws: int, progress=None) -> dict:
    """Per-prompt moments for every alpha over ``draws`` rollout draws of all ``prompts`` at once."""
    size = sum(p.numel() for p in step.model.parameters())
    moments = {(j, a): Moments(torch.zeros(size, dtype=torch.float64)) for j in range(len(prompts)) for a in alphas}
    mixed = np.zeros(len(prompts), dtype=int)
    for d in range(draws):
        uids = [f"d{d}q{j}" for j in range(len(prompts))]
        batch = step.regroup(step.rollout(prompts, uids))
        keep = [i for i, t in enumerate(batch.tags) if t.get("dypo_role") != "teacher"]  # mid rollouts only
        rows, tags = [batch.rows[i] for i in keep], [batch.tags[i] for i in keep]
        if rows:
            batch = dataclasses.replace(batch, rows=rows, tags=tags)
            step.log_probs(batch)
            step.advantages(batch)
        for j, uid in enumerate(uids):
            mine = [i for i, r in enumerate(rows) if r["uid"] == uid]
            mixed[j] += bool(mine)
            for a in alphas:
                g = None
                if mine:
                    cfg = dataclasses.replace(step.dypo, alpha=a, grpo_weight=None, gal_weight=None)
                    sub_rows, sub_tags = [rows[i] for i in mine], [tags[i] for i in mine]
                    coefs, _ = coefficients_for_rows(sub_rows, sub_tags, cfg)
                    g = flat_gradient(step.model, sub_rows, coefs, step.actor_config)
                moments[(j, a)].add(g)
        if progress is not None:
            progress.update(1)
    return {"moments": moments, "mixed_draws": mixed, "draws": draws}


def report(measured: dict, alphas: list[float], min_mixed: int) -> dict:
    """Medians over the prompts mixed in >= ``min_mixed`` draws, and how often NV(alpha) < NV(GRPO).

    NV ratios use the prompts whose mean gradient is resolved (unbiased |E g|^2 > 0) under both estimators; the
    others are counted in ``unresolved``.
    """
    mixed = measured["mixed_draws"]
    kept = [j for j in range(len(mixed)) if mixed[j] >= min_mixed]
    per_prompt = {a: [measured["moments"][(j, a)].summary() for j in kept] for a in alphas}
    base = max(alphas)
    out = {
        "prompts_measured": len(kept),
        "prompts_total": len(mixed),
        # share of (prompt, draw) groups with mixed rewards: the only groups GRPO gets a gradient from
        "mixed_group_fraction": float(mixed.sum() / (len(mixed) * measured["draws"])),
        "alphas": {},
    }
    base_nv = np.array([s["nv"] for s in per_prompt[base]])
    base_var = np.array([s["var"] for s in per_prompt[base]])
    for a in alphas:
        nv = np.array([s["nv"] for s in per_prompt[a]])
        var = np.array([s["var"] for s in per_prompt[a]])
        ok = np.isfinite(nv) & np.isfinite(base_nv)
        out["alphas"][str(a)] = {
            "median_nv": float(np.median(nv[ok])) if ok.any() else None,
            "median_nv_ratio_to_grpo": float(np.median(nv[ok] / base_nv[ok])) if ok.any() else None,
            "prompts_nv_below_grpo": int((nv[ok] < base_nv[ok]).sum()),
            "resolved": int(ok.sum()),
            "unresolved": int((~ok).sum()),
            "median_raw_var_ratio_to_grpo": float(np.median(var / base_var)) if (base_var > 0).all() else None,
        }
    return out


def cmd_variance(args) -> dict:
    from tqdm import tqdm
    from transformers import AutoTokenizer

    from recipe_dypo.toy.model import load_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = load_model(args.model)
    ref_model = load_model(args.reference).eval().requires_grad_(False)
    run = RunConfig(n=args.n, max_response_length=args.max_response_length, seed=args.seed)
    step = FixedPolicyStep(run, compose_verl_config(run), model, ref_model, tokenizer)
    import pandas as pd

    prompts = pd.read_parquet(args.data).to_dict("records")
    alphas = sorted({float(a) for a in args.alphas.split(",")}, reverse=True)
    with tqdm(total=args.draws, desc=f"rollout draws ({len(prompts)} prompts x {args.n})") as bar:
        measured = measure(step, prompts, alphas, args.draws, bar)
    result = report(measured, alphas, args.min_mixed)
    result["args"] = vars(args)
    print(
        f"\ntheta = {args.model}; {args.draws} draws x {len(prompts)} prompts x {args.n} rollouts; "
        f"{result['prompts_measured']} prompts mixed in >= {args.min_mixed} draws; "
        f"{result['mixed_group_fraction']:.1%} of all groups mixed"
    )
    print(f"{'alpha':>6}{'median NV':>14}{'NV/NV_GRPO':>14}{'NV < GRPO':>11}{'raw Var ratio':>15}")
    for a in alphas:
        r = result["alphas"][str(a)]
        cells = [r["median_nv"], r["median_nv_ratio_to_grpo"], r["median_raw_var_ratio_to_grpo"]]
        nv, ratio, raw = (f"{c:.4g}" if c is not None else "n/a" for c in cells)
        print(f"{a:>6.2f}{nv:>14}{ratio:>14}{r['prompts_nv_below_grpo']:>6}/{r['resolved']:<4}{raw:>15}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(f"written to {args.out}")
    return result
