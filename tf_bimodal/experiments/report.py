"""The experiment report: Tables 1 and 2, paired t-tests, Figures 5 and 6 (§4).

``write_report(root, data)`` reads the results an experiment folder holds and writes
``<root>/report.md`` (and ``report.html``, the same page with its figures inline) with, as far
as the results exist:

* a header: the synthetic-data notice (phantom), the data set and its splits, the presets,
  the weights the classifiers' backbones started from, the machine, and the command;
* **Table 1** (§4.1.1): per segmenter, mean ± SD over the folds of the per-image Dice, IoU,
  precision and recall on the test images, the fold union in parentheses;
* **Table 2** (§4.2.1): per classifier, patient-wise mean ± SD over the folds of accuracy,
  precision, specificity, sensitivity, F1 and AUC, and in parentheses the same metric of the
  fold ensemble (each test patient's class by majority of the fold models' patient votes,
  a tie going to malignant): the classification counterpart of the fold union. The caption
  says how the inputs were cropped (shape, margin, input size; §3.1, Fig. S2); classifiers
  trained on other crops than the paper's rows (e.g. ``--crop predicted_mask_shape``) follow
  the paper's rows, their crop named in the image column;
* the **paired t-tests** (two-sided, over folds) of every row against the proposed method of
  its table (W-MM-U-Net automatic; MFF on W-MM-U-Net crops), as the paper's +/≈ marks next
  to each value, with "−" where the proposed method is significantly worse, and the p-values;
* **Figure 5** (``fig5_segmentation.png``): a few test images with every segmenter's mask;
* **Figure 6** (``fig6_roc.png``): test ROC curves of the bimodal classifiers with AUCs, and of
  the Table 3 methods with ``roc_table3`` (``tf-bimodal report --roc-table3``);
* **Table 3** (§4.2.2): the earlier methods against MFF with their paired t-tests
  (:mod:`tf_bimodal.experiments.table3_report`);
* the grid search (Table S4), when run, and the wall time of every step.

Every number comes from the result files of this folder; nothing is taken from the paper.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import platform
import time

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal import layout, pages
from tf_bimodal.config import (
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    TABLE1_ROWS,
    TABLE2_ROWS,
    TABLE3_METHODS,
    TABLE3_ROWS,
    TableRow,
    classification_row,
    crop_masks,
    crop_shape,
)
from tf_bimodal.data import fingerprint as fingerprint_lib
from tf_bimodal.data import inputs
from tf_bimodal.evaluation.classification import METRIC_NAMES as CLASSIFICATION_METRICS
from tf_bimodal.evaluation.classification import binary_metrics, patient_vote
from tf_bimodal.evaluation.figures import (
    pick_panel_images,
    save_confusion_matrices,
    save_roc_figure,
    save_segmentation_panel,
    save_training_curves,
)
from tf_bimodal.evaluation.predictions import read_prediction_rows
from tf_bimodal.evaluation.statistics import compare_to_reference
from tf_bimodal.experiments.table3_report import table3_lines, table3_summaries
from tf_bimodal.io import read_json, read_json_or_none
from tf_bimodal.schema import SYNTHETIC_NOTICE
from tf_bimodal.training.metrics import METRIC_NAMES as SEGMENTATION_METRICS

logger = logging.getLogger(__name__)

REPORT_FILE = layout.REPORT_FILE
REPORT_HTML = "report.html"
FIG5_FILE = "fig5_segmentation.png"
FIG6_FILE = "fig6_roc.png"
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrices.png"
PANEL_IMAGES = 4
METRIC_TITLES = {
    "dice": "Dice", "iou": "IoU", "precision": "Precision", "recall": "Recall", "accuracy": "Accuracy",
    "specificity": "Specificity", "sensitivity": "Sensitivity", "f1": "F1-score", "auc": "AUC",
}


# --------------------------------------------------------------------------- reading results


SEGMENTATION_OF_MASKS = {"predicted": "W-MM-U-Net", "manual": "Manual", "none": "-"}
"""Table 2's segmentation column for the masks a crop is cut around."""

CROP_WORDS = {"predicted": "W-MM-U-Net crops", "manual": "manual crops", "none": "full images"}
"""How Figure 6 names the masks of a crop."""


