"""Range parsing for the HTTP API: byte ranges (RFC 7233 `Range`) and the days of a query.

Where it sits: pure functions under the endpoint handlers. api.py's /events answers `Range`
headers with `parse_byte_ranges` and `multipart` over the concatenated day files (storage.py
reads the bytes); /events, /live, /geo take `date` (`parse_date`, `parse_date_param`), /counts
and /hunt take `from`/`to` (`parse_day_or_epoch`, `date_span`). Nothing here does I/O; malformed
input gives None (the handler answers 400, or for `Range` ignores the header).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Final, Literal

from core.events.dayfile import DAY_RE

MAX_RANGES = 32
MAX_RANGE_DAYS = 366
UNSATISFIABLE: Final = "unsatisfiable"

ByteRange = tuple[int, int]                 # first and last byte, inclusive
RANGE_HEADER_RE = re.compile(r"\s*bytes\s*=\s*(.+)", re.IGNORECASE)
RANGE_SPEC_RE = re.compile(r"(\d{0,19})\s*-\s*(\d{0,19})")


# -- days ---------------------------------------------------------------------------------------

def parse_date(text: str) -> datetime.date | None:
    """YYYY-MM-DD -> date, or None when malformed or impossible."""
    if not DAY_RE.fullmatch(text or ""):
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


# -- bytes --------------------------------------------------------------------------------------

def parse_byte_ranges(header: str, total: int) -> list[ByteRange] | None | Literal["unsatisfiable"]:
    """A `Range` header over `total` bytes -> sorted, coalesced (first, last) pairs.

    None: ignore the header (malformed, not bytes, more than MAX_RANGES specs, a reversed spec);
    UNSATISFIABLE: well-formed, but no range overlaps the content (answer 416)."""
    m = RANGE_HEADER_RE.fullmatch(header)
    if not m:
        return None
    specs = [s.strip() for s in m.group(1).split(",") if s.strip()]
    if not specs or len(specs) > MAX_RANGES:
        return None
    ranges: list[ByteRange] = []
    for spec in specs:
        rm = RANGE_SPEC_RE.fullmatch(spec)
        if not rm or (not rm.group(1) and not rm.group(2)):
            return None
        first, last = rm.group(1), rm.group(2)
        if first:
            a = int(first)
            b = int(last) if last else total - 1
            if last and b < a:
                return None
            if a >= total:
                continue
            ranges.append((a, min(b, total - 1)))
        else:
            suffix = int(last)
            if suffix == 0 or total == 0:
                continue
            ranges.append((max(0, total - suffix), total - 1))
    if not ranges:
        return UNSATISFIABLE
    ranges.sort()
    merged = [ranges[0]]
    for a, b in ranges[1:]:
        if a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


@dataclass(frozen=True)
class Multipart:
    """The frame of a `multipart/byteranges` body: each part's head before its bytes, then `tail`."""

    content_type: str
    parts: list[tuple[bytes, int, int]]     # (part head, first, last)
    tail: bytes
    length: int                             # the exact body length (Content-Length)


def multipart(ranges: list[ByteRange], total: int, boundary: str,
              part_type: str = "text/plain; charset=utf-8") -> Multipart:
    parts = []
    length = 0
    for a, b in ranges:
        head = (f"\r\n--{boundary}\r\nContent-Type: {part_type}\r\n"
                f"Content-Range: bytes {a}-{b}/{total}\r\n\r\n").encode()
        parts.append((head, a, b))
        length += len(head) + b - a + 1
    tail = f"\r\n--{boundary}--\r\n".encode()
    return Multipart(f"multipart/byteranges; boundary={boundary}", parts, tail, length + len(tail))
