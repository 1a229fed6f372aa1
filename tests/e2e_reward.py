"""Reward for the end-to-end tests: the grade of each prompt is set by the data (``extra_info.e2e_grade``).

``easy`` prompts score 1 for every rollout, ``hard`` prompts 0, ``mid`` prompts 0 or 1 from a hash of the
response, so a group of 4 distinct responses is mixed with probability 7/8 (and the CPU rollout's sampling is
seeded, so a given run is reproducible). Loaded by verl's reward workers from this file's path.
"""

import hashlib


def compute_score(data_source=None, solution_str="", ground_truth=None, extra_info=None, **kwargs):
    grade = (extra_info or {}).get("e2e_grade", "mid")
    if grade == "easy":
        return 1.0
    if grade == "hard":
        return 0.0
    return float(hashlib.sha256((solution_str or "").encode()).digest()[0] % 2)
