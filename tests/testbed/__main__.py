"""``python -m testbed <command>``: see :mod:`testbed.cli`."""

import sys

from .cli import main

sys.exit(main())
