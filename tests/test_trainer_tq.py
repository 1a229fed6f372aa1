"""The DYPO trainer hooks on verl's real TransferQueue (local Ray on CPU) and verl's real _balance_batch /
_compute_advantage. Only the GPU worker group is replaced, by the one attribute _balance_batch reads (dp ranks).
"""

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import compose_dypo_config

K = 4  # rollouts per prompt in these tests


@pytest.fixture(scope="module")
def tq_env():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    import transfer_queue as tq
    from omegaconf import OmegaConf

    tq.init(
        OmegaConf.create(
            {
                "backend": {
                    "storage_backend": "SimpleStorage",
                    "SimpleStorage": {"total_storage_size": 2000, "num_data_storage_units": 1},
                }
            }
        )
    )
    yield tq
    tq.close()
    ray.shutdown()


class FakeActorGroup:
    """Stands in for the GPU worker group: _balance_batch only reads its data-parallel rank map."""

    def __init__(self, dp_size):
        self._dispatch_info = {"actor": list(range(dp_size))}


def build_trainer(*overrides):
    import recipe_dypo.trainer as dypo_trainer
    from recipe_dypo.tokenizer_files import load_qwen_tokenizer

    config = compose_dypo_config(
        [
            "actor_rollout_ref.actor.use_dynamic_bsz=true",
            f"actor_rollout_ref.rollout.n={K}",
            "actor_rollout_ref.actor.ppo_mini_batch_size=1",
            "data.max_response_length=16",
            "dypo.validate_data=false",
            *overrides,
        ]
    )
    t = dypo_trainer.DypoTrainer(config)
    t.tokenizer = load_qwen_tokenizer()
    t.actor_rollout_wg = FakeActorGroup(dp_size=2)
    t.global_steps = 7
    return t


@pytest.fixture()
def trainer(tq_env):
    return build_trainer()


def rollout(tq, uid, scores, extra_info, prompt_len=5, seed=0):
    """Put one prompt's K rollouts into TransferQueue with the fields verl's agent loop writes."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(10, 1000, (prompt_len,), generator=g)
    keys, fields, tags = [], [], []
    for i, score in enumerate(scores):
        n = 3 + i
        responses = torch.randint(10, 1000, (n,), generator=g)
        rm = torch.zeros(n)
        rm[-1] = score
        ids = torch.cat([prompt, responses])
        fields.append(
            dict(
                prompts=prompt,
                responses=responses,
                response_mask=torch.ones(n, dtype=torch.int64),
                loss_mask=torch.ones(n, dtype=torch.int64),
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                position_ids=torch.arange(len(ids)),
                rm_scores=rm,
                uid=uid,
                extra_info=extra_info,
                raw_prompt=[{"role": "user", "content": "q"}],
                num_turns=2,
                extra_fields={"min_global_steps": 6, "max_global_steps": 6},
            )
        )
        keys.append(f"{uid}_{i}_0")
        tags.append(
            dict(
                status="success",
                prompt_len=prompt_len,
                response_len=n,
                seq_len=prompt_len + n,
                global_steps=6,
                min_global_steps=6,
                max_global_steps=6,
            )
        )
    tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields), tags=tags)
    return keys, tags


TEACHERS = {
    "teachers": [
        {"name": "concise", "response": "<think>\n2+2</think> \\boxed{4}"},
        {"name": "verbose", "response": "<think>\nTwo plus two is four.</think> \\boxed{4}"},
    ]
}


def make_batch(tq, groups):
    from transfer_queue import KVBatchMeta

    keys, tags = [], []
    for j, (uid, scores, info) in enumerate(groups):
        k, t = rollout(tq, uid, scores, info, seed=j)
        keys += k
        tags += t
    return KVBatchMeta(keys=keys, tags=tags, partition_id="train")


def test_row_dicts_equal_verls_row_indexing(tq_env):
    """What the regroup reads of a hard group's rollout, one column at a time, is what indexing row by row gives."""
    from recipe_dypo.teachers import row_dicts, unwrap

    info = {"teachers": [{"name": "t", "response": "x"}], "index": 3}
    keys, _ = rollout(tq_env, "rows", [0.0, 1.0, 0.0], info, seed=5)
    fetched = tq_env.kv_batch_get(keys=keys, partition_id="train")
    expected = [{k: unwrap(v) for k, v in fetched[i].items()} for i in range(len(keys))]
    got = row_dicts(fetched)
    assert [list(row) for row in got] == [list(row) for row in expected] and len(got) == 3
    for row, want in zip(got, expected):
        for field, value in want.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(row[field], value) and row[field].dtype == value.dtype, field
            else:
                assert row[field] == value and type(row[field]) is type(value), field
    assert got[1]["rm_scores"].tolist() == [0.0, 0.0, 0.0, 1.0] and got[2]["extra_info"] == info
    tq_env.kv_clear(keys=keys, partition_id="train")


