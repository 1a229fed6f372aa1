"""Generation backends for the evaluator.

* ``vllm``: vLLM offline engine (GPU; the real path). ``vllm`` is imported only inside :class:`VLLMGenerator`, so
  the rest of the evaluator (and the tests) work without it.
* ``hf``: Hugging Face transformers ``generate`` (CPU or GPU; slow, for tests and tiny models).

Both take already-tokenised prompts (the chat template is applied once by :func:`render_prompt`) and return, per
request, a list of :class:`Completion`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Any

GREEDY_TEMPERATURE = 1e-5


@dataclass
class SamplingConfig:
    """Decoding protocol. Defaults follow the paper: temperature 0.6, 8192 new tokens; top-p defaults to 1.0."""

    temperature: float = 0.6
    top_p: float = 1.0
    max_new_tokens: int = 8192
    seed: int = 0

    @property
    def greedy(self) -> bool:
        """Greedy decoding (vLLM's rule: temperature below 1e-5). Neither engine samples ``n > 1`` greedy
        completions (vLLM: "n must be 1 when using greedy sampling"; transformers: no ``num_return_sequences`` > 1
        without sampling), so both backends decode a prompt once and repeat that completion ``n`` times."""
        return self.temperature < GREEDY_TEMPERATURE


@dataclass
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # stopped because of max_new_tokens, not EOS


@dataclass
class Request:
    """One prompt to sample ``n`` completions for; ``key`` seeds the sampling of this request."""

    prompt_ids: list[int]
    n: int
    key: str


def derive_seed(base_seed: int, key: str) -> int:
    """Stable 31-bit seed for one request (same prompt and sample ids -> same seed across runs)."""
    h = hashlib.sha256(f"{base_seed}:{key}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


FLOAT_DTYPES = ("float32", "bfloat16", "float16")


def checkpoint_dtype(model_path: str) -> str | None:
    """The dtype a checkpoint's config declares (``dtype``; ``torch_dtype`` before transformers 5), or None."""
    config_file = os.path.join(model_path, "config.json")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    else:  # a hub id (from the local cache when offline)
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(model_path, trust_remote_code=True).to_dict()
        except Exception:
            return None
    for c in (config, config.get("text_config")):  # multimodal configs keep the language model's dtype inside
        d = (c.get("dtype") or c.get("torch_dtype")) if isinstance(c, dict) else None
        if d and str(d).removeprefix("torch.") in FLOAT_DTYPES:
            return str(d).removeprefix("torch.")
    return None


def resolve_dtype(model_path: str, dtype: str = "auto") -> str:
    """The dtype both backends run ``model_path`` in: ``auto`` is the checkpoint's own dtype (as in transformers).

    Passing ``auto`` through would let the backends disagree: vLLM's ``auto`` downcasts a float32 checkpoint to
    bfloat16 (CPU, Ampere or newer GPUs) or float16, while transformers keeps float32, so the same command gave
    different greedy generations per backend. ``auto`` stays ``auto`` only when the config names no dtype.
    """
    if dtype != "auto":
        return dtype
    return checkpoint_dtype(model_path) or "auto"


def load_tokenizer(model_path: str, tokenizer_path: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path or model_path, trust_remote_code=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def render_prompt(tokenizer, messages: Any, use_chat_template: bool = True) -> str:
    """Prompt text for one row: the model's chat template with a generation prompt, or the raw contents joined."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages)


def encode_prompt(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class HFGenerator:
    """transformers ``generate`` backend. Batches requests that ask for the same number of samples."""

    def __init__(self, model_path: str, tokenizer=None, dtype: str = "auto", device: str | None = None, batch_size=8):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = resolve_dtype(model_path, dtype)
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            self.dtype
        ]
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype, trust_remote_code=True)
        self.model.to(device).eval()
        self.batch_size = max(1, int(batch_size))
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    def generate(self, requests: list[Request], cfg: SamplingConfig, on_done=None) -> list[list[Completion]]:
        """Sample ``r.n`` completions per request. ``on_done(index, completions)`` is called as requests finish."""
        torch = self.torch
        results: list[list[Completion] | None] = [None] * len(requests)
        # one generate() call per (batch of requests) with num_return_sequences=n; group by n
        by_n: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_n.setdefault(r.n, []).append(i)
        for n, idxs in by_n.items():
            per_batch = max(1, self.batch_size // n) if n <= self.batch_size else 1
            for start in range(0, len(idxs), per_batch):
                chunk = idxs[start : start + per_batch]
                torch.manual_seed(derive_seed(cfg.seed, "|".join(requests[i].key for i in chunk)))
                outs = self._generate_chunk([requests[i].prompt_ids for i in chunk], n, cfg)
                for j, i in enumerate(chunk):
                    results[i] = outs[j]
                    if on_done is not None:
                        on_done(i, outs[j])
        return results  # type: ignore[return-value]

    def _generate_chunk(self, prompts: list[list[int]], n: int, cfg: SamplingConfig) -> list[list[Completion]]:
        torch = self.torch
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding
            input_ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[row, width - len(p) :] = 1
        reps = 1 if cfg.greedy else n  # sequences generate() returns per prompt
        kwargs: dict[str, Any] = dict(
            max_new_tokens=cfg.max_new_tokens,
            num_return_sequences=reps,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
        )
        if cfg.greedy:
            kwargs.update(do_sample=False)
        else:
            kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
            )
        gen = out[:, width:].cpu()
        results: list[list[Completion]] = []
        for row in range(len(prompts)):
            comps = [self._completion(gen[row * reps + s].tolist()) for s in range(reps)]
            results.append(comps if reps == n else [replace(comps[0]) for _ in range(n)])
        return results

    def _completion(self, ids: list[int]) -> Completion:
        """One generated sequence: cut after the first EOS (kept, as vLLM counts it), the rest is padding."""
        length = len(ids)
        for pos, t in enumerate(ids):
            if t in self.eos_ids:
                length = pos + 1
                break
        ids = ids[:length]
        ended = bool(ids) and ids[-1] in self.eos_ids
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Completion(text=text, num_tokens=len(ids), truncated=not ended)


class VLLMGenerator:
    """vLLM offline backend. All requests of a call are submitted at once; vLLM schedules them."""

    def __init__(
        self,
        model_path: str,
        tokenizer=None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = False,
    ):
        try:
            from vllm import LLM  # lazy: vLLM is only needed on GPU machines
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise ImportError("the vllm backend needs `pip install vllm`; use --backend hf on CPU") from e
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_path)
        self.dtype = resolve_dtype(model_path, dtype)
        kwargs: dict[str, Any] = dict(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=self.dtype,
            seed=seed,
            trust_remote_code=True,
            enforce_eager=enforce_eager,
        )
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        self.llm = LLM(**kwargs)
        try:  # the engine's context limit, to clamp max_tokens for long prompts instead of failing the request
            self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        except Exception:  # pragma: no cover - attribute layout differs between vLLM versions
            self.max_model_len = None

    def _max_tokens(self, prompt_len: int, wanted: int) -> int:
        if self.max_model_len is None:
            return wanted
        return max(1, min(wanted, self.max_model_len - prompt_len))

    def generate(self, requests: list[Request], cfg: SamplingConfig, on_done=None) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = [
            SamplingParams(
                n=1 if cfg.greedy else r.n,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=self._max_tokens(len(r.prompt_ids), cfg.max_new_tokens),
                seed=derive_seed(cfg.seed, r.key),
            )
            for r in requests
        ]
        prompts = [{"prompt_token_ids": r.prompt_ids} for r in requests]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=True)
        results: list[list[Completion]] = []
        for i, out in enumerate(outputs):
            comps = [
                Completion(text=o.text, num_tokens=len(o.token_ids), truncated=o.finish_reason == "length")
                for o in out.outputs
            ]
            if cfg.greedy:
                comps = [replace(comps[0]) for _ in range(requests[i].n)]
            results.append(comps)
            if on_done is not None:
                on_done(i, comps)
        return results


def make_generator(backend: str, model_path: str, tokenizer=None, **kwargs):
    if backend == "hf":
        allowed = {"dtype", "device", "batch_size"}
        return HFGenerator(model_path, tokenizer=tokenizer, **{k: v for k, v in kwargs.items() if k in allowed})
    if backend == "vllm":
        allowed = {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "seed", "enforce_eager"}
        return VLLMGenerator(model_path, tokenizer=tokenizer, **{k: v for k, v in kwargs.items() if k in allowed})
    raise ValueError(f"unknown backend {backend!r}; choose 'vllm' or 'hf'")
