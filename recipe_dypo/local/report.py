"""Console table, metrics JSONL and the PNG of curves for local runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

# (header, metric key, format) of the per-step console table
COLUMNS = [
    ("step", "step", "{:>4d}"),
    ("reward", "dypo/rollout_score_mean", "{:>6.3f}"),
    ("easy", "dypo/easy_ratio", "{:>5.2f}"),
    ("mid", "dypo/mid_ratio", "{:>5.2f}"),
    ("hard", "dypo/hard_ratio", "{:>5.2f}"),
    ("offline", "dypo/offline_data_ratio", "{:>7.2f}"),
    ("sft_loss", "dypo/sft_loss", "{:>8.3f}"),
    ("gal_loss", "dypo/gal_loss", "{:>8.3f}"),
    ("entropy", "actor/entropy", "{:>7.3f}"),
    ("heldout", "eval/heldout_acc", "{:>7.3f}"),
    ("sec", "timing/step_s", "{:>5.1f}"),
]


def table_header() -> str:
    return "  ".join(f"{h:>{len(fmt.format(0) if 'd' in fmt else fmt.format(0.0))}}" for h, _, fmt in COLUMNS)


def table_row(metrics: dict) -> str:
    """One console line; missing values print as '-'."""
    cells = []
    for _, key, fmt in COLUMNS:
        width = len(fmt.format(0) if "d" in fmt else fmt.format(0.0))
        value = metrics.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            cells.append(f"{'-':>{width}}")
        else:
            cells.append(fmt.format(int(value) if "d" in fmt else float(value)))
    return "  ".join(cells)


class MetricsLog:
    """Appends one JSON object per step to ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, metrics: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({k: _jsonable(v) for k, v in metrics.items()}) + "\n")


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(records: list[dict], path: str | Path, title: str = "DYPO CPU quickstart") -> Path | None:
    """Four panels: reward and held-out accuracy; easy/mid/hard and offline-data ratios; SFT/GAL loss; entropy.

    Returns the PNG path, or None when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps = [r["step"] for r in records]

    def series(key):
        return [r.get(key) if r.get(key) is not None else float("nan") for r in records]

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    ax.plot(steps, series("dypo/rollout_score_mean"), label="rollout reward")
    evals = [(r["step"], r["eval/heldout_acc"]) for r in records if r.get("eval/heldout_acc") is not None]
    if evals:
        ax.plot(*zip(*evals), "o-", label="held-out accuracy (greedy)")
    ax.set_title("reward")
    ax = axes[0, 1]
    for key, label in [("dypo/easy_ratio", "easy"), ("dypo/mid_ratio", "mid"), ("dypo/hard_ratio", "hard")]:
        ax.plot(steps, series(key), label=label)
    ax.plot(steps, series("dypo/offline_data_ratio"), "k--", label="offline-data ratio")
    ax.set_title("curriculum (prompt ratios)")
    ax = axes[1, 0]
    ax.plot(steps, series("dypo/sft_loss"), label="SFT loss (teacher NLL/token)")
    ax.plot(steps, series("dypo/gal_loss"), label="GAL loss")
    ax.set_title("losses at theta_old")
    ax = axes[1, 1]
    ax.plot(steps, series("actor/entropy"), label="rollout entropy")
    ax.set_title("entropy")
    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
