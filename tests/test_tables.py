"""Table renderer, paper-results data, reproduce_tables.py and plot_curves.py (synthetic inputs only)."""

from __future__ import annotations

import importlib.util
import json
import os
import re

import pytest

from recipe_dypo import paper_results
from recipe_dypo.eval import curves, metrics, tables
from recipe_dypo.paper_results import (
    MAIN_COLUMNS,
    PAPER_HEADINGS,
    TABLE1,
    TABLE5,
    PaperRow,
    PaperTable,
    grid_label,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_summary(d, label, scores, model="/ckpt/model", date="2026-05-01T12:00:00Z", complete=True, pass_at=None):
    """A minimal evaluator summary.json with the given per-benchmark scores (percent) and pass@32 (fractions)."""
    os.makedirs(d, exist_ok=True)
    bench = {b: {"score": s, "avg@n": s / 100, "n": 1, "num_prompts": 1, "complete": True} for b, s in scores.items()}
    for b, v in (pass_at or {}).items():
        bench[b].update(n=32, **{"pass@k": {"1": bench[b]["avg@n"], "32": v}})
    s = {"label": label, "model": model, "date": date, "benchmarks": bench, "complete": complete}
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(s, f)
    return d


FULL = {
    "aime24": 30.0,
    "aime25": 20.0,
    "amc": 60.0,
    "math500": 80.0,
    "minerva": 40.0,
    "arc_c": 70.0,
    "gpqa_diamond": 30.0,
}


def _fake_paper_table():
    """A paper-like table with made-up numbers (test fixture only; never part of paper_results)."""
    rows = (
        PaperRow("Base", "Base", {c: 10.0 for c in MAIN_COLUMNS}),
        PaperRow("DYPO", "Ours", {**{c: 50.0 for c in MAIN_COLUMNS}, "id_avg": 45.0, "ood_avg": 55.0}),
    )
    return PaperTable("tfake", "Fake table", "Some-7B", MAIN_COLUMNS, rows, "fixture", "transcribed")


# ---------------------------------------------------------------------------------------------------------------------
# paper_results against the checked transcription (../shared/paper/tables.md)
# ---------------------------------------------------------------------------------------------------------------------

HEADING_KEYS = {heading: key for key, heading in PAPER_HEADINGS.items()}
VARIANT_SUFFIX = " (235B / 32B / 8B)"


def parse_tables_md(text):
    """``{"table1": {"header": [...], "rows": [[cell, ...], ...], "text": section}, ...}`` from tables.md."""
    out = {}
    for section in re.split(r"^## ", text, flags=re.M):
        m = re.match(r"Table (\d)", section)
        if not m:
            continue
        lines = [line for line in section.splitlines() if line.startswith("|")]
        cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
        out[f"table{m.group(1)}"] = {"header": cells[0], "rows": cells[2:], "text": section}
    return out


def parse_cell(text):
    """Cell text -> value: "26.6 / 26.8 / 24.5" a tuple, "33.5 ± 1.4" {"mean", "std"}, "11.5" a float."""
    if "±" in text:
        mean, std = text.split("±")
        return {"mean": float(mean), "std": float(std)}
    if "/" in text:
        return tuple(float(x) for x in text.split("/"))
    return float(text)


@pytest.fixture(scope="module")
def transcription(paper_tables_md):
    return parse_tables_md(paper_tables_md)


@pytest.mark.parametrize("key", ["table1", "table2", "table3", "table4"])
def test_every_published_cell_matches_the_transcription(transcription, key):
    table, md = paper_results.get_table(key), transcription[key]
    columns = [HEADING_KEYS[h] for h in md["header"][1:]]
    assert tuple(columns) == table.columns
    names = [row[0].removesuffix(VARIANT_SUFFIX) for row in md["rows"]]
    assert names == table.methods  # the same rows, in the paper's order, spelled as printed
    for row in md["rows"]:
        published = table.row(row[0].removesuffix(VARIANT_SUFFIX))
        assert published.has_variants == all(" / " in text for text in row[1:]), (key, row[0])
        for column, text in zip(columns, row[1:]):
            assert published.scores[column] == parse_cell(text), (key, row[0], column)


def test_table5_cells_match_the_transcription(transcription):
    md = transcription["table5"]
    assert md["header"] == ["α", "β_GAL", "AIME 24", "MATH-500"]
    assert len(md["rows"]) == len(TABLE5.rows) == 9
    for row in md["rows"]:
        alpha, beta = float(row[0]), float(row[1])
        published = TABLE5.row(grid_label(alpha, beta))
        assert published.params == {"alpha": alpha, "beta_gal": beta}
        for column, text in zip(("aime24", "math500"), row[2:]):
            cell = parse_cell(text)
            assert (published.scores[column], published.std[column]) == (cell["mean"], cell["std"])


def test_table1_groups_and_printed_gains_match_the_transcription(transcription):
    text = transcription["table1"]["text"]
    line = text[text.index("in brackets:") :].splitlines()[0]
    gains = [float(g) for g in re.findall(r"[+-]\d+\.\d", line)]
    dypo = TABLE1.row("DYPO")
    assert [dypo.gains[c] for c in MAIN_COLUMNS] == gains
    for group, members in re.findall(r'"([^"]+)" \(([^)]+)\)', text):
        expected = [m.strip() for m in members.split(",")]
        assert [r.method for r in TABLE1.rows if r.group == group] == expected, group
    assert [r.group for r in TABLE1.rows][0] == "Base model" and dypo.group == "DYPO"


def test_paper_tables_layout():
    assert paper_results.get_table(1) is TABLE1 and TABLE1.base_model == "Qwen2.5-Math-7B"
    t2 = paper_results.get_table("table2")
    assert t2.base_model == "Qwen3-4B-Base" and t2.methods == ["Qwen3-4B-Base", "SFT", "RL", "SFT → RL", "DYPO"]
    assert [h for h, _ in t2.display_columns()][:2] == ["AIME 24/25", "AMC"]
    t3 = paper_results.get_table(3)
    assert t3.methods == ["Qwen2.5-Math-7B", "+ SFT", "+ Multi-Teacher", "+ RL", "+ Dynamic Grading", "+ GAL (DYPO)"]
    assert t3.columns == ("aime24", "aime25", "amc", "gpqa_diamond") and t3.variants == ("235B", "32B", "8B")
    assert [r.has_variants for r in t3.rows] == [False, False, True, True, True, True]
    assert all(len(v) == 3 for r in t3.rows if r.has_variants for v in r.scores.values())
    t4 = paper_results.get_table(4)
    assert t4.methods == ["DYPO (Single-Teacher)", "DYPO (2-Teacher)"]
    assert t4.columns == ("aime24", "amc", "gpqa_diamond")
    assert TABLE5.columns == ("aime24", "math500") and TABLE5.params == ("alpha", "beta_gal")
    for table in paper_results.TABLES.values():
        assert table.status == "transcribed" and paper_results.is_transcribed(table)
        for row in table.rows:
            assert set(row.scores) == set(table.columns), (table.key, row.method)


def test_printed_averages_agree_with_their_values_except_the_flagged_cell():
    for table in (TABLE1, paper_results.TABLE2):
        for row in table.rows:
            for avg, benches in (("id_avg", metrics.ID_BENCHMARKS), ("ood_avg", metrics.OOD_BENCHMARKS)):
                mean = sum(row.scores[b] for b in benches) / len(benches)
                agrees = abs(mean - row.scores[avg]) <= 0.1  # one-decimal rounding of values and average
                assert agrees != (avg in row.notes), (table.key, row.method, avg, mean)
    dypo = TABLE1.row("DYPO")
    assert set(dypo.notes) == {"id_avg"} and dypo.scores["id_avg"] == 52.5
    assert sum(dypo.scores[b] for b in metrics.ID_BENCHMARKS) / 5 == pytest.approx(52.66)
    assert "52.66" in dypo.notes["id_avg"]


def test_printed_gains_are_dypo_minus_sft_then_rl():
    dypo, base = TABLE1.row("DYPO"), TABLE1.row(TABLE1.gains_over)
    for c in MAIN_COLUMNS:
        assert dypo.gains[c] == pytest.approx(dypo.scores[c] - base.scores[c], abs=1e-9)


def test_the_stated_inconsistencies_hold():
    srft, dypo = TABLE1.row("SRFT"), TABLE1.row("DYPO")
    assert round(dypo.scores["aime25"] - srft.scores["aime25"], 1) == 2.7 != 4.8
    assert dypo.gains["id_avg"] == 4.8
    assert paper_results.non_increasing_steps() == [
        ("+ Dynamic Grading", "amc", "235B", 64.1, 63.6),
        ("+ Dynamic Grading", "amc", "32B", 63.5, 62.0),
        ("+ Dynamic Grading", "gpqa_diamond", "32B", 35.4, 35.4),
        ("+ GAL (DYPO)", "aime25", "235B", 28.7, 28.7),
        ("+ GAL (DYPO)", "aime25", "8B", 28.1, 27.8),
    ]
    text = " ".join(i.text for i in paper_results.PAPER_INCONSISTENCIES)
    for number in ("52.66", "28.7 − 26.0 = +2.7", "64.1 → 63.6", "63.5 → 62.0", "35.4", "28.1 → 27.8"):
        assert number in text


def test_rows_shared_between_tables_are_equal():
    """What the baseline mapping rests on: Table 3's "+ SFT" is Table 1's SFT, its "+ RL" is not SFT → RL."""
    t1, t3, t4 = TABLE1, paper_results.TABLE3, paper_results.TABLE4
    for t3_row, t1_row in (("Qwen2.5-Math-7B", "Qwen2.5-Math-7B"), ("+ SFT", "SFT")):
        assert all(t3.row(t3_row).value(c) == t1.row(t1_row).value(c) for c in t3.columns)
    assert all(t3.row("+ GAL (DYPO)").value(c, 0) == t1.row("DYPO").value(c) for c in t3.columns)
    assert all(t4.row("DYPO (2-Teacher)").value(c) == t1.row("DYPO").value(c) for c in t4.columns)
    assert all(TABLE5.row(grid_label(0.5, 1)).value(c) == t1.row("DYPO").value(c) for c in TABLE5.columns)
    assert all(t3.row("+ RL").value(c, 0) != t1.row("SFT → RL").value(c) for c in t3.columns)


def test_docs_show_every_published_table_and_the_inconsistencies():
    def read(name):
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            return f.read()

    reproduce = read("docs/reproduce.md")
    for table in paper_results.TABLES.values():
        assert tables.published_markdown(table) in reproduce, f"docs/reproduce.md shows an outdated {table.key}"
    for claim in ("52.66", "28.7 − 26.0 = +2.7", "64.1 → 63.6", "63.5 → 62.0", "28.1 → 27.8"):
        assert claim in reproduce
    for text in (read("README.md"), reproduce):
        for phrase in ("could not be read", "not transcribed", "unconfirmed", "TODO"):
            assert phrase not in text


def test_training_runs_map_rows_to_existing_scripts():
    from data_prep.teacher_sizes import TEACHER_SIZES

    for mapping in (paper_results.TRAINING_RUNS, paper_results.EVAL_ONLY_RUNS):
        for key, runs in mapping.items():
            table = paper_results.get_table(key)
            for name, command in runs.items():
                row, variant = table.resolve(name)
                assert row is not None, f"{key}: no paper row named {name!r}"
                assert (variant is not None) == row.has_variants, (key, name)
                for script in re.findall(r"scripts/(\S+\.sh)", command):
                    assert os.path.isfile(os.path.join(REPO, "scripts", script)), command
                for size in re.findall(r"TEACHER_SIZE=(\S+)", command):
                    assert size in TEACHER_SIZES and size == table.variants[variant].lower(), command
    t3 = paper_results.TRAINING_RUNS["table3"]
    for row in paper_results.TABLE3.rows[2:]:
        assert all(f"{row.method} ({size})" in t3 for size in paper_results.TEACHER_STRENGTHS)
    # Table 1's SFT (= Table 3's "+ SFT") is single-teacher SFT; "+ Multi-Teacher" and "+ RL" use both teachers
    env = {name: command.split("bash")[0] for name, command in t3.items()}
    assert paper_results.TRAINING_RUNS["table1"]["SFT"].startswith("bash scripts/run_sft.sh") and env["+ SFT"] == ""
    assert all("SFT_TEACHERS=2" in env[f"{r} ({s})"] for r in ("+ Multi-Teacher", "+ RL") for s in ("235B", "8B"))
    assert "run_sft_then_rl.sh" in t3["+ RL (32B)"] and "run_ablation_no_gal.sh" in t3["+ Dynamic Grading (8B)"]
    assert "LUFFY" not in paper_results.TRAINING_RUNS["table2"]  # Table 2 has no LUFFY row
    assert paper_results.untrained_rows(paper_results.TABLE3) == []


# ---------------------------------------------------------------------------------------------------------------------
# Renderer
# ---------------------------------------------------------------------------------------------------------------------


def test_measured_row_difference_and_labels(tmp_path):
    table = _fake_paper_table()
    d = _write_summary(str(tmp_path / "run"), "my-dypo", FULL)
    runs = tables.load_measured([f"{d}=DYPO"])
    md = tables.render_markdown(table, runs)
    id_avg = (30 + 20 + 60 + 80 + 40) / 5  # 46.0
    assert "| **my-dypo** | measured | measured: `/ckpt/model`, 2026-05-01 |" in md
    assert f"{id_avg:.1f}" in md
    assert "| Δ my-dypo | difference | measured − paper (DYPO) | -20.0 | -30.0 | +10.0 | +30.0 | -10.0 | +1.0 |" in md
    rows = tables.read_csv_rows(tables.render_csv(table, runs))
    assert [r["kind"] for r in rows] == ["paper", "paper", "measured", "diff"]
    diff = rows[-1]
    assert diff["compare_to"] == "DYPO" and float(diff["ood_avg"]) == pytest.approx((70 + 30) / 2 - 55.0)
    assert rows[2]["model"] == "/ckpt/model" and rows[2]["date"] == "2026-05-01"


def test_measured_cells_are_never_filled_from_the_paper(tmp_path):
    table = _fake_paper_table()
    partial = {k: v for k, v in FULL.items() if k != "gpqa_diamond"}
    d = _write_summary(str(tmp_path / "run"), "DYPO", partial)  # label matches the paper row
    rows = tables.read_csv_rows(tables.render_csv(table, tables.load_measured([d])))
    measured = next(r for r in rows if r["kind"] == "measured")
    assert measured["gpqa_diamond"] == "" and measured["ood_avg"] == ""  # not the paper's 50.0 / 55.0
    assert float(measured["arc_c"]) == 70.0
    diff = next(r for r in rows if r["kind"] == "diff")
    assert diff["compare_to"] == "DYPO" and diff["gpqa_diamond"] == ""
    md = tables.render_markdown(table, tables.load_measured([d]))
    measured_line = next(line for line in md.splitlines() if line.startswith("| **DYPO**"))
    assert measured_line.count("–") == 2 and "50.0" not in measured_line


def test_real_table1_renders_the_paper_layout_with_a_measured_row(tmp_path):
    d = _write_summary(str(tmp_path / "run"), "DYPO (ours, reproduced)", FULL)
    runs = tables.load_measured([f"{d}=DYPO"])
    md = tables.render_markdown(TABLE1, runs)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header == (
        "| Method | Type | Source | AIME 24 | AIME 25 | AMC | MATH-500 | Minerva | ID Avg | ARC-c | GPQA-D | OOD Avg |"
    )
    assert "TODO" not in md
    assert "| DYPO | DYPO | paper | 36.0 (+10.2) | 28.7 (+5.6) |" in md and "| 52.5† (+4.8) |" in md
    assert "† DYPO, ID Avg: printed 52.5; the mean of the five ID values printed in the row is 52.66." in md
    assert "| SFT → RL | SFT and RL | paper | 25.8 |" in md and "| SFT | Supervised Fine-Tuning | paper |" in md
    assert "| Δ DYPO (ours, reproduced) | difference | measured − paper (DYPO) | -6.0 | -8.7 | -7.0 |" in md
    assert "| **DYPO (ours, reproduced)** | measured |" in md
    assert "Paper inconsistency (§4.2.1" in md and "avg@32" in md
    assert "Published numbers only (other papers' methods, not run here): SimpleRL-Zero" in md


def test_layout_of_every_rendered_table():
    headers = {  # after "| Method | Type | Source |"
        "table2": " AIME 24/25 | AMC | MATH-500 | Minerva | ID Avg | ARC-c | GPQA-D | OOD Avg |",
        "table3": " AIME 24 | AIME 25 | AMC | GPQA-D |",
        "table4": " AIME 24 | AMC | GPQA-D |",
        "table5": " α | β_GAL | AIME 24 | MATH-500 |",
    }
    for key, header in headers.items():
        table = paper_results.get_table(key)
        lines = tables.render_markdown(table).splitlines()
        assert "| Method | Type | Source |" + header in lines, key
        paper_lines = [line for line in lines if "| paper |" in line]
        assert len(paper_lines) == len(table.rows), key
    t2 = tables.render_markdown(paper_results.TABLE2)
    assert "| Qwen3-4B-Base | Base model | paper | 9.3/5.3 | 40.0 |" in t2
    assert "| DYPO | DYPO | paper | 59.3/44.0 |" in t2
    t3 = tables.render_markdown(paper_results.TABLE3)
    assert "| + SFT | Ablation | paper | 22.2 | 22.3 | 52.8 | 24.7 |" in t3
    assert "| + RL (235B / 32B / 8B) | Ablation | paper | 27.3 / 26.9 / 25.0 | 26.6 / 26.0 / 25.5 |" in t3
    assert "monotonically" in t3
    t5 = tables.render_markdown(TABLE5)
    assert "| alpha=0.5, beta=1 | Grid | paper | 0.5 | 1 | 36.0 ± 1.1 | 89.2 ± 0.3 |" in t5
    rows = tables.read_csv_rows(tables.render_csv(paper_results.TABLE3))
    assert len(rows) == 2 + 4 * 3 and {r["variant"] for r in rows} == {"", "235B", "32B", "8B"}
    t1_csv = tables.read_csv_rows(tables.render_csv(TABLE1))
    dypo = next(r for r in t1_csv if r["method"] == "DYPO")
    assert float(dypo["id_avg"]) == 52.5 and float(dypo["id_avg_printed_gain"]) == 4.8 and "52.66" in dypo["note"]


def test_measured_table3_run_is_compared_with_its_teacher_size(tmp_path):
    d = _write_summary(str(tmp_path / "rl32"), "+ RL (32B)", FULL)
    runs = tables.load_measured([d])
    assert tables.runs_for_table(paper_results.TABLE3, runs, only_matching=True) == runs
    md = tables.render_markdown(paper_results.TABLE3, runs)
    # 30.0 - 26.9, 20.0 - 26.0, 60.0 - 63.5, 30.0 - 35.4
    assert "| Δ + RL (32B) | difference | measured − paper (+ RL (32B)) | +3.1 | -6.0 | -3.5 | -5.4 |" in md
    rows = tables.read_csv_rows(tables.render_csv(paper_results.TABLE3, runs))
    diff = next(r for r in rows if r["kind"] == "diff")
    assert diff["variant"] == "32B" and float(diff["aime24"]) == pytest.approx(3.1)
    bare = tables.load_measured([f"{d}=+ RL@rl"])  # no size: the first value (235B)
    assert "measured − paper (+ RL (235B)) | +2.7 |" in tables.render_markdown(paper_results.TABLE3, bare)


def test_measured_table2_and_pass_at_k_columns(tmp_path):
    d = _write_summary(str(tmp_path / "q3"), "DYPO", FULL, pass_at={"aime24": 0.6, "aime25": 0.5, "amc": 0.9})
    runs = tables.load_measured([d])
    md = tables.render_markdown(paper_results.TABLE2, runs, pass_at_k=(32,))
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header.endswith("| OOD Avg | AIME 24 pass@32 | AIME 25 pass@32 | AMC pass@32 |")
    assert "| **DYPO** | measured |" in md and "| 30.0/20.0 | 60.0 |" in md and "| 60.0 | 50.0 | 90.0 |" in md
    assert "| DYPO | DYPO | paper | 59.3/44.0 |" in md and md.count("| n/p |") >= 5
    assert "| Δ DYPO | difference | measured − paper (DYPO) | -29.3/-24.0 |" in md
    rows = tables.read_csv_rows(tables.render_csv(paper_results.TABLE2, runs, pass_at_k=(32,)))
    measured = next(r for r in rows if r["kind"] == "measured")
    assert float(measured["aime24_pass@32"]) == pytest.approx(60.0) and float(measured["aime24"]) == 30.0
    assert "AIME 24 pass@32" not in tables.render_markdown(paper_results.TABLE2, runs)  # only on request
    assert [k for k, _ in tables.pass_at_k_columns(TABLE5, (32,))] == ["aime24_pass@32"]  # MATH-500: one sample


def test_seeds_are_merged_into_mean_and_std(tmp_path):
    label = grid_label(0.2, 0.1)
    for seed, shift in enumerate((-1.0, 0.0, 1.0)):
        _write_summary(str(tmp_path / "t5" / f"seed{seed}"), label, {k: v + shift for k, v in FULL.items()})
    runs = tables.load_measured([str(tmp_path / "t5")])  # a directory tree: every summary.json below
    assert len(runs) == 3
    (row,) = tables.group_runs(runs, TABLE5.columns)
    assert row.mean["aime24"] == pytest.approx(30.0) and row.std["aime24"] == pytest.approx(1.0)
    md = tables.render_markdown(TABLE5, runs)
    assert f"| **{label}** | measured |" in md and "| 0.2 | 0.1 | 30.0 ± 1.0 | 80.0 ± 1.0 |" in md
    assert "mean ± std over 3 runs" in md and "| -3.5 | -7.6 |" in md  # against 33.5 ± 1.4 and 87.6 ± 0.7


def test_reproduce_tables_script_writes_markdown_and_csv(tmp_path, capsys):
    script = _load_script("reproduce_tables")
    _write_summary(str(tmp_path / "runs" / "dypo"), "DYPO", FULL)
    _write_summary(str(tmp_path / "runs" / "grid"), grid_label(0.8, 2), FULL)
    out = tmp_path / "tables"
    written = script.main(
        ["--table", "all", "--measured", str(tmp_path / "runs"), "--only-matching", "--out-dir", str(out)]
        + ["--pass-at-k", "32"]
    )
    assert set(written) == set(paper_results.TABLES)
    for paths in written.values():
        assert os.path.getsize(paths["markdown"]) > 0 and os.path.getsize(paths["csv"]) > 0
    t1 = tables.read_csv_rows(open(written["table1"]["csv"]).read())
    assert [r["method"] for r in t1 if r["kind"] == "measured"] == ["DYPO"]  # grid run filtered out
    t5 = tables.read_csv_rows(open(written["table5"]["csv"]).read())
    assert [r["method"] for r in t5 if r["kind"] == "measured"] == [grid_label(0.8, 2)]
    assert "AIME 24 pass@32" in open(written["table1"]["markdown"]).read()
    assert "Table 1" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------------------------------------


def _dypo_file_log(path, steps=20):
    with open(path, "w") as f:
        for s in range(1, steps + 1):
            data = {
                "dypo/offline_data_ratio": 1.0 - 0.03 * s,
                "dypo/rollout_score_mean": 0.2 + 0.02 * s,
                "actor/entropy": 0.5 - 0.01 * s,
                "actor/grad_norm": 0.3 + 0.01 * (s % 3),
                "dypo/easy_ratio": 0.1,
            }
            f.write(json.dumps({"step": s, "data": data}) + "\n")


def _grpo_console_log(path, steps=20):
    with open(path, "w") as f:
        f.write("Creating file logger at somewhere\n")
        for s in range(1, steps + 1):
            f.write(f"step:{s} - critic/score/mean:{0.1 + 0.015 * s} - actor/entropy:{0.6 - 0.02 * s} - ")
            f.write(f"actor/grad_norm:{0.5 + 0.2 * (s % 2)} - timing_s/gen:12.5\n")
        f.write("(TaskRunner pid=1) some unrelated line: 3\n")


def test_parse_logs(tmp_path):
    _dypo_file_log(tmp_path / "dypo.jsonl")
    _grpo_console_log(tmp_path / "grpo.log")
    dypo = curves.read_run(str(tmp_path / "dypo.jsonl"))
    grpo = curves.read_run(str(tmp_path / "grpo.log"))
    assert [s for s, _ in dypo["dypo/offline_data_ratio"]] == list(range(1, 21))
    assert dypo["dypo/offline_data_ratio"][0][1] == pytest.approx(0.97)
    assert grpo["critic/score/mean"][-1] == (20, pytest.approx(0.4))
    assert "dypo/offline_data_ratio" not in grpo
    assert curves.pick(grpo, ("dypo/rollout_score_mean", "critic/score/mean"))[0] == "critic/score/mean"
    assert curves.ema([1.0, 0.0, 0.0], 0.5) == [1.0, 0.5, 0.25]


def test_plot_curves_script_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    _dypo_file_log(tmp_path / "dypo.jsonl")
    _grpo_console_log(tmp_path / "grpo.log")
    script = _load_script("plot_curves")
    out = script.main(
        [
            "--run",
            f"DYPO={tmp_path / 'dypo.jsonl'}",
            "--run",
            f"GRPO={tmp_path / 'grpo.log'}",
            "--out-dir",
            str(tmp_path),
        ]
    )
    for path in out.values():
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboard")
    tb = pytest.importorskip("torch.utils.tensorboard")
    w = tb.SummaryWriter(str(tmp_path / "tb"))
    for s in range(5):
        w.add_scalar("actor/grad_norm", 1.0 + s, s)
    w.close()
    series = curves.read_run(str(tmp_path / "tb"))
    assert series["actor/grad_norm"] == [(s, pytest.approx(1.0 + s)) for s in range(5)]
