"""The report's Table 3: the earlier methods against MFF, with paired t-tests (paper §4.2.2).

Laid out as the paper's Table 3: a row per method (Yap, Fujioka, Zhang, Kumar, Wang, Misra
2021) and MFF (EmbraceNet, on W-MM-U-Net crops: Table 2's proposed ``mff`` run) last; the
columns accuracy, precision, specificity and sensitivity, each patient-wise mean ± SD over the
folds (%) followed by the two-tailed paired t-test's p-value against MFF over the folds and its
mark (``+`` MFF significantly better, ``≈`` no significant difference, ``−`` MFF significantly
worse; :mod:`tf_bimodal.evaluation.statistics`). Rows not run are named below the table, never
filled in. Every number comes from the runs' ``summary.json``.
"""

from __future__ import annotations

import math
import os

from tf_bimodal import layout
from tf_bimodal.config import TABLE3_ROWS
from tf_bimodal.evaluation.statistics import compare_to_reference
from tf_bimodal.io import read_json

TABLE3_METRICS = ("accuracy", "precision", "specificity", "sensitivity")
"""Table 3's columns, in the paper's order."""

TITLES = {"accuracy": "Accuracy", "precision": "Precision", "specificity": "Specificity",
          "sensitivity": "Sensitivity"}
REFERENCE = "mff"
"""The reference of the t-tests: Table 2's proposed run (MFF, EmbraceNet, W-MM-U-Net crops)."""


def table3_summaries(root: str) -> dict:
    """``{run: summary}`` of the Table 3 runs the experiment ``root`` holds, in the paper's order."""
    found = {}
    for row in TABLE3_ROWS:
        path = os.path.join(root, row.name, layout.SUMMARY_FILE)
        if os.path.isfile(path):
            found[row.name] = read_json(path)
    return found


def format_p(p: float) -> str:
    """A p-value as the paper prints it (five decimals), small ones in scientific notation."""
    return f"{p:.5f}" if p >= 1e-5 else f"{p:.1e}"


def table3_tests(mff: dict, summaries: dict) -> dict:
    """``{run: {metric: paired_t_test result}}`` of MFF against each run, over the folds
    (:func:`tf_bimodal.evaluation.statistics.compare_to_reference`); a metric whose folds do
    not pair (another number of folds) or hold undefined values (NaN) is left out."""
    reference = {m: mff[m]["values"] for m in TABLE3_METRICS if _usable(mff.get(m))}
    tests = {}
    for name, summary in summaries.items():
        pairs = {m: summary[m]["values"] for m in reference
                 if _usable(summary.get(m)) and len(summary[m]["values"]) == len(reference[m])}
        if pairs and len(reference[next(iter(pairs))]) >= 2:
            per_fold = {REFERENCE: {m: reference[m] for m in pairs}, name: pairs}
            tests[name] = compare_to_reference(per_fold, REFERENCE, list(pairs))[name]
    return tests


def _usable(stat) -> bool:
    return isinstance(stat, dict) and bool(stat.get("values")) and not any(
        isinstance(v, float) and math.isnan(v) for v in stat["values"])


def _value(stat: dict | None, bold: bool = False) -> str:
    if not isinstance(stat, dict) or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "n/a"
    text = f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f}"
    return f"**{text}**" if bold else text


def _inputs_caption(summaries: dict) -> str:
    kinds = sorted({(s.get("inputs") or {}).get("inputs", "?") for s in summaries.values()})
    sizes = sorted({(s.get("inputs") or {}).get("input_size") for s in summaries.values()} - {None})
    words = {"full": "full images", "crop": "the W-MM-U-Net crops MFF reads"}
    return (f"The methods read {' and '.join(words.get(kind, kind) for kind in kinds)} at "
            f"{', '.join(f'{size} px' for size in sizes)}; MFF reads its W-MM-U-Net crops.")


def table3_lines(mff: dict | None, summaries: dict) -> list[str]:
    """The report's Table 3 section (see the module docstring); empty without any Table 3 run."""
    if not summaries:
        return []
    tests = table3_tests(mff, summaries) if mff else {}
    lines = ["## Table 3: comparison with existing methods (§4.2.2)", "",
             "Patient-wise (majority vote of a patient's images, a tie going to malignant) mean ± SD (population "
             "SD) over the folds (%), on the same folds as MFF; each method's threshold is the Youden index on its "
             "folds' validation images. p: two-tailed paired t-test over the folds against MFF (EmbraceNet, "
             "W-MM-U-Net crops), p ≤ 0.05: + MFF is better, − MFF is worse, ≈ no significant difference; "
             "– where a fold's value is undefined (precision of a fold without a malignant prediction). "
             + _inputs_caption(summaries), "",
             "| Existing methods | " + " | ".join(f"{TITLES[m]} (%) | p" for m in TABLE3_METRICS) + " |",
             "|---|" + "---|---|" * len(TABLE3_METRICS)]
    for row in TABLE3_ROWS:
        if row.name not in summaries:
            continue
        cells = []
        for metric in TABLE3_METRICS:
            test = tests.get(row.name, {}).get(metric)
            cells += [_value(summaries[row.name].get(metric)),
                      "–" if test is None else f"{format_p(test['p'])} {test['mark']}"]
        name = row.network + (" ᵃ" if row.model == "wang" else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    values = [_value(mff.get(m), bold=True) if mff else "not run" for m in TABLE3_METRICS]
    lines.append(("| **MFF (EmbraceNet), proposed** | " if mff else "| MFF (EmbraceNet), proposed | ")
                 + " | ".join(cell for value in values for cell in (value, "")) + " |")
    lines += ["", "ᵃ B-mode and SE-mode images only (the paper's footnote)."]
    missing = [row.network for row in TABLE3_ROWS if row.name not in summaries]
    if missing:
        lines.append(f"Not run in this experiment: {', '.join(missing)}.")
    if not mff:
        lines.append("No t-tests: MFF on W-MM-U-Net crops (`--model mff`) is not run in this experiment.")
    weights = sorted({str((s.get("backbone_weights") or {}).get("used")) for s in summaries.values()})
    first = next(iter(summaries.values()))
    config = (first.get("config") or {}).get("table3") or {}
    if config:
        lines.append(f"Preset `{first.get('preset')}`: width {config.get('width')}, backbone weights requested "
                     f"`{config.get('backbone_weights')}`, learning rate {config.get('learning_rate')}, momentum "
                     f"{config.get('momentum')}, batch {config.get('batch_size')}, at most {config.get('epochs')} "
                     f"epochs (early stopping {config.get('early_stopping_patience')}).")
    lines += [f"Backbone weights used: {', '.join(weights)}.", ""]
    return lines
