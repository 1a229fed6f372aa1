"""`import verl` alone, in a fresh process, registers DYPO (the path Ray workers take)."""

import subprocess
import sys
import warnings

CHECK = """
import verl
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
from verl.workers.rollout.base import _ROLLOUT_REGISTRY
from recipe_dypo import plugin
print("REGISTERED", TRAINER_REGISTRY["dypo"].__name__, _ROLLOUT_REGISTRY[("vllm", "async")], plugin.registered())
"""


def test_import_verl_registers_dypo_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    registered = {"trainer": True, "cpu_backend": True, "weight_sync": True}
    assert f"REGISTERED DypoTrainer recipe_dypo.weight_sync.GuardedServerAdapter {registered}" in out.stdout, out.stdout


def test_importing_a_dypo_module_first_still_registers_the_trainer():
    """A module that imports verl at its top (actor_loss) is still initialising when verl's plugin loading imports
    the trainer, which needs it: the registration must not fail on that cycle."""
    code = "import recipe_dypo.actor_loss\nfrom recipe_dypo import plugin\nprint('OK', plugin.registered())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK {'trainer': True, 'cpu_backend': True, 'weight_sync': True}" in out.stdout, out.stderr[-3000:]


def test_plugin_failure_is_loud_with_traceback(caplog):
    from recipe_dypo import plugin

    def broken():
        raise ImportError("simulated missing dependency")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugin._register("probe", broken)
    text = "\n".join(str(w.message) for w in caught)
    assert "registering probe failed" in text and "Traceback" in text and "simulated missing dependency" in text
    assert "simulated missing dependency" in caplog.text
