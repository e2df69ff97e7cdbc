"""Daily log files: the one rule for which file an event line is stored in.

`prune_day_files` applies LOG_RETENTION_DAYS (the server's housekeeping thread and a standalone
sensor's supervisor call it).

Where it sits: shared by the sensor's log file sink (core/events/sinks.py), the server's UDP
intake (core/server/intake.py), the day-file reader of the HTTP API (core/server/storage.py) and
the alert tailer (core/server/alerts.py). An event belongs to `LOG_DIR/YYYY-MM-DD.log` where the
date is the local calendar date of the event's time (the same local time the line starts with,
core/events/event.py `format_time`). `DayWindow` bounds the dates the intake accepts;
`append_lines` is the one way whole lines are appended (no torn line on a full disk).
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import time
from collections.abc import Callable

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
class DayWindow:
    """Which day files the server's intake may write: real dates within `days` of the server's
    local date (UDP_DAY_WINDOW). `days` 0 means any date (replaying old captures). `refresh()`
    (once per batch) follows the clock; `allows(day)` is then two text comparisons."""

    def __init__(self, days: int, clock: Callable[[], float] = time.time) -> None:
        self.days = days
        self.clock = clock
        self.low, self.high = ("0000-00-00", "9999-99-99") if days <= 0 else ("", "")
        self._until = 0.0
        self.refresh()

    def refresh(self) -> None:
        if self.days <= 0:
            return
        now = self.clock()
        if now >= self._until:
            today = datetime.date.fromisoformat(day_of(now))
            span = datetime.timedelta(days=self.days)
            self.low, self.high = (today - span).isoformat(), (today + span).isoformat()
            self._until = now + 60

    def allows(self, day: str) -> bool:
        return self.low <= day <= self.high    # ISO dates sort as text


def append_lines(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """Append `data` (whole lines) to a day file opened with O_APPEND. Returns how many bytes of
    it are in the file, always ending at a line end, and the error that stopped the rest. A short
    write (a full disk) never leaves a partial line for the next write to extend: the partial
    tail is cut off again while it is still the end of the file."""
    done = 0
    view = memoryview(data)
    try:
        while done < len(data):
            written = os.write(fd, view[done:])
            if written <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            done += written
        return done, None
    except OSError as ex:
        keep = data.rfind(b"\n", 0, done) + 1
        if keep < done:
            try:
                end = os.lseek(fd, 0, os.SEEK_CUR)
                if os.fstat(fd).st_size == end:        # nobody appended after the partial line
                    os.ftruncate(fd, end - (done - keep))
            except OSError:
                pass
        return keep, ex
