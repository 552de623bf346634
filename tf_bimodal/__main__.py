"""``python -m tf_bimodal``: the ``tf-bimodal`` command (:mod:`tf_bimodal.cli`)."""

import sys

from tf_bimodal.cli import main

sys.exit(main())
