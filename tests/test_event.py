"""The event line: the original's exact format, quoting rules, the parse round trip and the grammar
of a valid line (the shared table of tests/event_lines.py)."""

from __future__ import annotations

import glob
import os
import random
import time

from core.events.dayfile import day_of
from core.events.event import (
    LINE_PROBLEMS,
    TRAIL_TYPES,
    Event,
    check_line,
    check_line_py,
    format_line,
    line_problem,
    parse_line,
    safe_value,
    split_fields,
)
from tests.event_lines import TABLE
from tests.kit.sensorkit import SensorKit


def test_safe_value_rules():
    assert safe_value(None) == "-"
    assert safe_value("") == "-"
    assert safe_value(0) == "-"
    assert safe_value(53) == "53"
    assert safe_value("a b") == '"a b"'
    assert safe_value('say "hi"') == '"say ""hi"""'
    assert safe_value("x\r\ny") == '"x  y"'
    assert safe_value("plain") == "plain"
    assert safe_value("a\x00b\tc\x1bd\x7fe\x85f") == '"a b c d e f"'
    assert safe_value("é€") == "é€"


def test_line_format_and_round_trip():
    sec = int(time.mktime((2026, 11, 28, 6, 7, 8, 0, 0, -1)))
    event = Event(sec, 42, "10.0.0.1", 40000, "66.66.66.66", 443, "TCP", "IP", "66.66.66.66",
                  "malware (test)", "(static)")
    line = format_line(event, "sensor-1")
    assert line == ('"2026-11-28 06:07:08.000042" sensor-1 10.0.0.1 40000 66.66.66.66 443 TCP IP '
                    '66.66.66.66 "malware (test)" (static)')
    parsed = parse_line(line)
    assert parsed is not None
    assert parsed.time == "2026-11-28 06:07:08.000042"
    assert (parsed.src_ip, parsed.dst_port, parsed.info) == ("10.0.0.1", "443", "malware (test)")
    assert day_of(sec) == "2026-11-28"


def test_hostile_fields_stay_one_line_and_eleven_columns():
    event = Event(1_700_000_000, 0, "1.2.3.4", None, "5.6.7.8", None, "TCP", "URL",
                  'evil"\n injected "line', "x\r\ny", "-")
    line = format_line(event, "s")
    assert "\n" not in line and "\r" not in line
    parsed = parse_line(line)
    assert parsed is not None and parsed.trail == 'evil"  injected "line'
    assert parse_line("not a log line") is None


def test_check_line_table():
    for line, reason in TABLE:
        assert check_line(line) == reason, line
        assert check_line_py(line) == reason and line_problem(line) == reason, line
    assert {reason for _, reason in TABLE} == set(LINE_PROBLEMS) | {None}


def test_valid_table_lines_parse_back_to_eleven_fields():
    for line, reason in TABLE:
        if reason is None:
            parsed = parse_line(line.decode())
            assert parsed is not None, line
            fields = split_fields(line[line.index(b'"', 1) + 2:])
            assert fields is not None and [f.decode() for f in fields] == list(parsed[1:]), line
    assert split_fields(b"a b") is None and split_fields(b's 1 - 2 - TCP IP x "y"z w') is None


def test_format_line_always_passes_the_grammar():
    """What the sinks write is what the intake accepts: any text in the free fields, any port,
    any known protocol and type (a property over random events, hostile characters included)."""
    rng = random.Random(7)
    alphabet = 'ab "\\\r\n\t\x00\x1b\x7f\x85é€-'
    for n in range(3000):
        def text() -> str:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        event = Event(rng.randrange(946684800, 4102444800), rng.randrange(10**6),
                      rng.choice(["10.0.0.1", "2001:db8::1", "::"]), rng.choice([None, 0, "-", 1, 65535]),
                      rng.choice(["192.0.2.1", "fe80::1"]), rng.randrange(65536),
                      rng.choice(["TCP", "UDP", "ICMPv6", "GRE", "253"]), rng.choice(sorted(TRAIL_TYPES)),
                      text(), text(), text())
        line = format_line(event, text() or "s")
        assert check_line(line.encode()) is None, (n, line)
        parsed = parse_line(line)
        assert parsed is not None
        if line.isascii():    # the ClickHouse writer's split reads the same fields
            assert split_fields(line[line.index('"', 1) + 2:].encode()) == [f.encode() for f in parsed[1:]], line


def test_every_line_the_sensor_writes_for_the_conformance_corpus_passes_the_grammar(tmp_path):
    """Real sensor output (every conformance capture, heuristics on) is what the intake accepts."""
    corpus = os.path.join(os.path.dirname(__file__), "data", "conformance")
    pcaps = sorted(glob.glob(os.path.join(corpus, "*.pcap")))
    with SensorKit(os.path.join(corpus, "trails.csv"), folder=str(tmp_path), USE_HEURISTICS=True) as kit:
        kit.feed_pcap(*pcaps)
        kit.close()
        lines = kit.lines
    assert len(lines) > 40
    refused = [(line, check_line(line.encode())) for line in lines if check_line(line.encode())]
    assert refused == []


def test_the_fast_path_agrees_with_the_step_by_step_grammar():
    """check_line_py's one-match fast path never accepts what line_problem refuses (mutated lines)."""
    rng = random.Random(11)
    seeds = [line for line, _ in TABLE] + [b'"2026-11-28 06:07:08" s 2001:db8::1 1 ::1 2 253 PORT x "a b" c']
    pieces = [b" ", b'"', b"-", b":", b".", b"\x00", b"\x7f", b"\xc2\x85", b"\xff", b"9", b"a", b"65536", b"300",
              "é".encode()]
    for _ in range(20000):
        line = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(line) + 1)
            if rng.random() < 0.5 and line:
                del line[at:at + rng.randrange(1, 4)]
            else:
                line[at:at] = rng.choice(pieces)
        data = bytes(line)
        assert check_line_py(data) == line_problem(data), data
