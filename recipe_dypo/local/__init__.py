"""CPU quickstart: the DYPO trainer step driven by local workers (transformers ``generate``, one process).

Only the workers are local. Grading, regrouping, teacher rows, advantages (verl's ``compute_advantage`` with the
registered ``dypo`` estimator), per-row coefficients and the actor loss are the functions the verl trainer calls
(:mod:`recipe_dypo.step`, :mod:`recipe_dypo.actor_loss`). Entry point: ``python -m recipe_dypo.local --help``.
"""
