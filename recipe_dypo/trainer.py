"""The DYPO trainer: verl's synchronous v1 PPO trainer plus three hooks. It only orchestrates.

verl's step (``PPOTrainer._step_once``): sample -> [reward] -> balance -> old_log_prob -> ref -> advantage -> update.
DYPO hooks in at three points, each the next part of the paper's eq. (4):

1. ``_balance_batch``  grade groups and regroup (:mod:`recipe_dypo.grading`): drop easy rollouts, replace each hard
   group's rollouts by one teacher row drawn uniformly (:mod:`recipe_dypo.teachers`), keep mid groups; then verl
   pads and balances across DP ranks.
2. ``_compute_advantage``  verl's ``grpo`` estimator gives the advantages; then the per-row loss coefficients
   (:mod:`recipe_dypo.coefficients`: GRPO weight, SFT weight, GAL derivative) are computed from the old/ref
   log-probs verl already has (no extra forward pass) and written to TransferQueue.
3. ``_update_actor``  skip the update when nothing trains this step, else run verl's update with the DYPO actor loss
   (:mod:`recipe_dypo.actor_loss`, installed once with ``set_loss_fn``).

Checkpoints also carry the teacher-draw state (:mod:`recipe_dypo.checkpoint_state`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import numpy as np
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl import DataProto
from verl.trainer.ppo import padding_utils
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.debug.metrics import calculate_debug_metrics
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

# A module import, not a name: `import verl` inside actor_loss loads this module through the verl.plugins
# entry point while actor_loss is still initialising.
from recipe_dypo import actor_loss
from recipe_dypo.checkpoint_state import apply_dypo_state, read_dypo_state, resumed_folder, save_dypo_state
from recipe_dypo.coefficients import StepSettings, coefficients_of_batch, jagged_rows, nested_row_sums
from recipe_dypo.config import check_verl_config
from recipe_dypo.data_schema import check_train_files
from recipe_dypo.debug_dump import dump_regroup, dump_update_batch
from recipe_dypo.grading import SKIPPED_TAG, Role, plan_step, roles_from_tags
from recipe_dypo.teachers import (
    NO_TEACHER_ROWS,
    TeacherSampler,
    batch_teacher_texts,
    build_teacher_rows,
    row_dicts,
    teacher_response_ids,
)

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

ROLLOUT_MISMATCH_PREFIX = "training/rollout_"  # verl's rollout-vs-actor log-prob metrics (calculate_debug_metrics)
TEACHER_CACHE_SIZE = 65536  # tokenised teacher responses kept between steps
KILL_AT_ENV = "DYPO_TEST_KILL_AT"  # test only: "<rollout|update|save>:<step>" (tests/test_e2e_cpu.py)


def kill_point(phase: str, step: int) -> None:
    """Fault injection for the crash tests: SIGKILL this process (no clean-up) at a named point of a step."""
    if os.environ.get(KILL_AT_ENV) == f"{phase}:{step}":
        logger.warning("%s=%s: killing the trainer process now", KILL_AT_ENV, os.environ[KILL_AT_ENV])
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def padding_row_length(tokens: int | None):
    """verl fills a batch up to a multiple of the mini-batch rows with synthetic rows of no loss, each
    ``padding_utils.SYNTHETIC_PADDING_SEQ_LEN`` (128) tokens long. A DYPO batch shrinks (easy groups dropped, a
    hard group becomes one teacher row), so it is filled with up to a mini-batch of them; where responses are far
    shorter than 128 tokens (the CPU toys) they are most of the tokens every forward and backward pass runs.
    ``dypo.padding_row_tokens`` sets their length while verl builds them; null leaves verl's."""
    if tokens is None:
        yield
        return
    saved, padding_utils.SYNTHETIC_PADDING_SEQ_LEN = padding_utils.SYNTHETIC_PADDING_SEQ_LEN, tokens
    try:
        yield
    finally:
        padding_utils.SYNTHETIC_PADDING_SEQ_LEN = saved


