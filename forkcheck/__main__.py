"""``python -m forkcheck``: the forkcheck command line (see :mod:`forkcheck._cli`)."""

import sys

from ._cli import main

# Guarded: pytest's --doctest-modules imports this module as forkcheck.__main__.
if __name__ == "__main__":
    sys.exit(main())
