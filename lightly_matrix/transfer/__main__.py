"""``python -m lightly_matrix.transfer``: the entry point torchrun starts in every process."""

import sys

from lightly_matrix.transfer.args import main

sys.exit(main())
