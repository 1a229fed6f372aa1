"""A tiny randomly initialised Qwen2 causal LM, saved and reloaded through ``save_pretrained``/``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_qwen2_config(vocab_size: int, eos_token_id: int, pad_token_id: int, size: str = "tiny"):
    """A ``Qwen2Config`` small enough to train on 2 CPU cores in minutes.

    ``tiny``: hidden 192, 2 layers, 4 heads (2 KV heads), MLP 384: 0.68M parameters (61-token vocabulary). Picked
    by measurement: with plain SFT on the toy task, held-out accuracy after 100 steps of 32 examples was 0.45 (two
    seeds) against 0.15-0.2 for hidden 96 / MLP 256, at about 1.4x the compute per step.
    ``micro``: hidden 32, 1 layer (unit tests).
    """
    from transformers import Qwen2Config

    dims = {
        "tiny": dict(
            hidden_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=384
        ),
        "micro": dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
        ),
    }[size]
    return Qwen2Config(
        vocab_size=vocab_size,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        rope_theta=10000.0,
        **dims,
    )


def create_model(path: str | Path, tokenizer, size: str = "tiny", seed: int = 0):
    """Initialise a random Qwen2 model for ``tokenizer``, save it to ``path`` and load it back from disk."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_qwen2_config(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, size)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_model(path)


def load_model(path: str | Path):
    """``AutoModelForCausalLM.from_pretrained`` in float32 on CPU, in train mode with dropout off (Qwen2 has none)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.generation_config.pad_token_id = model.config.pad_token_id
    model.generation_config.eos_token_id = model.config.eos_token_id
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
