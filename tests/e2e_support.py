"""Launching verl's real trainer on the CPU backend from tests: data with scripted grades, one run, its metrics.

Every launch goes through the same script, ``_dypo_common.sh`` launcher and ``python -m recipe_dypo.main_dypo``
entry a GPU run uses, with ``MODEL=tiny DEVICE=cpu``. Nothing is mocked: Ray, TransferQueue, the FSDP engine
workers, the hf rollout server, weight sync and the checkpoint manager are verl's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REWARD = REPO / "tests" / "e2e_reward.py"
LAUNCH_TIMEOUT_S = 900


def write_graded_data(path: Path, schedule: list[str], seed: int = 0) -> Path:
    """Toy training rows (two teachers each) whose grade is scripted: row i has ``extra_info.e2e_grade =
    schedule[i]``. With ``data.shuffle=false`` and 4 prompts per step, step s sees rows 4(s-1) .. 4s-1."""
    from data_prep.common import write_parquet
    from data_prep.toy_data import make_toy_rows

    rows = make_toy_rows(len(schedule), seed, "train")
    for row, grade in zip(rows, schedule):
        row["extra_info"]["e2e_grade"] = grade
    write_parquet(rows, path)
    return path


@dataclass
class Run:
    out: Path
    returncode: int
    log: str
    seconds: float

    @property
    def metrics(self) -> dict[int, dict]:
        """Step -> the metrics verl's file logger wrote for it."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return {}
        out = {}
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                out[int(record["step"])] = record["data"]
        return out

    def regroup(self, step: int) -> dict:
        return json.loads((self.out / "dump" / f"regroup_step_{step}.json").read_text())

    def update_batch(self, step: int) -> dict:
        import torch

        return torch.load(self.out / "dump" / f"update_step_{step}.pt", weights_only=False)

    def check(self) -> Run:
        assert self.returncode == 0, f"launch failed (rc={self.returncode}); log tail:\n{self.log[-6000:]}"
        return self


def launch(script: str, out: Path, tiny_dir: Path, train_file: Path, steps: int, *overrides, **env) -> Run:
    """``bash scripts/<script>`` with MODEL=tiny DEVICE=cpu for ``steps`` steps; outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    run_env = {
        **os.environ,
        "MODEL": "tiny",
        "DEVICE": "cpu",
        "TINY_DIR": str(tiny_dir),
        "TRAIN_FILE": str(train_file),
        "CKPT_DIR": str(out / "ckpt"),
        "EXP_NAME": out.name,
        "VERL_FILE_LOGGER_PATH": str(out / "metrics.jsonl"),
        "RAY_DEDUP_LOGS": "0",
        **{k: str(v) for k, v in env.items()},
    }
    args = [
        f"reward.custom_reward_function.path={REWARD}",
        "trainer.logger=[console,file]",
        "data.shuffle=false",
        f"trainer.total_training_steps={steps}",
        *overrides,
    ]
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / script), *args],
        cwd=out,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=LAUNCH_TIMEOUT_S,
    )
    (out / "log.txt").write_text(proc.stdout)
    return Run(out=out, returncode=proc.returncode, log=proc.stdout, seconds=time.monotonic() - start)