@register_trainer("dypo")
class DypoTrainer(PPOTrainerSync):
    """DYPO on verl's synchronous trainer; select with ``trainer.v1.trainer_mode=dypo``."""

    def __init__(self, config):
        self.dypo = check_verl_config(config)
        super().__init__(config)
        self.teacher_sampler = TeacherSampler(self.dypo.seed)
        self.teacher_draws: Counter = Counter()
        self._skip_update_reason: str | None = None
        self._teacher_token_cache: dict[str, tuple[list[int] | None, bool]] = {}
        self._tokenizer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dypo-teacher-tokens")
        self._pending_tokens: Future | None = None

    # verl keys its replay-buffer and dataloader semantics on the literal mode "sync"; DYPO is on-policy
    # and synchronous, so it runs with those semantics under its own registered name.
    def _build_replay_buffer(self):
        self.trainer_mode = "sync"
        return super()._build_replay_buffer()

    def _setup(self):
        if self.dypo.validate_data:
            for path, selected in check_train_files(self.config.data.train_files, self.dypo).items():
                if selected:
                    logger.info("%s: rows per selected teacher %s", path, selected)
        super()._setup()
        actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        self.actor_rollout_wg.set_loss_fn(partial(actor_loss.dypo_actor_loss, config=actor_config))
        logger.info(
            "DYPO loss installed on the actor (alpha=%s, beta=%s, gamma=%s)",
            self.dypo.alpha,
            self.dypo.beta,
            self.dypo.gamma,
        )

    # ------------------------------------------------------------------ hook 1: regroup
    def _balance_batch(self, batch: KVBatchMeta, metrics, logging_prefix="global_seqlen", keep_minibatch=False):
        start = time.perf_counter()
        batch = self._dypo_regroup(batch, metrics)
        metrics["timing_s/dypo_regroup"] = time.perf_counter() - start  # verl times no phase around this hook
        with padding_row_length(self.dypo.padding_row_tokens):
            batch = super()._balance_batch(batch, metrics, logging_prefix, keep_minibatch)
        metrics["dypo/padding_rows"] = float(sum(t.get("is_padding", False) for t in batch.tags))
        return batch

    def _submit_batch_to_rollout(self, batch: TensorDict) -> int:
        # Tokenise this batch's teacher solutions while the rollout runs: it is the largest driver-side cost
        # of a DYPO step (about 1 s for 160 hard prompts x 4k-token teachers), and the rollout takes minutes.
        texts = batch_teacher_texts(batch, self.dypo)
        self._pending_tokens = self._tokenizer_pool.submit(self._teacher_tokens, texts)
        submitted = super()._submit_batch_to_rollout(batch)
        kill_point("rollout", self.global_steps)  # the rollout workers are generating
        return submitted

    def _wait_for_prefetch(self) -> None:
        pending, self._pending_tokens = self._pending_tokens, None
        if pending is not None:
            try:
                pending.result()
            except Exception:  # noqa: BLE001  (prefetch is an optimisation; regroup tokenises what is missing)
                logger.warning("teacher-token prefetch failed; tokenising on demand", exc_info=True)

    def _teacher_tokens(self, texts: list[str]) -> list[tuple[list[int] | None, bool]]:
        """Tokenise teacher responses in one batch, caching them (a prompt is often hard in several epochs)."""
        cache = self._teacher_token_cache
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if len(cache) + len(missing) > TEACHER_CACHE_SIZE:
            cache.clear()
        cache.update(zip(missing, teacher_response_ids(self.tokenizer, missing, self.dypo.max_teacher_tokens)))
        return [cache[t] for t in texts]

    def _dypo_regroup(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        self._skip_update_reason = None
        pid = batch.partition_id
        data = tq.kv_batch_get(keys=batch.keys, partition_id=pid, select_fields=["uid", "rm_scores"])
        uids = np.array([str(u) for u in data["uid"]], dtype=object)
        scores = nested_row_sums(data["rm_scores"]).numpy()
        plan = plan_step(scores, uids, self.dypo)
        metrics.update(plan.metrics)

        teacher_keys, teacher_tags = [], []
        built = NO_TEACHER_ROWS
        if plan.teacher_groups:
            group_uids = list(plan.teacher_groups)
            rep_rows = [plan.teacher_groups[uid][0] for uid in group_uids]
            fetched = tq.kv_batch_get(keys=[batch.keys[r] for r in rep_rows], partition_id=pid)
            templates = row_dicts(fetched)
            # Draw in an order fixed by the prompts' tokens: rollouts reach TransferQueue in completion order, and
            # a resumed (or repeated) run must give each prompt the teacher the original run gave it.
            order = sorted(range(len(templates)), key=lambda i: templates[i]["prompts"].tolist())
            templates = [templates[i] for i in order]
            rep_rows = [rep_rows[i] for i in order]
            group_uids = [group_uids[i] for i in order]
            self._wait_for_prefetch()
            built = build_teacher_rows(
                templates, self.teacher_sampler, self.dypo, self._teacher_tokens, self.teacher_draws
            )
            for i, fields, teacher in zip(built.sources, built.rows, built.teachers):
                tag = dict(batch.tags[rep_rows[i]])
                tag.update(
                    prompt_len=len(fields["prompts"]),
                    response_len=len(fields["responses"]),
                    seq_len=len(fields["input_ids"]),
                    dypo_role=built.role,
                    dypo_teacher=teacher.name,
                )
                teacher_keys.append(f"{group_uids[i]}_teacher_0")
                teacher_tags.append(tag)
        if self.dypo.debug_dump_dir:  # before the dropped rollouts leave TransferQueue
            dump_regroup(self.dypo.debug_dump_dir, self.global_steps, batch, plan, built, self.teacher_draws)
        no_teacher = built.no_teacher
        if teacher_keys:
            fields = list_of_dict_to_tensordict(built.rows)
            tq.kv_batch_put(keys=teacher_keys, partition_id=pid, fields=fields, tags=teacher_tags)

        keys = [batch.keys[r] for r in plan.rl_rows] + teacher_keys
        tags = [batch.tags[r] for r in plan.rl_rows] + teacher_tags
        dropped_rows = plan.dropped_rows
        if not keys:
            # Nothing trains this step (every group easy, or hard without teachers). verl's pipeline still runs
            # on the batch, and its rollout-correction step refuses a batch of padding rows only, so one real
            # rollout stays as a placeholder with zero loss coefficients; the update itself is skipped.
            placeholder, dropped_rows = dropped_rows[0], dropped_rows[1:]
            keys, tags = [batch.keys[placeholder]], [{**batch.tags[placeholder], "dypo_role": SKIPPED_TAG}]
            tq.kv_batch_put(keys=keys, partition_id=pid, tags=tags)
            self._skip_update_reason = (
                f"nothing to train at step {self.global_steps}: {len(plan.labels)} rollouts, "
                f"easy_ratio={plan.metrics['dypo/easy_ratio']:.2f}, hard prompts without teacher={no_teacher}"
            )
        dropped = [batch.keys[r] for r in dropped_rows]
        if dropped:
            tq.kv_clear(keys=dropped, partition_id=pid)

        metrics.update(built.metrics(len(plan.dropped_rows), self.teacher_draws))  # the placeholder too
        if no_teacher:
            logger.warning(
                "step %s: %d hard prompt(s) had no teacher solution and were skipped", self.global_steps, no_teacher
            )
        if built.bad:
            logger.warning(
                "step %s: skipped %d malformed training row(s): %s", self.global_steps, len(built.bad), built.bad
            )
        return KVBatchMeta(keys=keys, tags=tags, partition_id=pid, fields=batch.fields, extra_info=batch.extra_info)

    # ------------------------------------------------------------------ teacher rows and rollout correction
    def _compute_old_log_prob(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        batch = super()._compute_old_log_prob(batch, metrics)
        if "rollout_log_probs" in (batch.fields or []):
            self._align_teacher_rollout_log_probs(batch, metrics)
        return batch

    def _align_teacher_rollout_log_probs(self, batch: KVBatchMeta, metrics: dict) -> None:
        """Teacher rows were never sampled by the rollout, so they have no rollout log-probs. Give them the
        actor's own (importance ratio 1), so verl's rollout correction (``algorithm.rollout_correction``: IS
        weights, rejection) leaves them alone, and recompute verl's rollout-vs-actor mismatch metrics
        (``training/rollout_*``) over the sampled rows only; verl computed them over all rows just before."""
        roles = roles_from_tags(batch.tags)
        offline = (roles == Role.TEACHER) | (roles == Role.OFFPOLICY)
        if not offline.any():
            return
        pid = batch.partition_id
        real = [i for i, role in enumerate(roles) if role != Role.PAD]
        select = ["rollout_log_probs", "old_log_probs", "response_mask", "responses"]
        data = tq.kv_batch_get(keys=[batch.keys[i] for i in real], partition_id=pid, select_fields=select)
        rows = {name: data[name].unbind() for name in select}  # one read serves both jobs below
        teacher = [j for j, i in enumerate(real) if offline[i]]
        sampled = [j for j, i in enumerate(real) if not offline[i]]
        fields = TensorDict(
            {"rollout_log_probs": jagged_rows([rows["old_log_probs"][j] for j in teacher])}, len(teacher)
        )
        tq.kv_batch_put(keys=[batch.keys[real[j]] for j in teacher], partition_id=pid, fields=fields)
        for key in [k for k in metrics if k.startswith(ROLLOUT_MISMATCH_PREFIX)]:
            del metrics[key]
        if sampled:  # (a step of hard prompts only has no sampled rows: no mismatch to report)
            picked = TensorDict({name: jagged_rows([rows[name][j] for j in sampled]) for name in select}, len(sampled))
            metrics.update(calculate_debug_metrics(DataProto(batch=picked.to_padded_tensor())))

    # ------------------------------------------------------------------ hook 2: coefficients
    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        tags = list(batch.tags)
        batch = super()._compute_advantage(batch, metrics)
        # The workers fetch exactly the fields the returned metadata lists: return the metadata of the LAST put,
        # which includes the coefficient fields (returning verl's would hide them from the actor loss).
        return self._write_coefficients(batch.keys, tags, batch.partition_id, metrics)

    def _write_coefficients(self, keys: list[str], tags: list[dict], pid: str, metrics: dict) -> KVBatchMeta:
        fields = ["uid", "rm_scores", "response_mask", "old_log_probs"]
        if self.dypo.gal_reference:
            fields.append("ref_log_prob")
        data = tq.kv_batch_get(keys=keys, partition_id=pid, select_fields=fields)
        coefs, step_metrics = coefficients_of_batch(data, roles_from_tags(tags), self.dypo, self.global_steps)
        metrics.update(step_metrics)
        return tq.kv_batch_put(keys=keys, partition_id=pid, fields=TensorDict(coefs.fields(), batch_size=len(keys)))

    # ------------------------------------------------------------------ hook 3: update
    def _update_actor(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        if self._skip_update_reason is not None:
            logger.warning("DYPO skips the actor update: %s", self._skip_update_reason)
            metrics["dypo/skipped_update"] = 1.0
            return batch
        metrics["dypo/skipped_update"] = 0.0
        if self.dypo.debug_dump_dir:
            dump_update_batch(self.dypo.debug_dump_dir, self.global_steps, batch)
        every = self.dypo.grad_metrics_interval
        grad_metrics = every > 0 and self.global_steps % every == 0
        StepSettings(len(batch), self.dypo.shaping_gamma, self.dypo.kl_coef, grad_metrics).write(batch.extra_info)
        batch = super()._update_actor(batch, metrics)
        kill_point("update", self.global_steps)  # the workers hold the updated weights, nothing is saved
        return batch

    # ------------------------------------------------------------------ resume
    def _save_checkpoint(self):
        # Before verl's save: verl ends it by marking the checkpoint complete, so a crash at any point leaves a
        # complete checkpoint whose DYPO state is there (recipe_dypo/checkpoint_state.py).
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        save_dypo_state(folder, self.global_steps, self.teacher_sampler, self.teacher_draws)
        kill_point("save", self.global_steps)  # the new DYPO state is written, verl's checkpoint is not
        super()._save_checkpoint()

    def _load_checkpoint(self):
        folder = resumed_folder(self.config.trainer)
        # Checked before verl loads the weights: a checkpoint without its DYPO state fails in seconds.
        state = read_dypo_state(folder, self.dypo.resume_without_state) if folder else None
        super()._load_checkpoint()
        if state is not None:
            apply_dypo_state(state, self.teacher_sampler, self.teacher_draws)
