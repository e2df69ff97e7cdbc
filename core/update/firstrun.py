"""First start without a trails file: build one before the sensor opens it.

Where it sits: before a sensor's first start, called by tools/run_all.py (`./setup.sh run`) and by
the container entrypoint (docker/entrypoint.py). The update runs as a child process
(`python3 -m core.update`, this interpreter): the full update first (public feeds when
USE_FEED_UPDATES is on); when that publishes nothing (no network, every feed failed), the bundled
static and custom lists offline, so the sensor always starts with the bundled trails at least.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from core.config import ROOT_DIR, Config


def build_missing_trails(config: Config, conf_args: Sequence[str], offline: bool,
                         say: Callable[[str], None]) -> None:
    """Build TRAILS_FILE when it does not exist (and updates are not disabled); never raises."""
    trails = config.get("TRAILS_FILE")
    if not trails or os.path.exists(trails) or config.DISABLE_TRAIL_UPDATES:
        return
    update = [sys.executable, "-m", "core.update", *conf_args]
    if not offline:
        say(f"maltrail: no trails file at {trails} yet: running the trail update (feeds, static, custom)")
        subprocess.run(update, cwd=ROOT_DIR, check=False)
    if not os.path.exists(trails):
        say("maltrail: building the trails from the bundled lists only (offline)")
        subprocess.run([*update, "--offline"], cwd=ROOT_DIR, check=False)
