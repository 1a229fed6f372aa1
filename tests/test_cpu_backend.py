"""The CPU backend's pieces on their own: the patches are inert unless the CPU platform is selected, and the hf
rollout samples what verl's rollout config asks for, reproducibly, with the log-probs the actor recomputes."""

import pytest
import torch

from tests.e2e_support import probe

PROBE = """
import json, verl
import torch.distributed.fsdp as torch_fsdp
from torch.distributed.fsdp import _init_utils
from verl.plugin.platform import get_platform
from verl.plugin.platform.platform_manager import PlatformRegistry
from verl.utils import distributed, fsdp_utils, torch_functional
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
from verl.workers.rollout.replica import RolloutReplicaRegistry
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from recipe_dypo.cpu import patches, vllm_cpu
print("PROBE", json.dumps({
    "applied": patches.APPLIED,
    "vllm_applied": vllm_cpu.APPLIED,
    "vllm_rollout": _ROLLOUT_REGISTRY[("vllm", "async")],
    "platform": get_platform().device_name,
    "cpu_registered": "cpu" in PlatformRegistry.registered_names(),
    "process_group_fn": distributed.initialize_global_process_group_ray.__module__,
    "torchrun_process_group_fn": distributed.initialize_global_process_group.__module__,
    "offload_policy": fsdp_utils.CPUOffloadPolicy.__module__,
    "fsdp1_offload": torch_fsdp.CPUOffload.__module__,
    "sync_check": _init_utils._check_module_states_for_sync_module_states.__module__,
    "load_to_gpu": fsdp_utils.load_fsdp_model_to_gpu.__module__,
    "replay_buffer_init": ReplayBuffer.__init__.__module__,
    "log_probs_v2": torch_functional.logprobs_from_logits_v2.__module__,
    "hf_rollout": ("hf", "async") in _ROLLOUT_REGISTRY and "hf" in RolloutReplicaRegistry._registry,
}))
"""


def _probe(platform: str | None, **extra_env) -> dict:
    return probe(PROBE, platform, **extra_env)


def test_patches_are_inert_without_the_cpu_platform():
    """What a GPU machine gets from `import verl` with dypo-verl installed: verl's and torch's own functions and
    classes, verl's platform detection, and only the extra rollout name `hf`."""
    state = _probe(None)
    assert state["applied"] == [] and state["vllm_applied"] == [] and not state["cpu_registered"]
    # the weight-sync guard is not a CPU patch: every platform's vLLM rollout gets it (recipe_dypo/weight_sync.py)
    assert state["vllm_rollout"] == "recipe_dypo.weight_sync.GuardedServerAdapter"
    assert state["platform"] != "cpu"
    assert state["process_group_fn"] == state["torchrun_process_group_fn"] == "verl.utils.distributed"
    assert state["offload_policy"].startswith("torch.distributed")
    assert state["fsdp1_offload"].startswith("torch.distributed")
    assert state["sync_check"] == "torch.distributed.fsdp._init_utils"
    assert state["load_to_gpu"] == "verl.utils.fsdp_utils"
    assert state["replay_buffer_init"] == "verl.trainer.ppo.v1.replay_buffer"
    assert state["log_probs_v2"] == "verl.utils.torch_functional"
    assert state["hf_rollout"]


def test_cpu_platform_applies_every_patch():
    from recipe_dypo.cpu.patches import PATCHES

    state = _probe("cpu")
    assert state["applied"] == [p.__name__ for p in PATCHES]
    assert state["platform"] == "cpu" and state["cpu_registered"]
    keys = (
        "process_group_fn",
        "torchrun_process_group_fn",
        "offload_policy",
        "fsdp1_offload",
        "load_to_gpu",
        "replay_buffer_init",
        "log_probs_v2",
    )
    for key in keys:
        assert state[key] == "recipe_dypo.cpu.patches", key


def test_weight_sync_guard_can_be_switched_off():
    state = _probe(None, DYPO_WEIGHT_SYNC_TIMEOUT_S="0")
    assert state["vllm_rollout"] == "verl.workers.rollout.vllm_rollout.ServerAdapter"


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, max_position_embeddings=64, eos_token_id=3, tie_word_embeddings=True,
    )  # fmt: skip
    return Qwen2ForCausalLM(config).eval()


def test_filter_logits_top_k_and_top_p():
    from recipe_dypo.cpu.hf_rollout import filter_logits

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    kept = lambda out: torch.isfinite(out).nonzero().flatten().tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2, top_p=1.0)) == [0, 1]
    assert kept(filter_logits(logits, top_k=-1, top_p=0.8)) == [0, 1]  # 0.5 + 0.3 reaches 0.8
    assert kept(filter_logits(logits, top_k=-1, top_p=0.81)) == [0, 1, 2]
    assert kept(filter_logits(logits[[3, 1, 0, 2]], top_k=-1, top_p=0.5)) == [2]  # order does not matter
    assert kept(filter_logits(logits, top_k=0, top_p=1.0)) == [0, 1, 2, 3]


