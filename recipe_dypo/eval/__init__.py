"""Evaluation for DYPO: generation (vLLM / transformers), grading with :mod:`recipe_dypo.reward`, metrics
(avg@n, unbiased pass@k, ID/OOD averages) and the paper's tables.

Entry points: ``python -m recipe_dypo.eval`` (see :mod:`recipe_dypo.eval.run_eval`), ``scripts/eval.sh``,
``scripts/reproduce_tables.py`` and ``scripts/plot_curves.py``. Importing this package is cheap: it imports neither
torch, transformers, vllm nor the reward module.
"""

from recipe_dypo.eval.metrics import (
    ID_BENCHMARKS,
    OOD_BENCHMARKS,
    aggregate_records,
    avg_at_n,
    canonical_benchmark,
    id_average,
    ood_average,
    pass_at_k,
)

__all__ = [
    "ID_BENCHMARKS",
    "OOD_BENCHMARKS",
    "aggregate_records",
    "avg_at_n",
    "canonical_benchmark",
    "id_average",
    "ood_average",
    "pass_at_k",
]
