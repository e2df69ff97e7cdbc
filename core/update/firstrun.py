"""First start: build TRAILS_FILE when it does not exist yet, before the sensor captures.

Where it sits: called by sensor.py when its trails file is missing (and by tools/run_all.py before
it starts the server), in process, ahead of the trail store. It runs the ordinary update
(core/update/orchestrate.py): feeds (USE_FEED_UPDATES), then the bundled static and custom lists;
with `--offline` or DISABLE_TRAIL_UPDATES the bundled lists only. When the full update publishes
nothing (no network for UPDATE_SERVER, a write failure), it falls back to the bundled lists.
Progress goes to the caller's printer line by line (stderr for the sensor, terminal or not); the
last line says how many trails there are and where they came from. `FirstRunError` when the
build leaves no trails, with the exact command to run by hand (`update_command`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.config import DEFAULT_CONFIG_FILE, ROOT_DIR, Config

if TYPE_CHECKING:
    from core.update.feedrun import FeedStatus

Printer = Callable[[str], None]


class FirstRunError(Exception):
    """The first-start build left no trails; the message names the command to run."""


def update_args(config: Config, offline: bool = False) -> list[str]:
    """The trail update's arguments after the interpreter, for this configuration: what the
    sensor's reload runs as a child (core/ops/reload.py) and what `update_command` shows."""
    args = ["-m", "core.update"]
    if config.source and config.source != DEFAULT_CONFIG_FILE:
        args += ["-c", config.source]
    return args + (["--offline"] if offline else [])


def update_command(config: Config, offline: bool = False) -> str:
    """The exact command that builds this configuration's trails by hand."""
    return f"cd {shlex.quote(ROOT_DIR)} && sudo python3 {shlex.join(update_args(config, offline))}"


def build_missing_trails(config: Config, *, offline: bool, say: Printer) -> int | None:
    """Build TRAILS_FILE when it does not exist; the number of trails built, None when it existed.
    The update (and the feed client under it) is imported only when there is something to build:
    a sensor whose trails exist starts without it."""
    path = config.TRAILS_FILE
    if os.path.exists(path):
        return None
    from core.update.orchestrate import UpdateStatus, update
    from core.update.publish import count_rows

    bundled_only = offline or bool(config.DISABLE_TRAIL_UPDATES)
    why = "--offline" if offline else "DISABLE_TRAIL_UPDATES"
    if bundled_only:
        say(f"no trails at {path} yet: building them from the bundled lists ({why}: no feeds)")
    else:
        say(f"no trails at {path} yet: building them now (feeds, then the bundled lists); this can take a few minutes")
    result = update(config, offline=bundled_only, geo=False, printer=say, progress_lines=True)
    if result.status is not UpdateStatus.PUBLISHED and not bundled_only:
        say("the update published nothing: building the trails from the bundled lists only")
        result = update(config, offline=True, geo=False, printer=say)
        bundled_only, why = True, "the full update failed"
    rows = count_rows(path) if os.path.exists(path) else 0
    if rows == 0:
        raise FirstRunError(f"the first-start build left no trails in {path} ({result.message}); "
                            f"run it by hand to see why: {update_command(config)}")
    say(f"{rows:,} trails built in {path} from {source(config, result.feeds, bundled_only, why)}")
    return rows


def source(config: Config, feeds: list[FeedStatus], bundled_only: bool, why: str) -> str:
    """Where the trails came from, honestly: which feeds answered, or the bundled lists only and why."""
    if bundled_only:
        return f"the bundled static and custom lists only ({why})"
    if config.UPDATE_SERVER:
        return f"UPDATE_SERVER {config.UPDATE_SERVER}"
    ran = [status for status in feeds if status.status not in ("disabled", "skipped")]
    answered = sum(1 for status in ran if status.status in ("ok", "stale"))
    if not ran:
        return "the bundled static and custom lists only (USE_FEED_UPDATES is off)"
    if answered == 0:
        return f"the bundled static and custom lists only (none of the {len(ran)} feeds answered: no network?)"
    return f"{answered} of {len(ran)} feeds plus the bundled static and custom lists"
