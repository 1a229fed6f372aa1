"""``actor_rollout_ref.rollout.name=hf``: a token-in/token-out rollout server running a Hugging Face model on CPU.

verl 0.9.1's rollout has two halves, and this module supplies both, as vLLM's backend does:

* :class:`HFReplica` / :class:`HFServer`: one Ray actor per rollout replica that the agent loop sends requests to
  (``generate(prompt_ids, sampling_params) -> token ids + log-probs``);
* :class:`HFServerAdapter`: lives inside each hybrid trainer worker and pushes the trainer's weights into its
  replica's server after every update (what vLLM receives through CUDA IPC arrives here as CPU tensors via Ray).

Sampling follows verl's rollout config: temperature, top-p, top-k, the response-length cap and the model's EOS
tokens; validation requests arrive with ``val_kwargs`` already applied by the agent loop. Log-probs are those of
the sampled token under ``softmax(logits / temperature)`` (no top-k/top-p renormalisation), which is what verl's
actor recomputes, so ``training/rollout_probs_diff_*`` measures the weight sync.

Reproducible sampling: each request draws from its own generator seeded by (``rollout.seed``, the weight version
the server holds, the prompt tokens, how many times this prompt was asked at this version, and the replica).
Requests of one prompt are interchangeable, so with one replica a group's set of responses depends only on the
weights, the prompt and the seed: a resumed run samples what the uninterrupted run sampled. With several replicas
(several trainer ranks) verl's load balancer decides which replica serves which request, so samples stay distinct
but which seeds a group gets depends on that routing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections import Counter

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

logger = logging.getLogger(__name__)


def server_name(replica_rank: int) -> str:
    return f"dypo_hf_rollout_server_{replica_rank}"


def request_seed(base_seed: int, weight_version, prompt_ids, occurrence: int, replica_rank: int = 0) -> int:
    """A 63-bit seed from the request's identity (stable across processes, unlike ``hash``).

    ``replica_rank`` keeps two replicas from drawing the same seed: each counts occurrences on its own, so without
    it a group split across replicas would contain identical responses.
    """
    replica = f"r{replica_rank}|" if replica_rank else ""
    key = f"{replica}{base_seed}|{weight_version}|{occurrence}|{','.join(map(str, prompt_ids))}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Keep the top-k tokens and the smallest set whose probability reaches top_p; others get -inf. (V,)

    transformers' own warpers (what ``generate`` applies), so the hf server samples as transformers does.
    """
    from transformers.generation.logits_process import LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if top_k > 0:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers(None, logits[None])[0] if warpers else logits


@torch.no_grad()
def sample_batch(model, prompts, max_tokens: int, temperature: float, top_p: float, top_k: int, eos_ids, generators):
    """Autoregressive sampling with a KV cache for prompts of EQUAL length (no padding, no attention mask).

    Args:
        prompts: B lists of token ids, all the same length.
        generators: one ``torch.Generator`` per row; row i's random draws come from ``generators[i]`` only.

    Returns:
        B pairs (token ids, log-probs of those tokens under softmax(logits / T)); a row stops after its first
        EOS token (the batch runs until every row has stopped or ``max_tokens``).
    """
    batch = len(prompts)
    input_ids = torch.tensor([list(p) for p in prompts], dtype=torch.long)
    past, done = None, [False] * batch
    tokens, log_probs = [[] for _ in range(batch)], [[] for _ in range(batch)]
    for _ in range(max_tokens):
        out = model(input_ids=input_ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1].float()
        if temperature > 0:
            logits = logits / temperature
        log_softmax = torch.log_softmax(logits, dim=-1)
        step = []
        for i in range(batch):
            if done[i]:
                step.append(0)  # a finished row keeps a slot in the batch; what it is fed is never read
                continue
            if temperature > 0:
                probs = torch.softmax(filter_logits(logits[i], top_k, top_p), dim=-1)
                token = int(torch.multinomial(probs, 1, generator=generators[i]))
            else:
                token = int(torch.argmax(logits[i]))
            tokens[i].append(token)
            log_probs[i].append(float(log_softmax[i, token]))
            done[i] = token in eos_ids
            step.append(token)
        if all(done):
            break
        input_ids = torch.tensor(step, dtype=torch.long).unsqueeze(1)
    return list(zip(tokens, log_probs))


def sample(model, prompt_ids, max_tokens: int, temperature: float, top_p: float, top_k: int, eos_ids, generator):
    """:func:`sample_batch` for one prompt: (token ids, log-probs)."""
    return sample_batch(model, [prompt_ids], max_tokens, temperature, top_p, top_k, eos_ids, [generator])[0]


