"""Table renderer, paper-results data, reproduce_tables.py and plot_curves.py (synthetic inputs only)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from recipe_dypo import paper_results
from recipe_dypo.eval import curves, metrics, tables
from recipe_dypo.paper_results import MAIN_COLUMNS, TABLE1, TABLE5, PaperRow, PaperTable, grid_label

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def _load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_summary(d, label, scores, model="/ckpt/model", date="2026-05-01T12:00:00Z", complete=True):
    """A minimal evaluator summary.json with the given per-benchmark scores (percent)."""
    os.makedirs(d, exist_ok=True)
    bench = {b: {"score": s, "avg@n": s / 100, "n": 1, "num_prompts": 1, "complete": True} for b, s in scores.items()}
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
# paper_results
# ---------------------------------------------------------------------------------------------------------------------


def test_paper_tables_layout_and_values_are_sane():
    t1 = paper_results.get_table(1)
    assert t1 is TABLE1 and t1.base_model == "Qwen2.5-Math-7B"
    assert paper_results.get_table("table2").base_model == "Qwen3-4B-Base"
    assert t1.columns == MAIN_COLUMNS
    expected = [
        "Qwen2.5-Math-7B", "SFT", "RL", "SimpleRL-Zero", "OpenReasoner-Zero", "PRIME-Zero", "Oat-Zero",
        "SFT→RL", "SuperRL", "LUFFY", "ReLIFT", "SRFT", "CHORD", "DYPO",
    ]  # fmt: skip
    assert t1.methods == expected
    assert len(TABLE5.rows) == 9 and TABLE5.row(grid_label(0.5, 1)) is not None
    for table in paper_results.TABLES.values():
        assert table.status in {"todo", "partial", "transcribed"}
        if table.status == "todo":
            assert not paper_results.is_transcribed(table)
        for row in table.rows:
            assert set(row.scores) <= set(table.columns)
            for v in row.scores.values():
                assert v is None or 0.0 <= v <= 100.0
            # where the paper prints all ID (OOD) benchmarks and the average, they must agree up to rounding
            for avg, benches in (("id_avg", metrics.ID_BENCHMARKS), ("ood_avg", metrics.OOD_BENCHMARKS)):
                vals = [row.scores.get(b) for b in benches]
                if row.scores.get(avg) is not None and all(v is not None for v in vals):
                    assert abs(sum(vals) / len(vals) - row.scores[avg]) <= 0.11, (table.key, row.method, avg)


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


def test_real_table1_renders_todo_paper_rows_with_a_measured_row(tmp_path):
    d = _write_summary(str(tmp_path / "run"), "DYPO (ours, reproduced)", FULL)
    runs = tables.load_measured([f"{d}=DYPO"])
    md = tables.render_markdown(TABLE1, runs)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert header == (
        "| Method | Type | Source | AIME24 | AIME25 | AMC | MATH-500 | Minerva | ID Avg | ARC-c | GPQA-D | OOD Avg |"
    )
    if not paper_results.is_transcribed(TABLE1):
        assert "TODO" in md and "numbers not transcribed yet" in md
        assert "| Δ DYPO (ours, reproduced) | difference | measured − paper (DYPO) | n/a |" in md
    assert "| **DYPO (ours, reproduced)** | measured |" in md


def test_seeds_are_merged_into_mean_and_std(tmp_path):
    label = grid_label(0.2, 0.1)
    for seed, shift in enumerate((-1.0, 0.0, 1.0)):
        _write_summary(str(tmp_path / "t5" / f"seed{seed}"), label, {k: v + shift for k, v in FULL.items()})
    runs = tables.load_measured([str(tmp_path / "t5")])  # a directory tree: every summary.json below
    assert len(runs) == 3
    (row,) = tables.group_runs(runs, TABLE5.columns)
    assert row.mean["id_avg"] == pytest.approx(46.0) and row.std["id_avg"] == pytest.approx(1.0)
    md = tables.render_markdown(TABLE5, runs)
    assert f"| **{label}** | measured |" in md and "46.0 ± 1.0" in md and "mean ± std over 3 runs" in md


def test_reproduce_tables_script_writes_markdown_and_csv(tmp_path, capsys):
    script = _load_script("reproduce_tables")
    _write_summary(str(tmp_path / "runs" / "dypo"), "DYPO", FULL)
    _write_summary(str(tmp_path / "runs" / "grid"), grid_label(0.8, 2), FULL)
    out = tmp_path / "tables"
    written = script.main(
        ["--table", "all", "--measured", str(tmp_path / "runs"), "--only-matching", "--out-dir", str(out)]
    )
    assert set(written) == set(paper_results.TABLES)
    for paths in written.values():
        assert os.path.getsize(paths["markdown"]) > 0 and os.path.getsize(paths["csv"]) > 0
    t1 = tables.read_csv_rows(open(written["table1"]["csv"]).read())
    assert [r["method"] for r in t1 if r["kind"] == "measured"] == ["DYPO"]  # grid run filtered out
    t5 = tables.read_csv_rows(open(written["table5"]["csv"]).read())
    assert [r["method"] for r in t5 if r["kind"] == "measured"] == [grid_label(0.8, 2)]
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