def test_regroup_drops_easy_replaces_hard_keeps_mid(trainer, tq_env):
    tq = tq_env
    batch = make_batch(
        tq,
        [
            ("easy", [1, 1, 1, 1], {}),
            ("hard", [0, 0, 0, 0], TEACHERS),
            ("hardnone", [0, 0, 0, 0], {}),
            ("mid", [1, 0, 0, 1], TEACHERS),
        ],
    )
    metrics = {}
    out = trainer._balance_batch(batch, metrics)
    real = [k for k, t in zip(out.keys, out.tags) if not t.get("is_padding")]
    assert sorted(real) == sorted([f"mid_{i}_0" for i in range(4)] + ["hard_teacher_0"])
    # 5 trained rows padded by verl to a multiple of lcm(dp=2, mini-batch rows=1*K=4) = 8
    assert len(out) == 8 and metrics["dypo/padding_rows"] == 3
    assert metrics["dypo/easy_ratio"] == 0.25 and metrics["dypo/hard_ratio"] == 0.5
    assert metrics["dypo/mid_ratio"] == 0.25
    assert metrics["dypo/hard_without_teacher"] == 1 and metrics["dypo/teacher_rows"] == 1
    assert metrics["dypo/dropped_rollouts"] == 12
    assert sum(v for k, v in metrics.items() if k.startswith("dypo/teacher_draws/")) == 1
    # dropped rollouts left TransferQueue; the teacher row is the prompt plus the teacher's token ids
    listed = set(tq.kv_list("train")["train"])
    assert not {f"easy_{i}_0" for i in range(4)} & listed and "hard_teacher_0" in listed
    row = tq.kv_batch_get(keys=["hard_teacher_0"], partition_id="train")[0]
    text = trainer.tokenizer.decode(row["responses"].tolist())
    drawn = next(k.split("/")[-1] for k, v in metrics.items() if k.startswith("dypo/teacher_draws/") and v)
    want = next(t["response"] for t in TEACHERS["teachers"] if t["name"] == drawn)
    assert text == want + trainer.tokenizer.eos_token
    hard_prompt = tq.kv_batch_get(keys=["hard_0_0"], partition_id="train") if "hard_0_0" in listed else None
    assert hard_prompt is None
    assert torch.equal(row["input_ids"], torch.cat([row["prompts"], row["responses"]]))
    assert int(row["response_mask"].sum()) == len(row["responses"]) and float(row["rm_scores"].abs().sum()) == 0
    tq.kv_clear(keys=out.keys, partition_id="train")


