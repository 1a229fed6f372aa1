"""dypo-verl: DYPO (Dynamic Policy Optimization, arXiv 2604.08926) as a recipe package for verl 0.9.1.

Importing this package is cheap and does not import verl. verl picks up the registrations
(advantage estimator ``dypo``, policy loss ``dypo``, trainer ``dypo``) through the
``verl.plugins`` entry point, see :mod:`recipe_dypo.plugin`.
"""

__version__ = "0.1.0"
VERL_VERSION = "0.9.1"

# Where each prompt row carries its teacher solutions (m >= 1). Documented in docs/data.md "Data schema".
TEACHERS_FIELD = "extra_info.teachers"  # list of {"name": str, "response": str}
LUFFY_TARGET_FIELD = "target"  # LUFFY: one assistant message (list of one {"role","content"} or a str)
LUFFY_TARGET_LIST_FIELD = "target_lst"  # LUFFY: list of assistant messages
