"""core/server/ranges.py in process: Range headers (RFC 7233) over a known total, the multipart
frame's exact length, and the day parameters of /events, /counts and /hunt."""

from __future__ import annotations

import datetime
import time

import pytest

from core.server.ranges import (
    MAX_RANGE_DAYS,
    MAX_RANGES,
    UNSATISFIABLE,
    date_span,
    multipart,
    parse_byte_ranges,
    parse_date,
    parse_date_param,
    parse_day_or_epoch,
)

D = datetime.date

BYTE_RANGES = [
    # header, total, answer
    ("bytes=5-14", 100, [(5, 14)]),
    ("bytes=0-0", 100, [(0, 0)]),
    ("bytes=-7", 100, [(93, 99)]),
    ("bytes=97-", 100, [(97, 99)]),
    ("bytes=90-500", 100, [(90, 99)]),                    # clipped to the end
    ("bytes=-500", 100, [(0, 99)]),                       # suffix longer than the content
    ("BYTES = 1-2", 100, [(1, 2)]),                       # unit case and spaces
    ("bytes=0-1,4-5", 100, [(0, 1), (4, 5)]),
    ("bytes=4-5,0-1", 100, [(0, 1), (4, 5)]),             # sorted
    ("bytes=0-4,5-9", 100, [(0, 9)]),                     # adjacent: coalesced
    ("bytes=0-10,3-5,8-20", 100, [(0, 20)]),              # overlapping: coalesced
    ("bytes=0-1, ,4-5,", 100, [(0, 1), (4, 5)]),          # empty specs skipped
    ("bytes=100-", 100, UNSATISFIABLE),
    ("bytes=100-200,300-", 100, UNSATISFIABLE),
    ("bytes=-0", 100, UNSATISFIABLE),
    ("bytes=-5", 0, UNSATISFIABLE),
    ("bytes=0-", 0, UNSATISFIABLE),
    ("bytes=100-,0-0", 100, [(0, 0)]),                    # one satisfiable spec is enough
    # ignored (None): answered with the whole content
    ("bytes=9-3", 100, None),
    ("bytes=abc", 100, None),
    ("items=0-1", 100, None),
    ("bytes=-", 100, None),
    ("bytes=", 100, None),
    ("bytes=1-2-3", 100, None),
    ("bytes=0x10-20", 100, None),
    ("bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1)), 100, None),
    ("bytes=99999999999999999999999-", 100, None),       # more than 19 digits
    ("", 100, None),
]


@pytest.mark.parametrize("header, total, expected", BYTE_RANGES)
def test_byte_ranges(header, total, expected):
    assert parse_byte_ranges(header, total) == expected


def test_max_ranges_is_the_limit_not_one_less():
    assert parse_byte_ranges("bytes=" + ",".join(f"{2 * n}-{2 * n}" for n in range(MAX_RANGES)), 1000) \
        == [(2 * n, 2 * n) for n in range(MAX_RANGES)]


def test_multipart_length_is_the_length_of_the_assembled_body():
    content = bytes(range(256)) * 4
    ranges = parse_byte_ranges("bytes=0-1,10-20,-3", len(content))
    assert isinstance(ranges, list)
    frame = multipart(ranges, len(content), "b0undary")
    body = b"".join(head + content[a:b + 1] for head, a, b in frame.parts) + frame.tail
    assert len(body) == frame.length
    assert frame.content_type == "multipart/byteranges; boundary=b0undary"
    assert body.count(b"\r\n--b0undary\r\n") == 3 and body.endswith(b"\r\n--b0undary--\r\n")
    assert b"Content-Range: bytes 10-20/1024\r\n\r\n" + content[10:21] in body
    assert b"Content-Range: bytes 1021-1023/1024\r\n\r\n" + content[-3:] in body


@pytest.mark.parametrize("text, expected", [
    ("2024-02-29", D(2024, 2, 29)), ("2023-02-29", None), ("2024-13-01", None), ("2024-1-01", None),
    ("2024-01-01 ", None), ("20240101", None), ("", None), ("2024-01-01_2024-01-02", None),
    ("\u0662\u0660\u0662\u0664-01-01", None),            # non-ASCII digits
])
def test_parse_date(text, expected):
    assert parse_date(text) == expected


def test_parse_day_or_epoch():
    now = int(time.time())
    assert parse_day_or_epoch(str(now)) == datetime.date.fromtimestamp(now)
    assert parse_day_or_epoch(" 2024-03-01 ") == D(2024, 3, 1)
    assert parse_day_or_epoch("1" * 13) is None           # longer than 12 digits
    assert parse_day_or_epoch("-5") is None
    assert parse_day_or_epoch("yesterday") is None


def test_date_span_bounds():
    start = D(2024, 1, 1)
    assert date_span(start, start) == [start]
    assert date_span(start, D(2024, 1, 3)) == [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 3)]
    assert date_span(D(2024, 1, 3), start) is None
    longest = date_span(start, start + datetime.timedelta(days=MAX_RANGE_DAYS - 1))
    assert longest is not None and len(longest) == MAX_RANGE_DAYS
    assert date_span(start, start + datetime.timedelta(days=MAX_RANGE_DAYS)) is None


@pytest.mark.parametrize("text, expected", [
    ("2024-02-28", [D(2024, 2, 28)]),
    ("2024-02-28_2024-03-01", [D(2024, 2, 28), D(2024, 2, 29), D(2024, 3, 1)]),
    (" 2024-02-28_2024-02-28 ", [D(2024, 2, 28)]),
    ("2024-03-01_2024-02-28", None),                     # reversed
    ("2020-01-01_2025-01-01", None),                     # too long
    ("2024-02-28_", None), ("_2024-02-28", None), ("2024-02-28_x", None), ("2020-13-45", None), ("", None),
])
def test_parse_date_param(text, expected):
    assert parse_date_param(text) == expected
