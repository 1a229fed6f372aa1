"""Render the paper's tables (Markdown + CSV): published rows next to rows measured by this project.

Published rows come only from :mod:`recipe_dypo.paper_results`; measured rows come only from evaluator output
(``summary.json`` written by ``python -m recipe_dypo.eval``). A measured cell the evaluator did not produce stays
empty ("–"); it is never filled from the paper. Every measured row carries the model path and the evaluation date,
and is followed by a difference row (measured − published) against the paper row it reproduces.

Several summaries with the same label (e.g. seeds of one Table 5 cell) are merged into one measured row showing
mean ± std (sample standard deviation).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from recipe_dypo.eval import metrics
from recipe_dypo.paper_results import TRAINING_RUNS, PaperRow, PaperTable, _norm

TODO_CELL = "TODO"
EMPTY_CELL = "–"


@dataclass
class MeasuredRun:
    """One evaluator output (one summary.json)."""

    label: str
    model: str | None
    date: str | None
    path: str
    scores: dict[str, float | None]
    complete: bool = True
    compare_to: str | None = None


@dataclass
class MeasuredRow:
    """One measured table row: the mean over runs sharing a label (std when there are several)."""

    label: str
    runs: list[MeasuredRun]
    compare_to: str | None = None
    mean: dict[str, float | None] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted({str(r.model) for r in self.runs})

    @property
    def dates(self) -> list[str]:
        return sorted({(r.date or "")[:10] for r in self.runs if r.date})

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.runs)


def _summary_path(path: str) -> str:
    return os.path.join(path, "summary.json") if os.path.isdir(path) else path


def load_run(path: str, label: str | None = None, compare_to: str | None = None) -> MeasuredRun:
    """Read one evaluator ``summary.json`` (or the directory holding it)."""
    spath = _summary_path(path)
    with open(spath, encoding="utf-8") as f:
        s = json.load(f)
    per_bench = s.get("benchmarks", {})
    scores: dict[str, float | None] = {b: float(m["score"]) for b, m in per_bench.items() if m.get("score") is not None}
    scores["id_avg"] = metrics.id_average(scores)
    scores["ood_avg"] = metrics.ood_average(scores)
    return MeasuredRun(
        label=label or s.get("label") or os.path.basename(os.path.dirname(os.path.abspath(spath))),
        model=s.get("model") or s.get("responses_file"),
        date=s.get("date"),
        path=os.path.dirname(os.path.abspath(spath)),
        scores=scores,
        complete=bool(s.get("complete", True)),
        compare_to=compare_to,
    )


def parse_measured_spec(spec: str) -> list[tuple[str, str | None, str | None]]:
    """``PATH[=PAPER_ROW][@LABEL]`` -> [(summary path, paper row, label)]. PATH may be a glob or a directory tree
    (every summary.json below it is used)."""
    label = None
    if "@" in spec:
        spec, label = spec.rsplit("@", 1)
    compare = None
    if "=" in spec:
        spec, compare = spec.split("=", 1)
    paths: list[str] = []
    for p in sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else [spec]:
        if os.path.isdir(p) and not os.path.exists(os.path.join(p, "summary.json")):
            paths.extend(sorted(glob.glob(os.path.join(p, "**", "summary.json"), recursive=True)))
        else:
            paths.append(p)
    if not paths:
        raise FileNotFoundError(f"no evaluator summaries at {spec!r}")
    return [(p, compare or None, label or None) for p in paths]


def load_measured(specs: Sequence[str]) -> list[MeasuredRun]:
    runs = []
    for spec in specs:
        for path, compare, label in parse_measured_spec(spec):
            runs.append(load_run(path, label=label, compare_to=compare))
    return runs


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


def group_runs(runs: Sequence[MeasuredRun], columns: Sequence[str]) -> list[MeasuredRow]:
    """Merge runs with the same label; a column's mean is over the runs that have it, and is left empty unless
    every run of the group has it."""
    groups: dict[str, list[MeasuredRun]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    rows = []
    for label, rs in groups.items():
        mean, std = {}, {}
        for c in columns:
            vals = [r.scores.get(c) for r in rs]
            if any(v is None for v in vals):
                mean[c], std[c] = None, None
            else:
                mean[c], std[c] = _mean_std([float(v) for v in vals])
        compare = next((r.compare_to for r in rs if r.compare_to), None)
        rows.append(MeasuredRow(label=label, runs=list(rs), compare_to=compare, mean=mean, std=std))
    return rows


def match_paper_row(table: PaperTable, row: MeasuredRow) -> PaperRow | None:
    """The published row a measured row reproduces: explicit ``=ROW`` in the spec, else the same label."""
    if row.compare_to:
        found = table.row(row.compare_to)
        if found is None:
            raise KeyError(f"{table.key} has no row {row.compare_to!r}; rows: {table.methods}")
        return found
    return table.row(row.label)


def diff_cells(table: PaperTable, row: MeasuredRow, paper: PaperRow | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in table.columns:
        m = row.mean.get(c)
        p = paper.value(c) if paper is not None else None
        out[c] = None if (m is None or p is None) else m - p
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------------------------


def _fmt(v: float | None, std: float | None = None, empty: str = EMPTY_CELL) -> str:
    if v is None:
        return empty
    return f"{v:.1f} ± {std:.1f}" if std is not None else f"{v:.1f}"


def _fmt_diff(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}"


def _measured_source(row: MeasuredRow) -> str:
    models = ", ".join(f"`{m}`" for m in row.models)
    dates = ", ".join(row.dates) or "date unknown"
    seeds = f"; mean ± std over {len(row.runs)} runs" if len(row.runs) > 1 else ""
    incomplete = "; INCOMPLETE (fewer samples than the protocol)" if not row.complete else ""
    return f"measured: {models}, {dates}{seeds}{incomplete}"


def render_markdown(table: PaperTable, runs: Sequence[MeasuredRun] = ()) -> str:
    cols = list(table.columns)
    header = ["Method", "Type", "Source"] + [metrics.display_name(c) for c in cols]
    lines = [
        f"### {table.title}",
        "",
        f"Base model: {table.base_model}. Published rows: {table.source} "
        f"({'numbers not transcribed yet: TODO cells' if table.status == 'todo' else table.status}).",
    ]
    if table.layout_note:
        lines.append(f"Note: {table.layout_note}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(cols)) + "|"]
    for r in table.rows:
        cells = [_fmt(r.value(c), r.std.get(c), empty=TODO_CELL) for c in cols]
        lines.append("| " + " | ".join([r.method, r.group, "paper"] + cells) + " |")
    for row in group_runs(runs, cols):
        paper = match_paper_row(table, row)
        cells = [_fmt(row.mean.get(c), row.std.get(c)) for c in cols]
        lines.append("| " + " | ".join([f"**{row.label}**", "measured", _measured_source(row)] + cells) + " |")
        target = paper.method if paper is not None else "no matching paper row"
        dcells = [_fmt_diff(v) for v in diff_cells(table, row, paper).values()]
        lines.append(
            "| " + " | ".join([f"Δ {row.label}", "difference", f"measured − paper ({target})"] + dcells) + " |"
        )
    runs_here = TRAINING_RUNS.get(table.key, {})
    if runs_here:
        lines += ["", "Rows this project trains (then scripts/eval.sh, and --measured DIR@<row name> here):", ""]
        lines += [f"- {method}: `{command}`" for method, command in runs_here.items()]
    lines.append("")
    return "\n".join(lines)


CSV_FIXED = ["table", "kind", "method", "group", "compare_to", "model", "date", "n_runs", "source"]


def render_csv(table: PaperTable, runs: Sequence[MeasuredRun] = ()) -> str:
    cols = list(table.columns)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIXED + cols + [f"{c}_std" for c in cols])

    def num(v):
        return "" if v is None else f"{v:.4f}"

    for r in table.rows:
        w.writerow(
            [table.key, "paper", r.method, r.group, "", "", "", "", table.source]
            + [num(r.value(c)) for c in cols]
            + [num(r.std.get(c)) for c in cols]
        )
    for row in group_runs(runs, cols):
        paper = match_paper_row(table, row)
        target = paper.method if paper is not None else ""
        models = ";".join(row.models)
        dates = ";".join(row.dates)
        paths = ";".join(r.path for r in row.runs)
        w.writerow(
            [table.key, "measured", row.label, "measured", target, models, dates, len(row.runs), paths]
            + [num(row.mean.get(c)) for c in cols]
            + [num(row.std.get(c)) for c in cols]
        )
        d = diff_cells(table, row, paper)
        w.writerow(
            [table.key, "diff", row.label, "measured - paper", target, models, dates, len(row.runs), paths]
            + [num(d[c]) for c in cols]
            + [""] * len(cols)
        )
    return buf.getvalue()


def read_csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def write_table(table: PaperTable, runs: Sequence[MeasuredRun], out_dir: str) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{table.key}.md")
    csv_path = os.path.join(out_dir, f"{table.key}.csv")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(table, runs))
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write(render_csv(table, runs))
    return {"markdown": md_path, "csv": csv_path}


def runs_for_table(table: PaperTable, runs: Sequence[MeasuredRun], only_matching: bool) -> list[MeasuredRun]:
    """With ``only_matching``, keep runs whose label or ``=ROW`` names a row of this table."""
    if not only_matching:
        return list(runs)
    names = {_norm(m) for m in table.methods}
    return [r for r in runs if _norm(r.compare_to or r.label) in names]


__all__ = [
    "MeasuredRow",
    "MeasuredRun",
    "group_runs",
    "load_measured",
    "load_run",
    "match_paper_row",
    "read_csv_rows",
    "render_csv",
    "render_markdown",
    "runs_for_table",
    "write_table",
]
