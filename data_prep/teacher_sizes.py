"""The second teacher of each Table 3 teacher strength, and the data files built with it.

DYPO's two teachers (paper §4.1) are DeepSeek-R1, whose traces come with LUFFY's OpenR1 data, and
Qwen3-235B-A22B. Table 3 repeats the ablation with a weaker second teacher and names the three settings only by
size ("235B / 32B / 8B"); reading the 32B and 8B teachers as Qwen3-32B and Qwen3-8B (the same model family) is
this recipe's choice. ``TEACHER_SIZE=235b|32b|8b`` selects a setting in scripts/prepare_teacher_data.sh (which
builds the files) and in the training scripts (which read them, scripts/_dypo_common.sh): 235b uses the plain
names (``train_2t.parquet``, ``sft_2t.parquet``), the others add ``_32b`` / ``_8b``.

    python -m data_prep.teacher_sizes 32b            # the setting as shell assignments (for the script)
    python -m data_prep.teacher_sizes --list         # every setting
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass

FIRST_TEACHER = "deepseek-r1"  # the teacher name data_prep/prepare_train.py gives LUFFY's traces
SINGLE_TEACHER_SFT_FILE = "sft_1t.parquet"  # SFT on the DeepSeek-R1 traces only (Table 1's SFT, Table 3's + SFT)


@dataclass(frozen=True)
class SecondTeacher:
    size: str  # the TEACHER_SIZE value
    model: str  # hub id given to generate_teacher_traces.py
    name: str  # teacher name recorded in extra_info.teachers
    tensor_parallel_size: int  # vLLM TP for generation on 80 GB GPUs (bf16 weights)

    @property
    def suffix(self) -> str:
        return "" if self.size == "235b" else f"_{self.size}"

    @property
    def traces_file(self) -> str:
        return f"{self.name}.jsonl"

    @property
    def train_file(self) -> str:
        """Training parquet with both teachers per prompt (DYPO, ablations)."""
        return f"train_2t{self.suffix}.parquet"

    @property
    def sft_file(self) -> str:
        """SFT parquet with both teachers' solutions (Table 3's + Multi-Teacher, SFT_TEACHERS=2)."""
        return f"sft_2t{self.suffix}.parquet"


TEACHER_SIZES: dict[str, SecondTeacher] = {
    t.size: t
    for t in (
        SecondTeacher("235b", "Qwen/Qwen3-235B-A22B", "qwen3-235b-a22b", 8),
        SecondTeacher("32b", "Qwen/Qwen3-32B", "qwen3-32b", 4),
        SecondTeacher("8b", "Qwen/Qwen3-8B", "qwen3-8b", 1),
    )
}


def second_teacher(size: str) -> SecondTeacher:
    key = str(size).strip().lower()
    if key not in TEACHER_SIZES:
        raise ValueError(f"TEACHER_SIZE must be one of {sorted(TEACHER_SIZES)}, got {size!r}")
    return TEACHER_SIZES[key]


def shell_assignments(size: str) -> str:
    """The setting as ``KEY=value`` lines for ``eval`` in a shell script."""
    t = second_teacher(size)
    values = {
        "TEACHER_MODEL": t.model,
        "TEACHER_NAME": t.name,
        "TEACHER_TP": t.tensor_parallel_size,
        "TRACES_FILE": t.traces_file,
        "TRAIN_2T_FILE": t.train_file,
        "SFT_2T_FILE": t.sft_file,
        "SFT_1T_FILE": SINGLE_TEACHER_SFT_FILE,
        "FIRST_TEACHER": FIRST_TEACHER,
    }
    return "\n".join(f"{k}={shlex.quote(str(v))}" for k, v in values.items())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", nargs="?", default="235b", help="235b (default), 32b or 8b")
    p.add_argument("--list", action="store_true", help="print every setting")
    args = p.parse_args(argv)
    if args.list:
        for t in TEACHER_SIZES.values():
            print(f"{t.size}: {t.model} as {t.name!r} -> {t.train_file}, {t.sft_file}")
        return 0
    try:
        print(shell_assignments(args.size))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
