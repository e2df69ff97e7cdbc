"""Daily log files: the one rule for which file an event line is stored in.

`prune_day_files` applies LOG_RETENTION_DAYS (the server's housekeeping thread and a standalone
sensor's supervisor call it).

Where it sits: shared by the sensor's log file sink (core/events/sinks.py), the server's UDP
intake (core/server/intake.py), the day-file reader of the HTTP API (core/server/storage.py) and
the alert tailer (core/server/alerts.py). An event belongs to `LOG_DIR/YYYY-MM-DD.log` where the
date is the local calendar date of the event's time (the same local time the line starts with,
core/events/event.py `format_time`).
"""

from __future__ import annotations

import datetime
import os
import re
import time

SUFFIX = ".log"
DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def day_of(sec: float) -> str:
    """Local date (YYYY-MM-DD) of an epoch second: the day file the event belongs to."""
    return time.strftime("%Y-%m-%d", time.localtime(sec))


def day_path(log_dir: str, day: datetime.date | str) -> str:
    """The day file of a date (a `date` or its `YYYY-MM-DD` text) in `log_dir`."""
    name = day if isinstance(day, str) else day.isoformat()
    return os.path.join(log_dir, name + SUFFIX)


def day_of_name(name: str) -> str | None:
    """`YYYY-MM-DD` of a day file's base name, or None when the name is not a day file."""
    if name.endswith(SUFFIX) and DAY_RE.fullmatch(name[: -len(SUFFIX)]):
        return name[: -len(SUFFIX)]
    return None


class LocalDays:
    """`day_of` with the current day's [start, end) epoch range remembered: a per-event cost of
    one comparison for the intake, which maps every datagram's epoch to its day."""

    def __init__(self) -> None:
        self._range = (0, 0, "")

    def day(self, sec: int) -> str:
        start, end, day = self._range
        if start <= sec < end:
            return day
        day = day_of(sec)
        date = datetime.date.fromisoformat(day)
        nxt = date + datetime.timedelta(days=1)
        start = int(time.mktime((date.year, date.month, date.day, 0, 0, 0, 0, 0, -1)))
        end = int(time.mktime((nxt.year, nxt.month, nxt.day, 0, 0, 0, 0, 0, -1)))
        if start <= sec < end:
            self._range = (start, end, day)
        return day


def prune_day_files(log_dir: str, keep_days: int, today: datetime.date | None = None) -> list[str]:
    """Delete the day files (and only day files: `YYYY-MM-DD.log`) dated `keep_days` days or more
    before `today`; the paths removed. `keep_days` 0 keeps everything (the default: no retention).
    A file that cannot be removed is left and tried again next time."""
    if keep_days <= 0:
        return []
    oldest = (today or datetime.date.today()) - datetime.timedelta(days=keep_days - 1)
    removed = []
    try:
        names = os.listdir(log_dir)
    except OSError:
        return []
    for name in names:
        day = day_of_name(name)
        if day is None:
            continue
        try:
            if datetime.date.fromisoformat(day) >= oldest:
                continue
            os.unlink(os.path.join(log_dir, name))
        except (ValueError, OSError):
            continue
        removed.append(os.path.join(log_dir, name))
    return sorted(removed)
