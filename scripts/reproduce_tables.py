#!/usr/bin/env python
"""Render the DYPO paper's tables (Markdown + CSV) in the paper's layouts, published rows next to measured rows.

Examples::

    # Table 1 with the paper rows and one measured row that reproduces the paper's DYPO row
    python scripts/reproduce_tables.py --table 1 --measured runs/eval/dypo_qwen25math7b=DYPO --out-dir results/tables

    # all tables; every summary.json under runs/eval is a measured run, matched to paper rows by its --label
    python scripts/reproduce_tables.py --table all --measured runs/eval --only-matching --out-dir results/tables

    # Table 3 with a 32B-teacher run, plus the unbiased pass@32 of measured runs as extra columns
    python scripts/reproduce_tables.py --table 3 --measured "runs/eval/rl_32b=+ RL (32B)" --pass-at-k 32

``--measured`` takes ``PATH[=PAPER_ROW][@LABEL]``: PATH is an evaluator output directory (with summary.json), a
summary.json, a glob, or a directory tree searched for summary.json files. ``=PAPER_ROW`` names the published row
the difference row compares against (default: the row whose name equals the run's label). ``@LABEL`` overrides the
label; runs sharing a label (seeds) are merged into mean ± std. Table 3's per-teacher values are selected by a
"(235B)", "(32B)" or "(8B)" suffix on the row name.

The AIME/AMC cells are avg@32 (what the paper calls pass@32); ``--pass-at-k 32`` adds the unbiased pass@32 of the
measured runs as extra columns (the paper publishes none).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from recipe_dypo.eval import tables  # noqa: E402
from recipe_dypo.paper_results import TABLES, get_table  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", nargs="+", default=["1"], help="1 2 3 4 5, table1 ..., or 'all'")
    p.add_argument("--measured", nargs="*", default=[], help="PATH[=PAPER_ROW][@LABEL] (repeatable)")
    p.add_argument(
        "--only-matching",
        action="store_true",
        help="per table, keep only measured runs whose label/=ROW names one of its rows",
    )
    p.add_argument(
        "--pass-at-k",
        nargs="*",
        type=int,
        default=[],
        help="add the measured runs' unbiased pass@k as extra columns (e.g. 32; needs k <= samples per prompt)",
    )
    p.add_argument("--out-dir", default=None, help="write <table>.md and <table>.csv here")
    p.add_argument("--quiet", action="store_true", help="do not print the Markdown")
    return p


def main(argv=None) -> dict[str, dict[str, str]]:
    args = build_parser().parse_args(argv)
    keys = list(TABLES) if "all" in [t.lower() for t in args.table] else [get_table(t).key for t in args.table]
    runs = tables.load_measured(args.measured)
    written: dict[str, dict[str, str]] = {}
    for key in keys:
        table = get_table(key)
        table_runs = tables.runs_for_table(table, runs, args.only_matching)
        if args.out_dir:
            written[key] = tables.write_table(table, table_runs, args.out_dir, args.pass_at_k)
        if not args.quiet:
            sys.stdout.write(tables.render_markdown(table, table_runs, args.pass_at_k) + "\n")
    return written


if __name__ == "__main__":
    main()