def crop_label(crop: str) -> str:
    """A crop in words, e.g. ``W-MM-U-Net crops`` or ``manual crops, mask shape`` (Fig. S2)."""
    words = CROP_WORDS[crop_masks(crop)]
    return words + (", mask shape" if crop_shape(crop) == "mask" else "")


def other_classification_rows() -> tuple[TableRow, ...]:
    """Rows for the classification runs of other crops than Table 2's (``CLASSIFICATION_CROPS``
    beyond the paper's rows, e.g. ``mff_crop_predicted_mask_shape``), in model then crop order.

    The image and network columns are those of the model's Table 2 row on W-MM-U-Net crops,
    the image column naming the crop's shape (rectangle unless said).
    """
    listed = {(row.model, row.crop) for row in TABLE2_ROWS}
    return tuple(classification_row(model, crop) for model in CLASSIFICATION_MODELS for crop in CLASSIFICATION_CROPS
                 if (model, crop) not in listed)


def crop_caption(summaries: dict) -> str:
    """What Table 2's inputs were, from the runs' crop records: shape, margin, input size."""
    shapes, margins, sizes = set(), set(), set()
    for summary in summaries.values():
        record = summary.get("crop") or {}
        if record.get("shape"):
            shapes.add(record["shape"])
            margins.add(record.get("margin_px"))
        if record.get("input_size"):
            sizes.add(record["input_size"])
    if not shapes:
        return ""
    margin_text = ", ".join(f"{margin} px" for margin in sorted(m for m in margins if m is not None))
    size_text = ", ".join(f"{size} px" for size in sorted(sizes))
    text = (f"Crops (§3.1, Fig. S2): the mask's bounding box plus a margin of {margin_text} (50 px at 336 px, "
            f"scaled to the data's image size), resized to {size_text}")
    if shapes == {"mask"}:
        return text + "; cut to the mask's shape (pixels farther than the margin from the mask set to 0)."
    if "mask" in shapes:
        return text + ("; rectangles, except the rows marked \"mask shape\", cut to the mask's shape (pixels "
                       "farther than the margin from the mask set to 0).")
    return text + "; rectangles."


def _summaries(root: str, rows) -> dict:
    found = {}
    for row in rows:
        path = os.path.join(root, row.name, layout.SUMMARY_FILE)
        if os.path.isfile(path):
            found[row.name] = read_json(path)
    return found


def _per_fold(summaries: dict, metrics) -> dict:
    return {
        name: {m: summary[m]["values"] for m in metrics if isinstance(summary.get(m), dict) and "values" in summary[m]}
        for name, summary in summaries.items()
    }


def _tests(summaries: dict, reference: str, metrics) -> dict:
    """Paired t-tests against ``reference``; empty when it is missing or folds do not pair."""
    if reference not in summaries or len(summaries) < 2:
        return {}
    per_fold = _per_fold(summaries, metrics)
    lengths = {len(v) for values in per_fold.values() for v in values.values()}
    if len(lengths) != 1 or lengths.pop() < 2:
        return {}
    clean = {
        name: {m: v for m, v in values.items() if not any(math.isnan(x) for x in v)}
        for name, values in per_fold.items()
    }
    usable = [m for m in metrics if m in clean[reference]]
    return compare_to_reference(clean, reference, usable)


def fold_ensemble(run_dir: str) -> dict | None:
    """Patient-wise metrics of the fold models' majority vote on a shared test set.

    Each fold model's test predictions (``fold_<k>/predictions.csv``) are first combined per
    patient (majority, tie to malignant, §4.2); the patient's ensemble class is then the
    majority of those fold votes (tie to malignant), and its score the mean probability.
    None when the folds do not share their test images (rotating folds).
    """
    folds = sorted(
        name for name in os.listdir(run_dir) if name.startswith("fold_") and
        os.path.isfile(os.path.join(run_dir, name, layout.FOLD_PREDICTIONS_FILE))
    ) if os.path.isdir(run_dir) else []
    if len(folds) < 2:
        return None
    test_sets, patients, votes, labels, scores = [], [], [], [], []
    for name in folds:
        rows = read_prediction_rows(os.path.join(run_dir, name, layout.FOLD_PREDICTIONS_FILE), "test")
        test_sets.append({row["image_id"] for row in rows})
        vote = patient_vote(
            [row["patient_id"] for row in rows], [int(row["prediction"]) for row in rows],
            labels=[int(row["label"]) for row in rows], scores=[float(row["probability_malignant"]) for row in rows],
        )
        patients.extend(vote["patient_ids"].tolist())
        votes.extend(vote["predictions"].tolist())
        labels.extend(vote["labels"].tolist())
        scores.extend(vote["scores"].tolist())
    if any(test != test_sets[0] for test in test_sets):
        return None
    ensemble = patient_vote(patients, votes, labels=labels, scores=scores)
    return binary_metrics(ensemble["labels"], ensemble["predictions"], ensemble["scores"])


