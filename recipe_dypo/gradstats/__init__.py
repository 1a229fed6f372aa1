"""Gradient statistics at fixed parameters (the paper's eq. 13/19 variance claim), measured on a local model.

:mod:`.fixed_step` runs DYPO's step up to the loss with the functions the verl trainer calls; :mod:`.variance`
measures per-prompt gradient variance with it. Entry point: ``python -m recipe_dypo.gradstats --help``.
Training is not done here: it runs through verl's trainer (scripts/quickstart.sh on CPU).
"""
