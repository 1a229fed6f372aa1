import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# The real benchmark files (never copied into the repo): ../shared/benchmarks, or $DYPO_SHARED_BENCHMARKS.
SHARED_BENCHMARKS = Path(os.environ.get("DYPO_SHARED_BENCHMARKS", REPO.parent / "shared" / "benchmarks"))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# The paper's text and the checked transcription of its tables: ../shared/paper, or $DYPO_SHARED_PAPER.
SHARED_PAPER = Path(os.environ.get("DYPO_SHARED_PAPER", REPO.parent / "shared" / "paper"))


@pytest.fixture(scope="session")
def paper_tables_md():
    """Text of ../shared/paper/tables.md (every published cell of Tables 1-5, checked against the PDF)."""
    path = SHARED_PAPER / "tables.md"
    if not path.is_file():
        pytest.skip(f"paper transcription not found at {path} (it lives in ../shared/paper)")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shared_benchmarks():
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"benchmark files not found at {SHARED_BENCHMARKS} (they live in ../shared/benchmarks)")
    return SHARED_BENCHMARKS


def compose_dypo_config(overrides=()):
    """The real hydra composition of configs/dypo_trainer.yaml over verl's ppo_trainer."""
    from recipe_dypo.config import compose_config

    return compose_config(overrides)


@pytest.fixture(scope="session")
def dypo_config():
    return compose_dypo_config(["actor_rollout_ref.actor.use_dynamic_bsz=true"])


@pytest.fixture(scope="session")
def actor_config(dypo_config):
    from verl.utils.config import omega_conf_to_dataclass

    return omega_conf_to_dataclass(dypo_config.actor_rollout_ref.actor)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny Qwen2 and the toy addition data (``python -m recipe_dypo.toy.assets``), built once per module."""
    from recipe_dypo.toy.assets import build_tiny_assets

    out = tmp_path_factory.mktemp("tiny")
    build_tiny_assets(out)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request):
    """A folder for one test module's launches."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