class HFServer:
    """One rollout replica's generation server (a Ray actor).

    Requests that arrive together are generated together: the server collects what is pending, groups it by
    (prompt length, sampling parameters) and runs each group as one batch of :func:`sample_batch`, up to
    ``DYPO_HF_ROLLOUT_BATCH`` rows (default 256). Each row samples from its own seeded generator, so batching
    changes which rows share a forward pass, not which random numbers a row uses.
    """

    def __init__(self, config, model_path: str, replica_rank: int):
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(int(os.environ.get("DYPO_HF_ROLLOUT_THREADS", "1")))
        self.max_batch = int(os.environ.get("DYPO_HF_ROLLOUT_BATCH", "256"))
        self.config = config
        self.replica_rank = replica_rank
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.model.config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.seed = int(getattr(config, "seed", 0) or 0)
        self.global_steps = None
        self.sleeping = False
        self.lock = threading.Lock()
        self.occurrences: Counter = Counter()  # (weight version, prompt) -> requests so far
        self.pending: list = []  # (prompt ids, sampling params, future)
        self.worker: asyncio.Task | None = None

    async def ready(self) -> bool:
        return True

    def _sampling(self, prompt_ids: list[int], sampling_params: dict) -> tuple:
        """(max_tokens, temperature, top_p, top_k) of one request, defaults from the rollout config."""
        params = dict(sampling_params)
        max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
        if max_tokens is None:
            room = self.config.prompt_length + self.config.response_length - len(prompt_ids)
            max_tokens = min(self.config.response_length, room)
        temperature = float(params.get("temperature", 1.0) or 0.0)
        top_p = float(params.get("top_p", 1.0) if params.get("top_p") is not None else 1.0)
        top_k = int(params.get("top_k", -1) if params.get("top_k") is not None else -1)
        return max(1, int(max_tokens)), temperature, top_p, top_k

    def _generate_group(self, prompts: list[list[int]], sampling: tuple) -> list[tuple[list[int], list[float]]]:
        with self.lock:
            generators = []
            for prompt_ids in prompts:
                key = (self.global_steps, tuple(prompt_ids))
                seed = request_seed(self.seed, self.global_steps, prompt_ids, self.occurrences[key], self.replica_rank)
                self.occurrences[key] += 1
                generators.append(torch.Generator().manual_seed(seed))
            return sample_batch(self.model, prompts, *sampling, self.eos_ids, generators)

    async def _serve_pending(self):
        while self.pending:
            await asyncio.sleep(0.002)  # let the requests sent together arrive together
            taken, self.pending = self.pending, []
            groups: dict[tuple, list] = {}
            for prompt_ids, sampling, future in taken:
                groups.setdefault((len(prompt_ids), sampling), []).append((prompt_ids, future))
            for (_, sampling), members in groups.items():
                for start in range(0, len(members), self.max_batch):
                    chunk = members[start : start + self.max_batch]
                    try:
                        results = await asyncio.to_thread(self._generate_group, [m[0] for m in chunk], sampling)
                    except Exception as err:  # noqa: BLE001  (handed to the waiting requests)
                        for _, future in chunk:
                            future.set_exception(err)
                        continue
                    for (_, future), result in zip(chunk, results):
                        future.set_result(result)
        self.worker = None

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, video_data=None, **kwargs):
        if self.sleeping:
            raise RuntimeError(f"hf rollout replica {self.replica_rank}: generate called while asleep")
        if image_data is not None or video_data is not None:
            raise NotImplementedError("the hf CPU rollout serves text-only models")
        prompt_ids = list(prompt_ids)
        future = asyncio.get_running_loop().create_future()
        self.pending.append((prompt_ids, self._sampling(prompt_ids, sampling_params), future))
        if self.worker is None:
            self.worker = asyncio.create_task(self._serve_pending())
        tokens, log_probs = await future
        return TokenOutput(
            token_ids=tokens,
            log_probs=log_probs if sampling_params.get("logprobs") else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def update_weights(self, state_dict: dict) -> dict:
        with self.lock:
            missing, unexpected = self.model.load_state_dict(state_dict, strict=False)
            self.occurrences.clear()
        tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
        missing = [k for k in missing if k not in tied]
        if missing or unexpected:
            raise RuntimeError(f"hf rollout weight sync: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return {"tensors": len(state_dict)}

    async def set_global_steps(self, global_steps):
        self.global_steps = global_steps

    # Control plane: on CPU there is no device memory to release or KV cache to keep between requests.
    async def wake_up(self, tags=None):
        self.sleeping = False

    async def sleep(self):
        self.sleeping = True

    async def _no_op(self, *args, **kwargs):
        return None

    clear_kv_cache = release_kv_cache = resume_kv_cache = resume_generation = _no_op
    abort_all_requests = start_profile = stop_profile = _no_op


class HFReplica(RolloutReplica):
    """Launches one :class:`HFServer` per replica; needs no GPU of its own (hybrid mode shares the trainer's)."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self):
        model_path = self.model_config.get("local_path") or self.model_config.path
        # On the node of the replica's first trainer worker, as verl places its vLLM servers
        # (vllm_async_server.py launch_servers): with several nodes an unpinned server may land anywhere.
        node_id = await self.workers[0].__ray_call__.remote(lambda worker: ray.get_runtime_context().get_node_id())
        server = (
            ray.remote(HFServer)
            .options(
                name=server_name(self.replica_rank),
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
            )
            .remote(self.config, model_path, self.replica_rank)
        )
        await server.ready.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hf-rollout-replica-{self.replica_rank}"


class HFServerAdapter(BaseRollout):
    """The in-worker half: sends this rank's full weights to its replica's server (rank 0 of the replica)."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        rank = int(os.environ["RANK"])
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_server_rank = rank % world == 0
        self._server = None

    def _server_handle(self):
        if self.is_server_rank and self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        if self._server_handle() is not None:
            await self._server.wake_up.remote(tags=tags)

    async def release(self):
        if self._server_handle() is not None:
            await self._server.sleep.remote()

    @torch.no_grad()
    async def update_weights(self, weights, global_steps: int = None, wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hf rollout receives full named tensors, got wire_format={wire_format!r}")
        state = {}

        def keep(name, tensor):
            if hasattr(tensor, "full_tensor"):  # a DTensor shard (FSDP2): every rank takes part in gathering it
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", copy=True)

        if hasattr(weights, "__aiter__"):
            async for name, tensor in weights:
                keep(name, tensor)
        else:
            for name, tensor in weights:  # every rank drains the generator: it may run collectives
                keep(name, tensor)
        if self._server_handle() is not None:
            await self._server.update_weights.remote(state)
            if global_steps is not None:
                await self._server.set_global_steps.remote(global_steps)
