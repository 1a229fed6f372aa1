"""Published results of the DYPO paper (arXiv 2604.08926v1), laid out like its tables.

STATUS: the numeric cells are NOT transcribed yet. Every published value below is ``None`` and renders as
"TODO". The row/column layout follows the issue's description of the paper's tables; the row sets of Table 2 and
of the ablation tables (3-5) are our best reading and still have to be checked against the paper.

What the paper's PDF does show (read from its uncompressed outline and link targets, session 2): it has exactly
five tables; Tables 1-3 head pages 7-9 (§4.2 "Main Results", whose 4.2.2 is "Generalization to Out-of-
Distribution Tasks", and §4.3 "Ablation Study"); Table 4 is in Appendix C.1 "Single-Teacher vs. Multi-Teacher
Ablation" and Table 5 in Appendix C.2 "Hyperparameter Sensitivity and Statistical Significance". So Table 3 is
the component ablation, but whether Table 2 is the Qwen3-4B-Base table or an out-of-distribution table is not
confirmed. The abstract's only numbers: +4.8 points on reasoning benchmarks and +13.3 on out-of-distribution
tasks over "traditional sequential pipelines" (base model not stated).

Why: the paper's tables could not be read from the material available while this file was written (the PDF
in the authors' repository, Tocci-Zhu/DYPO: paper/2604.08926.pdf, is stored compressed; the arXiv HTML
page was only reachable as its first screen). Third-party summaries quote a few averages, but they are not the
paper itself and are not used here. To fill a row, copy the numbers from the paper's table (PDF or
https://arxiv.org/html/2604.08926v1), set ``status`` of the table to ``"transcribed"`` and note the table number in
``source``. Never put a number here that is not printed in the paper, and never copy these into measured rows:
measured rows come only from ``python -m recipe_dypo.eval`` output (see :mod:`recipe_dypo.eval.tables`).

Values are percentages (one decimal, as printed). ``id_avg`` / ``ood_avg`` are the paper's own averages; leave
them ``None`` rather than recomputing them if the paper does not print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Column keys (see recipe_dypo.eval.metrics.DISPLAY_NAMES for the printed names)
MAIN_COLUMNS: tuple[str, ...] = (
    "aime24",
    "aime25",
    "amc",
    "math500",
    "minerva",
    "id_avg",
    "arc_c",
    "gpqa_diamond",
    "ood_avg",
)
AVG_COLUMNS: tuple[str, ...] = ("id_avg", "ood_avg")

PAPER = "Zhu et al., Bridging SFT and RL: Dynamic Policy Optimization for Robust Reasoning, arXiv:2604.08926v1"


@dataclass(frozen=True)
class PaperRow:
    method: str
    group: str
    scores: dict[str, float | None] = field(default_factory=dict)  # column -> published value (None = TODO)
    std: dict[str, float | None] = field(default_factory=dict)  # only for mean ± std tables (Table 5)
    note: str = ""

    def value(self, column: str) -> float | None:
        return self.scores.get(column)


@dataclass(frozen=True)
class PaperTable:
    key: str
    title: str
    base_model: str
    columns: tuple[str, ...]
    rows: tuple[PaperRow, ...]
    source: str
    status: str  # "todo" (no numbers yet), "partial" or "transcribed"
    layout_note: str = ""

    def row(self, method: str) -> PaperRow | None:
        want = _norm(method)
        for r in self.rows:
            if _norm(r.method) == want:
                return r
        return None

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.rows]


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _todo_rows(spec: list[tuple[str, str]], columns: tuple[str, ...] = MAIN_COLUMNS) -> tuple[PaperRow, ...]:
    return tuple(PaperRow(method=m, group=g, scores={c: None for c in columns}) for m, g in spec)


# ---------------------------------------------------------------------------------------------------------------------
# Table 1: Qwen2.5-Math-7B
# ---------------------------------------------------------------------------------------------------------------------

TABLE1 = PaperTable(
    key="table1",
    title="Table 1: main results on Qwen2.5-Math-7B",
    base_model="Qwen2.5-Math-7B",
    columns=MAIN_COLUMNS,
    rows=_todo_rows(
        [
            ("Qwen2.5-Math-7B", "Base"),
            ("SFT", "Single-stage"),
            ("RL", "Single-stage"),
            ("SimpleRL-Zero", "Zero RL"),
            ("OpenReasoner-Zero", "Zero RL"),
            ("PRIME-Zero", "Zero RL"),
            ("Oat-Zero", "Zero RL"),
            ("SFT→RL", "SFT + RL"),
            ("SuperRL", "SFT + RL"),
            ("LUFFY", "SFT + RL"),
            ("ReLIFT", "SFT + RL"),
            ("SRFT", "SFT + RL"),
            ("CHORD", "SFT + RL"),
            ("DYPO", "Ours"),
        ]
    ),
    source=f"{PAPER}, Table 1",
    status="todo",
    layout_note="AIME24/AIME25/AMC: avg@32 (the paper's 'pass@32'); other benchmarks: accuracy with one sample.",
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 2: Qwen3-4B-Base (row set to be confirmed against the paper)
# ---------------------------------------------------------------------------------------------------------------------

TABLE2 = PaperTable(
    key="table2",
    title="Table 2: main results on Qwen3-4B-Base",
    base_model="Qwen3-4B-Base",
    columns=MAIN_COLUMNS,
    rows=_todo_rows(
        [
            ("Qwen3-4B-Base", "Base"),
            ("SFT", "Single-stage"),
            ("RL", "Single-stage"),
            ("SFT→RL", "SFT + RL"),
            ("SuperRL", "SFT + RL"),
            ("LUFFY", "SFT + RL"),
            ("ReLIFT", "SFT + RL"),
            ("SRFT", "SFT + RL"),
            ("CHORD", "SFT + RL"),
            ("DYPO", "Ours"),
        ]
    ),
    source=f"{PAPER}, Table 2",
    status="todo",
    layout_note="Row set not yet checked against the paper (the zero-RL baselines are Qwen2.5-Math models).",
)

# ---------------------------------------------------------------------------------------------------------------------
# Ablations (Qwen2.5-Math-7B)
# ---------------------------------------------------------------------------------------------------------------------

TABLE3 = PaperTable(
    key="table3",
    title="Table 3: incremental ablation (each row adds one component)",
    base_model="Qwen2.5-Math-7B",
    columns=MAIN_COLUMNS,
    rows=_todo_rows(
        [
            ("SFT", "Ablation"),
            ("+ Multi-Teacher SFT", "Ablation"),
            ("+ RL", "Ablation"),
            ("+ Dynamic Grading", "Ablation"),
            ("+ GAL (DYPO)", "Ablation"),
        ]
    ),
    source=f"{PAPER}, Table 3",
    status="todo",
    layout_note="Columns assumed equal to Table 1; check against the paper.",
)

TABLE4 = PaperTable(
    key="table4",
    title="Table 4: single teacher vs two teachers",
    base_model="Qwen2.5-Math-7B",
    columns=MAIN_COLUMNS,
    rows=_todo_rows(
        [
            ("Single teacher (teacher 1)", "Teachers"),
            ("Single teacher (teacher 2)", "Teachers"),
            ("Two teachers", "Teachers"),
        ]
    ),
    source=f"{PAPER}, Table 4",
    status="todo",
    layout_note="Teacher names and columns to be checked against the paper.",
)

ALPHAS: tuple[float, ...] = (0.2, 0.5, 0.8)
BETAS: tuple[float, ...] = (0.1, 1.0, 2.0)


def grid_label(alpha: float, beta: float) -> str:
    """Row label of Table 5 (also the --label to give measured runs so they match)."""
    return f"alpha={alpha:g}, beta={beta:g}"


TABLE5 = PaperTable(
    key="table5",
    title="Table 5: sensitivity to alpha (GRPO/GAL mix) and beta (GAL temperature), mean ± std over seeds",
    base_model="Qwen2.5-Math-7B",
    columns=AVG_COLUMNS,
    rows=tuple(
        PaperRow(
            method=grid_label(a, b),
            group="Grid",
            scores={c: None for c in AVG_COLUMNS},
            std={c: None for c in AVG_COLUMNS},
        )
        for a in ALPHAS
        for b in BETAS
    ),
    source=f"{PAPER}, Table 5",
    status="todo",
    layout_note="Cells are mean ± std over seeds; columns assumed to be the ID and OOD averages.",
)

TABLES: dict[str, PaperTable] = {t.key: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)}


# Rows this project can train, with the command that trains them (evaluate the checkpoint with scripts/eval.sh
# and pass it to scripts/reproduce_tables.py with the row's name as its label). Where the paper does not say
# what an ablation row is, the mapping is our reading; README "Reproducing the paper" says which ones.
Q3 = "MODEL=qwen3-4b-base "
TRAINING_RUNS: dict[str, dict[str, str]] = {
    "table1": {
        "SFT": "bash scripts/run_sft.sh",
        "RL": "bash scripts/run_grpo.sh",
        "SFT→RL": "bash scripts/run_sft_then_rl.sh",
        "LUFFY": "bash scripts/run_luffy_mix.sh  # LUFFY-style mixing on this trainer, not LUFFY's code",
        "DYPO": "bash scripts/run_dypo_qwen2.5_7b.sh",
    },
    "table2": {
        "SFT": Q3 + "bash scripts/run_sft.sh",
        "RL": Q3 + "bash scripts/run_grpo.sh",
        "SFT→RL": Q3 + "bash scripts/run_sft_then_rl.sh",
        "LUFFY": Q3 + "bash scripts/run_luffy_mix.sh  # LUFFY-style mixing on this trainer, not LUFFY's code",
        "DYPO": "bash scripts/run_dypo_qwen3_4b_base.sh",
    },
    "table3": {
        "SFT": "SFT_FILE=data/sft_1t.parquet bash scripts/run_sft.sh  # one teacher; our reading",
        "+ Multi-Teacher SFT": "bash scripts/run_sft.sh",
        "+ RL": "bash scripts/run_sft_then_rl.sh  # sequential SFT then GRPO; our reading",
        "+ Dynamic Grading": "bash scripts/run_ablation_no_gal.sh",
        "+ GAL (DYPO)": "bash scripts/run_dypo_qwen2.5_7b.sh",
    },
    "table4": {
        "Single teacher (teacher 1)": "TEACHER=deepseek-r1 bash scripts/run_ablation_single_teacher.sh",
        "Single teacher (teacher 2)": "TEACHER=qwen3-235b-a22b bash scripts/run_ablation_single_teacher.sh",
        "Two teachers": "bash scripts/run_dypo_qwen2.5_7b.sh",
    },
    "table5": {
        grid_label(a, b): f"ALPHAS={a:g} BETAS={b:g} bash scripts/run_sweep_alpha_beta.sh"
        for a in ALPHAS
        for b in BETAS
    },
}
# Baselines the issue asks for that are not rows of the paper's tables.
EXTRA_RUNS: dict[str, str] = {
    "HPT-style switch": "bash scripts/run_hpt_switch.sh",
}


def get_table(key: str | int) -> PaperTable:
    k = str(key).lower()
    if k.isdigit():
        k = f"table{k}"
    if k not in TABLES:
        raise KeyError(f"unknown table {key!r}; known: {sorted(TABLES)}")
    return TABLES[k]


def is_transcribed(table: PaperTable) -> bool:
    return any(v is not None for r in table.rows for v in r.scores.values())
