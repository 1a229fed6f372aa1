"""The DYPO actor loss against verl's ``ppo_loss`` on one micro-batch, forward + backward, ratios from one run.

Two settings, each timed for verl's vanilla ``ppo_loss`` (the loss plain verl GRPO runs), the DYPO loss as trained
(gradient-signal metrics every step, the default) and the DYPO loss without those metrics
(``dypo.grad_metrics_interval=0``):

1. with the head: token log-probs computed from hidden states through a vocabulary-sized output layer
   (``log_softmax(h @ W)`` gathered at the response tokens), so the backward runs through the layer that
   dominates a real micro-batch's loss path. Target: DYPO <= 1.05x ``ppo_loss``.
2. the loss alone: log-probs given as a leaf tensor; only the element-wise loss graph runs. This magnifies the
   loss's own overhead (it is not what a step pays).

Shapes default to the GPU case (8 rows x 8192 tokens, 151936-token vocabulary, Qwen2.5's) on CUDA and to
8 rows x 512 tokens on CPU (the GPU shapes need ~40 GB for the logits alone).

    python benchmarks/bench_actor_loss.py
    python benchmarks/bench_actor_loss.py --rows 8 --tokens 1024 --vocab 151936 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch
from tensordict import TensorDict

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recipe_dypo.coefficients import StepSettings  # noqa: E402

PROMPT_LEN = 128


def timed(fn, repeat: int, device: str) -> float:
    """Best wall time of ``repeat`` runs after one warm-up, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def micro_batch(rows: int, tokens: int, device: str = "cpu", seed: int = 0, grad_metrics: bool = True):
    """A verl no-padding micro-batch as the DYPO trainer fills it: a quarter of the rows are teacher rows (SFT
    coefficient), the rest mid-prompt rollouts (GRPO and GAL coefficients). Response lengths in [tokens/2, tokens]."""
    from verl.utils import tensordict_utils as tu

    g = torch.Generator().manual_seed(seed)
    resp = torch.randint(tokens // 2, tokens + 1, (rows,), generator=g)

    def nested(ts):
        return torch.nested.as_nested_tensor([t.to(device) for t in ts], layout=torch.jagged)

    td = TensorDict(
        {
            "prompts": nested([torch.zeros(PROMPT_LEN, dtype=torch.long)] * rows),
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
        device=device,
    )
    td["dypo_sft_coef"][: rows // 4] = 1e-4
    td["dypo_pg_coef"][: rows // 4] = 0.0
    td["dypo_gal_coef"][: rows // 4] = 0.0
    settings = StepSettings(rows * 8, grad_metrics=grad_metrics).as_dict()
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(resp.sum()), global_batch_size=rows * 8, **settings)
    return td


def offsets_of(td) -> torch.Tensor:
    lengths = td["prompts"].offsets().diff() + td["responses"].offsets().diff()
    return torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])


def loss_only(loss_fn, config, td, device):
    """Log-probs are a leaf: the element-wise loss graph and its backward only."""
    offsets = offsets_of(td)
    leaf = (-torch.rand(int(offsets[-1]), device=device)).requires_grad_(True)

    def run():
        leaf.grad = None
        log_probs = torch.nested.nested_tensor_from_jagged(leaf * 1.0, offsets=offsets)
        loss, _ = loss_fn(config=config, model_output={"log_probs": log_probs}, data=td.clone())
        loss.backward()

    return run


def with_head(loss_fn, config, td, device, vocab: int, hidden: int):
    """Log-probs from hidden states through a vocab-sized output layer, as the model's head computes them."""
    offsets = offsets_of(td)
    n = int(offsets[-1])
    g = torch.Generator(device=device).manual_seed(1)
    states = torch.randn(n, hidden, device=device, generator=g, requires_grad=True)
    weight = (torch.randn(hidden, vocab, device=device, generator=g) * hidden**-0.5).requires_grad_(True)
    tokens = torch.randint(0, vocab, (n, 1), device=device, generator=g)

    def run():
        states.grad = weight.grad = None
        flat = torch.log_softmax(states @ weight, dim=-1).gather(-1, tokens).squeeze(-1)
        log_probs = torch.nested.nested_tensor_from_jagged(flat, offsets=offsets)
        loss, _ = loss_fn(config=config, model_output={"log_probs": log_probs}, data=td.clone())
        loss.backward()

    return run


def actor_configs():
    from verl.utils.config import omega_conf_to_dataclass

    from recipe_dypo.config import compose_config

    def actor(*overrides):
        return omega_conf_to_dataclass(
            compose_config(["actor_rollout_ref.actor.use_dynamic_bsz=true", *overrides]).actor_rollout_ref.actor
        )

    return actor(), actor("actor_rollout_ref.actor.use_kl_loss=false")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--tokens", type=int, default=None, help="max response tokens (default 8192 on cuda, 512 on cpu)")
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--hidden", type=int, default=None, help="head input width (default 3584 on cuda, 64 on cpu)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    tokens = args.tokens or (8192 if cuda else 512)
    hidden = args.hidden or (3584 if cuda else 64)

    from verl.workers.utils.losses import ppo_loss

    from recipe_dypo.actor_loss import dypo_actor_loss

    dypo_config, ppo_config = actor_configs()
    td = micro_batch(args.rows, tokens, args.device)
    td_quiet = micro_batch(args.rows, tokens, args.device, grad_metrics=False)
    cases = (
        ("verl ppo_loss", ppo_loss, ppo_config, td),
        ("DYPO loss", dypo_actor_loss, dypo_config, td),
        ("DYPO loss, no grad metrics", dypo_actor_loss, dypo_config, td_quiet),
    )
    print(f"micro-batch: {args.rows} rows x <= {tokens} response tokens (+{PROMPT_LEN} prompt), {args.device}")
    settings = (
        (f"with a {args.vocab}-token head (hidden {hidden})", partial(with_head, vocab=args.vocab, hidden=hidden)),
        ("loss alone (log-probs given)", loss_only),
    )
    for title, make in settings:
        print(f"\n{title}: best of {args.repeat}, forward + backward")
        base = None
        for name, fn, config, data in cases:
            seconds = timed(make(fn, config, data, args.device), args.repeat, args.device)
            base = base or seconds
            print(f"  {name:28s} {seconds * 1e3:9.2f} ms  {seconds / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
