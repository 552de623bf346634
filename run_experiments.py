"""Command line for tf_bimodal experiments: parses arguments and calls ``tf_bimodal.workflow.run``.

Examples:
    python run_experiments.py                       # prepare and describe the synthetic phantom
    python run_experiments.py --model mff           # W-MM-U-Net -> fold-union crops -> MFF, report
    python run_experiments.py --model all --preset cpu    # Tables 1 and 2, under an hour on a CPU
    python run_experiments.py --model w_mm_unet --preset quick
    python run_experiments.py --model mff --crop manual
    python run_experiments.py --model mff --crop predicted_mask_shape   # crops cut to the mask (Fig. S2)
    python run_experiments.py --model grid_search   # learning rate x batch x loss (Table S4)
    python run_experiments.py --model mff --export exported/   # SavedModels, incl. the CAD pipeline
    python run_experiments.py --data busi --manual-dir /path/to/BUSI
    python run_experiments.py --data clinical --manual-dir /path/to/folder_with_manifest.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

from tf_bimodal.cli import (
    CROP_HELP,
    add_data_options,
    add_settings_options,
    data_config,
    runtime_config,
    settings_overrides,
    split_config,
)
from tf_bimodal.config import CLASSIFICATION_CROPS, CLASSIFICATION_MODELS, REQUESTS, SEGMENTATION_MODELS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=REQUESTS, default=None, metavar="MODEL",
                        help="a Table 1 segmenter (" + ", ".join(SEGMENTATION_MODELS) + "), a Table 2 classifier ("
                             + ", ".join(CLASSIFICATION_MODELS) + "), table1, table2, all or grid_search; "
                             "without it the data set is prepared and described")
    parser.add_argument("--crop", choices=CLASSIFICATION_CROPS, default="predicted",
                        help=CROP_HELP + "; W-MM-U-Net is trained first if its masks are needed (default: %(default)s)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="export the experiment's W-MM-U-Net, MFF and the end-to-end CAD pipeline as "
                             "SavedModels into DIR (after --model, or alone for an experiment already trained)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up messages")
    add_data_options(parser)
    add_settings_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear at once, also through a pipe
    from tf_bimodal import logs

    logs.start_tensorflow(args.verbose)  # TensorFlow's start-up lines only with --verbose
    logs.console()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    from tf_bimodal.data.errors import DataError
    from tf_bimodal.models.classification.backbone_weights import BackboneWeightsUnavailable
    from tf_bimodal.models.pretrained import PretrainedWeightsUnavailable
    from tf_bimodal.workflow import resolve, run

    try:
        data, split = data_config(args), split_config(args)
        preset = args.preset
        if args.model is not None or args.export is not None:
            preset = resolve(args.preset, runtime_config(args), settings_overrides(args), args.config_file)
        run(model=args.model, data=data, split=split, preset=preset, crop=args.crop, output=args.output,
            runtime=runtime_config(args), export=args.export,
            command=" ".join(["python run_experiments.py", *(argv if argv is not None else sys.argv[1:])]))
    except (DataError, ValueError, FileNotFoundError, BackboneWeightsUnavailable,
            PretrainedWeightsUnavailable) as error:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {getattr(error, 'command_line', error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to go on (finished folds are kept, an unfinished "
              "fold resumes from its last epoch)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
