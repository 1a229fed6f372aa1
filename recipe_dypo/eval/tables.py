"""Render the paper's tables (Markdown + CSV) in the paper's own layouts, with measured rows beside them.

Published rows come only from :mod:`recipe_dypo.paper_results`; measured rows come only from evaluator output
(``summary.json`` written by ``python -m recipe_dypo.eval``). A measured cell the evaluator did not produce stays
empty ("–"); it is never filled from the paper. Every measured row carries the model path and the evaluation date,
and is followed by a difference row (measured − published) against the paper row it reproduces; for Table 3 a
run labelled "+ RL (32B)" is compared with the 32B value of a "235B / 32B / 8B" cell.

Layouts follow the paper: Table 1's row groups and DYPO's bracketed gains, Table 2's one "AIME 24/25" column,
Table 3's three values per cell, Table 5's α and β_GAL columns and mean ± std cells. Printed values the paper's
own numbers contradict are marked † with a footnote.

Several summaries with the same label (e.g. seeds of one Table 5 cell) are merged into one measured row showing
mean ± std (sample standard deviation). On request (``pass_at_k=(32,)``) the unbiased pass@k of measured runs is
added as extra columns for the benchmarks sampled at least k times; the paper publishes none ("n/p").
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
from recipe_dypo.paper_results import (
    EVAL_ONLY_RUNS,
    PAPER_HEADINGS,
    PAPER_INCONSISTENCIES,
    PARAM_HEADINGS,
    TRAINING_RUNS,
    PaperRow,
    PaperTable,
    untrained_rows,
    variant_name,
)

EMPTY_CELL = "–"
NOT_PUBLISHED = "n/p"
FLAG = "†"


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
    for b, m in per_bench.items():
        for k, v in (m.get("pass@k") or {}).items():
            if v is not None:
                scores[pass_key(b, int(k))] = 100.0 * float(v)
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


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None where undefined: no values, or one value for the std)."""
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
                mean[c], std[c] = mean_std([float(v) for v in vals])
        compare = next((r.compare_to for r in rs if r.compare_to), None)
        rows.append(MeasuredRow(label=label, runs=list(rs), compare_to=compare, mean=mean, std=std))
    return rows


def match_paper_row(table: PaperTable, row: MeasuredRow) -> tuple[PaperRow | None, int | None]:
    """The published row (and variant) a measured row reproduces: explicit ``=ROW`` in the spec, else the same
    label. ``"+ RL (32B)"`` selects the 32B value of Table 3's cells; a bare name selects the first variant."""
    if row.compare_to:
        found, variant = table.resolve(row.compare_to)
        if found is None:
            raise KeyError(f"{table.key} has no row {row.compare_to!r}; rows: {table.methods}")
        return found, variant
    return table.resolve(row.label)


