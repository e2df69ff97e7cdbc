"""Day-file storage: where the server's event logs live and how they are read back.

Where it sits: UDP intake appends to the day files (`LOG_DIR/YYYY-MM-DD.log`, the rule in
core/events/dayfile.py); the HTTP API (api.py) reads the same files through this module: the
existing files of a day range, byte ranges over their concatenation, fast line counts, line
iteration, the addresses of a stored line, and the remediation marks in `LOG_DIR/cleared.txt`.
Parsing the requested days and byte ranges is ranges.py's.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.events.dayfile import day_of_name, day_path

CHUNK = 1 << 20

# `"time" sensor src sport dst dport ...`: the sensor may be quoted (it may hold a space).
LINE_ADDR_RE = re.compile(rb'^"[^"]*" (?:"(?:[^"]|"")*"|\S+) (\S+) \S+ (\S+) ')


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
        return day_path(self.log_dir, day)

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
        return sorted(day for day in map(day_of_name, names) if day is not None)

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
