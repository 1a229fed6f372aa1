"""A small byte-level BPE tokenizer with a ChatML template, trained locally on the toy corpus.

Why not the Qwen tokenizer (``recipe_dypo.tokenizer_files.load_qwen_tokenizer``)? Its 151k-token vocabulary
would make the embedding and the output projection of a ~1M-parameter model 10-20x larger than the transformer
itself, and computing logits over 151k tokens for every generated token would dominate CPU time. A 512-token
byte-level BPE trained on the toy prompts and teacher solutions keeps every string representable (byte fallback),
splits digits one per token (as Qwen does), and keeps the Qwen conventions the recipe relies on:
ChatML (``<|im_start|>``/``<|im_end|>``, EOS ``<|im_end|>``) and ``<think>``/``</think>`` as single tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Special tokens are skipped when decoding; <think>/</think> are plain added tokens so decoded text keeps them
# (the reward grades only the text after the last </think>).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def corpus_from_rows(rows: Iterable[dict]) -> list[str]:
    """Texts the BPE merges are learned from: every prompt message and every teacher response."""
    texts = ["user\n", "assistant\n", "system\n"]  # ChatML role headers
    for row in rows:
        texts += [m["content"] for m in row["prompt"]]
        texts += [t["response"] for t in (row.get("extra_info") or {}).get("teachers", [])]
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """Train a byte-level BPE and wrap it as a ``transformers`` fast tokenizer.

    Args:
        texts: training corpus.
        vocab_size: total vocabulary including the 256 byte tokens and the special tokens.

    Returns:
        ``PreTrainedTokenizerFast`` with ChatML template, ``eos_token="<|im_end|>"``, ``pad_token="<|endoftext|>"``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tok.add_tokens(THINK_TOKENS, special_tokens=False)
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_or_load_tokenizer(path: str | Path, texts: list[str] | None = None, vocab_size: int = 512):
    """``AutoTokenizer.from_pretrained(path)``; trains and saves the tokenizer there first if absent."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").exists():
        if texts is None:
            raise FileNotFoundError(f"no tokenizer at {path} and no corpus to train one")
        train_tokenizer(texts, vocab_size).save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
