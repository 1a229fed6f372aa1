"""Reward for the end-to-end tests: the grade of each prompt is set by the data (``extra_info.e2e_grade``).

``easy`` prompts score 1 for every rollout, ``hard`` prompts 0. ``mid`` prompts score 0 or 1 in one of two ways:

- from a hash of the response (the default): a group of 4 distinct responses is mixed with probability 7/8, and a
  given run is reproducible where the rollout's sampling is seeded (the CPU rollout), so a relaunch scores alike;
- alternately, 1, 0, 1, ... per prompt, when the row names a counter file (``extra_info.e2e_mid_counter``): every
  group is mixed by construction. For rollouts whose sampling is not reproducible (vLLM on CPU), where a hash
  left both mid groups of a step uniform 1 time in 64 and failed a test in CI.

Loaded by verl's reward workers from this file's path.
"""

import fcntl
import hashlib
import os


def _next_count(path: str) -> int:
    """The number of earlier calls for this counter file, incremented atomically (reward workers are processes)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        count = int(os.read(fd, 32) or b"0")
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(count + 1).encode())
        return count
    finally:
        os.close(fd)  # releases the lock


def compute_score(data_source=None, solution_str="", ground_truth=None, extra_info=None, **kwargs):
    extra_info = extra_info or {}
    grade = extra_info.get("e2e_grade", "mid")
    if grade == "easy":
        return 1.0
    if grade == "hard":
        return 0.0
    if extra_info.get("e2e_mid_counter"):
        return float(_next_count(extra_info["e2e_mid_counter"]) % 2 == 0)
    return float(hashlib.sha256((solution_str or "").encode()).digest()[0] % 2)
