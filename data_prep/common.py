"""Shared I/O helpers of the data_prep scripts: loading rows, writing parquet, counting dropped rows."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def ensure_repo_on_path() -> None:
    """Let ``python data_prep/x.py`` import ``recipe_dypo`` from a checkout that is not pip-installed."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def to_python(obj: Any) -> Any:
    """numpy arrays / scalars (what pandas gives for parquet list and struct columns) -> plain Python."""
    if isinstance(obj, Mapping):
        return {k: to_python(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_python(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):
        return to_python(obj.tolist())
    if isinstance(obj, float) and obj != obj:  # NaN from a missing struct field
        return None
    return obj


def _looks_like_path(source: str) -> bool:
    return os.path.exists(source) or source.endswith((".parquet", ".jsonl", ".json")) or os.sep in source.strip("./")


def load_rows(source: str, split: str = "train", limit: int | None = None) -> list[dict]:
    """Rows from a local ``.parquet`` / ``.jsonl`` / ``.json`` file, or a Hugging Face hub dataset id."""
    path = Path(source)
    if path.suffix == ".parquet" or (path.is_file() and path.suffix not in (".json", ".jsonl")):
        import pandas as pd

        if not path.exists():
            raise FileNotFoundError(f"input file not found: {source}")
        rows = [to_python(r) for r in pd.read_parquet(path).to_dict(orient="records")]
    elif path.suffix in (".jsonl", ".json"):
        if not path.exists():
            raise FileNotFoundError(f"input file not found: {source}")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json" and text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{source}:{n}: not valid JSON ({e.msg})") from None
    elif _looks_like_path(source):
        raise FileNotFoundError(f"input file not found: {source}")
    else:
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - datasets comes with verl
            raise RuntimeError(f"loading hub dataset {source!r} needs the 'datasets' package") from e
        try:
            ds = datasets.load_dataset(source, split=split)
        except Exception as e:
            raise RuntimeError(
                f"could not load hub dataset {source!r} (split {split!r}): {e}. "
                "Offline? Download it elsewhere and pass the local parquet/JSONL path instead."
            ) from e
        rows = [to_python(r) for r in ds]
    if limit is not None:
        rows = rows[:limit]
    return rows


def write_parquet(rows: list[dict], path: str | os.PathLike) -> None:
    """Write rows with pyarrow (struct/list columns inferred over all rows); creates the parent folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))


def read_jsonl(path: str | os.PathLike) -> Iterable[tuple[int, dict | None, str | None]]:
    """Yield ``(line_number, record, error)`` for each non-blank line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"not valid JSON ({e.msg})"
                continue
            if not isinstance(rec, dict):
                yield n, None, f"expected a JSON object, got {type(rec).__name__}"
                continue
            yield n, rec, None


class DropLog:
    """Counts of dropped rows by reason, with the first few examples (row index and field) for the report."""

    def __init__(self, what: str = "rows", examples: int = 10):
        self.what = what
        self.counts: Counter[str] = Counter()
        self.examples: list[str] = []
        self.max_examples = examples

    def drop(self, index: Any, field: str, reason: str) -> None:
        self.counts[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"row {index}: {field}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, file=None) -> str:
        if not self.total:
            text = f"dropped 0 {self.what}"
        else:
            lines = [f"dropped {self.total} {self.what}:"]
            lines += [f"  {n:6d}  {reason}" for reason, n in self.counts.most_common()]
            lines += ["  e.g. " + e for e in self.examples]
            text = "\n".join(lines)
        print(text, file=file or sys.stdout)
        return text