# --------------------------------------------------------------------------- formatting


def _percent(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}"


def _cell(stat: dict | None, extra=None, test: dict | None = None, bold: bool = False) -> str:
    if not isinstance(stat, dict):
        return "–"
    text = f"{_percent(stat['mean'])} ± {_percent(stat['sd'])}"
    if extra is not None:
        text += f" ({_percent(extra)})"
    if bold:
        text = f"**{text}**"
    if test is not None:
        text += f" {test['mark']}"
    return text


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} CPU cores available, GPUs: {', '.join(gpus) if gpus else 'none'}; "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}")


def _tests_table(tests: dict, metrics) -> list[str]:
    if not tests:
        return []
    lines = ["| compared with the proposed | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for name, results in tests.items():
        cells = []
        for metric in metrics:
            result = results.get(metric)
            cells.append("–" if result is None else f"{result['mark']} p={result['p']:.3g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def automatic_weights_lines(weights: dict | None) -> list[str]:
    """Table 1's note on W-MM-U-Net (automatic): how its modality weights were made (the
    auto-weight pre-stage, one vector per fold, or end to end, per image; §3.2.2) and their
    values, the mean over the folds and each fold's vector."""
    if not weights or not weights.get("mean"):
        return []
    names = weights["path_names"]

    def vector(values):
        return ", ".join(f"{name} {value:.2f}" for name, value in zip(names, values))

    if weights.get("weighting") == "prestage":
        accuracy = [a for a in weights.get("prestage_val_accuracy") or [] if a is not None]
        lines = ["", "W-MM-U-Net (automatic) weights: **auto-weight pre-stage** (§3.2.2), one vector per fold from a "
                 "ResNet benign/malignant classifier trained on the fold's training images (mean |gradient| of its "
                 "log-odds per input channel, normalised); mean over the folds: " + vector(weights["mean"]) + "."]
        per_fold = [f"fold {index}: {vector(values)}" for index, values in enumerate(weights["per_fold"]) if values]
        if per_fold:
            lines.append("Per fold: " + "; ".join(per_fold) + ".")
        if accuracy:
            lines.append(f"Pre-stage validation accuracy {100 * float(np.mean(accuracy)):.1f} % (mean over the folds).")
        return lines
    return ["", "W-MM-U-Net (automatic) weights: **end to end** (the auto-weight ResNet inside the segmenter, one "
            "vector per image), mean over the folds' test images: " + vector(weights["mean"]) + "."]


# --------------------------------------------------------------------------- figures


def _figure5(root: str, data, summaries: dict) -> str | None:
    """Fig. 5: test images, ground truth and each segmenter's fold-union mask."""
    if data is None or not summaries:
        return None
    arrays, splits = data.arrays, data.splits
    position = {image_id: i for i, image_id in enumerate(arrays["image_id"])}
    test = [position[i] for i in splits[0]["test"] if i in position and arrays["has_mask"][position[i]]]
    if not test:
        return None
    columns = {}
    for row in TABLE1_ROWS:  # the paper's column order, the proposed model last
        if row.name in summaries:
            masks = inputs.load_predicted_masks(layout.predicted_masks_path(root, row.name))
            title = row.network if "+" in row.modality else f"{row.network} ({row.modality})"
            columns[title] = np.stack([masks[arrays["image_id"][i]] for i in test]).astype(np.uint8)
    truth = arrays["mask"][test][..., 0]
    chosen = pick_panel_images(truth, columns, count=PANEL_IMAGES)
    title = "Test images: ground truth and each model's mask (majority of the fold models)"
    if data.synthetic:
        title = "SYNTHETIC PHANTOM. " + title
    path = save_segmentation_panel(
        arrays["bmode"][test][chosen], arrays["semode"][test][chosen], truth[chosen],
        {name: masks[chosen] for name, masks in columns.items()}, os.path.join(root, FIG5_FILE), title,
        image_ids=[arrays["image_id"][test[i]] for i in chosen],
    )
    logger.info(f"Wrote {path}")
    return path


def _figure6(root: str, summaries: dict, synthetic: bool, rows=TABLE2_ROWS) -> str | None:
    """Fig. 6: test ROC of the bimodal classifiers, and of the Table 3 methods among ``rows``;
    one score per test image (mean over folds)."""
    curves = {}
    for row in rows:
        table3 = row.model in TABLE3_METHODS
        if row.name not in summaries or ("+" not in row.modality and not table3):
            continue
        run_dir = os.path.join(root, row.name)
        per_image = {}
        for name in sorted(os.listdir(run_dir)):
            path = os.path.join(run_dir, name, layout.FOLD_PREDICTIONS_FILE)
            if not name.startswith("fold_") or not os.path.isfile(path):
                continue
            for record in read_prediction_rows(path, "test"):
                entry = per_image.setdefault(record["image_id"], [int(record["label"]), []])
                entry[1].append(float(record["probability_malignant"]))
        if per_image:
            labels = np.array([v[0] for v in per_image.values()])
            scores = np.array([np.mean(v[1]) for v in per_image.values()])
            label = f"{row.network} (Table 3)" if table3 else f"{row.network}, {crop_label(row.crop)}"
            curves[label] = (labels, scores)
    if not curves:
        return None
    title = "Test ROC of the bimodal classifiers\n(image-wise, mean probability of the fold models)"
    if synthetic:
        title = "SYNTHETIC PHANTOM\n" + title
    path = save_roc_figure(curves, os.path.join(root, FIG6_FILE), title=title)
    logger.info(f"Wrote {path}")
    return path


def _histories(root: str, names) -> dict:
    """``{run: [per-fold {column: values}]}`` from the folds' ``history.csv``."""
    histories = {}
    for name in names:
        run_dir = os.path.join(root, name)
        folds = []
        for fold in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
            path = os.path.join(run_dir, fold, layout.HISTORY_FILE)
            if layout.FOLD_PATTERN.match(fold) and os.path.isfile(path):
                with open(path, newline="") as handle:
                    rows = list(csv.DictReader(handle))
                columns = rows[0] if rows else {}
                folds.append({key: [float(row[key]) for row in rows if row.get(key)] for key in columns})
        histories[name] = folds
    return histories


def _confusion(root: str, names) -> dict:
    """``{run: [[TN, FP], [FN, TP]]}`` over every fold's test images, each at its fold's threshold."""
    matrices = {}
    for name in names:
        run_dir = os.path.join(root, name)
        counts = np.zeros((2, 2), np.int64)
        for fold in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
            path = os.path.join(run_dir, fold, layout.FOLD_PREDICTIONS_FILE)
            if layout.FOLD_PATTERN.match(fold) and os.path.isfile(path):
                for row in read_prediction_rows(path, "test"):
                    counts[int(row["label"]), int(row["prediction"])] += 1
        if counts.sum():
            matrices[name] = counts.tolist()
    return matrices


def _training_figures(root: str, segmenters: dict, classifiers: dict, synthetic: bool) -> list[str]:
    """The report's section of training curves and confusion matrices (pictures of what
    TensorBoard holds)."""
    prefix = "SYNTHETIC PHANTOM. " if synthetic else ""
    lines = []
    curves = save_training_curves(_histories(root, [*segmenters, *classifiers]), os.path.join(root, CURVES_FILE),
                                  title=prefix + "Training and validation loss per fold; dashed: the validation "
                                        "score the epoch is selected on")
    confusion = save_confusion_matrices(_confusion(root, classifiers), os.path.join(root, CONFUSION_FILE),
                                        title=prefix + "Test images of all folds, each at its fold's threshold")
    if curves or confusion:
        lines += ["## Training curves and confusion matrices", ""]
        if curves:
            lines += [f"![Training curves]({CURVES_FILE})", ""]
        if confusion:
            lines += [f"![Confusion matrices]({CONFUSION_FILE})", ""]
    return lines


# --------------------------------------------------------------------------- the report


def _header_lines(root: str, data, segmenters: dict, classifiers: dict, protocol: dict, any_summary: dict,
                  synthetic: bool) -> list[str]:
    """The report's title and what the experiment ran on: data, splits, presets, machine, command."""
    lines = [f"# Experiment report: {os.path.basename(os.path.normpath(root))}", ""]
    if synthetic:
        lines += [f"> **{SYNTHETIC_NOTICE}**", ""]
    lines += [f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} from the results in `{root}`; every number "
              "below comes from those files.", ""]
    if any_summary:
        lines.append(f"- **Data**: `{any_summary.get('dataset')}` version {any_summary.get('dataset_version')}")
        lines.append(f"- **Source**: {fingerprint_lib.describe(any_summary.get('source_fingerprint'))}")
    if data is not None:
        counts = data.index.summary()
        classes = ", ".join(f"{name} {counts[name]['images']} images / {counts[name]['patients']} patients"
                            for name in ("benign", "malignant", "normal") if name in counts)
        lines.append(f"- **Images**: {counts['num_images']} from {counts['num_patients']} patients ({classes}); "
                     f"{counts['with_semode']} with SE-mode, {counts['with_mask']} with a mask")
    first_seg = next(iter(segmenters.values()), None)
    if first_seg:
        fold = first_seg["folds"][0]["num_images"]
        lines.append(f"- **Splits**: {first_seg['num_folds']} patient-level folds, scheme "
                     f"`{first_seg['split_config']['scheme']}` (train/val/test images of fold 0: "
                     f"{fold['train']}/{fold['val']}/{fold['test']}); every model uses the same folds")
        config = first_seg["config"]
        lines.append(f"- **Segmentation preset** `{first_seg['preset']}`: {config['image_size']} px, filters "
                     f"{config['stackwise_num_filters']} + {config['bottleneck_filters']}, {config['loss']} loss, "
                     f"Adam lr {config['learning_rate']}, batch {config['batch_size']}, at most {config['epochs']} "
                     f"epochs (early stopping {config['early_stopping_patience']})")
        lines.append("- **Multimodal U-Nets**: contraction blocks "
                     f"`{config.get('contraction_block', 'conv_bn_relu')}`, hyper-dense across paths"
                     + (" and levels" if config.get("dense_across_levels") else "")
                     + f", skip fusion below the top `{config.get('skip_fusion', 'concat_average')}`, automatic "
                     f"weights `{config.get('auto_weight', 'end_to_end')}`")
        if config.get("encoder", "unet") == "vgg16":
            lines.append(f"- **Single-modal U-Nets**: VGG-16 blocks 1-{config.get('encoder_depth')} as the contraction "
                         f"path (weights `{config.get('encoder_weights')}`, {config.get('frozen_blocks')} block(s) "
                         f"frozen), expansion filters {config.get('decoder_filters')}; the multimodal U-Nets' paths "
                         "start from random weights")
    first_cls = next(iter(classifiers.values()), None)
    if first_cls:
        config = first_cls["config"]["classification"]
        weights = first_cls["backbone_weights"]
        lines.append(f"- **Classification preset** `{first_cls['preset']}`: {config['input_size']} px crops, VGG-16 "
                     f"filters {config['stackwise_num_filters']}, {config['fc_units']}-d features, SGD lr "
                     f"{config['learning_rate']}, momentum {config['momentum']}, weight decay "
                     f"{config.get('weight_decay')} ({config.get('weight_decay_mode', 'decoupled')}), batch "
                     f"{config['batch_size']}, at "
                     f"most {config['epochs']} epochs, λ = {config['decision_loss_weight']}")
        used = sorted({str(s["backbone_weights"]["used"]) for s in classifiers.values()})
        lines.append(f"- **Backbone weights**: requested `{weights['requested']}`, used {', '.join(used)}"
                     + (f" ({weights['reason']})" if weights.get("reason") else ""))
    lines.append(f"- **Machine**: {_hardware()}")
    if protocol.get("last_command"):
        lines.append(f"- **Command**: `{protocol['last_command']}`")
    lines.append("")

    return lines


def _table1_lines(root: str, data, segmenters: dict) -> list[str]:
    """Table 1 (§4.1.1) with its paired t-tests, the automatic weights and Figure 5."""
    lines = []
    tests = _tests(segmenters, "w_mm_unet", SEGMENTATION_METRICS)
    lines += ["## Table 1: segmentation (§4.1.1)", "",
              "Mean ± SD (population SD) over the folds of the per-image scores on the test images (%), "
              "the fold union (pixel majority of the fold models) in parentheses. Marks: paired two-sided "
              "t-test over the folds against W-MM-U-Net (automatic), p ≤ 0.05: + the proposed model is "
              "better, − it is worse, ≈ no significant difference.", "",
              "| Input modality | Network | " + " | ".join(f"{METRIC_TITLES[m]} (%)" for m in SEGMENTATION_METRICS)
              + " |", "|---|---|" + "---|" * len(SEGMENTATION_METRICS)]
    for row in TABLE1_ROWS:
        if row.name not in segmenters:
            continue
        summary = segmenters[row.name]
        union = summary.get("fold_union") or {}
        cells = [_cell(summary.get(m), union.get(m), tests.get(row.name, {}).get(m), bold=row.proposed)
                 for m in SEGMENTATION_METRICS]
        lines.append(f"| {row.modality} | {row.network} | " + " | ".join(cells) + " |")
    lines += automatic_weights_lines((segmenters.get("w_mm_unet") or {}).get("modality_weights"))
    if tests:
        lines += ["", "Paired t-tests:", ""] + _tests_table(tests, SEGMENTATION_METRICS)
    figure = _figure5(root, data, segmenters)
    if figure:
        lines += ["", f"![Figure 5]({FIG5_FILE})", "",
                  "Figure 5 style: B-mode, SE-mode, ground truth, then each model's mask (green: ground truth "
                  "only, grey: prediction only, bright green: both); Dice in the corner."]
    lines.append("")
    return lines


def _table2_lines(root: str, classifiers: dict, classification_rows, synthetic: bool, table3: dict) -> list[str]:
    """Table 2 (§4.2.1) with its paired t-tests and Figure 6 (with the curves of the ``table3``
    runs given)."""
    lines = []
    tests = _tests(classifiers, "mff", CLASSIFICATION_METRICS)
    lines += ["## Table 2: classification (§4.2.1)", "",
              "Patient-wise (majority vote of a patient's images, a tie going to malignant) mean ± SD "
              "(population SD) over the folds (%), in parentheses the fold ensemble (majority of the fold "
              "models' patient votes). Marks: paired two-sided t-test over the folds against MFF (EmbraceNet) "
              "on W-MM-U-Net crops, p ≤ 0.05: + the proposed model is better, − it is worse, ≈ no "
              "significant difference. " + crop_caption(classifiers), "",
              "| Image (modality) | Segmentation | Network | "
              + " | ".join(f"{METRIC_TITLES[m]} (%)" for m in CLASSIFICATION_METRICS) + " |",
              "|---|---|---|" + "---|" * len(CLASSIFICATION_METRICS)]
    for row in classification_rows:
        if row.name not in classifiers:
            continue
        summary = classifiers[row.name]
        ensemble = fold_ensemble(os.path.join(root, row.name)) or {}
        segmentation = SEGMENTATION_OF_MASKS[crop_masks(row.crop)]
        cells = [_cell(summary.get(m), ensemble.get(m), tests.get(row.name, {}).get(m), bold=row.proposed)
                 for m in CLASSIFICATION_METRICS]
        lines.append(f"| {row.modality} | {segmentation} | {row.network} | " + " | ".join(cells) + " |")
    if tests:
        lines += ["", "Paired t-tests:", ""] + _tests_table(tests, CLASSIFICATION_METRICS)
    figure = _figure6(root, {**classifiers, **table3}, synthetic, (*classification_rows, *TABLE3_ROWS))
    if figure:
        lines += ["", f"![Figure 6]({FIG6_FILE})"]
    lines.append("")
    return lines


def _grid_lines(grid: dict, root: str) -> list[str]:
    """The grid search's table (§3.4, Table S4), the chosen settings in bold."""
    lines = []
    models = grid.get("models", {})
    names = list(models)
    lines += ["## Grid search (§3.4, Table S4)", "",
              f"Best validation Dice (%) of each setting on fold {grid.get('fold')}'s validation images, at most "
              f"{grid.get('epochs')} epochs per setting; the chosen setting of each model in bold. "
              f"{grid.get('paper_choice', '')}", "",
              "| learning rate | batch | loss | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    table = {}
    for name in names:
        for setting in models[name].get("settings", []):
            cell = _percent(setting.get("val_dice"))
            if setting.get("chosen") or setting == models[name].get("chosen"):
                cell = f"**{cell}**"
            table.setdefault((setting["learning_rate"], setting["batch_size"], setting["loss"]), {})[name] = cell
    for (learning_rate, batch_size, loss), cells in table.items():
        lines.append(f"| {learning_rate:g} | {batch_size} | {loss} | "
                     + " | ".join(cells.get(name, "–") for name in names) + " |")
    if os.path.isfile(os.path.join(root, "grid_search", "grid.png")):
        lines += ["", "![Grid search](grid_search/grid.png)"]
    lines.append("")
    return lines


def _wall_time_lines(protocol: dict, classification_rows) -> list[str]:
    """Each step's wall time, the last request's and the run's that made the results."""
    steps = protocol.get("steps", {})
    if not steps:
        return []
    lines = []
    lines += ["## Wall time", "",
              "| step | last request | its seconds | seconds of the run that made the results |",
              "|---|---|---|---|"]
    total = 0.0
    order = [row.name for row in (*TABLE1_ROWS, *classification_rows, *TABLE3_ROWS)]
    ranked = sorted(steps, key=lambda name: order.index(name) if name in order else len(order))
    for name in ranked:
        record = steps[name]
        run_seconds = record.get("run_seconds")
        total += run_seconds or 0.0
        reused = record.get("reused_folds")
        status = record["status"] + (f" (folds {reused} reused)" if reused else "")
        lines.append(f"| {name} | {status} | {record['seconds']:.0f} | "
                     f"{'' if run_seconds is None else f'{run_seconds:.0f}'} |")
    lines += ["", f"Training and evaluation time of all steps: {total / 60:.1f} min.", ""]
    return lines


def write_report(root: str, data=None, roc_table3: bool = False) -> str:
    """Write ``<root>/report.md`` (and the figures) from the results in ``root``, and the same
    as one self-contained page, figures inline, ``<root>/report.html`` (:mod:`tf_bimodal.pages`);
    returns the path of ``report.md``.

    Args:
        root: the experiment folder.
        data: the experiment's data, resolved once per request
            (:class:`~tf_bimodal.experiments.experiment_data.ExperimentData`), for the image counts
            and Figure 5; None writes the report from the results alone.
        roc_table3: Figure 6 also draws the test ROC curves of the Table 3 methods run
            (``tf-bimodal report --roc-table3``).
    """
    segmenters = _summaries(root, TABLE1_ROWS)
    classification_rows = (*TABLE2_ROWS, *other_classification_rows())
    classifiers = _summaries(root, classification_rows)
    protocol = read_json_or_none(os.path.join(root, layout.PROTOCOL_FILE)) or {"steps": {}}
    grid = read_json_or_none(os.path.join(root, layout.GRID_SEARCH_FOLDER, layout.SUMMARY_FILE))
    any_summary = next(iter({**segmenters, **classifiers}.values()), None) or grid or {}
    synthetic = bool(any_summary.get("synthetic", data is not None and data.synthetic))
    lines = _header_lines(root, data, segmenters, classifiers, protocol, any_summary, synthetic)
    if segmenters:
        lines += _table1_lines(root, data, segmenters)
    table3 = table3_summaries(root)
    if classifiers:
        lines += _table2_lines(root, classifiers, classification_rows, synthetic, table3 if roc_table3 else {})
    lines += table3_lines(classifiers.get("mff"), table3)
    lines += _training_figures(root, segmenters, classifiers, synthetic)
    if grid:
        lines += _grid_lines(grid, root)
    lines += _wall_time_lines(protocol, classification_rows)
    path = os.path.join(root, REPORT_FILE)
    tmp_path = path + ".tmp"
    with open(tmp_path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp_path, path)
    pages.write_page(os.path.join(root, REPORT_HTML), pages.page(
        f"Experiment report: {os.path.basename(os.path.normpath(root))}",
        pages.markdown_to_html("\n".join(lines), root)))
    return path
