"""``scripts/quickstart.sh``: DYPO on the toy task through verl's real trainer on CPU, with progress and a summary.

    python -m recipe_dypo.toy.quickstart --out outputs/quickstart            # one DYPO run (110 steps, 2 cores)
    python -m recipe_dypo.toy.quickstart --out outputs/quickstart --compare  # + GRPO and DYPO with one teacher

Every run is ``bash scripts/run_*.sh`` with ``MODEL=tiny SCALE=quickstart DEVICE=cpu``: the launcher, hydra config,
``python -m recipe_dypo.main_dypo`` entry and trainer a GPU run uses (configs/scale/quickstart.yaml lists what the
toy scale changes). verl's own output goes to ``<out>/<run>/log.txt``; this module follows the metrics verl's file
logger writes (``<out>/<run>/metrics.jsonl``) and shows one progress bar per run.

Writes ``<out>/summary.json`` (the DYPO run; keys :data:`SUMMARY_KEYS`) and ``<out>/curves.png`` (the paper's
Fig. 4 panels: offline-data ratio, training reward, policy entropy; Fig. 5: gradient norm; and held-out accuracy).
With ``--compare``: ``<out>/compare.json`` (the same summary per run, plus how many steps had any gradient from
rollouts) and ``<out>/compare.png`` (every run on the same axes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELDOUT = "val-core/toy_arith/acc/mean@1"
SUMMARY_KEYS = (
    "heldout_acc_start",
    "heldout_acc_end",
    "offline_prompt_ratio_first",
    "offline_prompt_ratio_last5",
    "steps",
    "wall_s",
)
# name -> (script, extra hydra overrides). All start from the same initial weights, data order and seeds.
RUNS = {
    "dypo": ("run_dypo_qwen2.5_7b.sh", ()),
    "grpo": ("run_grpo.sh", ()),
    # Table 4's question at toy scale: the same DYPO run drawing only the "forward" teacher's solutions.
    "dypo_one_teacher": ("run_dypo_qwen2.5_7b.sh", ("dypo.teacher_names=[forward]",)),
}
LABELS = {"dypo": "DYPO (2 teachers)", "grpo": "GRPO", "dypo_one_teacher": "DYPO (1 teacher)"}


def read_metrics(path: Path) -> dict[int, dict]:
    """step -> metrics, from verl's file logger (a resumed step keeps its last record)."""
    out: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line being written right now
                    continue
                out.setdefault(int(record["step"]), {}).update(record["data"])
    return out


def summarize(metrics: dict[int, dict], wall_s: float) -> dict:
    """The quickstart's summary of one run (keys :data:`SUMMARY_KEYS`; accuracies greedy on held-out prompts)."""
    heldout = [(s, m[HELDOUT]) for s, m in sorted(metrics.items()) if HELDOUT in m]
    trained = [s for s in sorted(metrics) if s > 0 and "training/global_step" in metrics[s]]
    ratio = [metrics[s].get("dypo/offline_prompt_ratio", 0.0) for s in trained]
    if not heldout or not trained:
        raise RuntimeError(f"no training or validation metrics logged (steps {sorted(metrics)})")
    return {
        "heldout_acc_start": heldout[0][1],
        "heldout_acc_end": heldout[-1][1],
        "offline_prompt_ratio_first": ratio[0],
        "offline_prompt_ratio_last5": sum(ratio[-5:]) / len(ratio[-5:]),
        "steps": len(trained),
        "wall_s": round(wall_s, 1),
    }


def rollout_gradient_steps(metrics: dict[int, dict]) -> int:
    """Steps whose batch had at least one group with mixed rewards: the only steps where GRPO's advantages are
    non-zero. (``critic/advantages/max`` > 0 whenever some group is mixed; DYPO's teacher rows carry none.)"""
    return sum(1 for s, m in metrics.items() if s > 0 and m.get("critic/advantages/max", 0.0) > 0)


def _progress_line(metrics: dict[int, dict]) -> str:
    step = max((s for s in metrics if "training/global_step" in metrics[s]), default=None)
    if step is None:
        return "starting Ray and the workers"
    m = metrics[step]
    held = [metrics[s][HELDOUT] for s in sorted(metrics) if HELDOUT in metrics[s]]
    reward = m.get("dypo/rollout_score_mean", m.get("critic/score/mean", float("nan")))
    parts = [f"reward {reward:.2f}"]
    if "dypo/offline_prompt_ratio" in m:
        parts.append(f"offline {m['dypo/offline_prompt_ratio']:.2f}")
    if held:
        parts.append(f"held-out {held[-1]:.2f}")
    parts.append(f"{m.get('timing_s/step', float('nan')):.1f} s/step")
    return ", ".join(parts)


