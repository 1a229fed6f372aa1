"""``python -m recipe_dypo.eval ...``: see :mod:`recipe_dypo.eval.run_eval`."""

from recipe_dypo.eval.run_eval import main

if __name__ == "__main__":
    main()
