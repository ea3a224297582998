"""``python -m lightly_matrix.transfer``: the entry point torchrun starts in every process."""

import sys

from lightly_matrix.cli import main

sys.exit(main(["transfer", *sys.argv[1:]]))
