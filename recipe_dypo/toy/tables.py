"""Render the toy tables (recipe_dypo/toy/reproduce.py): the paper's rows and groups, toy columns, seeds merged.

Measured cells come only from the evaluator's ``summary.json`` of each run and seed; a missing one stays "–".
Each table is followed by the wall time its runs took per seed (``train.done`` and the evaluator's
``eval_wall_s``), the paired differences of DYPO (Table 4: two teachers; Table 5: α = 0.5) against every
other row, seed by seed (mean ± sample std over the seeds both rows have), and by the paper's own table, printed
beside for the ordering its rows should have.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from recipe_dypo.eval.tables import mean_std, published_markdown
from recipe_dypo.paper_results import get_table
from recipe_dypo.toy import benchmark
from recipe_dypo.toy.reproduce import BASE, TABLE_ROWS, runs_needed

ID_COLUMNS = tuple(benchmark.data_source(t) for t in benchmark.ID_TASKS)
OOD_COLUMNS = tuple(benchmark.data_source(t) for t in benchmark.OOD_TASKS)
COLUMNS = ID_COLUMNS + ("id_avg",) + OOD_COLUMNS + ("ood_avg",)
HEADINGS = {
    **{benchmark.data_source(t): t for t in benchmark.TASKS},
    "id_avg": "ID avg",
    "ood_avg": "OOD avg",
}
REFERENCE_RUN = "dypo"  # the row every other row is compared with
EMPTY = "–"


def run_scores(summary: dict) -> dict[str, float]:
    """Toy column -> score (0-100) of one evaluator summary, with the ID and OOD macro-averages."""
    per = {b: float(m["score"]) for b, m in summary.get("benchmarks", {}).items() if m.get("score") is not None}
    scores = {c: per[c] for c in ID_COLUMNS + OOD_COLUMNS if c in per}
    if all(c in scores for c in ID_COLUMNS):
        scores["id_avg"] = sum(scores[c] for c in ID_COLUMNS) / len(ID_COLUMNS)
    if all(c in scores for c in OOD_COLUMNS):
        scores["ood_avg"] = sum(scores[c] for c in OOD_COLUMNS) / len(OOD_COLUMNS)
    return scores


def load_scores(out: Path, seeds: list[int]) -> dict[str, dict[int, dict[str, float]]]:
    """run -> seed -> scores, from ``<out>/runs/<seed>/<run>/eval/summary.json``. The base model is evaluated
    with each seed's sampling seed, so it has seeds too."""
    found: dict[str, dict[int, dict[str, float]]] = {}
    for seed in seeds:
        for path in sorted((out / "runs" / str(seed)).glob("*/eval/summary.json")):
            found.setdefault(path.parent.parent.name, {})[seed] = run_scores(json.loads(path.read_text()))
    return found


def load_times(out: Path, seeds: list[int]) -> dict[str, dict[int, tuple[float, float]]]:
    """run -> seed -> (training seconds, evaluation seconds) of each run that finished both (the base model: 0 s
    of training)."""
    found: dict[str, dict[int, tuple[float, float]]] = {}
    for seed in seeds:
        for summary in sorted((out / "runs" / str(seed)).glob("*/eval/summary.json")):
            run_dir = summary.parent.parent
            done = run_dir / "train.done"
            if run_dir.name != BASE and not done.exists():
                continue
            train_s = json.loads(done.read_text()).get("wall_s", 0.0) if done.exists() else 0.0
            eval_s = json.loads(summary.read_text()).get("eval_wall_s", 0.0)
            found.setdefault(run_dir.name, {})[seed] = (float(train_s), float(eval_s))
    return found


def table_time(key: str, times: dict[str, dict[int, tuple[float, float]]]) -> dict[int, tuple[float, float]]:
    """seed -> (training, evaluation) seconds of every run ``key`` needs (SFT -> RL's SFT row included), for the
    seeds where all of them finished: the table's wall time when run on its own."""
    needed = runs_needed([key])
    seeds = set.intersection(*(set(times.get(run, {})) for run in needed))
    return {
        seed: (sum(times[run][seed][0] for run in needed), sum(times[run][seed][1] for run in needed))
        for seed in sorted(seeds)
    }


def fmt(mean: float | None, std: float | None, signed: bool = False) -> str:
    if mean is None:
        return EMPTY
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return text + (f" ± {std:.1f}" if std is not None else "")


def paired_differences(reference: dict[int, dict], other: dict[int, dict], column: str) -> list[float]:
    """reference − other in ``column``, one value per seed both have."""
    seeds = sorted(s for s in reference if s in other and column in reference[s] and column in other[s])
    return [reference[s][column] - other[s][column] for s in seeds]