def test_coefficients_written_match_row_coefficients(trainer, tq_env):
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from recipe_dypo.coefficients import COEF_FIELDS, RowCoefficients, row_coefficients
    from recipe_dypo.grading import Role

    tq = tq_env
    batch = make_batch(tq, [("m1", [1, 0, 1, 0], TEACHERS), ("m2", [0, 0, 1, 0], {}), ("h", [0, 0, 0, 0], TEACHERS)])
    metrics = {}
    batch = trainer._balance_batch(batch, metrics)
    # what verl's _compute_old_log_prob / _compute_ref_log_prob write
    data = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["responses"])
    g = torch.Generator().manual_seed(1)
    old = [-torch.rand(len(r), generator=g) for r in data["responses"].unbind()]
    ref = [-torch.rand(len(r), generator=g) for r in data["responses"].unbind()]
    tq.kv_batch_put(
        keys=batch.keys,
        partition_id="train",
        fields=list_of_dict_to_tensordict([{"old_log_probs": o, "ref_log_prob": r} for o, r in zip(old, ref)]),
    )
    trainer._compute_advantage(batch, metrics)
    got = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=list(COEF_FIELDS) + ["advantages"])

    roles = np.array(
        [
            Role.PAD if t.get("is_padding") else Role.TEACHER if t.get("dypo_role") == "teacher" else Role.RL
            for t in batch.tags
        ]
    )
    uids = [k.rsplit("_", 2)[0] for k in batch.keys]
    scores = [
        float(s.sum())
        for s in tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["rm_scores"])[
            "rm_scores"
        ].unbind()
    ]
    lengths = [len(r) for r in data["responses"].unbind()]
    mask = torch.tensor([0.0 if r == Role.PAD else 1.0 for r in roles])
    ratio = torch.stack([(o.double() - r.double()).sum() for o, r in zip(old, ref)]) * mask
    want = row_coefficients(roles, scores, uids, lengths, ratio, 0.5, 0.5, beta=1.0, gamma=1.0)
    assert (roles == Role.TEACHER).sum() == 1 and (roles == Role.RL).sum() == 8
    for attr, name in RowCoefficients.FIELDS.items():
        torch.testing.assert_close(got[name].double(), getattr(want, attr), atol=1e-7, rtol=1e-6)
    assert want.num_prompts == 3 and metrics["dypo/trained_prompts"] == 3
    assert metrics["dypo/offline_data_ratio"] == pytest.approx(1 / 9)  # rows: 1 teacher row among 9 trained
    assert metrics["dypo/offline_prompt_ratio"] == pytest.approx(1 / 3)  # prompts: 1 of the 3 trained prompts
    assert 0.0 <= metrics["dypo/gal_pair_acc"] <= 1.0 and metrics["dypo/gal_pairs"] == 4 + 3
    # advantages come from verl's _compute_advantage with its 'grpo' estimator
    adv = [a[0].item() if len(a) else 0.0 for a in got["advantages"].unbind()]
    m1 = [adv[i] for i, u in enumerate(uids) if u == "m1"]
    assert m1[0] > 0 and m1[1] < 0 and sum(m1) == pytest.approx(0, abs=1e-5)
    tq.kv_clear(keys=batch.keys, partition_id="train")


def test_nan_log_probs_fail_with_step_and_row(trainer, tq_env):
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    tq = tq_env
    batch = make_batch(tq, [("n1", [1, 0, 0, 0], {})])
    batch = trainer._balance_batch(batch, {})
    data = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["responses"])
    old = [torch.zeros(len(r)) for r in data["responses"].unbind()]
    old[2][1] = float("nan")
    tq.kv_batch_put(
        keys=batch.keys,
        partition_id="train",
        fields=list_of_dict_to_tensordict([{"old_log_probs": o, "ref_log_prob": o.clone()} for o in old]),
    )
    with pytest.raises(FloatingPointError, match=r"DYPO step 7: non-finite old_log_probs in 1 row\(s\) \[2\]"):
        trainer._compute_advantage(batch, {})
    tq.kv_clear(keys=batch.keys, partition_id="train")


