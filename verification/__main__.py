"""``python -m verification``: see :func:`verification.cli.main`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
