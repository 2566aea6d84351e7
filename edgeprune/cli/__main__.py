"""``python -m edgeprune.cli``."""

import sys

from edgeprune.cli import main

if __name__ == "__main__":
    sys.exit(main())
