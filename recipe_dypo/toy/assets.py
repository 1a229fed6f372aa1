"""Build the tiny model and toy data that ``MODEL=tiny`` trains on (the CPU backend's quickstart and test setup).

    python -m recipe_dypo.toy.assets --out outputs/tiny        # writes model/, train.parquet, test.parquet

The model is a randomly initialised Qwen2 (hidden 192, 2 layers; recipe_dypo/toy/model.py) with the character-level
tokenizer of recipe_dypo/toy/tokenizer.py; the data are the single-digit additions of recipe_dypo/toy/addition.py:
80 training pairs with two teacher styles each, 20 held-out pairs as the validation set. Everything is a pure
function of the seed, so every run and test builds the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MANIFEST = "tiny_assets.json"
ASSETS_VERSION = 3  # 1: BPE word problems; 2: addition with hidden 96; 3: hidden 192


def build_tiny_assets(out: str | Path, seed: int = 0) -> dict:
    """Write ``model/`` (config, weights, tokenizer), ``train.parquet`` and ``test.parquet`` under ``out``.

    Reuses what is there when it was built with the same arguments. Returns the manifest (paths and sizes).
    """
    from data_prep.common import write_parquet
    from recipe_dypo.toy.addition import addition_rows
    from recipe_dypo.toy.model import count_parameters, create_model
    from recipe_dypo.toy.tokenizer import save_char_tokenizer

    out = Path(out).resolve()
    wanted = {"version": ASSETS_VERSION, "seed": seed}
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("args") == wanted and all(Path(p).exists() for p in manifest["paths"].values()):
            return manifest
    train, test = addition_rows(seed)
    tokenizer = save_char_tokenizer(out / "tokenizer")
    model = create_model(out / "model", tokenizer, size="tiny", seed=seed)
    paths = {"model": out / "model", "train": out / "train.parquet", "test": out / "test.parquet"}
    write_parquet(train, paths["train"])
    write_parquet(test, paths["test"])
    manifest = {
        "args": wanted,
        "paths": {k: str(v) for k, v in paths.items()},
        "parameters": count_parameters(model),
        "vocab_size": len(tokenizer),
        "train_rows": len(train),
        "test_rows": len(test),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the model weights and of the held-out split")
    args = p.parse_args(argv)
    manifest = build_tiny_assets(args.out, args.seed)
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