def diff_cells(
    table: PaperTable, row: MeasuredRow, paper: PaperRow | None, variant: int | None = None
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for c in table.columns:
        m = row.mean.get(c)
        p = paper.value(c, variant) if paper is not None else None
        out[c] = None if (m is None or p is None) else m - p
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Extra pass@k columns (measured only)
# ---------------------------------------------------------------------------------------------------------------------


def pass_key(benchmark: str, k: int) -> str:
    """Column key of the unbiased pass@k of a benchmark (``aime24_pass@32``)."""
    return f"{benchmark}_pass@{int(k)}"


def pass_at_k_columns(table: PaperTable, ks: Sequence[int] = ()) -> list[tuple[str, str]]:
    """(key, heading) of the extra pass@k columns: every benchmark of the table the protocol samples >= k times."""
    protocol = metrics.parse_n_samples(None)
    out = []
    for k in ks:
        for c in table.columns:
            if c in metrics.ALL_BENCHMARKS and metrics.n_for(c, protocol) >= int(k):
                out.append((pass_key(c, k), f"{PAPER_HEADINGS.get(c, c)} pass@{int(k)}"))
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


def _paper_value(row: PaperRow, column: str) -> str:
    """One published cell as printed: "26.6 / 26.8 / 24.5", "36.0 ± 1.1", "36.0 (+10.2)", flagged "52.5†"."""
    v = row.scores.get(column)
    if v is None:
        return EMPTY_CELL
    text = " / ".join(f"{x:.1f}" for x in v) if isinstance(v, tuple) else _fmt(v, row.std.get(column))
    if column in row.notes:
        text += FLAG
    if column in row.gains:
        text += f" ({row.gains[column]:+.1f})"
    return text


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _joined(keys: Sequence[str], cell) -> str:
    return "/".join(cell(k) for k in keys)


def _measured_source(row: MeasuredRow) -> str:
    models = ", ".join(f"`{m}`" for m in row.models)
    dates = ", ".join(row.dates) or "date unknown"
    seeds = f"; mean ± std over {len(row.runs)} runs" if len(row.runs) > 1 else ""
    incomplete = "; INCOMPLETE (fewer samples than the protocol)" if not row.complete else ""
    return f"measured: {models}, {dates}{seeds}{incomplete}"


def _param_cells(table: PaperTable, paper: PaperRow | None) -> list[str]:
    return [f"{paper.params[p]:g}" if paper is not None and p in paper.params else "" for p in table.params]


def _method_name(table: PaperTable, row: PaperRow) -> str:
    """The printed row name: per-variant rows carry the variants ("+ RL (235B / 32B / 8B)")."""
    return f"{row.method} ({' / '.join(table.variants)})" if row.has_variants else row.method


def _notes(table: PaperTable, extra: Sequence[tuple[str, str]]) -> list[str]:
    """Lines under the table: layout, metric, flagged cells, the paper's inconsistencies for this table."""
    lines = []
    if table.layout_note:
        lines.append(f"Note: {table.layout_note}")
    aime_amc = [PAPER_HEADINGS[c] for c in table.columns if c in metrics.DEFAULT_N_SAMPLES]
    if aime_amc:
        lines.append(
            f"Metric: {', '.join(aime_amc)} = avg@32 (mean accuracy of 32 samples; the paper calls it pass@32), "
            "other benchmarks one sample, temperature 0.6."
        )
    if extra:
        lines.append(
            "Extra columns: the unbiased pass@k (Chen et al., 2021) of measured runs; the paper publishes none (n/p)."
        )
    for r in table.rows:
        for c, note in r.notes.items():
            lines.append(f"{FLAG} {r.method}, {PAPER_HEADINGS.get(c, c)}: {note}.")
    for inc in PAPER_INCONSISTENCIES:
        if table.key in inc.tables:
            lines.append(f"Paper inconsistency ({inc.where}): {inc.text}")
    return lines


def _run_lines(table: PaperTable) -> list[str]:
    lines = []
    runs_here = TRAINING_RUNS.get(table.key, {})
    if runs_here:
        lines += ["", "Rows this project trains (then scripts/eval.sh, and --measured DIR@<row name> here):", ""]
        lines += [f"- {method}: `{command}`" for method, command in runs_here.items()]
    evals = EVAL_ONLY_RUNS.get(table.key, {})
    if evals:
        lines += ["", "Rows evaluated without training:", ""]
        lines += [f"- {method}: `{command}`" for method, command in evals.items()]
    others = untrained_rows(table)
    if others:
        lines += ["", f"Published numbers only (other papers' methods, not run here): {', '.join(others)}."]
    return lines


def render_markdown(table: PaperTable, runs: Sequence[MeasuredRun] = (), pass_at_k: Sequence[int] = ()) -> str:
    extra = pass_at_k_columns(table, pass_at_k)
    display = table.display_columns() + [(heading, (key,)) for key, heading in extra]
    extra_keys = {key for key, _ in extra}
    params = [PARAM_HEADINGS.get(p, p) for p in table.params]
    header = ["Method", "Type", "Source"] + params + [heading for heading, _ in display]
    n_left = 3 + len(params)
    lines = [
        f"### {table.title}",
        "",
        f"Base model: {table.base_model}. Published rows: {table.source}, {table.status} from the PDF.",
        "",
        _md_row(header),
        "|" + "|".join(["---"] * n_left + ["---:"] * len(display)) + "|",
    ]
    for r in table.rows:
        cells = [
            _joined(keys, lambda k, r=r: NOT_PUBLISHED if k in extra_keys else _paper_value(r, k))
            for _, keys in display
        ]
        lines.append(_md_row([_method_name(table, r), r.group, "paper"] + _param_cells(table, r) + cells))
    columns = list(table.columns) + [key for key, _ in extra]
    for row in group_runs(runs, columns):
        paper, variant = match_paper_row(table, row)
        cells = [_joined(keys, lambda k, row=row: _fmt(row.mean.get(k), row.std.get(k))) for _, keys in display]
        pcells = _param_cells(table, paper)
        lines.append(_md_row([f"**{row.label}**", "measured", _measured_source(row)] + pcells + cells))
        target = variant_name(table, paper, variant) if paper is not None else "no matching paper row"
        diff = diff_cells(table, row, paper, variant)
        dcells = [_joined(keys, lambda k, diff=diff: _fmt_diff(diff.get(k))) for _, keys in display]
        lines.append(_md_row([f"Δ {row.label}", "difference", f"measured − paper ({target})"] + pcells + dcells))
    lines += [""] + _notes(table, extra) + _run_lines(table)
    lines.append("")
    return "\n".join(lines)


def published_markdown(table: PaperTable) -> str:
    """The published rows alone, in the paper's layout (docs/reproduce.md shows these). Table 5's
    rows are named by their α and β_GAL columns, as in the paper."""
    display = table.display_columns()
    params = [PARAM_HEADINGS.get(p, p) for p in table.params]
    with_groups = len({r.group for r in table.rows}) > 1
    left = ([] if table.params else ["Method"]) + (["Group"] if with_groups else []) + params
    lines = [_md_row(left + [heading for heading, _ in display])]
    lines.append("|" + "|".join(["---"] * len(left) + ["---:"] * len(display)) + "|")
    for r in table.rows:
        cells = [_joined(keys, lambda k, r=r: _paper_value(r, k)) for _, keys in display]
        name = ([] if table.params else [_method_name(table, r)]) + ([r.group] if with_groups else [])
        lines.append(_md_row(name + _param_cells(table, r) + cells))
    return "\n".join(lines)


CSV_FIXED = ["table", "kind", "method", "variant", "group", "compare_to", "model", "date", "n_runs", "source"]


def _csv_header(table: PaperTable, extra_keys: Sequence[str]) -> list[str]:
    cols = list(table.columns)
    gains = [f"{c}_printed_gain" for c in cols] if table.gains_over else []
    return CSV_FIXED + list(table.params) + cols + list(extra_keys) + [f"{c}_std" for c in cols] + gains + ["note"]


def _paper_csv_rows(table: PaperTable, extra_keys: Sequence[str]):
    """One CSV row per published row, per variant for Table 3's per-teacher rows."""
    cols = list(table.columns)
    for r in table.rows:
        variants = list(enumerate(table.variants)) if r.has_variants else [(None, "")]
        for index, name in variants:
            notes = "; ".join(f"{c}: {n}" for c, n in r.notes.items())
            gains = [r.gains.get(c) for c in cols] if table.gains_over else []
            yield (
                [table.key, "paper", r.method, name, r.group, "", "", "", "", table.source]
                + [r.params.get(p) for p in table.params]
                + [r.value(c, index) for c in cols]
                + [None] * len(extra_keys)
                + [r.std.get(c) for c in cols]
                + gains
                + [notes]
            )


def render_csv(table: PaperTable, runs: Sequence[MeasuredRun] = (), pass_at_k: Sequence[int] = ()) -> str:
    cols = list(table.columns)
    extra_keys = [key for key, _ in pass_at_k_columns(table, pass_at_k)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_csv_header(table, extra_keys))
    n_gains = len(cols) if table.gains_over else 0

    def num(v):
        if v is None:
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    for values in _paper_csv_rows(table, extra_keys):
        w.writerow([num(v) for v in values])
    for row in group_runs(runs, cols + extra_keys):
        paper, variant = match_paper_row(table, row)
        target = paper.method if paper is not None else ""
        vname = table.variants[variant or 0] if paper is not None and paper.has_variants else ""
        info = [target, ";".join(row.models), ";".join(row.dates), len(row.runs), ";".join(r.path for r in row.runs)]
        params = [paper.params.get(p) if paper is not None else None for p in table.params]
        w.writerow(
            [num(v) for v in [table.key, "measured", row.label, vname, "measured", *info, *params]]
            + [num(row.mean.get(c)) for c in cols + extra_keys]
            + [num(row.std.get(c)) for c in cols]
            + [""] * (n_gains + 1)
        )
        d = diff_cells(table, row, paper, variant)
        w.writerow(
            [num(v) for v in [table.key, "diff", row.label, vname, "measured - paper", *info, *params]]
            + [num(d[c]) for c in cols]
            + [""] * (len(extra_keys) + len(cols) + n_gains + 1)
        )
    return buf.getvalue()


def read_csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def write_table(
    table: PaperTable, runs: Sequence[MeasuredRun], out_dir: str, pass_at_k: Sequence[int] = ()
) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{table.key}.md")
    csv_path = os.path.join(out_dir, f"{table.key}.csv")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(render_markdown(table, runs, pass_at_k))
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write(render_csv(table, runs, pass_at_k))
    return {"markdown": md_path, "csv": csv_path}


def runs_for_table(table: PaperTable, runs: Sequence[MeasuredRun], only_matching: bool) -> list[MeasuredRun]:
    """With ``only_matching``, keep runs whose label or ``=ROW`` names a row of this table."""
    if not only_matching:
        return list(runs)
    return [r for r in runs if table.row(r.compare_to or r.label) is not None]


__all__ = [
    "MeasuredRow",
    "MeasuredRun",
    "group_runs",
    "load_measured",
    "load_run",
    "match_paper_row",
    "pass_at_k_columns",
    "pass_key",
    "published_markdown",
    "read_csv_rows",
    "render_csv",
    "render_markdown",
    "runs_for_table",
    "write_table",
]
