"""`import verl` alone, in a fresh process, registers DYPO (the path Ray workers take)."""

import subprocess
import sys
import warnings

CHECK = """
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
print("REGISTERED", "dypo" in ADV_ESTIMATOR_REGISTRY, "dypo" in POLICY_LOSS_REGISTRY, TRAINER_REGISTRY["dypo"].__name__)
"""


def test_import_verl_registers_dypo_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "REGISTERED True True DypoTrainer" in out.stdout


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
