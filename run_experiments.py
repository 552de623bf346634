"""Command line for tf_bimodal experiments: the tf-bimodal command in its first spelling.

--model MODEL runs tf-bimodal train MODEL, --export DIR alone tf-bimodal export DIR, and no
--model tf-bimodal data (prepare and describe the data set), with the options of
tf-bimodal train but --fold. tf-bimodal --help lists every command.

Examples:
    python run_experiments.py                       # prepare and describe the synthetic phantom
    python run_experiments.py --model mff           # W-MM-U-Net -> fold-union crops -> MFF, report
    python run_experiments.py --model all --preset cpu    # Tables 1 and 2, under an hour on a CPU
    python run_experiments.py --model table3 --preset cpu # MFF and the six earlier methods (Table 3)
    python run_experiments.py --model w_mm_unet --preset quick
    python run_experiments.py --model mff --crop manual
    python run_experiments.py --model mff --crop predicted_mask_shape   # crops cut to the mask (Fig. S2)
    python run_experiments.py --model grid_search   # learning rate x batch x loss (Table S4)
    python run_experiments.py --model mff --export exported/   # SavedModels, incl. the CAD pipeline
    python run_experiments.py --data busi --manual-dir /path/to/BUSI
    python run_experiments.py --data clinical --manual-dir /path/to/folder_with_manifest.csv
"""

from __future__ import annotations

import sys

from tf_bimodal import cli


def parse_args(argv=None):
    """The parsed arguments, as ``tf-bimodal`` sees them (``command`` is ``train``, ``export``
    or ``data``)."""
    return cli.script_command(cli.build_script_parser(__doc__).parse_args(argv))


def main(argv=None) -> int:
    """Run the command; the exit status of ``tf-bimodal`` (0, 2 bad input, 130 interrupted)."""
    return cli.script_main(argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
