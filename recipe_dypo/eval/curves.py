"""Read verl training logs and draw the paper's training-dynamics figures.

Log formats read (one run per path):

* verl's ``file`` logger (``trainer.logger=[...,file]``): JSONL, one ``{"step": N, "data": {metric: value}}`` per
  line (``verl.utils.tracking.FileLogger``; path from ``VERL_FILE_LOGGER_PATH`` or
  ``$VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl``).
* verl's ``console`` logger captured to a file: lines ``step:N - key:value - key:value`` (other lines are ignored).
* flat JSONL lines ``{"step": N, metric: value, ...}``.
* TensorBoard event files (a directory or an ``events.out.tfevents.*`` file), when ``tensorboard`` is importable.

Figures:

* Fig. 4: offline-data ratio (``dypo/offline_prompt_ratio``: prompts trained by a teacher row / prompts trained;
  ``dypo/offline_data_ratio``, the row-level ratio, for older logs), training reward
  (``dypo/rollout_score_mean``, falling back to verl's ``critic/score/mean`` for plain GRPO runs) and policy
  entropy (``actor/entropy``) vs step.
* Fig. 5: gradient norm (``actor/grad_norm``) vs step.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence

Series = dict[str, list[tuple[int, float]]]  # metric -> [(step, value)] sorted by step

FIG4_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # prompt-level ratio (the paper's curve); runs logged before it existed fall back to the row-level ratio
    ("Offline data ratio", ("dypo/offline_prompt_ratio", "dypo/offline_data_ratio")),
    ("Training reward", ("dypo/rollout_score_mean", "critic/score/mean", "critic/rewards/mean")),
    ("Policy entropy", ("actor/entropy",)),
)
FIG5_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (("Gradient norm", ("actor/grad_norm",)),)

_CONSOLE_RE = re.compile(r"step:(\d+)\s+-\s+(.*)$")


def _add(series: Series, step: int, data: Mapping) -> None:
    for k, v in data.items():
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            series.setdefault(str(k), []).append((int(step), float(v)))


def _finish(series: Series) -> Series:
    out: Series = {}
    for k, pts in series.items():
        last: dict[int, float] = {}
        for s, v in pts:  # a resumed run may log a step twice: keep the last value
            last[s] = v
        out[k] = sorted(last.items())
    return out


def parse_text_log(lines: Sequence[str]) -> Series:
    """verl file-logger JSONL, flat JSONL or console lines, in any mix."""
    series: Series = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or "step" not in rec:
                continue
            data = rec["data"] if isinstance(rec.get("data"), dict) else {k: v for k, v in rec.items() if k != "step"}
            _add(series, int(rec["step"]), data)
            continue
        m = _CONSOLE_RE.search(line)
        if m:
            step = int(m.group(1))
            data = {}
            for part in m.group(2).split(" - "):
                if ":" not in part:
                    continue
                key, val = part.rsplit(":", 1)
                try:
                    data[key.strip()] = float(val)
                except ValueError:
                    continue
            _add(series, step, data)
    return _finish(series)


def read_tensorboard(path: str) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    series: Series = {}
    for tag in acc.Tags().get("scalars", []):
        series[tag] = [(int(e.step), float(e.value)) for e in acc.Scalars(tag)]
    return _finish(series)


def read_run(path: str) -> Series:
    base = os.path.basename(path)
    if os.path.isdir(path) or base.startswith("events.out.tfevents"):
        try:
            return read_tensorboard(path)
        except ImportError as e:
            raise ImportError(f"reading {path} needs tensorboard (pip install tensorboard)") from e
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_text_log(f.readlines())


def pick(series: Series, keys: Sequence[str]) -> tuple[str | None, list[tuple[int, float]]]:
    for k in keys:
        if series.get(k):
            return k, series[k]
    return None, []


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """Exponential moving average; alpha=0 returns the values unchanged."""
    if alpha <= 0:
        return list(values)
    out, acc = [], None
    for v in values:
        acc = v if acc is None else alpha * acc + (1 - alpha) * v
        out.append(acc)
    return out


def plot_panels(
    runs: Mapping[str, Series],
    panels: Sequence[tuple[str, Sequence[str]]],
    out_path: str,
    title: str,
    smooth: float = 0.0,
) -> dict[str, dict[str, str | None]]:
    """One subplot per panel, one line per run. Returns {panel: {run: metric used or None}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    used: dict[str, dict[str, str | None]] = {}
    for ax, (name, keys) in zip(axes[0], panels):
        used[name] = {}
        for label, series in runs.items():
            key, pts = pick(series, keys)
            used[name][label] = key
            if not pts:
                continue
            xs = [s for s, _ in pts]
            ys = ema([v for _, v in pts], smooth)
            ax.plot(xs, ys, label=label, linewidth=1.4)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if any(used[name].values()):
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=150)
    plt.close(fig)
    return used
