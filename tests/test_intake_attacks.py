"""Garbage and impossible dates against a real server.py: the intake keeps every good event and
nothing else, and creates no day files it should not (real UDP on 127.0.0.1). The hostile
datagrams come from tools/intake_attack.py, the operator's check, which is run here too."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time

from tests.kit.server import ROOT, Server
from tools.intake_attack import BURST, garbage, good_lines, impossible_dates, interleave


def _paced(srv: Server, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), BURST):
        srv.send_udp(payloads[start:start + BURST])
        time.sleep(0.03)


def _summary(stderr: str) -> dict[str, int]:
    lines = re.findall(r"intake: (received=.*)", stderr)
    assert lines, stderr
    return {k: int(v) for k, v in (item.split("=") for item in lines[-1].split())}


def test_garbage_leaves_no_line_and_interleaved_good_events_are_all_kept(tmp_path):
    rng = random.Random(21)
    now = int(time.time())
    good = good_lines("s1", now, 1000)
    bad = [garbage(rng, "s1", now, good) for _ in range(100_000)]
    payloads = interleave([f"{now} {line}".encode() for line in good], bad)
    srv = Server(str(tmp_path))
    with srv:
        _paced(srv, payloads)
    with open(srv.day_file(now)) as handle:
        assert handle.read().splitlines() == good
    counts = _summary(srv.stderr)
    assert counts["received"] == len(payloads) and counts["written"] == len(good)
    assert counts["dropped"] == len(bad) and counts["dropped_not_utf8"] > 0 and counts["dropped_bad_fields"] > 0
    assert "intake dropped a datagram from 127.0.0.1:" in srv.stderr


def test_impossible_and_far_dates_create_no_day_files(tmp_path):
    rng = random.Random(3)
    this_year = int(time.strftime("%Y"))
    far = [f'"{year}-02-{rng.randrange(1, 29):02d} 12:00:00.000000" s1 10.0.0.1 1 1.2.3.4 2 TCP IP 1.2.3.4 x y'.encode()
           for year in (rng.choice([y for y in range(2000, 2100) if abs(y - this_year) > 1]) for _ in range(10_000))]
    srv = Server(str(tmp_path))
    with srv:
        _paced(srv, impossible_dates(rng, "s1", 10_000) + far)
    assert os.listdir(srv.log_dir) == []
    counts = _summary(srv.stderr)
    assert counts["received"] == 20_000 and counts["written"] == 0
    assert counts.get("dropped_bad_time", 0) == 10_000 and counts["dropped_outside_window"] == 10_000


def test_the_operator_tool_reports_kept_and_dropped(tmp_path):
    srv = Server(str(tmp_path))
    with srv:
        result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "intake_attack.py"),
                                 f"127.0.0.1:{srv.udp_port}", "--log-dir", srv.log_dir, "--good", "200",
                                 "--garbage", "5000", "--dates", "2000"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kept: 200/200 good events, 0 garbage lines, 0 unexpected new day files" in result.stdout
    assert "dropped: 7,000/7,000 hostile datagrams" in result.stdout
