"""The paper's protocol (§3.4, §4): cross-validated runs, the chain segment -> crop -> classify,
the grid search, and the report.

* :mod:`~tf_bimodal.experiments.cross_validation`: the one driver (data, folds, cache keys,
  reuse and resume, seeds, progress);
* :mod:`~tf_bimodal.experiments.segmentation` (Table 1), :mod:`~tf_bimodal.experiments.classification`
  (Table 2), :mod:`~tf_bimodal.experiments.table3` (Table 3, the earlier methods),
  :mod:`~tf_bimodal.experiments.grid_search` (Table S4) and
  :mod:`~tf_bimodal.experiments.bmode_only` (a trained MFF on B-mode-only data): what each
  kind of run does per fold;
* :mod:`~tf_bimodal.experiments.protocol`: a request (a model, a table, everything) as ordered,
  cached steps; :mod:`~tf_bimodal.experiments.report`: ``report.md`` with Tables 1-3 and
  Figures 5-6.

The entry point that resolves presets and also exports is :func:`tf_bimodal.workflow.run`.
"""

from tf_bimodal.experiments.bmode_only import evaluate_bmode_only
from tf_bimodal.experiments.classification import run_classification
from tf_bimodal.experiments.grid_search import run_grid_search
from tf_bimodal.experiments.protocol import run_protocol
from tf_bimodal.experiments.segmentation import run_segmentation
from tf_bimodal.experiments.table3 import run_table3, run_table3_method

__all__ = ["evaluate_bmode_only", "run_classification", "run_grid_search", "run_protocol", "run_segmentation",
           "run_table3", "run_table3_method"]