def render_table(
    key: str, scores: dict[str, dict[int, dict[str, float]]], times: dict | None = None
) -> tuple[str, list[list]]:
    """(Markdown, CSV rows) of one toy table; ``times`` (:func:`load_times`) adds its wall time per seed."""
    times = times or {}
    paper = get_table(key)
    rows = TABLE_ROWS[key]
    md = [
        f"### Toy {paper.title.split(':', 1)[0]}: {paper.title.split(':', 1)[1].strip()} — toy scale",
        "",
        "Tiny Qwen2 (0.68M parameters, pre-trained briefly) on the toy benchmark suite; ID: "
        + ", ".join(benchmark.ID_TASKS)
        + "; OOD: "
        + ", ".join(benchmark.OOD_TASKS)
        + ". avg@4 at temperature 0.6 on 128 held-out prompts per column; mean ± std over seeds.",
        "",
        "| Method | stands for (paper row) | seeds | " + " | ".join(HEADINGS[c] for c in COLUMNS) + " |",
        "|---|---|---:|" + "---:|" * len(COLUMNS),
    ]
    csv_rows = []
    for paper_row, label, run in rows:
        per_seed = scores.get(run, {})
        cells = []
        for c in COLUMNS:
            values = [s[c] for s in per_seed.values() if c in s]
            m, sd = mean_std(values) if len(values) == len(per_seed) else (None, None)
            cells.append(fmt(m, sd))
        name = f"**{label}**" if run == REFERENCE_RUN or label.endswith("(DYPO)") else label
        md.append(f"| {name} | {paper_row or '(not in the paper)'} | {len(per_seed)} | " + " | ".join(cells) + " |")
        for seed, s in sorted(per_seed.items()):
            wall = times.get(run, {}).get(seed)
            walls = [f"{wall[0]:.0f}", f"{wall[1]:.0f}"] if wall else ["", ""]
            csv_rows.append([key, label, paper_row or "", run, seed] + [_num(s.get(c)) for c in COLUMNS] + walls)
    per_seed_time = table_time(key, times)
    if per_seed_time:
        spent = ", ".join(
            f"seed {seed}: {t + e:.0f} s ({t:.0f} s training, {e:.0f} s evaluation)"
            for seed, (t, e) in per_seed_time.items()
        )
        total = sum(t + e for t, e in per_seed_time.values())
        md += ["", f"Wall time of the runs this table needs, run on their own: {spent}; {total / 60:.1f} min in all."]
    reference_run = next((run for _, _, run in rows if run == REFERENCE_RUN), None)
    if reference_run in scores:
        ref_label = next(label for _, label, run in rows if run == reference_run)
        md += [
            "",
            f"Paired differences, {ref_label} − row (per seed, then mean ± std over seeds):",
            "",
            "| row | seeds | ID avg | OOD avg | ID avg per seed |",
            "|---|---:|---:|---:|---|",
        ]
        for _, label, run in rows:
            if run == reference_run or run not in scores:
                continue
            d_id = paired_differences(scores[reference_run], scores[run], "id_avg")
            d_ood = paired_differences(scores[reference_run], scores[run], "ood_avg")
            per = ", ".join(f"{v:+.1f}" for v in d_id)
            md.append(
                f"| {label} | {len(d_id)} | {fmt(*mean_std(d_id), signed=True)} | "
                f"{fmt(*mean_std(d_ood), signed=True)} | {per} |"
            )
    md += [
        "",
        f"The paper's {paper.title.split(':', 1)[0]} ({paper.base_model}; published, for the ordering):",
        "",
        published_markdown(paper),
        "",
    ]
    return "\n".join(md), csv_rows


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def write_all(out: Path, tables: list[str], seeds: list[int]) -> list[Path]:
    """Write ``<out>/tables/<table>.md`` and ``.csv`` (one CSV row per run and seed); returns the paths."""
    scores, times = load_scores(out, seeds), load_times(out, seeds)
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key in tables:
        markdown, rows = render_table(key, scores, times)
        (folder / f"{key}.md").write_text(markdown)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["table", "method", "paper_row", "run", "seed", *COLUMNS, "train_wall_s", "eval_wall_s"])
        writer.writerows(rows)
        (folder / f"{key}.csv").write_text(buf.getvalue())
        written += [folder / f"{key}.md", folder / f"{key}.csv"]
    return written


__all__ = [
    "BASE",
    "load_scores",
    "load_times",
    "paired_differences",
    "render_table",
    "run_scores",
    "table_time",
    "write_all",
]
