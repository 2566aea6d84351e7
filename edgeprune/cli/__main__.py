"""``python -m edgeprune.cli``."""

import sys

from edgeprune.cli import main

sys.exit(main())
