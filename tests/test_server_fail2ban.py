"""The shipped fail2ban filter matches every line /fail2ban returns (Debian's fail2ban-regex)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.test_server_support import ROOT, Server, event_line

FILTER = os.path.join(ROOT, "fail2ban", "filter.d", "maltrail.conf")


def test_fail2ban_regex_matches_the_endpoint_output(tmp_path):
    if not shutil.which("fail2ban-regex"):
        pytest.skip("fail2ban is not installed (setup.sh test installs it)")
    srv = Server(str(tmp_path), extra="FAIL2BAN_REGEX attacker|mass scanner\nFAIL2BAN_ALLOWLIST 127.0.0.0/8, ::1")
    now = time.time()
    srv.write_events([event_line(now, src="203.0.113.7"), event_line(now, src="2001:db8::99"),
                      event_line(now, src="198.51.100.2", info="mass scanner"),
                      event_line(now, src="192.0.2.1", info="phishing")])
    with srv:
        status, body = srv.get("/fail2ban")
    assert status == 200
    listed = body.decode().split()
    assert sorted(listed) == sorted(["203.0.113.7", "2001:db8::99", "198.51.100.2"])
    listing = tmp_path / "fail2ban.list"
    listing.write_bytes(body)
    result = subprocess.run(["fail2ban-regex", str(listing), FILTER], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", result.stdout)
    assert m and m.groups() == ("3", "0", "3", "0"), result.stdout[-800:]
    # junk never matches
    junk = tmp_path / "junk.list"
    junk.write_text("not-an-address\n<script>\n1.2.3.4 extra\n")
    result = subprocess.run(["fail2ban-regex", str(junk), FILTER], capture_output=True, text=True, timeout=60)
    assert re.search(r"Lines: 3 lines, 0 ignored, 0 matched, 3 missed", result.stdout), result.stdout[-800:]
