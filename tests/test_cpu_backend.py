"""The CPU backend's pieces on their own: the patches are inert unless the CPU platform is selected, and the hf
rollout samples what verl's rollout config asks for, reproducibly, with the log-probs the actor recomputes."""

import asyncio
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from tests.e2e_support import probe

PROBE = """
import json, sys, verl
import torch.distributed.fsdp as torch_fsdp
from torch.distributed.fsdp import _init_utils
from verl.plugin.platform import get_platform
from verl.plugin.platform.platform_manager import PlatformRegistry
from verl.utils import distributed, fsdp_utils, torch_functional
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
from verl.workers.rollout.replica import RolloutReplicaRegistry
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead
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
    "agent_loop_worker_init": AgentLoopWorker.__init__.__module__,
    "server_acquire": LLMServerClient._acquire_server.__module__,
    "forward_step": FSDPEngineWithLMHead.forward_step.__module__,
    "agent_loop_hydra": type(sys.modules["verl.experimental.agent_loop.agent_loop"].hydra).__name__,
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
    assert state["agent_loop_worker_init"] == "verl.experimental.agent_loop.agent_loop"
    assert state["server_acquire"] == "verl.workers.rollout.llm_server"
    assert state["agent_loop_hydra"] == "module"
    assert state["forward_step"] == "verl.workers.engine.fsdp.transformer_impl"
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
        "agent_loop_worker_init",
        "server_acquire",
        "forward_step",
    )
    for key in keys:
        assert state[key] == "recipe_dypo.cpu.patches", key
    assert state["agent_loop_hydra"] == "SimpleNamespace"


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


class _FakeBalancer:
    """verl's GlobalRequestLoadBalancer as an agent-loop worker sees it: methods with an awaitable ``.remote``."""

    def __init__(self, servers: dict):
        self.servers, self.calls, self.inflight = servers, [], dict.fromkeys(servers, 0)
        for name in (
            "require_acquire_fields",
            "require_release_fields",
            "acquire_server",
            "release_server",
            "get_all_servers",
        ):
            setattr(self, name, SimpleNamespace(remote=partial(self._call, name)))

    def _call(self, name, **kwargs):
        self.calls.append(name)
        if name == "acquire_server":
            server_id = min(self.inflight, key=self.inflight.get)
            self.inflight[server_id] += 1
            return self._done((server_id, self.servers[server_id]))
        if name == "release_server":
            self.inflight[kwargs["server_id"]] -= 1
            return None  # verl does not await the release
        if name == "get_all_servers":
            return self._done(list(self.servers))
        return self._done([] if name == "require_release_fields" else ["request_id"])

    @staticmethod
    async def _done(value):
        return value


def _request_twice_concurrently_then_once(client) -> list:
    async def request(request_id):
        server = await client._acquire_server(request_id)
        await asyncio.sleep(0)
        client._release_server(server[0], request_id=request_id)
        return server

    async def main():
        first = await asyncio.gather(request("a"), request("b"))
        return [*first, await request("c"), await request("d")]

    return asyncio.run(main())


@pytest.mark.parametrize("n_servers", [1, 2])
def test_requests_go_straight_to_a_server_that_serves_alone(monkeypatch, n_servers):
    from verl.workers.rollout.llm_server import LLMServerClient

    from recipe_dypo.cpu import patches

    for name in ("_acquire_server", "_release_server"):  # restored after the test
        monkeypatch.setattr(LLMServerClient, name, getattr(LLMServerClient, name))
    patches.direct_to_single_server()
    servers = {f"s{i}": f"handle{i}" for i in range(n_servers)}
    balancer = _FakeBalancer(servers)
    client = object.__new__(LLMServerClient)
    client._load_balancer = balancer
    client._lb_require_acquire_fields = client._lb_require_release_fields = None
    got = _request_twice_concurrently_then_once(client)
    assert balancer.inflight == dict.fromkeys(servers, 0)  # every acquire the balancer saw was released
    if n_servers == 1:
        assert got == [("s0", "handle0")] * 4
        # the two first requests ask the balancer; the later ones go straight to the server
        assert balancer.calls.count("acquire_server") == balancer.calls.count("release_server") == 2
    else:
        assert {server for server, _ in got} == {"s0", "s1"}
        assert balancer.calls.count("acquire_server") == balancer.calls.count("release_server") == 4


