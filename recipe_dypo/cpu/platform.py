"""The ``cpu`` verl platform.

verl asks its platform for the device module (``torch.cuda`` on NVIDIA), the collective backend, the Ray resource
name and a few device calls. On CPU the memory and stream calls have nothing to do, so they are no-ops; the Ray
resource stays "GPU" because verl's resource pools count GPUs: the CPU launch starts Ray with that many logical
GPUs (``+ray_kwargs.ray_init.num_gpus=N``), one per trainer rank.
"""

from __future__ import annotations

import types
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from verl.plugin.platform import platform_manager
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

FAKE_DEVICE_MEMORY = 16 << 30  # reported by mem_get_info: verl logs it, nothing is allocated against it


class CPUDeviceModule(types.ModuleType):
    """Stands in for ``torch.cuda``: falls back to ``torch.cpu`` and makes memory/stream calls no-ops."""

    def __init__(self):
        super().__init__("recipe_dypo_cpu_device")

    def __getattr__(self, name):
        if hasattr(torch.cpu, name):
            return getattr(torch.cpu, name)
        raise AttributeError(f"CPU device module has no {name!r}")

    def is_available(self):
        return True

    def device_count(self):
        return 1

    def current_device(self):
        return CPU_DEVICE

    def get_device_name(self, *args, **kwargs):
        return CPU_DEVICE

    def mem_get_info(self, *args, **kwargs):
        return FAKE_DEVICE_MEMORY, FAKE_DEVICE_MEMORY

    def memory_allocated(self, *args, **kwargs):
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    def get_rng_state(self, *args, **kwargs):
        return torch.get_rng_state()

    def set_rng_state(self, state, *args, **kwargs):
        torch.set_rng_state(state)

    def manual_seed(self, seed):
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def current_stream(self, *args, **kwargs):
        return torch.cpu.current_stream()

    def stream(self, *args, **kwargs):
        return nullcontext()

    def _no_op(self, *args, **kwargs):
        return None

    set_device = synchronize = empty_cache = ipc_collect = reset_peak_memory_stats = _no_op
    set_per_process_memory_fraction = _no_op


CPU_DEVICE = "cpu"
DEVICE_MODULE = CPUDeviceModule()


class PlatformCPU(PlatformBase):
    device_name = CPU_DEVICE
    vendor_name = CPU_DEVICE

    @property
    def device_module(self):
        return DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def current_device(self):
        return CPU_DEVICE

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index) -> None:
        return None

    def synchronize(self, device_index=None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0):
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self):
        return None


def install() -> None:
    """Register the platform and make it current (verl may already have resolved another one in this process)."""
    PlatformRegistry.register(platform=CPU_DEVICE)(PlatformCPU)
    current = platform_manager._current_platform
    if current is None or current.device_name != CPU_DEVICE:
        platform_manager.set_platform(PlatformCPU())
