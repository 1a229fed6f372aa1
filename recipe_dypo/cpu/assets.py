"""Build the tiny model and toy data that ``MODEL=tiny`` trains on (the CPU backend's test and teaching setup).

    python -m recipe_dypo.cpu.assets --out outputs/tiny        # writes model/, train.parquet, test.parquet

The model is a randomly initialised Qwen2 (hidden 96, 2 layers) with a 512-token byte-level BPE trained on the toy
corpus (recipe_dypo/local/tokenizer.py explains why not Qwen's 151k vocabulary); the data are the toy arithmetic
problems of data_prep/toy_data.py with two teacher styles per training prompt. Everything is a pure function of
the seed, so every run and test builds the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MANIFEST = "tiny_assets.json"


def build_tiny_assets(out: str | Path, train_size: int = 256, test_size: int = 32, seed: int = 0) -> dict:
    """Write ``model/`` (config, weights, tokenizer), ``train.parquet`` and ``test.parquet`` under ``out``.

    Reuses what is there when it was built with the same arguments. Returns the manifest (paths and sizes).
    """
    from data_prep.common import write_parquet
    from data_prep.toy_data import make_toy_rows
    from recipe_dypo.local.model import count_parameters, create_model
    from recipe_dypo.local.tokenizer import build_or_load_tokenizer, corpus_from_rows

    out = Path(out).resolve()
    wanted = {"train_size": train_size, "test_size": test_size, "seed": seed}
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("args") == wanted and all(Path(p).exists() for p in manifest["paths"].values()):
            return manifest
    train = make_toy_rows(train_size, seed, "train")
    test = make_toy_rows(test_size, seed, "test", ())
    tokenizer = build_or_load_tokenizer(out / "tokenizer", corpus_from_rows(train))
    model = create_model(out / "model", tokenizer, size="tiny", seed=seed)
    paths = {"model": out / "model", "train": out / "train.parquet", "test": out / "test.parquet"}
    write_parquet(train, paths["train"])
    write_parquet(test, paths["test"])
    manifest = {
        "args": wanted,
        "paths": {k: str(v) for k, v in paths.items()},
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--test-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    manifest = build_tiny_assets(args.out, args.train_size, args.test_size, args.seed)
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
