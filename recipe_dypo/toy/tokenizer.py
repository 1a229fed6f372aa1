"""A character-level tokenizer for the toy task, built in code (no download, no training).

Why characters: a tiny model must learn the task in minutes on a CPU. With one token per character, the
vocabulary is ~40 tokens (the embedding and the output projection stay a small part of the model), every digit
is its own token, and the answer format ``\\boxed{7}`` is a short fixed spelling the model learns in a few steps.
Qwen's conventions that the recipe relies on are kept: ChatML's special tokens (EOS ``<|im_end|>``) and
``<think>``/``</think>`` as single tokens (the reward grades the text after the last ``</think>``).
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]
# Everything the toy prompts, teacher solutions and ChatML headers are spelled with; any other character maps to
# "?" (the unknown token), which the task never produces.
ALPHABET = list("0123456789+-=*/()[]{}\\,.:;!? \nabcdefghijklmnopqrstuvwxyz")
UNKNOWN = "?"

# The toy prompt is the bare question followed by "=" ("3+5="): ChatML's role headers would add 18 tokens to a
# 3-token question, and on a CPU every trainer pass (old, reference and actor log-probs) pays for prompt tokens.
# Responses still end with ChatML's <|im_end|>, the EOS token verl and the rollout stop at.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}{% if add_generation_prompt %}={% endif %}"
)


def _byte_level(ch: str) -> str:
    """The symbol GPT-2/Qwen byte-level tokenizers use for the one-byte character ``ch`` (e.g. "\\n" -> "Ċ")."""
    code = ord(ch)
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    if code in printable:
        return ch
    return chr(256 + [b for b in range(256) if b not in printable].index(code))


def char_tokenizer():
    """A ``PreTrainedTokenizerFast``: one token per character of :data:`ALPHABET`, plus the special tokens.

    ``eos_token="<|im_end|>"``, ``pad_token="<|endoftext|>"``; decoding concatenates characters.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # A byte-level BPE without merges is a character tokenizer that survives transformers' loading: for a model
    # whose config says qwen2, AutoTokenizer rebuilds the tokenizer as Qwen2Tokenizer, keeping the vocabulary and
    # merges but imposing Qwen's byte-level pre-tokenizer and decoder. A plain word-level tokenizer would lose
    # every newline and letter run there; this one tokenizes identically either way.
    symbols = [_byte_level(ch) for ch in ALPHABET]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + THINK_TOKENS + symbols)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=_byte_level(UNKNOWN)))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=UNKNOWN,
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tok.add_tokens(THINK_TOKENS, special_tokens=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def save_char_tokenizer(path: str | Path):
    """Write the tokenizer to ``path`` and return it as ``AutoTokenizer.from_pretrained`` reads it back."""
    from transformers import AutoTokenizer

    char_tokenizer().save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
