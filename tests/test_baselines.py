"""Building blocks of the baselines and ablations: group routing, teacher selection, config checks, and the SFT
data the SFT / SFT->RL baselines feed to verl's own SFT dataset."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recipe_dypo.config import DypoConfig
from recipe_dypo.grading import plan_regroup
from recipe_dypo.teachers import teachers_of

REPO = Path(__file__).resolve().parents[1]
SCORES = [1, 1, 0, 0, 0, 0, 1, 0]  # groups: easy (a), hard (b), mid (c), two rollouts each
UIDS = ["a", "a", "b", "b", "c", "c", "c", "c"][:2] + ["b", "b"] + ["c", "c", "c", "c"]


@pytest.mark.parametrize(
    "easy,hard,rl_rows,dropped,teacher_groups",
    [
        ("drop", "sft", [4, 5, 6, 7], [0, 1, 2, 3], ["b"]),  # the paper
        ("rl", "sft", [0, 1, 4, 5, 6, 7], [2, 3], ["b"]),  # HPT-style switch
        ("drop", "rl", [2, 3, 4, 5, 6, 7], [0, 1], []),
        ("rl", "drop", [0, 1, 4, 5, 6, 7], [2, 3], []),
        ("rl", "rl", list(range(8)), [], []),  # GRPO on the DYPO trainer
    ],
)
def test_routes(easy, hard, rl_rows, dropped, teacher_groups):
    plan = plan_regroup(np.array(SCORES, dtype=float), UIDS, easy=easy, hard=hard)
    assert (plan.rl_rows, plan.dropped_rows, list(plan.teacher_groups)) == (rl_rows, dropped, teacher_groups)
    assert plan.metrics["dypo/easy_ratio"] == pytest.approx(1 / 3)  # grading does not depend on the route


def test_mixing_gives_every_group_a_teacher_and_needs_rl_routes():
    plan = plan_regroup(np.array(SCORES, dtype=float), UIDS, easy="rl", hard="rl", mix_teachers=True)
    assert plan.teacher_groups == {"a": [0, 1], "b": [2, 3], "c": [4, 5, 6, 7]} and plan.rl_rows == list(range(8))
    with pytest.raises(ValueError, match="teacher mixing keeps every group: needs easy=rl and hard=rl"):
        plan_regroup(np.array(SCORES, dtype=float), UIDS, mix_teachers=True)
    with pytest.raises(ValueError, match="routes must be easy in"):
        plan_regroup(np.array(SCORES, dtype=float), UIDS, easy="sft")


def test_config_checks_of_the_new_keys():
    cfg = DypoConfig.from_config({"teacher_names": "deepseek-r1"})
    assert cfg.teacher_names == ["deepseek-r1"]
    for bad, message in [
        ({"hard_groups": "keep"}, "dypo.hard_groups must be one of ('sft', 'rl', 'drop'), got 'keep'"),
        ({"teacher_names": []}, "dypo.teacher_names must be null"),
        ({"offpolicy_mixing": True}, "dypo.offpolicy_mixing=true adds a teacher row to every group"),
        ({"offpolicy_mixing": True, "easy_groups": "rl", "hard_groups": "rl", "shaping_gamma": 0}, "shaping_gamma"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            DypoConfig.from_config(bad)


def test_verl_config_checks_of_kl_and_rollout_correction():
    """verl's own KL loss would hit teacher rows; dypo.kl_coef needs the reference model; bypass mode would take
    theta_old from rollout log-probs teacher rows do not have."""
    from recipe_dypo.config import check_verl_config
    from tests.conftest import compose_dypo_config

    assert check_verl_config(compose_dypo_config(["dypo.kl_coef=0.01"])).kl_coef == 0.01
    for overrides, message in [
        (["actor_rollout_ref.actor.kl_loss_coef=0.001"], "verl's KL loss would apply to every row"),
        (["dypo.kl_coef=0.01", "actor_rollout_ref.actor.use_kl_loss=false", "dypo.gal_reference=false"],
         "dypo.kl_coef=0.01 needs verl's reference model"),
        (["algorithm.rollout_correction.bypass_mode=true"], "bypass_mode=true uses rollout log-probs"),
        (["dypo.kl_coef=-1"], "dypo.kl_coef must be >= 0"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            check_verl_config(compose_dypo_config(overrides))


def test_teacher_names_filter_the_teachers_of_a_row():
    row = {
        "extra_info": {"teachers": [{"name": "deepseek-r1", "response": "A"}, {"name": "qwen3", "response": "B"}]},
        "target": [{"role": "assistant", "content": "C"}],
    }
    assert [t.name for t in teachers_of(row, DypoConfig())] == ["deepseek-r1", "qwen3", "target"]
    assert [t.response for t in teachers_of(row, DypoConfig(teacher_names=["qwen3"]))] == ["B"]
    assert teachers_of(row, DypoConfig(teacher_names=["nobody"])) == []


def test_a_teacher_name_accepted_at_start_up_is_one_the_draw_selects():
    """The start-up check (teacher_name_counts -> check_teacher_names) and the draw (teachers_of) parse teachers the
    same way. Before they shared a parser, a LUFFY target_lst teacher was counted as 'target_lst[0]' and drawn as
    'target_lst0': dypo.teacher_names=[target_lst0] was refused at start-up, and [target_lst[0]] was accepted and
    then drew no teacher for any prompt. Repeated and empty teachers are not selectable, so not counted either."""
    from recipe_dypo.data_schema import check_teacher_names, teacher_name_counts

    rows = [
        {
            "extra_info": {"teachers": [{"name": "deepseek-r1", "response": "A"}]},
            "target": "A",  # the same text again: not a second teacher
            "target_lst": [{"role": "assistant", "content": "L0"}, "L1", "  "],
        }
    ] * 3
    counts = teacher_name_counts(rows)
    assert counts == {"deepseek-r1": 3, "target_lst0": 3, "target_lst1": 3}
    for name in counts:
        check_teacher_names("train.parquet", [name], counts)  # accepted at start-up ...
        assert [t.name for t in teachers_of(rows[0], DypoConfig(teacher_names=[name]))] == [name]  # ... and drawn
    with pytest.raises(ValueError, match="not found"):
        check_teacher_names("train.parquet", ["target_lst[0]"], counts)


@pytest.fixture(scope="module")
def toy_train(tmp_path_factory):
    from data_prep.toy_data import main as toy_main

    out = tmp_path_factory.mktemp("toy")
    assert toy_main(["--output-dir", str(out), "--train-size", "12", "--test-size", "2", "--seed", "3"]) == 0
    return out / "train.parquet"


def test_teacher_name_counts_of_a_training_file(toy_train):
    from recipe_dypo.data_schema import teacher_name_counts

    df = pd.read_parquet(toy_train)
    assert teacher_name_counts(df) == {"concise": 12, "verbose": 12}
    assert teacher_name_counts(df.to_dict(orient="records")[:3]) == {"concise": 3, "verbose": 3}


def test_sft_data_has_one_row_per_teacher_solution(toy_train, tmp_path, capsys):
    from data_prep.make_sft_data import main

    assert main(["--input", str(toy_train), "--output", str(tmp_path / "sft.parquet")]) == 0
    train, sft = pd.read_parquet(toy_train), pd.read_parquet(tmp_path / "sft.parquet")
    assert len(sft) == 2 * len(train) == 24
    first = sft.iloc[0]
    messages = list(first["messages"])
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == train.iloc[0]["prompt"][0]["content"]
    teachers = {t["name"]: t["response"] for t in train.iloc[0]["extra_info"]["teachers"]}
    assert messages[1]["content"] == teachers[first["extra_info"]["teacher"]]
    assert "per teacher {'concise': 12, 'verbose': 12}" in capsys.readouterr().out

    assert main(["--input", str(toy_train), "--output", str(tmp_path / "one.parquet"), "--one-per-prompt"]) == 0
    one = pd.read_parquet(tmp_path / "one.parquet")
    assert len(one) == 12 and set(one["extra_info"].map(lambda e: e["teacher"])) == {"concise", "verbose"}
    assert main(["--input", str(toy_train), "--output", str(tmp_path / "c.parquet"), "--teacher", "concise"]) == 0
    assert set(pd.read_parquet(tmp_path / "c.parquet")["extra_info"].map(lambda e: e["teacher"])) == {"concise"}
    assert main(["--input", str(toy_train), "--output", str(tmp_path / "x.parquet"), "--teacher", "nope"]) == 2
    assert "teacher(s) ['nope'] not found" in capsys.readouterr().err


def test_rows_without_teachers_are_counted(tmp_path, capsys):
    import json

    from data_prep.make_sft_data import main

    rows = [
        {"prompt": [{"role": "user", "content": "q1"}], "extra_info": {"index": 0, "teachers": []}},
        {"prompt": "q2", "extra_info": {"index": 1, "teachers": [{"name": "t", "response": "r"}]}},
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.parquet")]) == 0
    out = capsys.readouterr().out
    assert "2 prompts -> " in out and ": 1 SFT rows" in out and "dropped 1 prompts" in out and "no teacher" in out


def test_sft_rows_are_tokenised_like_dypo_teacher_rows(toy_train, tmp_path):
    """The SFT baseline trains on exactly the tokens of DYPO's teacher rows: the prompt as the RL dataset renders
    it (generation prompt) + teacher tokens + EOS, with the loss on the teacher's tokens only."""
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset
    from verl.utils.import_utils import load_extern_object

    from data_prep.make_sft_data import main
    from recipe_dypo.teachers import teacher_response_ids
    from recipe_dypo.tokenizer_files import load_qwen_tokenizer

    assert main(["--input", str(toy_train), "--output", str(tmp_path / "sft.parquet")]) == 0
    tokenizer = load_qwen_tokenizer()
    sft_config = OmegaConf.load(REPO / "configs" / "sft_trainer.yaml").data
    dataset_cls = load_extern_object(sft_config.custom_cls.path, sft_config.custom_cls.name)  # as verl loads it
    config = OmegaConf.create(
        {"messages_key": "messages", "max_length": 512, "truncation": "error", "pad_mode": "no_padding"}
    )
    dataset = dataset_cls(str(tmp_path / "sft.parquet"), tokenizer, config)
    assert len(dataset) == 24
    row = pd.read_parquet(tmp_path / "sft.parquet").iloc[5]
    item = dataset[5]
    prompt = tokenizer.apply_chat_template([dict(m) for m in row["messages"][:1]], add_generation_prompt=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    ((response, _),) = teacher_response_ids(tokenizer, [row["messages"][1]["content"]], max_tokens=10_000)
    assert item["input_ids"].tolist() == prompt + response
    assert item["loss_mask"].tolist() == [0] * len(prompt) + [1] * len(response)
    assert "<think>" in tokenizer.decode(item["input_ids"][item["loss_mask"].bool()].tolist())
    assert item["position_ids"].tolist() == list(range(len(prompt) + len(response)))
    padded = dataset_cls(str(tmp_path / "sft.parquet"), tokenizer, OmegaConf.create({**config, "pad_mode": "right"}))[5]
    n = len(prompt) + len(response)
    assert len(padded["input_ids"]) == 512 and padded["attention_mask"].tolist() == [1] * n + [0] * (512 - n)
    assert padded["input_ids"][:n].tolist() == item["input_ids"].tolist() and int(padded["loss_mask"][n:].sum()) == 0
    short = dataset_cls(str(tmp_path / "sft.parquet"), tokenizer, OmegaConf.create({**config, "max_length": 20}))
    with pytest.raises(ValueError, match=r"SFT row 0: \d+ tokens > data.max_length=20"):
        short[0]
    # why not verl's default dataset: with this Qwen chat template a lone assistant turn loses its <think> block,
    # so verl's per-turn rendering does not match the whole conversation and the row is refused.
    with pytest.raises(AssertionError, match="ignore_input_ids_mismatch"):
        MultiTurnSFTDataset(str(tmp_path / "sft.parquet"), tokenizer, config)[5]


def test_every_table_row_we_train_has_a_script_and_every_script_a_row():
    import re

    from recipe_dypo.paper_results import EXTRA_RUNS, TRAINING_RUNS, get_table

    used = set()
    for key, runs in TRAINING_RUNS.items():
        table = get_table(key)
        for method, command in runs.items():
            assert table.row(method) is not None, f"{key}: no paper row named {method!r}"
            script = re.search(r"scripts/(\S+\.sh)", command).group(1)
            assert (REPO / "scripts" / script).is_file(), command
            used.add(script)
    used |= {re.search(r"scripts/(\S+\.sh)", c).group(1) for c in EXTRA_RUNS.values()}
    training_scripts = {p.name for p in (REPO / "scripts").glob("run_*.sh") if "megatron" not in p.name}
    assert training_scripts == used
    assert len(TRAINING_RUNS["table5"]) == 9 and all(get_table(5).row(m) for m in TRAINING_RUNS["table5"])


@pytest.mark.parametrize("on_bad_row", ["skip", "stop"])
def test_malformed_and_untokenisable_teachers_are_named_counted_or_stop_the_run(on_bad_row):
    """With dypo.validate_data=false a bad row reaches the trainer mid-epoch: its index is named, and it is counted
    and skipped (the run goes on) or ends the run, as dypo.on_bad_row says."""
    from collections import Counter
    from functools import partial

    import torch

    from recipe_dypo.teachers import TeacherSampler, build_teacher_rows, teacher_response_ids
    from recipe_dypo.tokenizer_files import load_qwen_tokenizer

    def template(index, teachers):
        prompt = torch.tensor([1, 2, 3])
        return {"prompts": prompt, "position_ids": torch.arange(3), "extra_info": {"index": index, **teachers}}

    good = {"teachers": [{"name": "r1", "response": "<think>1+1=2</think> \\boxed{2}"}]}
    templates = [
        template(0, good),
        template(7, {"teachers": [{"name": "r1"}]}),  # no response field
        template(9, {"teachers": [{"name": "r1", "response": "ok \ud800 bad"}]}),  # a lone surrogate
        template(11, {"teachers": []}),  # no teacher at all: counted as such, not as bad
    ]
    tokenize = partial(teacher_response_ids, load_qwen_tokenizer(), max_tokens=64)
    cfg, draws = DypoConfig(on_bad_row=on_bad_row), Counter()
    if on_bad_row == "stop":
        with pytest.raises(ValueError, match=r"2 training row\(s\).*row 7: malformed teacher field.*row 9: teacher"):
            build_teacher_rows(templates, TeacherSampler(0), cfg, tokenize, draws)
        return
    built = build_teacher_rows(templates, TeacherSampler(0), cfg, tokenize, draws)
    assert built.sources == [0] and len(built.rows) == 1 and draws == Counter(r1=1)
    assert [b.split(":")[0] for b in built.bad] == ["row 7", "row 9"] and "does not tokenise" in built.bad[1]
    assert built.no_teacher == 1
    metrics = built.metrics(0, draws)
    assert metrics["dypo/bad_teacher_rows"] == 2 and metrics["dypo/hard_without_teacher"] == 1
