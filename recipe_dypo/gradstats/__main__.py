"""``python -m recipe_dypo.gradstats variance``: per-prompt gradient variance of GRPO vs the mixed loss (eq. 19)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    parser = argparse.ArgumentParser(prog="python -m recipe_dypo.gradstats", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from recipe_dypo.gradstats.variance import add_variance_args, cmd_variance

    add_variance_args(sub.add_parser("variance", help="eq. 19 at fixed parameters (see gradstats/variance.py)"))
    args = parser.parse_args(argv)
    cmd_variance(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
