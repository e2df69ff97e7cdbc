"""Trail reload and refresh: validated atomic swaps of the trail store in a running sensor.

Where it sits: called by each capture worker (core/capture/workers.py) on SIGHUP, and by the
supervisor every UPDATE_PERIOD after running the update (`python3 -m core.update`), which rewrites
TRAILS_FILE atomically. A new set replaces the current one only when it is non-empty (unless
ALLOW_EMPTY_TRAILS) and holds at least TRAIL_RELOAD_MIN_RATIO of the current row count; otherwise
the sensor keeps detecting with the old set and says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from core.config import ROOT_DIR, Config
from core.detect.detector import Detector
from core.trails.store import TrailStore
from core.update.firstrun import update_args
from core.update.publish import size_refusal


class TrailReloader:
    """Keeps the current store, its generation and load time; `reload()` swaps after checks."""

    def __init__(self, config: Config, store: TrailStore, open_store: Callable[[str], TrailStore]) -> None:
        self.config = config
        self.path: str = config.TRAILS_FILE
        self.store = store
        self.open_store = open_store
        self.generation = 1
        self.rejected = 0
        self.loaded = _mtime(self.path)

    def reload(self) -> tuple[bool, str]:
        """(swapped, message). Never raises: a broken file is a rejected reload."""
        try:
            new = self.open_store(self.path)
        except Exception as ex:  # isolation point: one reload
            self.rejected += 1
            return False, f"trail reload failed, keeping {len(self.store):,} trails: {ex}"
        ok, why = acceptable(len(self.store), len(new), self.config)
        if not ok:
            self.rejected += 1
            return False, f"trail reload refused, keeping {len(self.store):,} trails: {why}"
        self.store = new  # the old mapping goes away with its last reference
        self.generation += 1
        self.loaded = _mtime(self.path)
        return True, f"trails reloaded: {len(new):,} (generation {self.generation})"


def acceptable(current: int, new: int, config: Config) -> tuple[bool, str]:
    """The swap rule (core/update/publish.py `size_refusal`, shared with the update)."""
    why = size_refusal(new, current, config.TRAIL_RELOAD_MIN_RATIO, allow_empty=config.ALLOW_EMPTY_TRAILS)
    return why is None, why or ""


def swap_store(pipeline: Detector, store: TrailStore) -> None:
    """Point a detection pipeline at a new store (between two batches)."""
    pipeline.swap_store(store)


def run_update(config: Config, timeout: float = 3600) -> tuple[bool, str]:
    started = time.monotonic()
    try:
        # a child process: the feed parsers' memory never joins the sensor's
        proc = subprocess.run([sys.executable, *update_args(config)], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT_DIR)
    except (OSError, subprocess.TimeoutExpired) as ex:
        return False, f"trail update failed: {ex}"
    took = time.monotonic() - started
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"trail update failed (exit {proc.returncode}, {took:.0f} s): {last}"
    return True, f"trail update finished in {took:.0f} s"


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return time.time()

