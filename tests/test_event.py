"""The event line: the original's exact format, quoting rules and the parse round trip."""

from __future__ import annotations

import time

from core.events.dayfile import day_of
from core.events.event import Event, format_line, parse_line, safe_value


def test_safe_value_rules():
    assert safe_value(None) == "-"
    assert safe_value("") == "-"
    assert safe_value(0) == "-"
    assert safe_value(53) == "53"
    assert safe_value("a b") == '"a b"'
    assert safe_value('say "hi"') == '"say ""hi"""'
    assert safe_value("x\r\ny") == '"x  y"'
    assert safe_value("plain") == "plain"


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
