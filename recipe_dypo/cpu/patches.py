"""The minimum changes to verl 0.9.1 internals for its trainer to run on CPU; applied only on the CPU platform.

Each patch names the verl (or torch) code it works around and why. :func:`apply` is a no-op unless
``VERL_PLATFORM=cpu`` (tests/test_cpu_backend.py checks that a plain ``import verl`` leaves every target
untouched). A patched name is replaced where it is defined and in every already-imported verl module that bound
it with ``from ... import name``, so the result does not depend on import order.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import sys

from recipe_dypo.cpu import cpu_selected

logger = logging.getLogger(__name__)

APPLIED: list[str] = []  # names of the patches applied in this process, in order


def _replace(module, name: str, new) -> None:
    old = getattr(module, name)
    setattr(module, name, new)
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("verl.") and mod is not module and getattr(mod, name, None) is old:
            setattr(mod, name, new)


def gloo_process_group() -> None:
    """verl/utils/distributed.py builds the backend string ``f"cpu:gloo,{device}:{backend}"``, i.e.
    "cpu:gloo,cpu:gloo" on CPU, which torch rejects (a device type may appear once): in
    ``initialize_global_process_group_ray`` (Ray workers of the RL trainer) and in
    ``initialize_global_process_group`` (verl's SFT trainer under torchrun). On CPU the one backend is gloo."""
    import os
    from datetime import timedelta

    import torch.distributed
    from verl.utils import distributed

    original = distributed.initialize_global_process_group_ray

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    def initialize_global_process_group(timeout_second=36000):
        # verl's body with backend "gloo" (there is no device to select afterwards)
        torch.distributed.init_process_group(
            backend="gloo",
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    _replace(distributed, "initialize_global_process_group_ray", initialize_global_process_group_ray)
    _replace(distributed, "initialize_global_process_group", initialize_global_process_group)


def fsdp2_offload_without_pinning() -> None:
    """verl/workers/engine/fsdp/transformer_impl.py builds the FSDP2 reference model with
    ``CPUOffloadPolicy(pin_memory=True)``; pinning host memory needs an accelerator ("Cannot access accelerator
    device when none is available"). Offloading to CPU on CPU is moot: keep the policy, never pin."""
    from verl.utils import fsdp_utils

    base = fsdp_utils.CPUOffloadPolicy
    if base is None:
        return

    @dataclasses.dataclass
    class CPUOffloadPolicyNoPin(base):
        def __post_init__(self):
            object.__setattr__(self, "pin_memory", False)

    _replace(fsdp_utils, "CPUOffloadPolicy", CPUOffloadPolicyNoPin)


def fsdp1_offload_off() -> None:
    """verl/workers/engine/fsdp/transformer_impl.py builds the FSDP1 reference model with
    ``CPUOffload(offload_params=True)``; torch then pins the offloaded flat parameters
    (torch/distributed/fsdp/_flat_param.py), which needs an accelerator. On CPU the parameters already live in host
    memory: offloading is switched off. transformer_impl imports the name from torch, so torch's binding is
    replaced (in this CPU-platform process only)."""
    import torch.distributed.fsdp as torch_fsdp

    base = torch_fsdp.CPUOffload

    @dataclasses.dataclass
    class CPUOffloadOff(base):
        def __post_init__(self):
            object.__setattr__(self, "offload_params", False)

    _replace(torch_fsdp, "CPUOffload", CPUOffloadOff)


def fsdp1_skip_device_check_of_sync_module_states() -> None:
    """verl/workers/engine/fsdp/transformer_impl.py wraps FSDP1 models with ``sync_module_states=True``; torch
    refuses CPU-resident module states for it (torch/distributed/fsdp/_init_utils.py
    ``_check_module_states_for_sync_module_states``), although the broadcast itself works over gloo."""
    from torch.distributed.fsdp import _init_utils

    _init_utils._check_module_states_for_sync_module_states = lambda module_states: None


def fsdp1_load_in_place() -> None:
    """verl/utils/fsdp_utils.py ``load_fsdp_model_to_gpu`` moves FSDP1 flat parameters to
    ``torch.device(f"{device_name}:{device_id}")``, which is "cpu:cpu" here (invalid). On CPU they are already
    where they belong, so the FSDP1 branch does nothing (FSDP2 keeps verl's code)."""
    from verl.utils import fsdp_utils

    original = fsdp_utils.load_fsdp_model_to_gpu

    def load_fsdp_model_to_gpu(model):
        if fsdp_utils.fsdp_version(model) == 1:
            return None
        return original(model)

    _replace(fsdp_utils, "load_fsdp_model_to_gpu", load_fsdp_model_to_gpu)


CPU_POLL_INTERVAL_S = 0.05


def fast_rollout_polling() -> None:
    """verl/trainer/ppo/v1/replay_buffer.py ``ReplayBuffer`` polls TransferQueue for finished rollouts every 2 s
    (``poll_interval``, not exposed in the config). A tiny model's rollout on CPU takes a fraction of that, so every
    step would wait for the next poll; on the CPU backend it polls every 50 ms. Timing only: what is sampled and
    trained does not change."""
    from verl.trainer.ppo.v1 import replay_buffer

    original = replay_buffer.ReplayBuffer.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.poll_interval = min(self.poll_interval, CPU_POLL_INTERVAL_S)

    __init__.__module__ = __name__
    replay_buffer.ReplayBuffer.__init__ = __init__


def vectorised_log_probs() -> None:
    """verl/utils/torch_functional.py ``logprobs_from_logits_v2`` (the path taken without flash-attn's or NPU's
    cross-entropy kernels) computes ``logsumexp`` in a Python loop over the first dimension of the logits, one
    call per token of the micro-batch, to bound GPU memory. On CPU with a small vocabulary the loop was 17 % of a
    trainer worker's time (py-spy); one vectorised ``logsumexp`` gives the same values (float32/float64 only)."""
    import torch
    from verl.utils import torch_functional

    original = torch_functional.logprobs_from_logits_v2

    def logprobs_from_logits_v2(logits, labels):
        if logits.dtype not in (torch.float32, torch.float64):
            return original(logits, labels)
        picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
        return picked - torch.logsumexp(logits, dim=-1)

    _replace(torch_functional, "logprobs_from_logits_v2", logprobs_from_logits_v2)


def in_process_reward() -> None:
    """verl/experimental/agent_loop/agent_loop.py ``AgentLoopWorker._compute_score`` sends every rollout to a
    RewardLoopWorker actor, one Ray call per response (``compute_score.remote``). For a rule-based reward on CPU
    the call costs more than the grading: between them the agent-loop workers' serialisation and the reward
    actor's own work were ~20 % of the two cores of a quickstart step (py-spy). Here each agent-loop worker grades
    in its own process with a RewardLoopWorker object of its own, verl's class (same reward manager, reward
    function and results), built on first use so its reward manager binds the worker's running event loop. Only
    when verl would stream rewards to workers without a reward model (``reward_loop_worker_handles`` set,
    ``reward.reward_model.enable`` false); a reward model keeps verl's path."""
    import types

    from verl.experimental.agent_loop import agent_loop

    original = agent_loop.AgentLoopWorker.__init__

    class InProcessRewardWorker:
        """Stands in for a RewardLoopWorker handle: ``compute_score.remote(data)`` returns an awaitable."""

        def __init__(self, config):
            self._config = config
            self._worker = None
            self.compute_score = types.SimpleNamespace(remote=self._compute_score)

        async def _compute_score(self, data):
            if self._worker is None:
                from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

                self._worker = RewardLoopWorker(self._config)
            return await self._worker.compute_score(data)

    @functools.wraps(original)
    def __init__(self, config, *args, **kwargs):
        original(self, config, *args, **kwargs)
        if self.reward_loop_worker_handles is not None and not config.reward.reward_model.enable:
            self.reward_loop_worker_handles = [InProcessRewardWorker(config)]

    __init__.__module__ = __name__
    agent_loop.AgentLoopWorker.__init__ = __init__


def direct_to_single_server() -> None:
    """verl/workers/rollout/llm_server.py ``LLMServerClient.generate`` asks the GlobalRequestLoadBalancer actor for
    a server before every request and tells it when the request ends: two Ray calls per rollout besides the
    generation, and the balancer actor used ~15 % of a core in a quickstart step. With one rollout server (the CPU
    backend's usual case) there is nothing to balance: after the first request has learnt from the balancer that
    it serves alone, requests go straight to it. With several servers every request keeps verl's path. The
    balancer's sticky sessions and in-flight counts only choose between servers."""
    from verl.workers.rollout import llm_server

    client = llm_server.LLMServerClient
    acquire, release = client._acquire_server, client._release_server

    async def _acquire_server(self, request_id: str, **extra):
        only = getattr(self, "_only_server", None)
        if only is not None:
            self._direct_requests.add(request_id)
            return only
        server_id, server = await acquire(self, request_id, **extra)
        alone = self._load_balancer is not None and len(await self._load_balancer.get_all_servers.remote()) == 1
        if alone and getattr(self, "_only_server", None) is None:  # several first requests may get here
            self._direct_requests = set()
            self._only_server = (server_id, server)
        return server_id, server

    def _release_server(self, server_id: str, request_id: str | None = None) -> None:
        direct = getattr(self, "_direct_requests", None)
        if direct is not None and request_id in direct:
            direct.discard(request_id)
            return
        release(self, server_id, request_id=request_id)

    client._acquire_server, client._release_server = _acquire_server, _release_server


def agent_loops_built_directly() -> None:
    """verl/experimental/agent_loop/agent_loop.py ``AgentLoopWorker._run_agent_loop`` builds each rollout's agent
    loop with ``hydra.utils.instantiate``, which first merges the keyword arguments into an OmegaConf config: ~9 %
    of an agent-loop worker's time in a quickstart step (py-spy). An agent loop registered by class (verl's
    ``@register``: a config holding only ``_target_``) is built here by calling the class, looked up once, with the
    same arguments (verl wraps the configs it passes so that hydra leaves them alone); agent loops configured in a
    file (``agent_loop_config_path``) keep hydra."""
    import types

    import hydra.utils
    from verl.experimental.agent_loop import agent_loop

    classes: dict[str, type] = {}

    def instantiate(config, *args, **kwargs):
        if args or not isinstance(config, dict) or set(config) != {"_target_"}:
            return hydra.utils.instantiate(config, *args, **kwargs)
        target = config["_target_"]
        if target not in classes:
            classes[target] = hydra.utils.get_class(target)
        return classes[target](**kwargs)

    # agent_loop.py uses its `hydra` name only for this call
    agent_loop.hydra = types.SimpleNamespace(utils=types.SimpleNamespace(instantiate=instantiate))


def micro_batches_used_in_place() -> None:
    """verl/workers/engine/fsdp/transformer_impl.py ``FSDPEngineWithLMHead.forward_step`` starts with
    ``micro_batch.to(get_device_id())``. On CPU every tensor is already there, but ``TensorDict.to`` still rebuilds
    each row's non-tensor values (prompt, ground truth, extra info: one tensorclass object per row and field): half
    of ``forward_step``'s time in a quickstart step, more than the model's forward (py-spy). On CPU the micro-batch
    goes on as it is; ``forward_step`` and the losses only read it."""
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    original = FSDPEngineWithLMHead.forward_step

    @functools.wraps(original)
    def forward_step(self, micro_batch, loss_function, forward_only):
        object.__setattr__(micro_batch, "to", lambda *args, **kwargs: micro_batch)  # shadows TensorDict.to
        try:
            return original(self, micro_batch, loss_function, forward_only)
        finally:
            object.__delattr__(micro_batch, "to")

    forward_step.__module__ = __name__
    FSDPEngineWithLMHead.forward_step = forward_step


PATCHES = (
    gloo_process_group,
    fsdp2_offload_without_pinning,
    fsdp1_offload_off,
    fsdp1_skip_device_check_of_sync_module_states,
    fsdp1_load_in_place,
    fast_rollout_polling,
    vectorised_log_probs,
    in_process_reward,
    direct_to_single_server,
    agent_loops_built_directly,
    micro_batches_used_in_place,
)


def apply() -> list[str]:
    """Apply every patch once, only on the CPU platform; returns the names applied in this process."""
    if not cpu_selected():
        return []
    for patch in PATCHES:
        if patch.__name__ not in APPLIED:
            patch()
            APPLIED.append(patch.__name__)
    return list(APPLIED)
