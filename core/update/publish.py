"""Publication of the trail update: atomic, durable file replacement, the size check and the health report.

Where it sits: feeds/static/custom -> update (core/update/) -> merge -> **publication** ->
trails.csv -> trail store (sensor, server /check).
The update writes TRAILS_FILE through `atomic_write` (a temporary file beside it, fsynced), then
either `publish_file`s it (`os.replace` plus a directory fsync: readers see the old file or the
new one, never a part) or deletes it when `publish_refusal` says the result is empty or below
TRAIL_RELOAD_MIN_RATIO of the previous file (unless forced). The per-run health report goes
beside it as `<name>.health.json` (`write_health`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TextIO


def count_rows(path: str) -> int:
    """Lines in an existing trails file (0 when absent)."""
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse directory fsync; the rename itself is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str, writer: Callable[[TextIO], int], mode: int = 0o644) -> tuple[str, int]:
    """Write through `writer(handle) -> count` into a fsynced temporary file beside `path`.

    Returns (temporary path, count); the caller publishes it with `publish_file` or deletes it.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    import tempfile  # publishing only: the sensor imports this module for its paths

    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            count = writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp, count


def publish_file(tmp: str, path: str) -> None:
    """Atomically replace `path` with the fully written `tmp` and make the rename durable."""
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)) or ".")


def list_path(trails_file: str, name: str) -> str:
    """Where a fetched data set (core/update/datasets.py) is kept beside the trails file:
    `<folder>/lists/<name>.txt`, read by the sensor next to the bundled data/ file."""
    return os.path.join(os.path.dirname(os.path.abspath(trails_file)), "lists", f"{name}.txt")


def health_path(trails_file: str) -> str:
    return os.path.splitext(trails_file)[0] + ".health.json"


def size_refusal(new: int, current: int, ratio: float, *, allow_empty: bool = False) -> str | None:
    """The one "never replace a trail set by a much smaller one" rule, used by the update before it
    publishes TRAILS_FILE and by a running sensor before it swaps its store (core/ops/reload.py).

    Returns why `new` rows must not replace `current` rows, or None when the replacement is fine:
    an empty set is refused unless `allow_empty`; a set below `ratio` of a non-empty current one is
    refused."""
    if new == 0 and not allow_empty:
        return "the new set is empty"
    if current and new < current * ratio:
        return f"the new set has {new:,} rows, below TRAIL_RELOAD_MIN_RATIO {ratio:g} of the current {current:,}"
    return None


HISTORY_LENGTH = 10  # published sets remembered for the long-term baseline


def history_path(trails_file: str) -> str:
    return os.path.splitext(trails_file)[0] + ".history.json"


class PublishHistory:
    """The row counts of the last HISTORY_LENGTH published trail sets (`<name>.history.json`).

    Its `baseline()` (the largest of them) is what a new set is compared with, so a ratchet of
    updates that each lose a little less than TRAIL_RELOAD_MIN_RATIO cannot walk the set down to
    nothing: every one is measured against the largest recent good set, not only the previous one."""

    def __init__(self, trails_file: str) -> None:
        self.path = history_path(trails_file)
        self.counts: list[int] = []
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            self.counts = [int(n) for n in data.get("published", []) if int(n) >= 0][-HISTORY_LENGTH:]
        except (OSError, ValueError, TypeError, AttributeError):
            self.counts = []  # no history yet (or a damaged file): the previous set is the baseline

    def baseline(self) -> int:
        return max(self.counts, default=0)

    def record(self, count: int) -> None:
        self.counts = (self.counts + [count])[-HISTORY_LENGTH:]

        def write(handle: Any) -> int:
            json.dump({"published": self.counts}, handle)
            handle.write("\n")
            return 1

        try:
            tmp, _count = atomic_write(self.path, write)
            publish_file(tmp, self.path)
        except OSError:
            pass  # the history only strengthens the guard; the published set stands without it


def write_health(trails_file: str, report: dict[str, Any]) -> str | None:
    """Publish `report` as JSON at `health_path(trails_file)`; its path, or None when it cannot be written."""
    target = health_path(trails_file)

    def write(handle: TextIO) -> int:
        json.dump(report, handle, indent=1)
        handle.write("\n")
        return 1

    try:
        tmp, _count = atomic_write(target, write)
        publish_file(tmp, target)
    except OSError:
        return None
    return target