def test_agent_loop_workers_grade_in_their_own_process(monkeypatch):
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop import agent_loop
    from verl.experimental.reward_loop import reward_loop

    from recipe_dypo.cpu import patches

    def plain_init(self, config, llm_client=None, teacher_client=None, reward_loop_worker_handles=None):
        self.config, self.reward_loop_worker_handles = config, reward_loop_worker_handles

    built = []

    class RewardLoopWorker:  # verl's class, as far as the patch uses it
        def __init__(self, config):
            built.append(config)

        async def compute_score(self, data):
            return {"reward_score": float(sum(data)), "reward_extra_info": {}}

    monkeypatch.setattr(agent_loop.AgentLoopWorker, "__init__", plain_init)
    monkeypatch.setattr(reward_loop, "RewardLoopWorker", RewardLoopWorker)
    patches.in_process_reward()

    def worker(reward_model: bool, handles):
        config = OmegaConf.create({"reward": {"reward_model": {"enable": reward_model}}})
        return agent_loop.AgentLoopWorker(config, None, reward_loop_worker_handles=handles)

    assert worker(False, None).reward_loop_worker_handles is None  # no streaming reward: verl's path
    assert worker(True, ["rm-actor"]).reward_loop_worker_handles == ["rm-actor"]  # a reward model: verl's path
    (local,) = worker(False, ["actor-1", "actor-2"]).reward_loop_worker_handles

    async def score_twice():
        return [await local.compute_score.remote([1, 2]), await local.compute_score.remote([3])]

    assert [r["reward_score"] for r in asyncio.run(score_twice())] == [3.0, 3.0]
    assert len(built) == 1  # one reward worker object per agent-loop worker, built on first use


def test_registered_agent_loops_are_built_as_hydra_builds_them(monkeypatch):
    import hydra
    from verl.experimental.agent_loop import agent_loop
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop

    from recipe_dypo.cpu import patches

    monkeypatch.setattr(agent_loop, "hydra", hydra)
    patches.agent_loops_built_directly()
    registered = agent_loop._agent_loop_registry["single_turn_agent"]
    assert registered == {"_target_": f"{SingleTurnAgentLoop.__module__}.SingleTurnAgentLoop"}
    calls = []
    monkeypatch.setattr(SingleTurnAgentLoop, "__init__", lambda self, **kwargs: calls.append(kwargs))
    arguments = {"trainer_config": DictConfigWrap(config={"a": 1}), "server_manager": object(), "tokenizer": None}
    built = [
        agent_loop.hydra.utils.instantiate(config=registered, **arguments),
        hydra.utils.instantiate(registered, **arguments),
    ]
    assert [type(b) for b in built] == [SingleTurnAgentLoop] * 2
    assert calls[0] == calls[1] and all(calls[0][k] is v for k, v in arguments.items())
    file_config = {"_target_": registered["_target_"], "name": "from_a_file"}  # hydra's own path
    monkeypatch.setattr(hydra.utils, "instantiate", lambda config, **kwargs: ("hydra", config))
    assert agent_loop.hydra.utils.instantiate(config=file_config) == ("hydra", file_config)


def test_forward_step_reads_the_micro_batch_it_was_given(monkeypatch):
    from tensordict import NonTensorStack, TensorDict
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    from recipe_dypo.cpu import patches

    seen = []

    def verls_forward_step(self, micro_batch, loss_function, forward_only):  # as verl's starts
        moved = micro_batch.to("cpu")
        seen.append(moved)
        return moved["x"].sum(), {"forward_only": forward_only}

    monkeypatch.setattr(FSDPEngineWithLMHead, "forward_step", verls_forward_step)
    patches.micro_batches_used_in_place()
    batch = TensorDict({"x": torch.arange(4.0), "prompt": NonTensorStack("a", "b", "c", "d")}, batch_size=[4])
    loss, output = FSDPEngineWithLMHead.forward_step(None, batch, None, True)
    assert seen[0] is batch and loss.item() == 6.0 and output == {"forward_only": True}
    assert batch.to("cpu") is not batch  # TensorDict.to is back once the step is done
    assert sorted(batch.keys()) == ["prompt", "x"]


def test_replicas_never_share_a_seed():
    from recipe_dypo.cpu.hf_rollout import request_seed

    prompt = [5, 6, 7]
    assert request_seed(1, 3, prompt, 0) == request_seed(1, 3, prompt, 0, replica_rank=0)  # one replica: unchanged
    seeds = {request_seed(1, 3, prompt, occ, replica) for occ in range(4) for replica in range(2)}
    assert len(seeds) == 8
