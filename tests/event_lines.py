"""The one table of event lines, valid and invalid, with the reason `check_line` gives.

Where it sits: test data shared by tests/test_event.py (the grammar itself and `format_line`
round trips) and tests/test_intake.py (the server's intake drops exactly these lines, counted by
the same reasons). None means valid.
"""

from __future__ import annotations

GOOD = '"2026-11-28 06:07:08.000042" sensor-1 10.0.0.1 40000 66.66.66.66 443 TCP IP 66.66.66.66 "malware (test)" (static)'

TABLE: list[tuple[bytes, str | None]] = [
    (GOOD.encode(), None),
    (b'"2026-11-28 06:07:08" s 10.0.0.1 - 1.2.3.4 - ICMP IP 1.2.3.4 x y', None),
    (b'"2024-02-29 23:59:59.1" s 2001:db8::1 53 ::ffff:1.2.3.4 65535 UDP DNS evil.example "a ""b"" c" -', None),
    (b'"2026-11-28 06:07:08.000000" "my sensor" 10.0.0.1 0 10.0.0.2 1 47 IPORT 10.0.0.2:1 - -', None),
    ('"2026-11-28 06:07:08.000000" capteur-é 10.0.0.1 1 10.0.0.2 2 ICMPv6 URL "ünïcode path" ok ok'.encode(), None),
    (b'"2026-11-28 06:07:08.000000" s 10.0.0.1 1 10.0.0.2 2 TCP CERT ab12 "" -', None),
    # not UTF-8 / control characters
    (b'"2026-11-28 06:07:08.000042" s 10.0.0.1 1 10.0.0.2 2 TCP IP x \xff\xfe y', "not_utf8"),
    (GOOD.encode()[:-3] + b"\xc3", "not_utf8"),
    (GOOD.encode().replace(b"sensor-1", b"sen\x00sor"), "control_char"),
    (GOOD.encode().replace(b"(static)", b"(st\tatic)"), "control_char"),
    (GOOD.encode().replace(b"(static)", b"(st\x1batic)"), "control_char"),
    (GOOD.encode().replace(b"(static)", b"(st\x7fatic)"), "control_char"),
    (GOOD.encode().replace(b"(static)", "(st\u0085atic)".encode()), "control_char"),
    (GOOD.encode() + b"\r", "control_char"),
    # time and date
    (b"", "bad_time"),
    (b"garbage", "bad_time"),
    (GOOD.encode()[1:], "bad_time"),
    (GOOD.encode().replace(b"2026-11-28", b"3000-13-00"), "bad_time"),
    (GOOD.encode().replace(b"06:07:08", b"24:00:00"), "bad_time"),
    (GOOD.encode().replace(b"06:07:08", b"06:60:08"), "bad_time"),
    (GOOD.encode().replace(b".000042", b".0000421"), "bad_time"),
    (GOOD.encode().replace(b"2026-11-28", b"2026-02-30"), "bad_date"),
    (GOOD.encode().replace(b"2026-11-28", b"2025-02-29"), "bad_date"),
    (GOOD.encode().replace(b"2026-11-28", b"0000-01-01"), "bad_date"),
    # the 11 fields
    (GOOD.encode()[:40], "bad_fields"),
    (GOOD.encode().rsplit(b" ", 1)[0], "bad_fields"),
    (GOOD.encode() + b" extra", "bad_fields"),
    (GOOD.encode() + b" ", "bad_fields"),
    (GOOD.encode().replace(b" 443 ", b"  443 "), "bad_fields"),
    (GOOD.encode().replace(b'"malware (test)"', b'"malware (test)'), "bad_fields"),
    (GOOD.encode().replace(b'"malware (test)"', b'mal"ware'), "bad_fields"),
    (GOOD.encode().replace(b"sensor-1", b'"a"b"'), "bad_fields"),
    # addresses, ports, proto, type
    (GOOD.encode().replace(b"10.0.0.1", b"10.0.0.256"), "bad_address"),
    (GOOD.encode().replace(b"10.0.0.1", b"-"), "bad_address"),
    (GOOD.encode().replace(b"10.0.0.1", b"evil.example"), "bad_address"),
    (GOOD.encode().replace(b" 66.66.66.66 443", b" 2001:db8::zz 443"), "bad_address"),
    (GOOD.encode().replace(b"10.0.0.1", b"010.0.0.1"), "bad_address"),
    (GOOD.encode().replace(b" 40000 ", b" 65536 "), "bad_port"),
    (GOOD.encode().replace(b" 40000 ", b" 0080 "), "bad_port"),
    (GOOD.encode().replace(b" 443 ", b" http "), "bad_port"),
    (GOOD.encode().replace(b" TCP ", b" 256 "), "bad_proto"),
    (GOOD.encode().replace(b" TCP ", b" - "), "bad_proto"),
    (GOOD.encode().replace(b" TCP ", b" T_CP "), "bad_proto"),
    (GOOD.encode().replace(b" TCP IP ", b" TCP ip "), "bad_type"),
    (GOOD.encode().replace(b" TCP IP ", b" TCP MALWARE "), "bad_type"),
]
