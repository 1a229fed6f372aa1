"""Published results of the DYPO paper (arXiv 2604.08926v1), in the layouts of its five tables.

Every number is a percentage exactly as printed, transcribed from the PDF: Table 1 (p. 7, Qwen2.5-Math-7B),
Table 2 (p. 8, Qwen3-4B-Base), Table 3 (p. 9, §4.3 ablation under three teacher strengths), Table 4 (p. 16,
Appendix C.1) and Table 5 (p. 17, Appendix C.2). ``tests/test_tables.py`` compares every cell with the checked
transcription in ``../shared/paper/tables.md``.

Where the paper's numbers disagree with each other, the printed value is kept and the cell carries a note
(:attr:`PaperRow.notes`); :data:`PAPER_INCONSISTENCIES` lists every disagreement between the paper's text and
its tables that this project found. Never put a number here that is not printed in the paper, and never copy
these into measured rows: measured rows come only from ``python -m recipe_dypo.eval`` output (see
:mod:`recipe_dypo.eval.tables`).

AIME 24, AIME 25 and AMC cells are what the paper calls "pass@32" (§4.1). Its LUFFY row repeats LUFFY's own
published numbers, which LUFFY computes as avg@32 (its evaluation files hold 32 copies of each AIME/AMC problem and
average their scores), so these cells are read as avg@32, the mean accuracy of 32 samples: the ``score`` that
``recipe_dypo.eval`` reports. Other benchmarks: one sample. All at temperature 0.6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Column keys (benchmark keys of recipe_dypo.eval.metrics plus the two averages)
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
ABLATION_COLUMNS: tuple[str, ...] = ("aime24", "aime25", "amc", "gpqa_diamond")

# Column headings as the paper prints them (its "Avg" columns sit under "In-Distribution" / "Out-of-Distribution").
PAPER_HEADINGS: dict[str, str] = {
    "aime24": "AIME 24",
    "aime25": "AIME 25",
    "amc": "AMC",
    "math500": "MATH-500",
    "minerva": "Minerva",
    "id_avg": "ID Avg",
    "arc_c": "ARC-c",
    "gpqa_diamond": "GPQA-D",
    "ood_avg": "OOD Avg",
}
PARAM_HEADINGS: dict[str, str] = {"alpha": "α", "beta_gal": "β_GAL"}

TEACHER_STRENGTHS: tuple[str, ...] = ("235B", "32B", "8B")

PAPER = "Zhu et al., Bridging SFT and RL: Dynamic Policy Optimization for Robust Reasoning, arXiv:2604.08926v1"

Value = float | tuple[float, ...]


@dataclass(frozen=True)
class PaperRow:
    """One published row. A cell is one value, or one value per variant of the table (Table 3's teachers)."""

    method: str
    group: str
    scores: dict[str, Value] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)  # Table 5: mean ± std over seeds
    gains: dict[str, float] = field(default_factory=dict)  # bracketed gains printed beside a value (Table 1, DYPO)
    notes: dict[str, str] = field(default_factory=dict)  # column -> why the printed value is flagged
    params: dict[str, float] = field(default_factory=dict)  # Table 5: alpha, beta_gal

    @property
    def has_variants(self) -> bool:
        return any(isinstance(v, tuple) for v in self.scores.values())

    def value(self, column: str, variant: int | None = None) -> float | None:
        """The published value; for a per-variant cell, that of ``variant`` (default: the first, 235B)."""
        v = self.scores.get(column)
        if isinstance(v, tuple):
            return v[variant or 0]
        return v


