"""Data preparation for DYPO: training parquet with teacher solutions, evaluation sets, validation, toy data.

Run the scripts as modules from the repository root (``python -m data_prep.prepare_train --help``) or as files
(``python data_prep/prepare_train.py --help``). See docs/data.md.
"""
