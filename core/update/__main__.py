"""`python3 -m core.update` (or `python3 core/update` from the repository root): the trail update CLI.

Where it sits: entry point only; the command line is core/update/cli.py.
"""

import os
import sys

if __package__ in (None, ""):  # run as `python3 core/update`: put the repository root first
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.ops.deps import require  # noqa: E402 - standard library only

require("update")  # re-runs under .venv, or exits 2 naming the missing packages (core/ops/deps.py)

from core.update.cli import main  # noqa: E402

sys.exit(main())
