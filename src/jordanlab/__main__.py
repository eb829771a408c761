"""``python -m jordanlab``: the ``jordanlab`` command."""

import sys

from jordanlab.cli import main

sys.exit(main())
