"""data_prep/ scripts and recipe_dypo.data_schema: toy data, train/teacher pipeline, validation, eval sets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data_prep import (
    add_teacher,
    generate_teacher_traces,
    prepare_eval,
    prepare_train,
    teacher_sizes,
    toy_data,
    validate,
)
from data_prep.generate_teacher_traces import GenOut
from recipe_dypo.data_schema import make_token_counter, prompt_hash, validate_dataframe, validate_parquet
from recipe_dypo.reward import score_batch
from tests.conftest import SHARED_BENCHMARKS

REPO = Path(__file__).resolve().parents[1]
THINK_OK = "<think>\nlet me compute\n</think>\nThe answer is \\boxed{{{}}}."


# ----------------------------------------------------------------------------------------------------------- toy data


def test_toy_rows_deterministic_short_and_correct():
    rows = toy_data.make_toy_rows(64, seed=3)
    assert rows == toy_data.make_toy_rows(64, seed=3)
    assert rows != toy_data.make_toy_rows(64, seed=4)
    assert len({r["prompt"][0]["content"] for r in rows}) == 64
    assert validate_dataframe(rows, min_teachers=2, require_think=True) == []
    count = make_token_counter("qwen")
    assert max(count(r["prompt"][0]["content"]) for r in rows) < 40
    teachers = [t for r in rows for t in r["extra_info"]["teachers"]]
    assert {t["name"] for t in teachers} == {"concise", "verbose"}
    assert max(count(t["response"]) for t in teachers) < 60
    assert all(r["data_source"] == "toy_arith" for r in rows)
    res = score_batch([("toy_arith", t["response"], r["reward_model"]["ground_truth"]) for r in rows for t in
                       r["extra_info"]["teachers"]], num_workers=2)  # fmt: skip
    assert sum(x["score"] for x in res) == len(teachers)  # every synthetic teacher solution is graded correct
    one = toy_data.make_toy_rows(5, seed=0, teachers=("verbose",))
    assert [len(r["extra_info"]["teachers"]) for r in one] == [1] * 5


def test_toy_cli(tmp_path):
    assert toy_data.main(["--output-dir", str(tmp_path), "--train-size", "40", "--test-size", "10"]) == 0
    train = pd.read_parquet(tmp_path / "train.parquet")
    assert len(train) == 40 and validate_parquet(tmp_path / "train.parquet", min_teachers=2) == []
    assert len(pd.read_parquet(tmp_path / "test.parquet")) == 10


# ------------------------------------------------------------------------------------- train + teachers + validate


def _luffy_rows():
    """LUFFY-shaped input: system+user prompt, target = one assistant message, optional target_lst, some bad rows."""
    sys_msg = {"role": "system", "content": "Think first."}
    rows = []
    for i in range(6):
        rows.append(
            {
                "data_source": "openr1",
                "prompt": [sys_msg, {"role": "user", "content": f"What is {i} + {i}?"}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(2 * i)},
                "extra_info": {"index": 100 + i, "split": "default"},
                "target": [{"role": "assistant", "content": THINK_OK.format(2 * i)}],
            }
        )
    rows[1]["target_lst"] = [
        {"role": "assistant", "content": THINK_OK.format(2)},  # repeats target: de-duplicated
        {"role": "assistant", "content": "<think>\nsecond R1 sample\n</think>\n\\boxed{2}"},
    ]
    bad = [
        dict(rows[0], reward_model={"style": "rule", "ground_truth": ""}),  # missing ground truth
        dict(rows[0], prompt=[sys_msg, {"role": "user", "content": "  "}]),  # empty prompt
        dict(rows[0], target=[{"role": "assistant", "content": 7}]),  # teacher not a string
        dict(rows[2]),  # duplicate prompt
    ]
    return rows + bad


def test_prepare_train_add_teacher_validate_end_to_end(tmp_path, capsys):
    src = tmp_path / "luffy.jsonl"  # JSONL: parquet could not even hold the non-string teacher
    src.write_text("\n".join(json.dumps(r) for r in _luffy_rows()) + "\n")
    out = tmp_path / "train.parquet"
    assert prepare_train.main(["--input", str(src), "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "dropped 4 rows" in printed
    for reason in ("missing ground truth", "empty prompt", "teacher not a string", "duplicate prompt"):
        assert reason in printed
    df = pd.read_parquet(out)
    assert len(df) == 6
    first = df.iloc[0]
    assert first["extra_info"]["teachers"][0]["name"] == "deepseek-r1"
    assert first["extra_info"]["source_index"] == 100 and first["extra_info"]["index"] == 0
    assert first["target"][0]["content"] == first["extra_info"]["teachers"][0]["response"]
    assert [len(t) for t in df.extra_info.map(lambda e: e["teachers"])] == [1, 2, 1, 1, 1, 1]

    # a second teacher's traces: joined by prompt hash (reordered) or by index, with junk that must be reported
    traces = tmp_path / "qwen3.jsonl"
    lines = []
    for _, r in df.iloc[::-1].iterrows():
        gt = r["reward_model"]["ground_truth"]
        key = (
            {"prompt_hash": r["extra_info"]["prompt_hash"]} if int(gt) % 4 == 0 else {"index": r["extra_info"]["index"]}
        )
        lines.append({**key, "teacher": "qwen3", "response": f"<think>\nQwen: {gt}\n</think>\nSo \\boxed{{{gt}}}"})
    lines.append({"index": 999, "teacher": "qwen3", "response": "<think>x</think> \\boxed{1}"})  # no such row
    lines.append(dict(lines[0]))  # duplicate
    lines.append({"prompt_hash": prompt_hash([{"role": "user", "content": "What is 0 + 0?"}]), "teacher": "qwen3",
                  "response": "<think>\nanother\n</think>\n\\boxed{0}"})  # fmt: skip  # over --max-per-teacher
    traces.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    merged = tmp_path / "train2.parquet"
    argv = ["--input", str(out), "--traces", str(traces), "--output", str(merged), "--min-teachers", "2"]
    assert add_teacher.main(argv) == 0
    printed = capsys.readouterr().out
    assert "added 6 to 6 row(s)" in printed and "dropped 3 trace lines" in printed
    for reason in ("no training row with this index", "duplicate of a trace", "more than --max-per-teacher"):
        assert reason in printed
    m = pd.read_parquet(merged)
    names = [[t["name"] for t in e["teachers"]] for e in m.extra_info]
    assert all(len(n) >= 2 and n[0] == "deepseek-r1" and n[-1] == "qwen3" for n in names)
    assert validate_parquet(merged, min_teachers=2, require_think=True) == []
    assert validate.main([str(merged), "--min-teachers", "2", "--require-think"]) == 0

    # the core trainer's reader sees the same teachers
    teachers_mod = pytest.importorskip("recipe_dypo.teachers")
    for rec in m.to_dict(orient="records"):
        got = teachers_mod.extract_teachers(rec)
        assert len(got) >= 2 and got[-1].response.startswith("<think>\nQwen")

    # a traces file with a malformed line fails with its line number unless told to skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"index": 0, "teacher": "x", "response": "<think>a</think> \\\\boxed{0}"}\nnot json\n')
    assert add_teacher.main(["--input", str(out), "--traces", str(bad), "--output", str(tmp_path / "x.parquet")]) == 1
    assert f"{bad}:2" in capsys.readouterr().err


def test_prepare_train_strict_names_row_and_field(tmp_path):
    src = tmp_path / "luffy.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in _luffy_rows()) + "\n")
    with pytest.raises(ValueError, match=r"input row 6: reward_model.ground_truth: missing ground truth"):
        prepare_train.main(["--input", str(src), "--output", str(tmp_path / "o.parquet"), "--strict", "--quiet"])


def _bad_rows():
    good = toy_data.make_toy_rows(6, seed=1)
    good[1]["reward_model"]["ground_truth"] = ""  # missing ground truth
    good[2]["prompt"] = []  # empty prompt
    good[3]["extra_info"]["teachers"][0]["response"] = None  # teacher not a string
    good[4]["extra_info"]["teachers"][1]["response"] = "<think>" + "long " * 400 + "</think> \\boxed{1}"
    good[5]["extra_info"]["index"] = good[0]["extra_info"]["index"]  # duplicate index
    return good


def test_validate_dataframe_reports_each_problem():
    issues = validate_dataframe(_bad_rows(), min_teachers=1, max_teacher_tokens=200)
    found = {(i.row, i.field, i.reason.split(" (")[0]) for i in issues}
    assert (1, "reward_model.ground_truth", "missing ground truth") in found
    assert (2, "prompt", "empty prompt") in found
    assert (3, "extra_info.teachers[0].response", "teacher not a string") in found
    assert (4, "teacher 'verbose'", "teacher longer than the token budget") in found
    assert (5, "extra_info.index", "duplicate index 0") in found
    assert {i.row for i in issues} == {1, 2, 3, 4, 5}
    assert all(isinstance(i, tuple) and len(i) == 3 for i in issues)


def test_validate_cli_fails_or_drops_with_rejects(tmp_path, capsys):
    path = tmp_path / "bad.parquet"
    pd.DataFrame(_bad_rows()).to_parquet(path)
    assert validate.main([str(path), "--max-teacher-tokens", "200"]) == 1
    out = capsys.readouterr().out
    assert "6 rows, 5 invalid" in out and "row 2: prompt: empty prompt" in out
    clean, rej = tmp_path / "clean.parquet", tmp_path / "rej.parquet"
    argv = [str(path), "--max-teacher-tokens", "200", "--drop-invalid", "--output", str(clean), "--rejects", str(rej)]
    assert validate.main(argv) == 0
    assert "kept 1 rows" in capsys.readouterr().out
    assert len(pd.read_parquet(clean)) == 1 and validate_parquet(clean) == []
    rejects = pd.read_parquet(rej)
    assert len(rejects) == 5 and "missing ground truth" in rejects.reject_reasons[0]


@pytest.mark.parametrize("script", ["prepare_train", "add_teacher", "generate_teacher_traces", "prepare_eval",
                                    "validate", "toy_data"])  # fmt: skip
def test_scripts_help_as_files(script):
    """Each script runs as a plain file (no install) and documents its flags."""
    out = subprocess.run([sys.executable, str(REPO / "data_prep" / f"{script}.py"), "--help"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--output" in out.stdout or "--output-dir" in out.stdout


# ------------------------------------------------------------------------------------------ teacher trace generation


def test_teacher_sizes_and_the_prepare_script(tmp_path):
    """Table 3's teacher strengths: the paper's Qwen3-235B-A22B and our reading of 32B / 8B as Qwen3-32B / -8B."""
    assert [(t.size, t.model, t.train_file, t.sft_file) for t in teacher_sizes.TEACHER_SIZES.values()] == [
        ("235b", "Qwen/Qwen3-235B-A22B", "train_2t.parquet", "sft_2t.parquet"),
        ("32b", "Qwen/Qwen3-32B", "train_2t_32b.parquet", "sft_2t_32b.parquet"),
        ("8b", "Qwen/Qwen3-8B", "train_2t_8b.parquet", "sft_2t_8b.parquet"),
    ]
    with pytest.raises(ValueError, match="TEACHER_SIZE must be one of"):
        teacher_sizes.second_teacher("70b")
    env = {**os.environ, "DRY_RUN": "1", "TEACHER_SIZE": "8b", "DATA_DIR": str(tmp_path), "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(REPO / "scripts" / "prepare_teacher_data.sh")], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    commands = [line[2:] for line in out.stderr.splitlines() if line.startswith("+ ")]
    assert [c.split()[2] for c in commands] == [
        "data_prep.prepare_train", "data_prep.generate_teacher_traces", "data_prep.add_teacher", "data_prep.validate",
        "data_prep.make_sft_data", "data_prep.make_sft_data",
    ]  # fmt: skip
    assert "--model Qwen/Qwen3-8B --teacher-name qwen3-8b" in commands[1]
    assert f"--tensor-parallel-size 1 --output {tmp_path}/qwen3-8b.jsonl" in commands[1]
    assert f"--output {tmp_path}/train_2t_8b.parquet --min-teachers 2" in commands[2]
    assert f"--output {tmp_path}/sft_2t_8b.parquet" in commands[4]
    assert commands[5].endswith(f"--output {tmp_path}/sft_1t.parquet --teacher deepseek-r1")
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_generate_teacher_traces_filters_and_resumes(tmp_path, capsys):
    assert "vllm" not in sys.modules  # importing the module does not import vLLM
    train = tmp_path / "train.parquet"
    pd.DataFrame(toy_data.make_toy_rows(5, seed=2)).to_parquet(train)
    out = tmp_path / "traces.jsonl"
    calls = []

    def fake_generate(rows):
        calls.append(len(rows))
        res = []
        for r in rows:
            gt = int(r["reward_model"]["ground_truth"])
            res.append(
                [
                    GenOut(f"<think>\nok\n</think>\n\\boxed{{{gt}}}", "stop", 12),  # kept
                    GenOut(f"<think>\nok\n</think>\n\\boxed{{{gt}}}", "stop", 12),  # duplicate
                    GenOut(f"\nprefilled think\n</think>\nSo \\boxed{{{gt}}}", "stop", 12),  # over keep limit
                    GenOut(f"<think>\nbad\n</think>\n\\boxed{{{gt + 1}}}", "stop", 12),  # wrong answer
                    GenOut(f"<think>\nnever closed \\boxed{{{gt}}}", "stop", 12),  # incomplete think
                    GenOut(f"<think>\ncut\n</think>\n\\boxed{{{gt}}}", "length", 64),  # truncated
                    GenOut(f"<think>\nlong\n</think>\n\\boxed{{{gt}}}", "stop", 5000),  # over max tokens
                    GenOut("", "stop", 0),  # empty
                ]
            )
        return res

    argv = ["--input", str(train), "--output", str(out), "--model", "/models/Qwen3-235B-A22B", "--n", "8",
            "--max-tokens", "4096", "--batch-size", "2", "--reward-workers", "2", "--limit", "3"]  # fmt: skip
    summary = generate_teacher_traces.run(generate_teacher_traces.parse_args(argv), fake_generate)
    assert calls == [2, 1] and summary["prompts_this_run"] == 3
    expected = {"kept": 1, "duplicate": 1, "over_keep_limit": 1, "wrong_answer": 1, "incomplete_think": 1,
                "truncated": 1, "over_max_tokens": 1, "empty": 1}  # fmt: skip
    assert summary["this_run"] == {k: 3 * v for k, v in expected.items()}
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 3 and {r["teacher"] for r in recs} == {"Qwen3-235B-A22B"}

    # resume: the 3 done prompts are skipped, the other 2 generated; a third run has nothing to do
    summary = generate_teacher_traces.run(generate_teacher_traces.parse_args(argv[:-2]), fake_generate)
    assert calls == [2, 1, 2] and summary["prompts_this_run"] == 2
    assert summary["cumulative"]["kept"] == 5
    summary = generate_teacher_traces.run(generate_teacher_traces.parse_args(argv[:-2]), fake_generate)
    assert calls == [2, 1, 2] and summary["prompts_this_run"] == 0
    assert "vllm" not in sys.modules
    # the traces merge into the training file: every prompt gets its second teacher
    merged = tmp_path / "merged.parquet"
    argv = ["--input", str(train), "--traces", str(out), "--output", str(merged), "--min-teachers", "3"]
    assert add_teacher.main(argv) == 0
    assert validate_parquet(merged, min_teachers=3, require_think=True) == []


def test_precheck_and_normalize():
    assert generate_teacher_traces.normalize_response("x</think> \\boxed{1}") == "<think>\nx</think> \\boxed{1}"
    assert generate_teacher_traces.precheck(GenOut("<think>a</think>", "stop", 3), 10) == "incomplete_think"
    assert generate_teacher_traces.precheck(GenOut("<think>a</think> \\boxed{1}", "stop", 3), 10) is None


# ------------------------------------------------------------------------------------------------- evaluation sets

EXPECTED_SIZES = {"aime24": 30, "aime25": 30, "amc": 83, "math500": 500, "minerva": 272, "arc_c": 1172,
                  "gpqa_diamond": 198}  # fmt: skip


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    shared = SHARED_BENCHMARKS
    if not shared.is_dir():
        pytest.skip(f"benchmark files not found at {shared} (they live in ../shared/benchmarks)")
    out = tmp_path_factory.mktemp("eval")
    assert prepare_eval.main(["--source-dir", str(shared), "--output-dir", str(out)]) == 0
    return out


def test_prepare_eval_writes_seven_valid_sets(eval_dir):
    for name, size in EXPECTED_SIZES.items():
        df = pd.read_parquet(eval_dir / f"{name}.parquet")
        assert len(df) == size, name
        assert set(df.data_source) == {name}
        assert validate_parquet(eval_dir / f"{name}.parquet") == []
    gpqa = pd.read_parquet(eval_dir / "gpqa_diamond.parquet")
    assert all("\\boxed{" in p[-1]["content"] and "$LETTER" not in p[-1]["content"] for p in gpqa.prompt)
    arc = pd.read_parquet(eval_dir / "arc_c.parquet")
    assert set(g["ground_truth"] for g in arc.reward_model) <= set("ABCDE")  # digit-numbered rows relabelled
    assert sum(e["original_answer"].isdigit() for e in arc.extra_info) == 22
    # shuffled: the gold letter moved for a good share of the rows, and the option text moved with it
    moved = sum(g["ground_truth"] != e["original_answer"] for g, e in zip(arc.reward_model, arc.extra_info))
    assert moved > 0.5 * len(arc)


def _grade_file(path, make_answer):
    df = pd.read_parquet(path)
    items = [
        (ds, make_answer(rm["ground_truth"]), rm["ground_truth"]) for ds, rm in zip(df.data_source, df.reward_model)
    ]
    res = score_batch(items, num_workers=2)
    failures = [(i, items[i][1][-60:], r) for i, r in enumerate(res) if r["score"] != res[0]["score"]][:5]
    return sum(r["score"] for r in res) / len(res), failures


def test_eval_ground_truths_grade_100_and_perturbed_0(eval_dir):
    for name in EXPECTED_SIZES:
        path = eval_dir / f"{name}.parquet"
        acc, bad = _grade_file(path, lambda gt: f"<think>…</think> The answer is \\boxed{{{gt}}}")
        assert acc == 1.0, (name, bad)
        if name in prepare_eval.CHOICE_BENCHMARKS:
            wrong = lambda gt: f"<think>…</think> The answer is \\boxed{{{'B' if gt == 'A' else 'A'}}}"  # noqa: E731
        else:
            wrong = lambda gt: f"<think>…</think> The answer is \\boxed{{({gt}) + 1}}"  # noqa: E731
            acc_unclosed, _ = _grade_file(path, lambda gt: f"<think>… The answer is \\boxed{{{gt}}}")
            assert acc_unclosed == 0.0, name
        acc_wrong, bad = _grade_file(path, wrong)
        assert acc_wrong == 0.0, (name, bad)


def test_prepare_eval_seeded_shuffle_and_hpt_source(tmp_path):
    shared = SHARED_BENCHMARKS
    if not shared.is_dir():
        pytest.skip(f"benchmark files not found at {shared}")
    runs = {}
    for tag, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        out = tmp_path / tag
        prepare_eval.main(
            ["--source-dir", str(shared), "--output-dir", str(out), "--benchmarks", "arc_c", "--seed", seed]
        )
        runs[tag] = [g["ground_truth"] for g in pd.read_parquet(out / "arc_c.parquet").reward_model]
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]
    out = tmp_path / "hpt"
    argv = ["--source-dir", str(shared), "--output-dir", str(out), "--benchmarks", "aime24,amc", "--prefer", "hpt"]
    assert prepare_eval.main(argv) == 0
    aime = pd.read_parquet(out / "aime24.parquet")
    assert len(aime) == 30 and not any("boxed" in rm["ground_truth"] for rm in aime.reward_model)
    assert len(pd.read_parquet(out / "amc.parquet")) == 40  # HPT's AMC23
    acc, bad = _grade_file(out / "aime24.parquet", lambda gt: f"<think>x</think> \\boxed{{{gt}}}")
    assert acc == 1.0, bad


def test_split_options_formats():
    stem, labels, opts = prepare_eval.split_options("Q?\n\n1) one\n2) two\n3) three\n4) four\n")
    assert stem == "Q?" and labels == list("1234") and opts == ["one", "two", "three", "four"]
    stem, labels, opts = prepare_eval.split_options("Q with a) sub and\nb) sub\n\nA. x\nB. y\n\nC. z\nD. w")
    assert labels == list("ABCD") and opts == ["x", "y", "z", "w"] and "b) sub" in stem
    with pytest.raises(prepare_eval.BadRow):
        prepare_eval.split_options("no options here")


def test_counts_sanity():
    assert list(prepare_eval.DEFAULT_BENCHMARKS) == list(EXPECTED_SIZES)  # the paper's seven, no repeats


def test_teacher_traces_refuse_greedy_with_several_samples(capsys):
    """vLLM refuses n > 1 under greedy decoding ("n must be 1 when using greedy sampling"), but only once the
    engine and model are loaded; the CLI refuses it while parsing its arguments."""
    argv = ["--input", "x.parquet", "--output", "t.jsonl", "--model", "m", "--temperature", "0"]
    with pytest.raises(SystemExit):
        generate_teacher_traces.parse_args([*argv, "--n", "4"])
    assert "greedy decoding" in capsys.readouterr().err
    assert generate_teacher_traces.parse_args([*argv, "--n", "1"]).n == 1