def test_sample_is_seeded_and_returns_the_actor_log_probs(tiny_model):
    from recipe_dypo.cpu.hf_rollout import request_seed, sample

    prompt = [5, 6, 7]
    seed = request_seed(42, 0, prompt, 1)
    assert seed == request_seed(42, 0, prompt, 1) != request_seed(42, 0, prompt, 2)
    run = lambda s, t=1.3: sample(tiny_model, prompt, 12, t, 1.0, -1, {3}, torch.Generator().manual_seed(s))  # noqa: E731
    tokens, log_probs = run(seed)
    assert (tokens, log_probs) == run(seed) and run(seed)[0] != run(seed + 1)[0]
    assert len(tokens) == len(log_probs) <= 12 and (3 not in tokens[:-1])
    # what verl's actor computes: log_softmax(logits / temperature) of the sampled tokens, one full forward
    ids = torch.tensor([prompt + tokens])
    logits = tiny_model(input_ids=ids).logits[0, len(prompt) - 1 : -1] / 1.3
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
    assert torch.allclose(torch.tensor(log_probs), expected, atol=1e-5)


def test_greedy_sampling_and_eos(tiny_model):
    from recipe_dypo.cpu.hf_rollout import sample

    tokens, _ = sample(tiny_model, [5, 6, 7], 20, 0.0, 1.0, -1, set(), torch.Generator().manual_seed(0))
    again, _ = sample(tiny_model, [5, 6, 7], 20, 0.0, 1.0, -1, set(), torch.Generator().manual_seed(1))
    assert tokens == again and len(tokens) == 20  # greedy ignores the seed; no EOS -> max tokens
    eos = tokens[4]
    cut, _ = sample(tiny_model, [5, 6, 7], 20, 0.0, 1.0, -1, {eos}, torch.Generator().manual_seed(0))
    assert cut == tokens[: tokens.index(eos) + 1]  # stops after the first EOS, EOS included


def test_batched_sampling_matches_one_request_at_a_time(tiny_model):
    """The server batches requests of equal prompt length; each row still draws from its own generator, so a
    request samples the same tokens (and log-probs, to float tolerance) as it would alone."""
    from recipe_dypo.cpu.hf_rollout import sample, sample_batch

    prompts = [[5, 6, 7], [8, 9, 10], [5, 6, 7], [11, 12, 13]]
    seeds = [1, 2, 3, 4]
    for temperature in (1.3, 0.0):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        batched = sample_batch(tiny_model, prompts, 16, temperature, 0.9, 20, {3}, gens)
        for prompt, seed, (tokens, log_probs) in zip(prompts, seeds, batched):
            alone = sample(tiny_model, prompt, 16, temperature, 0.9, 20, {3}, torch.Generator().manual_seed(seed))
            assert tokens == alone[0]
            assert log_probs == pytest.approx(alone[1], abs=1e-5)
        assert all(3 not in tokens[:-1] for tokens, _ in batched)  # a row stops at its own EOS
    assert len({tuple(t) for t, _ in batched[:1] + batched[2:3]}) == 1  # greedy: same prompt, same response


def test_vectorised_log_probs_equal_verls_loop(monkeypatch):
    from verl.utils import torch_functional

    from recipe_dypo.cpu import patches

    original = torch_functional.logprobs_from_logits_v2
    logits = torch.randn(3, 7, 11, dtype=torch.float32)
    labels = torch.randint(0, 11, (3, 7))
    expected = original(logits, labels)
    monkeypatch.setattr(patches, "_replace", lambda module, name, new: monkeypatch.setattr(module, name, new))
    patches.vectorised_log_probs()
    assert torch_functional.logprobs_from_logits_v2 is not original
    torch.testing.assert_close(torch_functional.logprobs_from_logits_v2(logits, labels), expected, rtol=0, atol=1e-6)
    bf16 = logits.bfloat16()  # other dtypes keep verl's own path
    torch.testing.assert_close(torch_functional.logprobs_from_logits_v2(bf16, labels), original(bf16, labels))


def test_replicas_never_share_a_seed():
    from recipe_dypo.cpu.hf_rollout import request_seed

    prompt = [5, 6, 7]
    assert request_seed(1, 3, prompt, 0) == request_seed(1, 3, prompt, 0, replica_rank=0)  # one replica: unchanged
    seeds = {request_seed(1, 3, prompt, occ, replica) for occ in range(4) for replica in range(2)}
    assert len(seeds) == 8
