"""Day-file storage: where the server's event logs live and how they are read back.

Where it sits: UDP intake appends to `LOG_DIR/YYYY-MM-DD.log` (see intake.py); the HTTP API
(api.py) reads the same files through this module: date parsing, day ranges, byte-range
concatenation over several files, fast line counts, line iteration with a scope filter, and the
remediation marks in `LOG_DIR/cleared.txt`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_RANGE_DAYS = 366
CHUNK = 1 << 20

# `"time" sensor src sport dst dport ...`: the sensor may be quoted (it may hold a space).
LINE_ADDR_RE = re.compile(rb'^"[^"]*" (?:"(?:[^"]|"")*"|\S+) (\S+) \S+ (\S+) ')


def parse_date(text: str) -> datetime.date | None:
    """YYYY-MM-DD -> date, or None when malformed or impossible."""
    if not DATE_RE.fullmatch(text or ""):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def parse_day_or_epoch(text: str) -> datetime.date | None:
    """A `from`/`to` value: YYYY-MM-DD or epoch seconds (local date)."""
    text = (text or "").strip()
    if text.isdigit() and len(text) <= 12:
        try:
            return datetime.date.fromtimestamp(int(text))
        except (OverflowError, OSError, ValueError):
            return None
    return parse_date(text)


def date_span(start: datetime.date, end: datetime.date) -> list[datetime.date] | None:
    """Days from start to end inclusive (None when reversed or longer than MAX_RANGE_DAYS)."""
    if end < start or (end - start).days >= MAX_RANGE_DAYS:
        return None
    return [start + datetime.timedelta(days=n) for n in range((end - start).days + 1)]


def parse_date_param(text: str) -> list[datetime.date] | None:
    """`/events` date: `YYYY-MM-DD` or `A_B` (inclusive range)."""
    text = (text or "").strip()
    if "_" in text:
        first, _, last = text.partition("_")
        a, b = parse_date(first), parse_date(last)
        return date_span(a, b) if a and b else None
    day = parse_date(text)
    return [day] if day else None


@dataclass(frozen=True)
class Segment:
    """One day file as part of a concatenated response: [0, size) of `path` (size frozen at request time)."""

    path: str
    size: int


class Storage:
    """The LOG_DIR of day files."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir

    def day_path(self, day: datetime.date | str) -> str:
        name = day if isinstance(day, str) else day.isoformat()
        return os.path.join(self.log_dir, name + ".log")

    def segments(self, days: list[datetime.date]) -> list[Segment]:
        """Existing day files of the range, with their sizes now (later appends are not included)."""
        out = []
        for day in days:
            path = self.day_path(day)
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if size:
                out.append(Segment(path, size))
        return out

    def days_present(self) -> list[str]:
        try:
            names = os.listdir(self.log_dir)
        except OSError:
            return []
        return sorted(name[:-4] for name in names if name.endswith(".log") and DATE_RE.fullmatch(name[:-4]))

    def cleared(self) -> dict[str, str]:
        """`cleared.txt`: ip -> 'YYYY-MM-DD HH:MM:SS' mark ('' = everything before now)."""
        path = os.path.join(self.log_dir, "cleared.txt")
        marks: dict[str, str] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    line = raw.split("#", 1)[0].strip()
                    if not line:
                        continue
                    parts = line.split(None, 1)
                    try:
                        ipaddress.ip_address(parts[0])
                    except ValueError:
                        continue
                    marks[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
        except OSError:
            pass
        return marks

    def cleared_mtime(self) -> float:
        try:
            return os.stat(os.path.join(self.log_dir, "cleared.txt")).st_mtime
        except OSError:
            return 0.0


def read_range(segments: list[Segment], start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end] (inclusive) of the concatenation of segments, in chunks."""
    offset = 0
    for seg in segments:
        seg_start, seg_end = offset, offset + seg.size - 1
        offset += seg.size
        if seg_end < start or seg_start > end:
            continue
        lo = max(start, seg_start) - seg_start
        hi = min(end, seg_end) - seg_start
        with open(seg.path, "rb") as handle:
            handle.seek(lo)
            remaining = hi - lo + 1
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    # the file shrank: pad so Content-Length stays truthful
                    yield b"\n" * remaining
                    break
                remaining -= len(chunk)
                yield chunk


def iter_lines(segments: list[Segment]) -> Iterator[bytes]:
    """Whole lines (with their newline) of the segments, read in chunks; a last partial line is kept."""
    for seg in segments:
        try:
            handle = open(seg.path, "rb")
        except OSError:
            continue
        with handle:
            remaining = seg.size
            tail = b""
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                chunk = tail + chunk
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    tail = chunk
                    continue
                tail = chunk[cut + 1:]
                for line in chunk[:cut].split(b"\n"):
                    yield line + b"\n"
            if tail:
                yield tail + b"\n"


def iter_lines_reverse_days(storage: Storage, days: list[datetime.date]) -> Iterator[tuple[str, bytes]]:
    """(day, line) newest day first, lines within a day in file order."""
    for day in sorted(days, reverse=True):
        for line in iter_lines(storage.segments([day])):
            yield day.isoformat(), line


def count_lines(path: str, size: int) -> int:
    """Exact number of lines in the first `size` bytes of a file."""
    total = 0
    with open(path, "rb") as handle:
        remaining = size
        last = b"\n"
        while remaining > 0:
            chunk = handle.read(min(CHUNK * 4, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            total += chunk.count(b"\n")
            last = chunk[-1:]
        if last != b"\n":
            total += 1
    return total


def estimate_lines(path: str, size: int, probes: int = 8, probe_size: int = 32768) -> int:
    """Line count estimated from evenly spaced probes (large files), rounded to 100."""
    newlines = sampled = 0
    with open(path, "rb") as handle:
        for n in range(probes):
            handle.seek(max(0, (size - probe_size) * n // max(1, probes - 1)))
            chunk = handle.read(probe_size)
            newlines += chunk.count(b"\n")
            sampled += len(chunk)
    if not newlines or not sampled:
        return 1 if size else 0
    return max(100, int(round(size * newlines / sampled / 100.0)) * 100)


def line_addresses(line: bytes) -> tuple[str, str] | None:
    """(src_ip, dst_ip) text of a stored event line, or None when it does not look like one."""
    m = LINE_ADDR_RE.match(line)
    if not m:
        return None
    return m.group(1).decode("ascii", "replace"), m.group(2).decode("ascii", "replace")