def test_all_easy_step_skips_update(trainer, tq_env):
    from recipe_dypo.grading import Role, roles_from_tags

    tq = tq_env
    batch = make_batch(tq, [("e1", [1, 1, 1, 1], {}), ("e2", [1, 1, 1, 1], {})])
    metrics = {}
    out = trainer._balance_batch(batch, metrics)
    # one real rollout stays as a zero-weight placeholder (verl's rollout correction refuses all-padding batches)
    real = [t for t in out.tags if not t.get("is_padding")]
    assert len(real) == 1 and real[0]["dypo_role"] == "skipped" and metrics["dypo/easy_ratio"] == 1.0
    assert roles_from_tags(real).tolist() == [Role.PAD] and metrics["dypo/dropped_rollouts"] == 8
    assert trainer._skip_update_reason.startswith("nothing to train at step 7")
    called = []
    trainer.actor_rollout_wg.update_actor = lambda b: called.append(b)
    trainer._update_actor(out, metrics)
    assert not called and metrics["dypo/skipped_update"] == 1.0
    tq.kv_clear(keys=out.keys, partition_id="train")


def test_all_hard_step_is_pure_sft(trainer, tq_env):
    tq = tq_env
    batch = make_batch(tq, [("h1", [0, 0, 0, 0], TEACHERS), ("h2", [0, 0, 0, 0], TEACHERS)])
    metrics = {}
    out = trainer._balance_batch(batch, metrics)
    real = [t for t in out.tags if not t.get("is_padding")]
    assert len(real) == 2 and all(t["dypo_role"] == "teacher" for t in real)
    assert trainer._skip_update_reason is None
    tq.kv_clear(keys=out.keys, partition_id="train")


def test_dypo_state_is_written_before_verl_marks_the_checkpoint_complete(trainer, tmp_path, monkeypatch):
    """verl's save ends by writing latest_checkpointed_iteration.txt; a crash after it must not leave a checkpoint
    without DYPO state, so the state is on disk (complete, for this step) when verl's save starts."""
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from recipe_dypo.checkpoint_state import STATE_FILE, read_dypo_state

    seen = []

    def verl_save(self):
        folder = tmp_path / "global_step_7"
        seen.append(read_dypo_state(str(folder)))
        (tmp_path / "latest_checkpointed_iteration.txt").write_text("7")

    monkeypatch.setattr(PPOTrainerSync, "_save_checkpoint", verl_save)
    monkeypatch.setitem(trainer.config.trainer, "default_local_dir", str(tmp_path))
    trainer.teacher_draws.update(concise=3)
    trainer._save_checkpoint()
    assert seen and seen[0]["global_step"] == 7 and seen[0]["teacher_draws"] == {"concise": 3}
    assert sorted(p.name for p in (tmp_path / "global_step_7").iterdir()) == [STATE_FILE]  # no temporary left


def test_resume_refuses_a_checkpoint_without_dypo_state_before_loading_weights(trainer, tmp_path, monkeypatch):
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from recipe_dypo.checkpoint_state import DypoStateError

    loaded = []
    monkeypatch.setattr(PPOTrainerSync, "_load_checkpoint", lambda self: loaded.append(True))
    (tmp_path / "global_step_4" / "actor").mkdir(parents=True)
    monkeypatch.setitem(trainer.config.trainer, "resume_mode", "resume_path")
    monkeypatch.setitem(trainer.config.trainer, "resume_from_path", str(tmp_path / "global_step_4"))
    with pytest.raises(DypoStateError, match=r"global_step_4/dypo_state.json: the file is missing.*resume_without"):
        trainer._load_checkpoint()
    assert not loaded  # failed before verl loaded any weights
    monkeypatch.setattr(trainer.dypo, "resume_without_state", True)
    trainer._load_checkpoint()
    assert loaded == [True]