@dataclass(frozen=True)
class PaperTable:
    key: str
    title: str
    base_model: str
    columns: tuple[str, ...]
    rows: tuple[PaperRow, ...]
    source: str
    status: str = "transcribed"  # how the published numbers got here
    layout_note: str = ""
    merged: tuple[tuple[str, ...], ...] = ()  # columns the paper prints in one cell ("9.3/5.3")
    variants: tuple[str, ...] = ()  # names of the values in a per-variant cell (Table 3: teacher strengths)
    params: tuple[str, ...] = ()  # leading parameter columns (Table 5: alpha, beta_gal)
    gains_over: str | None = None  # the row the bracketed gains are measured against

    def resolve(self, name: str) -> tuple[PaperRow | None, int | None]:
        """``"+ RL (32B)"`` -> (the "+ RL" row, index of 32B); a name without a variant -> (row, None)."""
        base, variant = split_variant(name, self.variants)
        want = _norm(base)
        for r in self.rows:
            if _norm(r.method) == want:
                return r, variant
        return None, None

    def row(self, method: str) -> PaperRow | None:
        return self.resolve(method)[0]

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.rows]

    def display_columns(self) -> list[tuple[str, tuple[str, ...]]]:
        """(heading, column keys) per printed column; merged columns share one heading ("AIME 24/25")."""
        out: list[tuple[str, tuple[str, ...]]] = []
        done: set[str] = set()
        for c in self.columns:
            if c in done:
                continue
            group = next((g for g in self.merged if c in g), (c,))
            done.update(group)
            out.append((merged_heading(group), group))
        return out


def merged_heading(keys: tuple[str, ...]) -> str:
    """``("aime24", "aime25")`` -> "AIME 24/25"; one key -> its heading."""
    heads = [PAPER_HEADINGS.get(k, k) for k in keys]
    if len(heads) > 1 and all(h.startswith("AIME ") for h in heads):
        return "AIME " + "/".join(h.split(" ", 1)[1] for h in heads)
    return "/".join(heads)


def split_variant(name: str, variants: tuple[str, ...]) -> tuple[str, int | None]:
    """Split a trailing "(VARIANT)" off a row name when VARIANT is one of ``variants``."""
    m = re.match(r"^(.*?)\s*\(([^()]*)\)\s*$", str(name))
    if m and variants:
        wanted = [v.lower() for v in variants]
        if m.group(2).strip().lower() in wanted:
            return m.group(1), wanted.index(m.group(2).strip().lower())
    return str(name), None


def variant_name(table: PaperTable, row: PaperRow, variant: int | None) -> str:
    """Row name with its variant, as TRAINING_RUNS and measured labels spell it ("+ RL (32B)"); a per-variant row
    without a variant means the first one (235B)."""
    if not row.has_variants:
        return row.method
    return f"{row.method} ({table.variants[variant or 0]})"


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _row(method: str, group: str, values, columns: tuple[str, ...] = MAIN_COLUMNS, **kw) -> PaperRow:
    if len(values) != len(columns):
        raise ValueError(f"{method}: {len(values)} values for {len(columns)} columns")
    return PaperRow(method=method, group=group, scores=dict(zip(columns, values)), **kw)


# ---------------------------------------------------------------------------------------------------------------------
# Table 1: Qwen2.5-Math-7B (p. 7)
# ---------------------------------------------------------------------------------------------------------------------

BASE, SFT_GROUP, RL_GROUP, SFT_RL_GROUP, OURS = (
    "Base model",
    "Supervised Fine-Tuning",
    "Reinforcement Learning",
    "SFT and RL",
    "DYPO",
)
DYPO_ID_AVG_NOTE = "printed 52.5; the mean of the five ID values printed in the row is 52.66"

