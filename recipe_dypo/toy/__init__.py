"""The toy task the CPU quickstart and the end-to-end tests train on: single-digit addition, a character-level
tokenizer and a tiny randomly initialised Qwen2 (see :mod:`recipe_dypo.toy.addition`)."""