def launch(name: str, out: Path, steps: int, extra: list[str], tiny_dir: Path) -> tuple[dict[int, dict], float]:
    """Run ``RUNS[name]`` for ``steps`` steps with a progress bar; returns (metrics, wall seconds)."""
    from tqdm import tqdm

    script, overrides = RUNS[name]
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "MODEL": "tiny",
        "SCALE": "quickstart",
        "DEVICE": "cpu",
        "TINY_DIR": str(tiny_dir),
        "EXP_NAME": f"quickstart-{name}",
        "CKPT_DIR": str(run_dir / "ckpt"),
        "VERL_FILE_LOGGER_PATH": str(metrics_path),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        "HF_HUB_OFFLINE": "1",
    }
    fixed = [
        f"trainer.total_training_steps={steps}",
        "trainer.resume_mode=disable",  # every quickstart run starts from the cold start, even if rerun
        f"trainer.save_freq={steps}",  # one checkpoint, at the end, with Hugging Face weights for gradstats
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
    ]
    cmd = ["bash", str(REPO / "scripts" / script), *fixed, *overrides, *extra]
    start = time.monotonic()
    with (
        open(run_dir / "log.txt", "w") as log,
        tqdm(total=steps, desc=LABELS[name], unit="step", mininterval=1 if sys.stderr.isatty() else 30) as bar,
    ):
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1.0)
            metrics = read_metrics(metrics_path)
            done = sum(1 for s in metrics if s > 0 and "training/global_step" in metrics[s])
            bar.set_postfix_str(_progress_line(metrics), refresh=False)
            bar.update(done - bar.n)  # redraws at most every `mininterval` seconds
    wall = time.monotonic() - start
    if proc.returncode != 0:
        tail = (run_dir / "log.txt").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{name}: `{' '.join(cmd)}` exited with {proc.returncode}; end of its log:\n{tail}")
    return read_metrics(metrics_path), wall


def plot(runs: dict[str, dict[int, dict]], path: Path, title: str) -> None:
    from recipe_dypo.eval import curves

    series = {}
    for name, metrics in runs.items():
        lines = [json.dumps({"step": s, "data": m}) for s, m in sorted(metrics.items())]
        series[LABELS[name]] = curves.parse_text_log(lines)
    panels = (*curves.FIG4_PANELS, *curves.FIG5_PANELS, ("Held-out accuracy (greedy)", (HELDOUT,)))
    curves.plot_panels(series, panels, str(path), title)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/quickstart", help="output folder (default outputs/quickstart)")
    p.add_argument("--steps", type=int, default=110, help="training steps per run (default 110)")
    p.add_argument("--compare", action="store_true", help="also run GRPO and one-teacher DYPO (3 runs in all)")
    p.add_argument("--tiny-dir", default=None, help="where the toy model and data are built (default <out>/tiny)")
    p.add_argument("overrides", nargs="*", help="hydra overrides passed to every run, e.g. dypo.alpha=0.2")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    tiny_dir = Path(args.tiny_dir).resolve() if args.tiny_dir else out / "tiny"
    from recipe_dypo.toy.assets import build_tiny_assets

    manifest = build_tiny_assets(tiny_dir)
    print(
        f"toy task: {manifest['train_rows']} training / {manifest['test_rows']} held-out additions; "
        f"tiny Qwen2 with {manifest['parameters']:,} parameters, {manifest['vocab_size']}-token vocabulary"
    )
    names = list(RUNS) if args.compare else ["dypo"]
    results, summaries = {}, {}
    for name in names:
        metrics, wall = launch(name, out, args.steps, args.overrides, tiny_dir)
        results[name] = metrics
        summaries[name] = {**summarize(metrics, wall), "steps_with_rollout_gradient": rollout_gradient_steps(metrics)}
        print(f"{LABELS[name]}: " + json.dumps(summaries[name]))
    summary = {k: summaries["dypo"][k] for k in SUMMARY_KEYS}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot({"dypo": results["dypo"]}, out / "curves.png", "DYPO on toy addition (verl, CPU backend)")
    print(f"\nwrote {out / 'summary.json'} and {out / 'curves.png'}")
    print(json.dumps(summary, indent=1))
    final = out / "dypo" / "ckpt" / f"global_step_{summary['steps']}" / "actor" / "huggingface"
    print(
        "gradient variance at the final weights (eq. 19; see recipe_dypo/gradstats/variance.py):\n"
        f"  python -m recipe_dypo.gradstats variance --model {final} --reference {tiny_dir / 'model'} "
        f"--data {tiny_dir / 'train.parquet'} --out {out / 'variance.json'}"
    )
    if args.compare:
        (out / "compare.json").write_text(json.dumps(summaries, indent=1) + "\n")
        plot(results, out / "compare.png", "Same cold start: DYPO vs GRPO, two teachers vs one")
        print(f"wrote {out / 'compare.json'} and {out / 'compare.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
