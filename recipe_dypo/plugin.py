"""``verl.plugins`` entry point: ``import verl`` imports this module in every process (driver, task runner, Ray
workers), which registers the ``dypo`` trainer, the CPU backend's rollout and the guarded vLLM weight sync. DYPO
needs no advantage estimator or policy loss of its own: it uses verl's ``grpo`` and ``vanilla``.

verl swallows plugin import errors at debug level; a broken install would then surface much later as
"Unknown trainer 'dypo'". We report failures loudly instead, with the traceback.
"""

import logging
import traceback
import warnings

REGISTERED: dict[str, bool] = {"trainer": False, "cpu_backend": False, "weight_sync": False}


def _register(name: str, importer) -> None:
    try:
        importer()
        REGISTERED[name] = True
    except Exception as exc:  # noqa: BLE001  (report every failure, then let verl continue)
        message = f"dypo-verl plugin: registering {name} failed: {exc!r}\n{traceback.format_exc()}"
        logging.getLogger("recipe_dypo").warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def _trainer():
    import recipe_dypo.trainer  # noqa: F401


def _cpu_backend():
    # The rollout name "hf" is registered everywhere (its module loads only when a config selects it); the CPU
    # platform and verl patches are installed only where VERL_PLATFORM=cpu (recipe_dypo/cpu/__init__.py).
    from recipe_dypo import cpu

    cpu.register_rollout()
    if cpu.cpu_selected():
        cpu.activate()


WEIGHT_SYNC_TIMEOUT_ENV = "DYPO_WEIGHT_SYNC_TIMEOUT_S"


def weight_sync_timeout_s() -> float:
    """Seconds the trainer waits for the vLLM weight receiver's answer (recipe_dypo/weight_sync.py); 0: no guard."""
    import os

    return float(os.environ.get(WEIGHT_SYNC_TIMEOUT_ENV, "1800"))


def _weight_sync():
    # rollout.name=vllm resolves to recipe_dypo.weight_sync.GuardedServerAdapter (loaded only when selected): a
    # failed or hung weight receiver ends the run instead of hanging it.
    from verl.workers.rollout import base

    if weight_sync_timeout_s() > 0:
        base._ROLLOUT_REGISTRY[("vllm", "async")] = "recipe_dypo.weight_sync.GuardedServerAdapter"


_register("cpu_backend", _cpu_backend)  # first: the platform must be in place before verl resolves it
_register("trainer", _trainer)
_register("weight_sync", _weight_sync)


def registered() -> dict[str, bool]:
    """Which registrations succeeded when this module was imported (they happen at import, once)."""
    return dict(REGISTERED)
