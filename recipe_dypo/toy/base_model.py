"""The toy tables' base model: the tiny Qwen2, briefly pre-trained so that it starts partly competent.

The paper's base models score 11-44 on its in-distribution sets before any training; a randomly initialised model
scores 0, where GRPO has no mixed group to learn from and every RL baseline would be unfair. So the project
pre-trains the tiny model for a few hundred steps of plain next-token prediction on related text: the training
prompts, half answered in a short style (``17+8=\\boxed{25}``), half worked in a teacher style
(recipe_dypo/toy/benchmark.py ``pretraining_texts``), stopped early on purpose.
This is asset building, like recipe_dypo/toy/model.py's random initialisation: every table row starts from the
same saved weights, and all training of the rows goes through verl's trainers.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

PRETRAIN_STEPS = 420
PRETRAIN_BATCH = 64
PRETRAIN_LR = 1e-3


def _encode(tokenizer, question: str, answer: str) -> list[int]:
    """The prompt as the chat template renders it for generation ("17+8="), the answer, then EOS."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer.encode(prompt + answer, add_special_tokens=False) + [tokenizer.eos_token_id]


def pretrain(
    model,
    tokenizer,
    texts: list[tuple[str, str]],
    steps: int = PRETRAIN_STEPS,
    seed: int = 0,
    batch_size: int = PRETRAIN_BATCH,
    lr: float = PRETRAIN_LR,
) -> list[float]:
    """Next-token prediction on every token of ``texts`` (question, answer) for ``steps`` AdamW steps; returns
    the loss of each step. Batches are drawn without replacement, reshuffled every epoch, by ``seed``."""
    rng = random.Random(f"toy-pretrain:{seed}")
    encoded = [_encode(tokenizer, q, a) for q, a in texts]
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    order: list[int] = []
    losses = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(encoded)), len(encoded))
        batch, order = [encoded[i] for i in order[:batch_size]], order[batch_size:]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def greedy_accuracy(model, tokenizer, rows: list[dict], max_new_tokens: int = 24, batch_size: int = 128) -> float:
    """Fraction of ``rows`` (verl schema) whose greedy answer the project's reward scores correct."""
    from recipe_dypo.reward import compute_score

    tokenizer.padding_side = "left"
    correct = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(list(r["prompt"]), add_generation_prompt=True, tokenize=False) for r in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for r, text in zip(chunk, texts):
            score = compute_score(r["data_source"], text, r["reward_model"]["ground_truth"])
            correct += float(score["score"] if isinstance(score, dict) else score) > 0
    return correct / len(rows)


def build_base_model(out: str | Path, tokenizer_dir: str | Path, seed: int = 0, steps: int = PRETRAIN_STEPS) -> dict:
    """Initialise the tiny Qwen2 (recipe_dypo/toy/model.py), pre-train it and save it to ``out``; returns facts."""
    from transformers import AutoTokenizer

    from recipe_dypo.toy import benchmark
    from recipe_dypo.toy.model import count_parameters, create_model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = create_model(out, tokenizer, size="tiny", seed=seed)
    torch.manual_seed(seed)
    losses = pretrain(model, tokenizer, benchmark.pretraining_texts(seed), steps=steps, seed=seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"parameters": count_parameters(model), "pretrain_steps": steps, "pretrain_loss_last": losses[-1]}
