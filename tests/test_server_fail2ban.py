"""The shipped fail2ban filter matches every line /fail2ban returns (Debian's fail2ban-regex)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.kit.server import ROOT, Server, event_line

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


def test_fetch_script_appends_what_changed_and_stays_bounded(tmp_path):
    """maltrail-fetch.sh against the real server, run as cron would: the list file grows by new
    addresses (and by re-listings after the ban time), never by the whole list every minute."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    script = os.path.join(ROOT, "fail2ban", "maltrail-fetch.sh")
    srv = Server(str(tmp_path), extra="FAIL2BAN_REGEX attacker\nFAIL2BAN_ALLOWLIST 127.0.0.0/8, ::1")
    now = time.time()
    srv.write_events([event_line(now, src="203.0.113.7"), event_line(now, src="2001:db8::99")])
    listing = tmp_path / "fail2ban.list"

    def fetch(at: int, **env: str) -> list[str]:
        environment = dict(os.environ, MALTRAIL_URL=f"http://127.0.0.1:{srv.port}", MALTRAIL_NOW=str(at), **env)
        subprocess.run(["sh", script, str(listing)], env=environment, check=True, timeout=60)
        return listing.read_text().split()

    with srv:
        start = int(now)
        assert sorted(fetch(start)) == ["2001:db8::99", "203.0.113.7"]
        for minute in range(1, 6):  # five more runs a minute apart: nothing new, nothing appended
            assert len(fetch(start + 60 * minute)) == 2
        srv.write_events([event_line(now, src="198.51.100.9")])
        time.sleep(8.5)  # the server caches /fail2ban answers for 8 s
        assert fetch(start + 400)[-1] == "198.51.100.9" and len(listing.read_text().split()) == 3
        # after the ban time, addresses still listed are appended again (fail2ban bans them anew)
        again = fetch(start + 3700)
        assert len(again) == 5 and sorted(again[3:]) == ["2001:db8::99", "203.0.113.7"]
        # past the size cap the file starts over instead of growing without end
        assert len(fetch(start + 8000, MALTRAIL_MAX_BYTES="10")) == 3
