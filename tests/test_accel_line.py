"""The compiled event-line grammar (core/accel/_line.c) against its specification,
core.events.event.line_problem: the shared table, mutated lines, random bytes and every line the
sensor writes for random events."""

from __future__ import annotations

import importlib
import random

import pytest

from core.events.event import _TYPES, LINE_PROBLEMS, TRAIL_TYPES, Event, format_line, line_problem
from tests.event_lines import TABLE

try:
    _line = importlib.import_module("core.accel._line")     # directly: also under MALTRAIL_PURE_PYTHON=1
except ImportError:
    _line = None
pytestmark = pytest.mark.skipif(_line is None, reason="core.accel._line not built (tools/build_accel.py)")


@pytest.fixture(scope="module")
def check():
    assert _line is not None
    _line.init(LINE_PROBLEMS, tuple(sorted(_TYPES)))
    return _line.check


def _same(check, data: bytes) -> None:
    expected = line_problem(data)
    got = check(data)
    assert got == expected, (data, got, expected)
    assert got is None or got in LINE_PROBLEMS


def test_table(check):
    for line, reason in TABLE:
        assert check(line) == reason, line


def test_mutated_lines(check):
    rng = random.Random(5)
    seeds = [line for line, _ in TABLE] + [b'"2026-11-28 06:07:08" s 2001:db8::1 1 ::1 2 253 PORT x "a b" c']
    pieces = [b" ", b'"', b'""', b"-", b":", b".", b"\x00", b"\t", b"\x7f", b"\xc2\x85", b"\xc2\xa0", b"\xff", b"\xed\xa0\x80",
              b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xf0\x9f\x98\x80", b"9", b"0", b"a", b"65536", b"300", b"::ffff:",
              b"1.2.3.4", "é".encode(), b"2024-02-29", b"0000", b".1234567"]
    for _ in range(50000):
        line = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 5)):
            at = rng.randrange(len(line) + 1)
            if rng.random() < 0.4 and line:
                del line[at:at + rng.randrange(1, 6)]
            elif rng.random() < 0.2 and line:
                line[min(at, len(line) - 1)] = rng.randrange(256)
            else:
                line[at:at] = rng.choice(pieces)
        _same(check, bytes(line))


def test_random_bytes(check):
    rng = random.Random(9)
    prefix = b'"2026-11-28 06:07:08.000042" '
    for n in range(20000):
        data = rng.randbytes(rng.randrange(0, 80))
        _same(check, prefix + data if n % 2 else data)


def test_every_formatted_event(check):
    rng = random.Random(13)
    alphabet = 'ab "\\\r\n\t\x00\x1b\x7f\x85é€-'
    for _ in range(5000):
        def text() -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        event = Event(rng.randrange(946684800, 4102444800), rng.randrange(10**6),
                      rng.choice(["10.0.0.1", "2001:db8::1", "::", "1.2.3"]), rng.choice([None, 0, "-", 1, 65535, 70000]),
                      rng.choice(["192.0.2.1", "fe80::1"]), rng.randrange(70000),
                      rng.choice(["TCP", "UDP", "ICMPv6", "GRE", "253", "256", "x_y"]),
                      rng.choice([*sorted(TRAIL_TYPES), "NOPE"]), text(), text(), text())
        line = format_line(event, text() or "s").encode()
        _same(check, line)


def test_reasons_are_the_shared_objects(check):
    """The reasons returned are the LINE_PROBLEMS objects themselves (no new string per datagram)."""
    for line, reason in TABLE:
        if reason is not None:
            assert check(line) is LINE_PROBLEMS[LINE_PROBLEMS.index(reason)]
