#!/usr/bin/env python
"""Draw the paper's Fig. 4 (offline-data ratio, training reward, policy entropy vs step) and Fig. 5 (gradient
norm vs step) from verl training logs, DYPO against GRPO.

    python scripts/plot_curves.py \
        --run DYPO=runs/logs/dypo_qwen25math7b.jsonl --run GRPO=runs/logs/grpo_qwen25math7b.jsonl \
        --out-dir results/figures

Each ``--run LABEL=PATH`` is a verl file-logger JSONL (``trainer.logger=[console,file]``), a captured console log,
or a TensorBoard log directory / event file. Writes ``fig4_training_dynamics.png`` and ``fig5_grad_norm.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from recipe_dypo.eval import curves  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, help="LABEL=PATH (repeatable)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--smooth", type=float, default=0.0, help="EMA factor in [0, 1); 0 = raw values")
    p.add_argument("--prefix", default="", help="prefix for the PNG file names")
    return p


def main(argv=None) -> dict[str, str]:
    args = build_parser().parse_args(argv)
    runs = {}
    for spec in args.run:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = os.path.splitext(os.path.basename(spec))[0], spec
        runs[label] = curves.read_run(path)
        print(f"{label}: {len(runs[label])} metrics from {path}")
    out = {
        "fig4": os.path.join(args.out_dir, f"{args.prefix}fig4_training_dynamics.png"),
        "fig5": os.path.join(args.out_dir, f"{args.prefix}fig5_grad_norm.png"),
    }
    used4 = curves.plot_panels(runs, curves.FIG4_PANELS, out["fig4"], "Training dynamics (Fig. 4)", args.smooth)
    used5 = curves.plot_panels(runs, curves.FIG5_PANELS, out["fig5"], "Gradient norm (Fig. 5)", args.smooth)
    for panel, by_run in {**used4, **used5}.items():
        for label, key in by_run.items():
            print(f"  {panel:<20} {label:<12} {key or 'missing'}")
    for k, v in out.items():
        print(f"wrote {k}: {v}")
    return out


if __name__ == "__main__":
    main()