TABLE1 = PaperTable(
    key="table1",
    title="Table 1: Qwen2.5-Math-7B, five in-distribution and two out-of-distribution benchmarks",
    base_model="Qwen2.5-Math-7B",
    columns=MAIN_COLUMNS,
    rows=(
        _row("Qwen2.5-Math-7B", BASE, (11.5, 4.9, 31.3, 43.6, 7.4, 19.7, 18.2, 11.1, 14.6)),
        _row("SFT", SFT_GROUP, (22.2, 22.3, 52.8, 82.6, 40.8, 44.1, 75.2, 24.7, 50.0)),
        _row("RL", RL_GROUP, (25.1, 15.3, 62.0, 84.4, 39.3, 45.2, 82.3, 40.4, 61.4)),
        _row("SimpleRL-Zero", RL_GROUP, (27.0, 6.8, 54.9, 76.0, 25.0, 37.9, 30.2, 23.2, 26.7)),
        _row("OpenReasoner-Zero", RL_GROUP, (16.5, 15.0, 52.1, 82.4, 33.1, 39.8, 66.2, 29.8, 48.0)),
        _row("PRIME-Zero", RL_GROUP, (17.0, 12.8, 54.0, 81.4, 39.0, 40.8, 73.3, 18.2, 45.8)),
        _row("Oat-Zero", RL_GROUP, (33.4, 11.9, 61.2, 78.0, 34.6, 43.8, 70.1, 23.7, 46.9)),
        _row("SFT → RL", SFT_RL_GROUP, (25.8, 23.1, 62.7, 87.2, 39.7, 47.7, 72.4, 24.2, 48.3)),
        _row("SuperRL", SFT_RL_GROUP, (28.1, 21.6, 63.9, 86.4, 36.4, 47.3, 77.8, 36.9, 57.4)),
        _row("LUFFY", SFT_RL_GROUP, (29.4, 23.1, 65.6, 87.6, 37.5, 48.6, 80.5, 39.9, 60.2)),
        _row("ReLIFT", SFT_RL_GROUP, (28.3, 22.9, 65.1, 87.4, 37.1, 48.2, 74.9, 40.9, 57.9)),
        _row("SRFT", SFT_RL_GROUP, (30.7, 26.0, 69.8, 88.4, 39.7, 50.9, 81.6, 40.4, 61.0)),
        _row("CHORD", SFT_RL_GROUP, (31.2, 24.4, 66.8, 89.4, 39.3, 50.2, 81.1, 40.4, 60.8)),
        _row(
            "DYPO",
            OURS,
            (36.0, 28.7, 67.0, 89.2, 42.4, 52.5, 81.8, 41.4, 61.6),
            gains=dict(zip(MAIN_COLUMNS, (10.2, 5.6, 4.3, 2.0, 2.7, 4.8, 9.4, 17.2, 13.3))),
            notes={"id_avg": DYPO_ID_AVG_NOTE},
        ),
    ),
    source=f"{PAPER}, Table 1 (p. 7)",
    gains_over="SFT → RL",
    layout_note="DYPO's bracketed numbers are the paper's printed gains over SFT → RL.",
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 2: Qwen3-4B-Base (p. 8); AIME 24 and 25 share one printed column
# ---------------------------------------------------------------------------------------------------------------------

TABLE2 = PaperTable(
    key="table2",
    title="Table 2: Qwen3-4B-Base, mathematical reasoning and out-of-distribution benchmarks",
    base_model="Qwen3-4B-Base",
    columns=MAIN_COLUMNS,
    rows=(
        _row("Qwen3-4B-Base", BASE, (9.3, 5.3, 40.0, 66.8, 27.9, 29.9, 49.4, 14.1, 31.8)),
        _row("SFT", SFT_GROUP, (33.3, 27.3, 62.9, 73.8, 43.0, 48.1, 73.8, 28.8, 51.3)),
        _row("RL", RL_GROUP, (40.6, 37.3, 71.8, 91.0, 46.3, 57.4, 76.7, 29.3, 53.0)),
        _row("SFT → RL", SFT_RL_GROUP, (43.3, 39.3, 75.4, 77.4, 44.9, 56.1, 77.4, 27.8, 52.6)),
        _row("DYPO", OURS, (59.3, 44.0, 86.0, 94.6, 50.4, 66.9, 92.5, 44.4, 68.5)),
    ),
    source=f"{PAPER}, Table 2 (p. 8)",
    merged=(("aime24", "aime25"),),
    layout_note="The paper prints AIME 24 and AIME 25 in one column as 24/25.",
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 3: incremental ablation under three teacher strengths (p. 9, §4.3), Qwen2.5-Math-7B
# ---------------------------------------------------------------------------------------------------------------------

ABLATION = "Ablation"
TABLE3 = PaperTable(
    key="table3",
    title="Table 3: ablation under different teacher strengths (235B / 32B / 8B), Qwen2.5-Math-7B",
    base_model="Qwen2.5-Math-7B",
    columns=ABLATION_COLUMNS,
    rows=(
        _row("Qwen2.5-Math-7B", BASE, (11.5, 4.9, 31.3, 11.1), ABLATION_COLUMNS),
        _row("+ SFT", ABLATION, (22.2, 22.3, 52.8, 24.7), ABLATION_COLUMNS),
        _row(
            "+ Multi-Teacher",
            ABLATION,
            ((26.6, 26.8, 24.5), (23.3, 23.5, 22.0), (61.4, 61.8, 59.5), (33.3, 32.3, 30.8)),
            ABLATION_COLUMNS,
        ),
        _row(
            "+ RL",
            ABLATION,
            ((27.3, 26.9, 25.0), (26.6, 26.0, 25.5), (64.1, 63.5, 61.0), (34.8, 35.4, 31.8)),
            ABLATION_COLUMNS,
        ),
        _row(
            "+ Dynamic Grading",
            ABLATION,
            ((33.3, 31.5, 31.8), (28.7, 27.9, 28.1), (63.6, 62.0, 62.4), (36.4, 35.4, 34.3)),
            ABLATION_COLUMNS,
        ),
        _row(
            "+ GAL (DYPO)",
            ABLATION,
            ((36.0, 35.2, 33.5), (28.7, 28.5, 27.8), (67.0, 66.5, 65.2), (41.4, 41.4, 39.4)),
            ABLATION_COLUMNS,
        ),
    ),
    source=f"{PAPER}, Table 3 (p. 9)",
    variants=TEACHER_STRENGTHS,
    layout_note=(
        "Cells of the last four rows are 235B / 32B / 8B: the size of the second teacher (§4.3; the paper's "
        "second teacher is Qwen3-235B-A22B, and this recipe reads 32B and 8B as Qwen3-32B and Qwen3-8B). "
        "Name a measured run '+ RL (32B)' to compare it with one value; without a size it is compared with 235B."
    ),
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 4: single vs two teachers (p. 16, Appendix C.1)
# ---------------------------------------------------------------------------------------------------------------------

TABLE4_COLUMNS: tuple[str, ...] = ("aime24", "amc", "gpqa_diamond")
TABLE4 = PaperTable(
    key="table4",
    title="Table 4: single-teacher vs multi-teacher supervision in DYPO, Qwen2.5-Math-7B",
    base_model="Qwen2.5-Math-7B",
    columns=TABLE4_COLUMNS,
    rows=(
        _row("DYPO (Single-Teacher)", "Teachers", (32.8, 64.2, 37.5), TABLE4_COLUMNS),
        _row("DYPO (2-Teacher)", "Teachers", (36.0, 67.0, 41.4), TABLE4_COLUMNS),
    ),
    source=f"{PAPER}, Table 4 (p. 16, Appendix C.1)",
    layout_note="The paper does not say which teacher the single-teacher run keeps.",
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 5: alpha x beta_GAL, mean ± std over seeds (p. 17, Appendix C.2)
# ---------------------------------------------------------------------------------------------------------------------

ALPHAS: tuple[float, ...] = (0.2, 0.5, 0.8)
BETAS: tuple[float, ...] = (0.1, 1.0, 2.0)
TABLE5_COLUMNS: tuple[str, ...] = ("aime24", "math500")


def grid_label(alpha: float, beta: float) -> str:
    """Row name of a Table 5 cell (also the --label to give measured runs so they match)."""
    return f"alpha={alpha:g}, beta={beta:g}"


# (alpha, beta) -> ((AIME 24 mean, std), (MATH-500 mean, std))
_TABLE5_CELLS: dict[tuple[float, float], tuple[tuple[float, float], tuple[float, float]]] = {
    (0.2, 0.1): ((33.5, 1.4), (87.6, 0.7)),
    (0.2, 1.0): ((34.8, 0.9), (88.5, 0.5)),
    (0.2, 2.0): ((33.9, 1.2), (87.9, 0.6)),
    (0.5, 0.1): ((35.2, 0.8), (88.9, 0.4)),
    (0.5, 1.0): ((36.0, 1.1), (89.2, 0.3)),
    (0.5, 2.0): ((35.5, 1.0), (88.7, 0.5)),
    (0.8, 0.1): ((34.6, 1.3), (88.3, 0.8)),
    (0.8, 1.0): ((35.4, 1.1), (88.8, 0.4)),
    (0.8, 2.0): ((34.2, 1.5), (88.1, 0.7)),
}


def _grid_row(alpha: float, beta: float) -> PaperRow:
    cells = _TABLE5_CELLS[(alpha, beta)]
    return PaperRow(
        method=grid_label(alpha, beta),
        group="Grid",
        scores={c: mean for c, (mean, _) in zip(TABLE5_COLUMNS, cells)},
        std={c: std for c, (_, std) in zip(TABLE5_COLUMNS, cells)},
        params={"alpha": alpha, "beta_gal": beta},
    )


TABLE5 = PaperTable(
    key="table5",
    title="Table 5: sensitivity to α (GRPO/GAL mix) and β_GAL (GAL inverse temperature), Qwen2.5-Math-7B",
    base_model="Qwen2.5-Math-7B",
    columns=TABLE5_COLUMNS,
    rows=tuple(_grid_row(a, b) for a in ALPHAS for b in BETAS),
    source=f"{PAPER}, Table 5 (p. 17, Appendix C.2)",
    params=("alpha", "beta_gal"),
    layout_note="Mean ± std over several random seeds (the paper does not give their number).",
)

TABLES: dict[str, PaperTable] = {t.key: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5)}


# ---------------------------------------------------------------------------------------------------------------------
# Where the paper disagrees with itself (each checked by tests/test_tables.py from the numbers above)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inconsistency:
    tables: tuple[str, ...]
    where: str
    text: str


PAPER_INCONSISTENCIES: tuple[Inconsistency, ...] = (
    Inconsistency(
        ("table1",),
        "Table 1; §4.2.1; abstract",
        "DYPO's ID Avg is printed 52.5 (also in §4.2.1), but its five ID values average 52.66. The bracketed "
        "+4.8 over SFT → RL and the abstract's 4.8 use the printed 52.5. The printed value is kept and flagged.",
    ),
    Inconsistency(
        ("table1",),
        "§4.2.1, 'Comparison with Multi-stage Pipelines'",
        "The text says DYPO beats SRFT by +4.8 points on AIME 25; Table 1 gives 28.7 − 26.0 = +2.7 (+4.8 is "
        "DYPO's ID Avg gain over SFT → RL).",
    ),
    Inconsistency(
        ("table3",),
        "§4.3",
        "The text says performance improves monotonically with + RL, + Dynamic Grading and + GAL for every "
        "teacher size; in Table 3, + Dynamic Grading lowers AMC at 235B (64.1 → 63.6) and 32B (63.5 → 62.0) and "
        "leaves GPQA-D at 32B unchanged (35.4), and + GAL leaves AIME 25 at 235B unchanged (28.7) and lowers it at "
        "8B (28.1 → 27.8).",
    ),
)


def non_increasing_steps(table: PaperTable = TABLE3) -> list[tuple[str, str, str, float, float]]:
    """Where a Table 3 step does not raise a score: (row, column, teacher size, before, after), from + RL on."""
    rows = [r for r in table.rows if r.has_variants]
    out = []
    for before, after in zip(rows[1:], rows[2:]):
        for c in table.columns:
            for i, size in enumerate(table.variants):
                x, y = before.value(c, i), after.value(c, i)
                if y <= x:
                    out.append((after.method, c, size, x, y))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Which command produces which row
# ---------------------------------------------------------------------------------------------------------------------

# Rows this project trains, with the command that trains them (evaluate the checkpoint with scripts/eval.sh and
# pass it to scripts/reproduce_tables.py with the row's name as its label). Table 3's per-teacher rows are named
# "ROW (SIZE)". Where the paper does not define a row, the command says "our reading" and docs/reproduce.md
# gives the reasons.
Q3 = "MODEL=qwen3-4b-base "
LUFFY_STYLE = "bash scripts/run_luffy_mix.sh  # LUFFY-style mixing on this trainer, not LUFFY's code"


def _teacher_prefix(size: str) -> str:
    """Environment prefix selecting a Table 3 teacher size (235B is every script's default)."""
    return "" if size == "235B" else f"TEACHER_SIZE={size.lower()} "


def _table3_runs() -> dict[str, str]:
    runs = {"+ SFT": "bash scripts/run_sft.sh  # single-teacher SFT on the DeepSeek-R1 traces = Table 1's SFT"}
    for size in TEACHER_STRENGTHS:
        env = _teacher_prefix(size)
        runs[f"+ Multi-Teacher ({size})"] = env + "SFT_TEACHERS=2 bash scripts/run_sft.sh"
        runs[f"+ RL ({size})"] = env + "SFT_TEACHERS=2 bash scripts/run_sft_then_rl.sh  # our reading"
        runs[f"+ Dynamic Grading ({size})"] = env + "bash scripts/run_ablation_no_gal.sh"
        runs[f"+ GAL (DYPO) ({size})"] = env + "bash scripts/run_dypo_qwen2.5_7b.sh"
    return runs


TRAINING_RUNS: dict[str, dict[str, str]] = {
    "table1": {
        "SFT": "bash scripts/run_sft.sh  # DeepSeek-R1 traces only (SFT_TEACHERS=1, the default)",
        "RL": "bash scripts/run_grpo.sh",
        "SFT → RL": "bash scripts/run_sft_then_rl.sh  # the SFT row, then GRPO; our reading",
        "LUFFY": LUFFY_STYLE,
        "DYPO": "bash scripts/run_dypo_qwen2.5_7b.sh",
    },
    "table2": {
        "SFT": Q3 + "bash scripts/run_sft.sh",
        "RL": Q3 + "bash scripts/run_grpo.sh",
        "SFT → RL": Q3 + "bash scripts/run_sft_then_rl.sh",
        "DYPO": "bash scripts/run_dypo_qwen3_4b_base.sh",
    },
    "table3": _table3_runs(),
    "table4": {
        "DYPO (Single-Teacher)": "TEACHER=deepseek-r1 bash scripts/run_ablation_single_teacher.sh  # our reading",
        "DYPO (2-Teacher)": "bash scripts/run_dypo_qwen2.5_7b.sh",
    },
    "table5": {
        grid_label(a, b): f"ALPHAS={a:g} BETAS={b:g} bash scripts/run_sweep_alpha_beta.sh"
        for a in ALPHAS
        for b in BETAS
    },
}

# Rows that need no training: the base models, evaluated as they are.
EVAL_ONLY_RUNS: dict[str, dict[str, str]] = {
    "table1": {"Qwen2.5-Math-7B": "MODEL=Qwen/Qwen2.5-Math-7B LABEL=Qwen2.5-Math-7B bash scripts/eval.sh"},
    "table2": {"Qwen3-4B-Base": "MODEL=Qwen/Qwen3-4B-Base LABEL=Qwen3-4B-Base bash scripts/eval.sh"},
    "table3": {"Qwen2.5-Math-7B": "MODEL=Qwen/Qwen2.5-Math-7B LABEL=Qwen2.5-Math-7B bash scripts/eval.sh"},
}

# Baselines this project runs that are not rows of the paper's tables.
EXTRA_RUNS: dict[str, str] = {
    "HPT-style switch": "bash scripts/run_hpt_switch.sh",
}


def untrained_rows(table: PaperTable) -> list[str]:
    """Published rows no command here produces (other papers' methods: published numbers only)."""
    covered = set(EVAL_ONLY_RUNS.get(table.key, {}))
    covered |= {table.row(name).method for name in TRAINING_RUNS.get(table.key, {}) if table.row(name)}
    return [r.method for r in table.rows if r.method not in covered]


def get_table(key: str | int) -> PaperTable:
    k = str(key).lower()
    if k.isdigit():
        k = f"table{k}"
    if k not in TABLES:
        raise KeyError(f"unknown table {key!r}; known: {sorted(TABLES)}")
    return TABLES[k]


def is_transcribed(table: PaperTable) -> bool:
    return any(v is not None for r in table.rows for v in r.scores.values())
