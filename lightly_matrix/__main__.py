import sys

from lightly_matrix.cli import main

sys.exit(main())
