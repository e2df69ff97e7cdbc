"""The Event record and the original's exact log-line format.

Where it sits: detect.py (and heuristics) create Event tuples; the event pipeline filters and
throttles them; sinks format them with `format_line` (daily log, UDP to the server, console) or
their own formats (CEF, JSON). The server's UDP intake checks every datagram's line with
`check_line` (the grammar below, the one definition of a valid line); the HTTP API reads stored
lines back with `parse_line`.

Line format (byte-compatible with the original):
    "<YYYY-MM-DD HH:MM:SS.ffffff>" <sensor> <src_ip> <src_port> <dst_ip> <dst_port> <proto> <type> <trail> <info> <reference>
Fields go through `safe_value`: control characters (C0, DEL, C1) become spaces; a value
containing a space or a double quote is double-quoted with inner quotes doubled; empty, None and
0 become `-`.

The grammar `check_line` enforces (what `format_line` writes for a real event): valid UTF-8; no
control characters; a real calendar date and time of day (fraction of 1-6 digits optional);
then exactly 10 space-separated fields, each `-`, a bare token without spaces or quotes, or a
quoted token; `src_ip`/`dst_ip` IPv4 or IPv6 addresses; ports `-` or 0-65535; `proto` an IP
protocol name (a letter then letters/digits, at most 16) or number 0-255; `type` one of
`TrailType`. It returns the reason a line is refused (one of `LINE_PROBLEMS`), or None.
`line_problem` is its definition, step by step; `check_line` is the compiled twin
(core/accel/_line.c) when built, else `check_line_py` (one regular expression for the common case).
"""

from __future__ import annotations

import csv
import datetime
import functools
import re
import socket
import time
from typing import NamedTuple

from core.accel import load

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


TRAIL_TYPES = frozenset(v for k, v in vars(TrailType).items() if k.isupper())
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def safe_value(value: object) -> str:
    """One log field: `-` for empty/None/0, quoted when it holds a space or a double quote;
    control characters become spaces (a field never breaks the line or the grammar)."""
    if value is None or value == "" or value == 0:
        return "-"
    text = str(value)
    if not text.isprintable() and _CONTROLS.search(text):
        text = _CONTROLS.sub(" ", text)
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


def split_fields(rest: bytes) -> list[bytes] | None:
    """The 10 fields of a line after its time (`rest`: what follows `"<time>" `) as the grammar
    reads them: quotes taken off, `""` read as `"`; None when `rest` does not follow the grammar.
    For ASCII text these are `parse_line`'s fields, without decoding or the csv module (the
    ClickHouse writer splits every event this way, core/server/chwriter.py)."""
    match = _FIELDS_RE.fullmatch(rest)
    if match is None:
        return None
    return [field[1:-1].replace(b'""', b'"') if field[:1] == b'"' else field for field in match.groups()]


# -- the grammar of a valid line (check_line) ------------------------------------------------------

LINE_PROBLEMS = ("not_utf8", "control_char", "bad_time", "bad_date", "bad_fields", "bad_address",
                 "bad_port", "bad_proto", "bad_type")
_FIELD = rb'(-|[^ "]+|"[^"]*(?:""[^"]*)*")'
_TIME = rb'"(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])) (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"'
_TIME_RE = re.compile(_TIME + rb"(?: |$)")
_LINE_RE = re.compile(_TIME + (rb" " + _FIELD) * 10)
_FIELDS_RE = re.compile(_FIELD + (rb" " + _FIELD) * 9)
_PORT_RE = re.compile(rb"-|0|[1-9]\d{0,4}")
_PROTO_RE = re.compile(rb"[A-Za-z][A-Za-z0-9]{0,15}|0|[1-9]\d{0,2}")
_TYPES = frozenset(t.encode("ascii") for t in TRAIL_TYPES)
# The common case in one pass: the same grammar with IPv4 octets, ports, protocol names and types
# spelled out, so a typical line costs one match. It only ever accepts what the step-by-step
# checks (`line_problem`) accept (IPv6 addresses and the calendar are still checked); anything it
# refuses goes through those checks, which name the reason. tests/test_event.py compares the two.
_OCTET = rb"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_FAST_ADDR = rb"(" + _OCTET + rb"(?:\." + _OCTET + rb"){3}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)"
_FAST_PORT = rb"(?:-|6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3}|0)"
_FAST_PROTO = rb"(?:TCP|UDP|ICMP|[A-Za-z][A-Za-z0-9]{0,15})"
_FAST_TYPE = rb"(?:" + b"|".join(t.encode("ascii") for t in sorted(TRAIL_TYPES, key=len, reverse=True)) + rb")"
_FAST_FIELD = rb'([^ "\x00-\x1f\x7f]+|"[^"\x00-\x1f\x7f]*(?:""[^"\x00-\x1f\x7f]*)*")'   # no C0, no DEL
_C1 = re.compile("[\x80-\x9f]")
_FAST_RE = re.compile(_TIME + rb" " + _FAST_FIELD + rb" " + _FAST_ADDR + rb" " + _FAST_PORT + rb" " + _FAST_ADDR
                      + rb" " + _FAST_PORT + rb" " + _FAST_PROTO + rb" " + _FAST_TYPE + (rb" " + _FAST_FIELD) * 3)


def _is_address(token: bytes) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if b":" in token else socket.AF_INET, token.decode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def _real_date(text: bytes) -> bool:
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def check_line_py(line: bytes) -> str | None:
    """None when `line` (no newline) is a valid event line, else the reason (one of LINE_PROBLEMS)."""
    fast = _FAST_RE.fullmatch(line)
    if fast is not None and (line.isascii() or _valid_text(line)):
        date, src, dst = fast.group(1, 3, 4)
        if _real_date(date) and (b":" not in src or _is_address(src)) and (b":" not in dst or _is_address(dst)):
            return None
    return line_problem(line)


def line_problem(line: bytes) -> str | None:
    """The grammar step by step (the definition; `check_line` adds the one-match fast path)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    if not text.isprintable() and _CONTROLS.search(text):
        return "control_char"
    match = _LINE_RE.fullmatch(line)
    if match is None:
        return "bad_time" if _TIME_RE.match(line) is None else "bad_fields"
    date, _sensor, src, sport, dst, dport, proto, kind = match.groups()[:8]
    if not _real_date(date):
        return "bad_date"
    if not (_is_address(src) and _is_address(dst)):
        return "bad_address"
    if not (_PORT_RE.fullmatch(sport) and _PORT_RE.fullmatch(dport)
            and (sport == b"-" or int(sport) <= 65535) and (dport == b"-" or int(dport) <= 65535)):
        return "bad_port"
    if not _PROTO_RE.fullmatch(proto) or (proto.isdigit() and int(proto) > 255):
        return "bad_proto"
    if kind not in _TYPES:
        return "bad_type"
    return None


def _valid_text(line: bytes) -> bool:
    """UTF-8 without C1 controls (the fast pattern already excludes C0 and DEL)."""
    try:
        return _C1.search(line.decode("utf-8")) is None
    except UnicodeDecodeError:
        return False


# check_line: the compiled twin of line_problem (core/accel/_line.c) when it is built, else the
# Python fast path above; tests/test_accel_line.py holds them to the same answers.
check_line = check_line_py
_accel = load("_line")
if _accel is not None:
    _accel.init(LINE_PROBLEMS, tuple(sorted(_TYPES)))
    check_line = _accel.check
