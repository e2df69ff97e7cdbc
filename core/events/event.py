"""The Event record and the original's exact log-line format.

Where it sits: detect.py (and heuristics) create Event tuples; the event pipeline filters and
throttles them; sinks format them with `format_line` (daily log, UDP to the server, console) or
their own formats (CEF, JSON). The server parses lines back with `parse_line`.

Line format (byte-compatible with the original):
    "<YYYY-MM-DD HH:MM:SS.ffffff>" <sensor> <src_ip> <src_port> <dst_ip> <dst_port> <proto> <type> <trail> <info> <reference>
Fields go through `safe_value`: CR/LF become spaces; a value containing a space or a double quote
is double-quoted with inner quotes doubled; empty, None and 0 become `-`.
"""

from __future__ import annotations

import csv
import time
from typing import NamedTuple

PortField = int | str | None


class Event(NamedTuple):
    """One detection. Field order is the original's event tuple (plugins receive it as is)."""

    sec: int
    usec: int
    src_ip: str
    src_port: PortField
    dst_ip: str
    dst_port: PortField
    proto: str
    type: str
    trail: str
    info: str
    reference: str


class TrailType:
    """Event `type` values (the original's TRAIL enum, plus CERT and the TLS fingerprints)."""

    IP = "IP"
    IPORT = "IPORT"
    DNS = "DNS"
    URL = "URL"
    HTTP = "HTTP"
    UA = "UA"
    PATH = "PATH"
    PORT = "PORT"
    CERT = "CERT"
    JA3 = "JA3"
    JA3S = "JA3S"
    JA4 = "JA4"


def safe_value(value: object) -> str:
    """One log field: `-` for empty/None/0, quoted when it holds a space or a double quote."""
    if value is None or value == "" or value == 0:
        return "-"
    text = str(value)
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    if " " in text or '"' in text:
        text = '"' + text.replace('"', '""') + '"'
    return text


def format_time(sec: int, usec: int) -> str:
    """Sensor-local time as the original writes it: YYYY-MM-DD HH:MM:SS.ffffff."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(sec))}.{usec:06d}"


def format_line(event: Event, sensor_name: str) -> str:
    """The exact log line (without the trailing newline)."""
    return (f'"{format_time(event.sec, event.usec)}" {safe_value(sensor_name)} {safe_value(event.src_ip)} '
            f"{safe_value(event.src_port)} {safe_value(event.dst_ip)} {safe_value(event.dst_port)} "
            f"{safe_value(event.proto)} {safe_value(event.type)} {safe_value(event.trail)} "
            f"{safe_value(event.info)} {safe_value(event.reference)}")


class ParsedLine(NamedTuple):
    """A log line split back into its 12 fields (time text first, then sensor, ...)."""

    time: str
    sensor: str
    src_ip: str
    src_port: str
    dst_ip: str
    dst_port: str
    proto: str
    type: str
    trail: str
    info: str
    reference: str


def parse_line(line: str) -> ParsedLine | None:
    """Split a stored log line into fields; None when it does not have the 11 columns."""
    try:
        row = next(csv.reader([line.rstrip("\r\n")], delimiter=" ", quotechar='"'))
    except (csv.Error, StopIteration):
        return None
    if len(row) != 11:
        return None
    return ParsedLine(*row)
