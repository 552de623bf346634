"""Command line for tf_bimodal experiments: parses arguments and calls ``tf_bimodal.workflow.run``.

Examples:
    python run_experiments.py                       # prepare and describe the synthetic phantom
    python run_experiments.py --model mff           # W-MM-U-Net -> fold-union crops -> MFF, report
    python run_experiments.py --model all --preset cpu    # Tables 1 and 2, under an hour on a CPU
    python run_experiments.py --model w_mm_unet --preset quick
    python run_experiments.py --model mff --crop manual
    python run_experiments.py --model grid_search   # learning rate x batch x loss (Table S4)
    python run_experiments.py --model mff --export exported/   # SavedModels, incl. the CAD pipeline
    python run_experiments.py --data busi --manual-dir /path/to/BUSI
    python run_experiments.py --data clinical --manual-dir /path/to/folder_with_manifest.csv
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

from tf_bimodal.config import (
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    DATA_SOURCES,
    DEFAULT_PRESET,
    PRECISIONS,
    PRESETS,
    REQUESTS,
    SEGMENTATION_MODELS,
    STRATEGIES,
    DataConfig,
    RuntimeConfig,
    SplitConfig,
)
from tf_bimodal.layout import DEFAULT_OUTPUT


def parse_args(argv=None):
    defaults_data = DataConfig()
    defaults_split = SplitConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=REQUESTS, default=None, metavar="MODEL",
                        help="a Table 1 segmenter (" + ", ".join(SEGMENTATION_MODELS) + "), a Table 2 classifier ("
                             + ", ".join(CLASSIFICATION_MODELS) + "), table1, table2, all or grid_search; "
                             "without it the data set is prepared and described")
    parser.add_argument("--preset", choices=(*PRESETS, "auto"), default=DEFAULT_PRESET,
                        help="sizes and hyperparameters: paper (a GPU), cpu (Tables 1-2 in under an hour on "
                             "2 cores), quick (minutes, smoke runs) or auto: paper with a GPU, else cpu "
                             "(default: %(default)s)")
    parser.add_argument("--crop", choices=CLASSIFICATION_CROPS, default="predicted",
                        help="a single classifier: crop with W-MM-U-Net's masks (trained first if needed), the "
                             "ground-truth masks, or not at all (default: %(default)s)")
    parser.add_argument("--data", choices=DATA_SOURCES, default=defaults_data.source,
                        help="data source (default: %(default)s, synthetic, needs no files)")
    parser.add_argument("--manual-dir", default=None,
                        help="folder with your data: manifest.csv (clinical) or Dataset_BUSI_with_GT (busi)")
    parser.add_argument("--data-dir", default=None, help="where TFDS keeps prepared datasets (TFDS default)")
    parser.add_argument("--image-size", type=int, default=defaults_data.image_size,
                        help="side of the square images (default: %(default)s, paper §3.1)")
    parser.add_argument("--split", choices=("kfold", "paper"), default=defaults_split.scheme,
                        help="patient-level K folds, or the paper's 137/34/41 split")
    parser.add_argument("--num-folds", type=int, default=defaults_split.num_folds)
    parser.add_argument("--seed", type=int, default=defaults_split.seed, help="seed of the splits")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="results folder; an experiment goes to <output>/<dataset>-<preset>/ "
                             "(default: %(default)s)")
    runtime = RuntimeConfig()
    parser.add_argument("--strategy", choices=STRATEGIES, default=runtime.strategy,
                        help="tf.distribute: auto (Mirrored over all local GPUs if any), mirrored, multi_worker "
                             "(MultiWorkerMirroredStrategy from TF_CONFIG) or one_device (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=runtime.precision,
                        help="Keras dtype policy; mixed_float16 uses loss scaling (default: %(default)s)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="export the experiment's W-MM-U-Net, MFF and the end-to-end CAD pipeline as "
                             "SavedModels into DIR (after --model, or alone for an experiment already trained)")
    parser.add_argument("--no-tensorboard", action="store_true",
                        help="do not write TensorBoard logs (default: every fold writes them)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up messages")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear at once, also through a pipe
    from tf_bimodal import logs

    logs.start_tensorflow(args.verbose)  # TensorFlow's start-up lines only with --verbose
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    from tf_bimodal.data.errors import DataError
    from tf_bimodal.workflow import run

    try:
        data = DataConfig(source=args.data, image_size=args.image_size,
                          manual_dir=args.manual_dir, data_dir=args.data_dir)
        split = SplitConfig(scheme=args.split, num_folds=args.num_folds, seed=args.seed)
        runtime = RuntimeConfig(strategy=args.strategy, precision=args.precision, tensorboard=not args.no_tensorboard)
        run(model=args.model, data=data, split=split, preset=args.preset, crop=args.crop, output=args.output,
            runtime=runtime, export=args.export,
            command=" ".join(["python run_experiments.py", *(argv if argv is not None else sys.argv[1:])]))
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to go on (finished folds are kept, an unfinished "
              "fold resumes from its last epoch)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