def test_teacher_tokens_are_prefetched_while_the_rollout_runs(trainer, tq_env):
    """Submitting prompts for rollout starts tokenising their teachers; regroup then finds them cached."""
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.rl_dataset import collate_fn

    from recipe_dypo.teachers import prompt_rows

    rows = [
        {
            "raw_prompt": [{"role": "user", "content": "q1"}],
            "extra_info": TEACHERS,
            "target": [{"role": "assistant", "content": "<think>\ny</think> \\boxed{2}"}],
            "uid_seed": 0,
        },
        {
            "raw_prompt": [{"role": "user", "content": "q2"}],
            "extra_info": {},
            "target": [{"role": "assistant", "content": "<think>\nx</think> \\boxed{1}"}],
            "uid_seed": 1,
        },
    ]
    batch = collate_fn(rows)
    batch["uid"] = np.array(["p1", "p2"], dtype=object)
    batch = tu.get_tensordict(batch)
    parsed = prompt_rows(batch, ("extra_info", "target", "target_lst"))
    assert parsed[0]["extra_info"] == TEACHERS and parsed[1]["target"][0]["content"].endswith("\\boxed{1}")

    dispatched = []
    trainer.agent_loop_manager = type("Rollout", (), {"generate_sequences": lambda self, b: dispatched.append(b)})()
    trainer._submit_batch_to_rollout(batch)
    trainer._wait_for_prefetch()
    assert len(dispatched) == 1
    texts = [t["response"] for t in TEACHERS["teachers"]] + [
        "<think>\ny</think> \\boxed{2}",
        "<think>\nx</think> \\boxed{1}",
    ]
    for text in texts:
        ids, truncated = trainer._teacher_token_cache[text]
        assert trainer.tokenizer.decode(ids) == text + trainer.tokenizer.eos_token and not truncated
    tq_env.kv_clear(keys=["p1", "p2"], partition_id="train")


