"""The minimum changes to verl 0.9.1 internals for its trainer to run on CPU; applied only on the CPU platform.

Each patch names the verl (or torch) code it works around and why. :func:`apply` is a no-op unless
``VERL_PLATFORM=cpu`` (tests/test_cpu_backend.py checks that a plain ``import verl`` leaves every target
untouched). A patched name is replaced where it is defined and in every already-imported verl module that bound
it with ``from ... import name``, so the result does not depend on import order.
"""

from __future__ import annotations

import dataclasses
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
    import functools

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


PATCHES = (
    gloo_process_group,
    fsdp2_offload_without_pinning,
    fsdp1_offload_off,
    fsdp1_skip_device_check_of_sync_module_states,
    fsdp1_load_in_place,
    fast_rollout_polling,
    vectorised_log_probs,
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
