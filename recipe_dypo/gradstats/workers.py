"""Local stand-ins for verl's workers at fixed parameters: rollout (``generate``), log-probs, loss gradient.

Trajectories are dicts with verl's per-trajectory field names (``prompts``, ``responses``, ``response_mask``,
``input_ids``, ``attention_mask``, ``position_ids``, ``rm_scores``, ``uid``, ``extra_info``), so the shared DYPO
step functions (:func:`recipe_dypo.teachers.teacher_row` etc.) take them unchanged. Micro-batches handed to the
actor loss use verl's no-padding TensorDict layout (nested tensors, see :func:`micro_batch`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tensordict import TensorDict

from recipe_dypo.coefficients import COEF_FIELDS, StepSettings, jagged_rows


def encode_prompts(tokenizer, rows: list[dict]) -> list[torch.Tensor]:
    """Chat-templated prompt token ids, one (P_i,) int64 tensor per row (as verl's dataset builds them)."""
    texts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    return [torch.tensor(tokenizer.encode(t, add_special_tokens=False), dtype=torch.long) for t in texts]


def left_pad(seqs: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) left-padded ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = s
        mask[i, width - len(s) :] = 1
    return ids, mask


def cut_at_eos(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Response ids up to and including the first EOS (all of them when there is none)."""
    hits = (tokens == eos_id).nonzero()
    return tokens[: int(hits[0]) + 1] if len(hits) else tokens


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[torch.Tensor],
    max_new_tokens: int,
    greedy: bool = False,
    temperature: float = 1.0,
    chunk: int = 64,
) -> tuple[list[torch.Tensor], float]:
    """Sample one response per prompt with ``model.generate`` (pure sampling: no top-k/top-p truncation).

    Args:
        prompts: list of B (P_i,) prompt ids.

    Returns:
        responses: list of B (R_i,) response ids, each ending with EOS unless cut at ``max_new_tokens``.
        entropy: mean next-token entropy of the sampling distribution over the generated tokens.
    """
    was_training = model.training
    model.eval()
    out: list[torch.Tensor] = []
    ent_sum, ent_count = 0.0, 0
    for start in range(0, len(prompts), chunk):
        ids, mask = left_pad(prompts[start : start + chunk], tokenizer.pad_token_id)
        kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
            **kwargs,
        )
        responses = [cut_at_eos(s, tokenizer.eos_token_id) for s in gen.sequences[:, ids.shape[1] :]]
        logits = torch.stack(gen.logits, dim=1).float() / (1.0 if greedy else temperature)  # (b, T, V)
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)  # (b, T)
        alive = torch.arange(entropy.shape[1])[None, :] < torch.tensor([len(r) for r in responses])[:, None]
        ent_sum += float(entropy[alive].sum())
        ent_count += int(alive.sum())
        out += responses
    model.train(was_training)
    return out, ent_sum / max(ent_count, 1)


def trajectory(prompt_ids: torch.Tensor, response_ids: torch.Tensor, score: float, uid: str, row: dict) -> dict:
    """One rollout in verl's per-trajectory field layout; the score sits on the last response token."""
    input_ids = torch.cat([prompt_ids, response_ids])
    rm_scores = torch.zeros(len(response_ids), dtype=torch.float32)
    rm_scores[-1] = score
    return {
        "prompts": prompt_ids,
        "responses": response_ids,
        "response_mask": torch.ones(len(response_ids), dtype=torch.int64),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "position_ids": torch.arange(len(input_ids)),
        "rm_scores": rm_scores,
        "uid": uid,
        "data_source": row["data_source"],
        "extra_info": row.get("extra_info") or {},
    }


def sequence_log_probs(model, rows: list[dict], with_entropy: bool = False):
    """Full-sequence next-token log-probs of each row, in verl's layout.

    Position t of row i holds log p(x_{t+1} | x_{<=t}); the last position holds 0.

    Returns:
        log_probs: list of N (S_i,) tensors (differentiable when grad is enabled).
        entropy: list of N (S_i,) tensors of the next-token entropy, or None.
    """
    seqs = [r["input_ids"] for r in rows]
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (N, S, V)
    logp_all = F.log_softmax(logits[:, :-1], dim=-1)
    lp = logp_all.gather(-1, ids[:, 1:, None]).squeeze(-1)
    lp = torch.cat([lp, lp.new_zeros(len(seqs), 1)], dim=1)
    log_probs = [lp[i, : len(s)] for i, s in enumerate(seqs)]
    if not with_entropy:
        return log_probs, None
    ent = -(logp_all.exp() * logp_all).sum(-1)
    ent = torch.cat([ent, ent.new_zeros(len(seqs), 1)], dim=1)
    return log_probs, [ent[i, : len(s)] for i, s in enumerate(seqs)]


def response_slice(full: torch.Tensor, row: dict) -> torch.Tensor:
    """The (R,) response part of a full-sequence log-prob vector (positions P-1 .. P+R-2)."""
    p, r = len(row["prompts"]), len(row["responses"])
    return full[p - 1 : p + r - 1]


@torch.no_grad()
def response_log_probs(model, rows: list[dict], chunk: int = 64, with_entropy: bool = False):
    """Per-row response log-probs (and entropies) without grad: verl's compute_log_prob / compute_ref_log_prob."""
    logps, ents = [], []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        lp, ent = sequence_log_probs(model, part, with_entropy)
        logps += [response_slice(x, r) for x, r in zip(lp, part)]
        if with_entropy:
            ents += [response_slice(x, r) for x, r in zip(ent, part)]
    return logps, (ents if with_entropy else None)


def micro_batch(rows: list[dict], idx: list[int], coefs: dict[str, torch.Tensor], total_rows: int) -> TensorDict:
    """Rows ``idx`` as the no-padding TensorDict verl's engine hands to the actor loss (dp_size = 1).

    Each row needs ``old_log_probs`` and ``advantages`` (R,) tensors; ``coefs`` maps the coefficient field names
    (:class:`recipe_dypo.coefficients.RowCoefficients`) to (N,) tensors over all rows.
    """
    from verl.utils import tensordict_utils as tu

    td = TensorDict(
        {
            "prompts": jagged_rows(rows[i]["prompts"] for i in idx),
            "responses": jagged_rows(rows[i]["responses"] for i in idx),
            "response_mask": jagged_rows(rows[i]["response_mask"] for i in idx),
            "old_log_probs": jagged_rows(rows[i]["old_log_probs"] for i in idx),
            "advantages": jagged_rows(rows[i]["advantages"] for i in idx),
            **{name: coefs[name][idx].float() for name in COEF_FIELDS},
        },
        batch_size=[len(idx)],
    )
    batch_tokens = int(sum(int(r["response_mask"].sum()) for r in rows))
    tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=batch_tokens, global_batch_size=len(rows))
    tu.assign_non_tensor(td, **StepSettings(total_rows=total_rows).as_dict())
    return td


def accumulate_loss_gradient(model, rows, coefs, loss_fn, actor_config, micro_batch_size: int) -> dict:
    """Backward of the actor loss on every micro-batch (gradients add up in ``.grad``), as verl's engine does.

    Args:
        loss_fn: :func:`recipe_dypo.actor_loss.dypo_actor_loss` (verl's loss-function signature).
        coefs: ``{coefficient field name: (N,)}`` (:meth:`RowCoefficients.fields`).

    Returns:
        the summed loss and its PG / SFT / linearised-GAL parts.
    """
    totals = {"loss": 0.0, "pg": 0.0, "sft": 0.0, "gal_linear": 0.0}
    for start in range(0, len(rows), micro_batch_size):
        idx = list(range(start, min(start + micro_batch_size, len(rows))))
        log_probs, _ = sequence_log_probs(model, [rows[i] for i in idx])
        td = micro_batch(rows, idx, coefs, total_rows=len(rows))
        loss, metrics = loss_fn(actor_config, {"log_probs": jagged_rows(log_probs)}, td)
        loss.backward()
        totals["loss"] += float(loss.detach())
        totals["pg"] += _metric_value(metrics["actor/pg_loss"])
        totals["sft"] += _metric_value(metrics["actor/dypo_sft_loss"])
        totals["gal_linear"] += _metric_value(metrics["actor/dypo_gal_linear"])
    return totals


def _metric_value(metric) -> float:
    """Sum of the values a verl ``Metric`` (or a plain number / tensor) holds."""
    values = getattr(metric, "values", [metric])
    return float(np.sum([float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for v in values]))
