"""Metrics for the DYPO evaluation protocol.

* ``pass_at_k(n, c, k)``: the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``,
  computed as a running product so that it stays exact-ish for large ``n`` (no huge binomials).
* avg@n: mean accuracy over the ``n`` samples of a prompt, averaged over prompts. This is what the
  paper reports as "pass@32" for AIME24/AIME25/AMC (n=32) and as plain accuracy elsewhere (n=1).
* Per-benchmark aggregation of per-sample records, and the paper's two macro averages:
  ID = mean(AIME24, AIME25, AMC, MATH-500, Minerva), OOD = mean(ARC-c, GPQA-Diamond), each an
  unweighted mean of the per-benchmark scores.

Benchmarks are identified by canonical keys (``aime24``, ``aime25``, ``amc``, ``math500``, ``minerva``,
``olympiad_bench``, ``arc_c``, ``gpqa_diamond``); :func:`canonical_benchmark` maps the ``data_source``
names used by data_prep/prepare_eval.py and by LUFFY's parquet files onto them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

# ---------------------------------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------------------------------

ID_BENCHMARKS: tuple[str, ...] = ("aime24", "aime25", "amc", "math500", "minerva")
OOD_BENCHMARKS: tuple[str, ...] = ("arc_c", "gpqa_diamond")
EXTRA_BENCHMARKS: tuple[str, ...] = ("olympiad_bench",)  # LUFFY ships it; the paper's tables do not use it
ALL_BENCHMARKS: tuple[str, ...] = ID_BENCHMARKS + OOD_BENCHMARKS + EXTRA_BENCHMARKS

DISPLAY_NAMES: dict[str, str] = {
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc": "AMC",
    "math500": "MATH-500",
    "minerva": "Minerva",
    "olympiad_bench": "Olympiad",
    "arc_c": "ARC-c",
    "gpqa_diamond": "GPQA-D",
    "id_avg": "ID Avg",
    "ood_avg": "OOD Avg",
}

# data_source spellings seen in the wild -> canonical key (matching is case-insensitive, '-', ' ' and '.' ~ '_')
_ALIASES: dict[str, str] = {
    "aime24": "aime24",
    "aime": "aime24",
    "aime_2024": "aime24",
    "aime2024": "aime24",
    "aime25": "aime25",
    "aime_2025": "aime25",
    "aime2025": "aime25",
    "amc": "amc",
    "amc23": "amc",
    "amc_2023": "amc",
    "math500": "math500",
    "math_500": "math500",
    "math": "math500",
    "minerva": "minerva",
    "minerva_math": "minerva",
    "olympiad_bench": "olympiad_bench",
    "olympiadbench": "olympiad_bench",
    "olympiad": "olympiad_bench",
    "arc_c": "arc_c",
    "arc_challenge": "arc_c",
    "arc": "arc_c",
    "gpqa_diamond": "gpqa_diamond",
    "gpqa": "gpqa_diamond",
    "gpqa_d": "gpqa_diamond",
}

# Default samples per prompt (paper protocol): 32 for the small competition sets, 1 for the rest.
DEFAULT_N_SAMPLES: dict[str, int] = {"aime24": 32, "aime25": 32, "amc": 32}
DEFAULT_N_OTHER = 1


def canonical_benchmark(data_source: str) -> str:
    """Canonical benchmark key for a ``data_source`` string; unknown names are returned normalised."""
    key = str(data_source).strip().lower().replace("-", "_").replace(" ", "_").replace(".", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    # e.g. "HuggingFaceH4/MATH-500" or "luffy/aime25": look at the last path component
    tail = key.rsplit("/", 1)[-1]
    return _ALIASES.get(tail, key)


def display_name(key: str) -> str:
    return DISPLAY_NAMES.get(key, key)


def parse_n_samples(spec: str | int | None) -> dict[str, int]:
    """Parse ``"aime24=32,aime25=32,amc=32,default=1"`` (or a bare int for all) into a mapping.

    The returned dict always has a ``"default"`` entry. ``None`` gives the paper's protocol.
    """
    out: dict[str, int] = dict(DEFAULT_N_SAMPLES)
    out["default"] = DEFAULT_N_OTHER
    if spec is None or spec == "":
        return out
    if isinstance(spec, int) or str(spec).strip().isdigit():
        return {"default": int(spec)}
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"bad n-samples entry {part!r}; expected name=N")
        name, value = part.split("=", 1)
        name = name.strip()
        key = "default" if name.lower() == "default" else canonical_benchmark(name)
        n = int(value)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n} for {name}")
        out[key] = n
    return out


def n_for(benchmark: str, n_samples: Mapping[str, int]) -> int:
    return int(n_samples.get(benchmark, n_samples.get("default", DEFAULT_N_OTHER)))


# ---------------------------------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): probability that at least one of ``k`` samples drawn without
    replacement from ``n`` samples, ``c`` of which are correct, is correct.

    ``1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i)``
    """
    n, c, k = int(n), int(c), int(k)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= c <= n:
        raise ValueError(f"c must be in [0, n={n}], got {c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}], got {k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def avg_at_n(scores: Sequence[float]) -> float:
    """Mean accuracy over the samples of one prompt."""
    if len(scores) == 0:
        raise ValueError("avg@n of an empty list")
    return float(sum(float(s) for s in scores) / len(scores))


def _is_correct(score: float) -> bool:
    return float(score) >= 0.5  # scores are 0/1; tolerate partial-credit floats by thresholding


# ---------------------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------------------


def aggregate_records(
    records: Iterable[Mapping],
    ks: Sequence[int] = (1,),
    n_samples: Mapping[str, int] | None = None,
) -> dict[str, dict]:
    """Aggregate graded per-sample records into per-benchmark metrics.

    Each record needs ``prompt_id``, ``score`` and either ``benchmark`` or ``data_source``. Returns
    ``{benchmark: {"num_prompts", "num_samples", "n", "complete", "avg@n", "score", "pass@k": {k: value}}}`` where
    ``score`` is ``100 * avg@n`` (the number that goes into the tables), ``n`` is the smallest sample count over
    prompts, and ``pass@k`` is averaged over prompts for each requested ``k <= n``. ``complete`` is False when some
    prompt has fewer samples than ``n_samples`` asks for.
    """
    per_prompt: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("score") is None:
            continue
        bench = rec.get("benchmark") or canonical_benchmark(rec["data_source"])
        per_prompt[bench][str(rec["prompt_id"])].append(float(rec["score"]))

    out: dict[str, dict] = {}
    for bench in sorted(per_prompt, key=_bench_order):
        prompts = per_prompt[bench]
        counts = [len(v) for v in prompts.values()]
        n_min = min(counts)
        avg = sum(avg_at_n(v) for v in prompts.values()) / len(prompts)
        pk: dict[str, float] = {}
        for k in sorted(set(int(k) for k in ks)):
            if k <= n_min:
                vals = [pass_at_k(len(v), sum(_is_correct(s) for s in v), k) for v in prompts.values()]
                pk[str(k)] = sum(vals) / len(vals)
        expected = n_for(bench, n_samples) if n_samples is not None else n_min
        out[bench] = {
            "num_prompts": len(prompts),
            "num_samples": int(sum(counts)),
            "n": n_min,
            "complete": n_min >= expected,
            "avg@n": avg,
            "score": 100.0 * avg,
            "pass@k": pk,
        }
    return out


def _bench_order(bench: str) -> tuple[int, str]:
    return (ALL_BENCHMARKS.index(bench) if bench in ALL_BENCHMARKS else len(ALL_BENCHMARKS), bench)


def macro_average(scores: Mapping[str, float | None], benchmarks: Sequence[str], allow_partial: bool = False):
    """Unweighted mean of ``scores[b]`` over ``benchmarks``; ``None`` if any is missing (unless ``allow_partial``)."""
    vals = [scores.get(b) for b in benchmarks]
    present = [float(v) for v in vals if v is not None]
    if not present or (len(present) != len(vals) and not allow_partial):
        return None
    return sum(present) / len(present)


def id_average(scores: Mapping[str, float | None], allow_partial: bool = False):
    """Paper's in-distribution average: mean over AIME24, AIME25, AMC, MATH-500, Minerva."""
    return macro_average(scores, ID_BENCHMARKS, allow_partial)


def ood_average(scores: Mapping[str, float | None], allow_partial: bool = False):
    """Paper's out-of-distribution average: mean over ARC-c and GPQA-Diamond."""
    return macro_average(scores, OOD_BENCHMARKS, allow_partial)


def table_scores(per_benchmark: Mapping[str, Mapping]) -> dict[str, float | None]:
    """Flatten :func:`aggregate_records` output into ``{benchmark: score%, "id_avg": .., "ood_avg": ..}``."""
    scores: dict[str, float | None] = {b: float(m["score"]) for b, m in per_benchmark.items()}
    scores["id_avg"] = id_average(scores)
    scores["ood_avg"] = ood_average(scores)
    return scores


def summarize_pass_at_k_curve(n: int, c: int, ks: Sequence[int] | None = None) -> dict[int, float]:
    """pass@k for all (or the given) k in 1..n; convenience for plots/tests."""
    ks = ks if ks is not None else range(1, n + 1)
    return {int(k): pass_at_k(n, c, k) for k in ks if 1 <= k <= n}


__all__ = [
    "ALL_BENCHMARKS",
    "DEFAULT_N_SAMPLES",
    "DISPLAY_NAMES",
    "ID_BENCHMARKS",
    "OOD_BENCHMARKS",
    "aggregate_records",
    "avg_at_n",
    "canonical_benchmark",
    "display_name",
    "id_average",
    "macro_average",
    "n_for",
    "ood_average",
    "parse_n_samples",
    "pass_at_k",
    "summarize_pass_at_k_curve",
    "table_scores",
]
