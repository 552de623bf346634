"""Experiment entry points: ``run(...)`` is what ``run_experiments.py`` calls."""

from tf_bimodal.experiments.run import run