def write_log_probs(tq, batch, seed=1):
    """What verl's _compute_old_log_prob / _compute_ref_log_prob write."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    data = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["responses"])
    g = torch.Generator().manual_seed(seed)
    old = [-torch.rand(len(r), generator=g) for r in data["responses"].unbind()]
    tq.kv_batch_put(
        keys=batch.keys,
        partition_id="train",
        fields=list_of_dict_to_tensordict([{"old_log_probs": o, "ref_log_prob": o.clone()} for o in old]),
    )


def test_hpt_switch_keeps_easy_groups_and_replaces_hard_ones(tq_env):
    tq = tq_env
    t = build_trainer("+preset=hpt_switch")
    batch = make_batch(tq, [("he", [1, 1, 1, 1], {}), ("hh", [0, 0, 0, 0], TEACHERS), ("hm", [1, 0, 0, 0], {})])
    metrics = {}
    out = t._balance_batch(batch, metrics)
    real = sorted(k for k, tag in zip(out.keys, out.tags) if not tag.get("is_padding"))
    assert real == sorted([f"he_{i}_0" for i in range(4)] + [f"hm_{i}_0" for i in range(4)] + ["hh_teacher_0"])
    assert metrics["dypo/dropped_rollouts"] == 4
    write_log_probs(tq, out)
    t._compute_advantage(out, metrics)
    got = tq.kv_batch_get(keys=out.keys, partition_id="train", select_fields=["dypo_pg_coef", "advantages"])
    by_key = dict(zip(out.keys, zip(got["dypo_pg_coef"].tolist(), got["advantages"].unbind())))
    # easy rows train as RL rows with advantage 0 and count as a prompt: Q = 3 (easy, mid, hard)
    assert metrics["dypo/trained_prompts"] == 3
    assert by_key["he_0_0"][0] == pytest.approx(1.0 / (3 * 4 * 3)) and float(by_key["he_0_0"][1].abs().sum()) == 0
    assert by_key["hm_0_0"][1][0] > 0
    tq.kv_clear(keys=out.keys, partition_id="train")


def test_luffy_mixing_puts_one_teacher_row_in_every_group(tq_env):
    from recipe_dypo.coefficients import COEF_FIELDS

    tq = tq_env
    t = build_trainer("+preset=luffy_mix", f"actor_rollout_ref.rollout.n={K}")
    batch = make_batch(tq, [("le", [1, 1, 1, 1], TEACHERS), ("lh", [0, 0, 0, 0], TEACHERS), ("lm", [1, 0, 0, 0], {})])
    metrics = {}
    out = t._balance_batch(batch, metrics)
    real = {k: tag for k, tag in zip(out.keys, out.tags) if not tag.get("is_padding")}
    assert {k for k, tag in real.items() if tag.get("dypo_role") == "offpolicy"} == {"le_teacher_0", "lh_teacher_0"}
    assert len(real) == 12 + 2 and metrics["dypo/hard_without_teacher"] == 1  # "lm" has no teacher: counted
    row = tq.kv_batch_get(keys=["lh_teacher_0"], partition_id="train")[0]
    assert float(row["rm_scores"][-1]) == 1.0 and float(row["rm_scores"].sum()) == 1.0  # teacher = a success
    write_log_probs(tq, out)
    t._compute_advantage(out, metrics)
    got = tq.kv_batch_get(keys=out.keys, partition_id="train", select_fields=list(COEF_FIELDS) + ["advantages"])
    rows = {k: i for i, k in enumerate(out.keys)}
    adv = {k: got["advantages"][rows[k]] for k in real}
    # hard group + teacher: the teacher is the only success (positive advantage), rollouts are pushed down
    assert float(adv["lh_teacher_0"][0]) > 0 and all(float(adv[f"lh_{i}_0"][0]) < 0 for i in range(4))
    assert all(float(adv[k].abs().sum()) == 0 for k in real if k.startswith("le"))  # all successes
    off = got["dypo_offpolicy_coef"]
    pg = got["dypo_pg_coef"]
    q = 3  # groups le, lh, lm
    n_teacher = len(row["responses"])
    assert float(off[rows["lh_teacher_0"]]) == pytest.approx(1.0 / (q * 5 * n_teacher), rel=1e-6)
    assert float(pg[rows["lh_teacher_0"]]) == 0 and float(off[rows["lh_0_0"]]) == 0
    assert float(pg[rows["lm_0_0"]]) == pytest.approx(1.0 / (q * 4 * 3), rel=1e-6)  # no teacher: group of 4
    assert metrics["dypo/offline_data_ratio"] == pytest.approx(2 / 14)
    assert metrics["dypo/offline_prompt_ratio"] == pytest.approx(2 / 3)  # 2 of the 3 groups have a teacher row
    tq.kv_clear(keys=out.keys, partition_id="train")


def test_teacher_names_select_the_drawn_teacher(tq_env):
    from recipe_dypo.data_schema import check_teacher_names

    tq = tq_env
    t = build_trainer("dypo.teacher_names=[verbose]")
    batch = make_batch(tq, [(f"n{j}", [0, 0, 0, 0], TEACHERS) for j in range(6)])
    metrics = {}
    out = t._balance_batch(batch, metrics)
    assert metrics["dypo/teacher_rows"] == 6 and metrics["dypo/teacher_draws/verbose"] == 6
    assert "dypo/teacher_draws/concise" not in metrics
    tq.kv_clear(keys=out.keys, partition_id="train")
    with pytest.raises(ValueError, match=r"\['verbos'\] not found in train.parquet; teachers there"):
        check_teacher_names("train.parquet", ["verbos"], {"verbose": 10, "concise": 10})


def test_start_up_checks_read_the_training_file(tq_env, tmp_path):
    """dypo.validate_data: invalid rows and unknown teacher names stop the run before any GPU work."""
    from data_prep.toy_data import main as toy_main
    from recipe_dypo.config import DypoConfig
    from recipe_dypo.data_schema import check_train_files

    assert toy_main(["--output-dir", str(tmp_path), "--train-size", "6", "--test-size", "1"]) == 0
    train = str(tmp_path / "train.parquet")
    assert check_train_files(train, DypoConfig(teacher_names=["verbose"])) == {train: {"verbose": 6}}
    with pytest.raises(ValueError, match=r"\['verbos'\] not found in .*train.parquet; teachers there: .*'verbose': 6"):
        check_train_files([train], DypoConfig(teacher_names=["verbos"]))
    bad = tmp_path / "bad.parquet"
    df = pd.read_parquet(train)
    df.loc[2, "data_source"] = None
    df.to_parquet(bad)
    with pytest.raises(ValueError, match=r"(?s)bad.parquet: 1 invalid row\(s\).*row 2 \[data_source\]: missing"):
        check_train_files(str(bad), DypoConfig())
