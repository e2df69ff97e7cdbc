"""Address -> country table from RIR delegated statistics (fixture files), and /geo on a real server."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import os
import re
import subprocess
import sys
import tarfile
import time

from core.config import ROOT_DIR, build_config
from core.update.geo import (
    BUNDLED_TABLE,
    MAX_AGE,
    GeoTable,
    event_country,
    geo_path,
    merge,
    parse_delegated,
    read_table,
    update_geo,
    write_table,
)
from tests.kit.server import Server, event_line

FIXTURES = os.path.join(os.path.dirname(__file__), "data", "geo")
BUILDER = os.path.join(ROOT_DIR, "tools", "build_geo_table.py")


def _fetch(url: str) -> bytes:
    name = url.rsplit("/", 1)[1]
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        raise OSError(f"no fixture for {name}")
    with open(path, "rb") as handle:
        return handle.read()


def test_parse_skips_headers_summaries_and_bad_records():
    with open(os.path.join(FIXTURES, "delegated-ripencc-extended-latest")) as handle:
        rows = list(parse_delegated(handle.read()))
    assert [r[3] for r in rows] == ["FR", "DE", "DE", "NL", "HR"]
    assert rows[0][1:3] == (0x02000000, 0x020FFFFF)
    merged = merge(rows)
    assert len([r for r in merged if r[3] == "DE"]) == 1


RIRS = ("arin", "ripencc", "apnic", "lacnic", "afrinic")
FIXTURE_CASES = {"2.15.255.255": "FR", "5.1.1.200": "DE", "5.2.0.1": None, "8.8.8.8": "US", "8.8.9.9": "US",
                 "8.8.10.1": None, "1.1.1.1": "AU", "1.0.20.1": "JP", "2001:610:ab::1": "NL", "2607:f0ff::1": "CA",
                 "10.0.0.1": None, "not-an-ip": None, "31.45.200.1": "HR", "200.160.17.1": "BR",
                 "196.216.3.255": "ZA", "196.216.1.1": None, "2001:42d0:1::1": "ZA"}
# Public facts of the registries' delegated statistics, stable for decades: RIPE NCC's own
# 193.0.0.0/21 and 2001:67c:2e8::/48 (NL), Google's 8.8.8.0/24 (US), APNIC's 1.0.16.0/20 (JP)
# and 1.1.1.0/24 (AU), NIC.br's 200.160.0.0/20 (BR), Google's 2001:4860::/32 (US).
BUNDLED_CASES = {"193.0.0.1": "NL", "193.0.7.254": "NL", "8.8.8.8": "US", "1.0.16.1": "JP", "1.1.1.1": "AU",
                 "200.160.0.1": "BR", "2001:67c:2e8::1": "NL", "2001:4860:4860::8888": "US", "10.0.0.1": None}


def _config(tmp_path, ratio: str = "0"):
    """Ratio 0: the fixture files' few ranges may replace the bundled table (not so at 0.5)."""
    return build_config({"TRAILS_FILE": str(tmp_path / "trails.csv"), "TRAIL_RELOAD_MIN_RATIO": ratio}, env={})


def _without(*names: str):
    def fetch(url: str) -> bytes:
        if any(f"delegated-{name}-" in url for name in names):
            raise OSError("503 Service Unavailable")
        return _fetch(url)
    return fetch


def test_update_builds_table_and_lookups(tmp_path):
    config = _config(tmp_path)
    report = update_geo(config, _fetch)
    assert report.written and report.records == {"arin": 3, "ripencc": 5, "apnic": 2, "lacnic": 2, "afrinic": 3}
    notes, ranges = read_table(geo_path(config))
    assert notes["built"] == time.strftime("%Y-%m-%d", time.gmtime()) and notes["lacnic"] == "2"
    assert ranges == merge(r for name in RIRS for r in parse_delegated(_fetch(f"/delegated-{name}-extended-latest").decode()))
    table = GeoTable(geo_path(config), fallback=None)
    assert table.available()
    for address, expected in FIXTURE_CASES.items():
        assert table.lookup(address) == expected, address


def test_a_failing_truncated_or_hostile_registry_keeps_the_current_table(tmp_path):
    assert update_geo(_config(tmp_path), _fetch).written
    config = _config(tmp_path, "0.5")
    before = open(geo_path(config), "rb").read()
    messages: list[str] = []
    report = update_geo(config, _without("lacnic"), messages.append, force=True)
    assert not report.written and report.reason == "no records from lacnic" and report.records["lacnic"] == 0
    assert any("lacnic" in m for m in messages) and any("keeping the current table" in m for m in messages)

    def truncated(url: str) -> bytes:  # RIPE NCC's file cut after its first two records (of five)
        body = _fetch(url)
        return b"\n".join(body.splitlines()[:5]) if "ripencc" in url else body

    report = update_geo(config, truncated, force=True)
    assert not report.written and report.reason.startswith("ripencc: the new set has 2 rows, below")

    def hostile(url: str) -> bytes:
        return b"<html>" + b"A" * 10_000 if "arin" in url else _fetch(url)

    assert update_geo(config, hostile, force=True).reason == "no records from arin"
    assert sum(update_geo(config, _without(*RIRS), force=True).records.values()) == 0
    assert open(geo_path(config), "rb").read() == before


def test_merged_ranges_follow_the_size_rule_against_the_bundled_table(tmp_path):
    """No table of the update's yet: five tiny (fixture) files are far below the bundled table."""
    config = _config(tmp_path, "0.5")
    bundled = len(read_table(BUNDLED_TABLE)[1])
    report = update_geo(config, _fetch)
    assert not report.written and f"of the current {bundled:,}" in report.reason
    assert not os.path.exists(geo_path(config))


def test_refreshed_only_when_older_than_30_days(tmp_path):
    config = _config(tmp_path)
    calls: list[str] = []

    def counting(url: str) -> bytes:
        calls.append(url)
        return _fetch(url)

    assert update_geo(config, counting).written and len(calls) == 5
    report = update_geo(config, counting)
    assert not report.written and len(calls) == 5 and report.reason.startswith("the table is 0 days old")
    old = time.time() - MAX_AGE - 60
    os.utime(geo_path(config), (old, old))
    assert update_geo(config, counting).written and len(calls) == 10
    assert update_geo(config, counting, force=True).written and len(calls) == 15
    with gzip.open(geo_path(config), "wt") as handle:  # a table in no format this reader knows
        handle.write("4,16777216,16777471,AU\n")
    assert update_geo(config, counting).written and len(calls) == 20


def test_bundled_table_answers_without_an_update(tmp_path):
    notes, ranges = read_table(BUNDLED_TABLE)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", notes["built"])
    assert len(ranges) > 100_000 and len({r[3] for r in ranges}) > 200
    assert os.path.getsize(BUNDLED_TABLE) < 1 << 20
    table = GeoTable(str(tmp_path / "missing" / "ip2cc.csv.gz"))
    for address, expected in BUNDLED_CASES.items():
        assert table.lookup(address) == expected, address
    config = _config(tmp_path)
    write_table(geo_path(config), [(4, int(ipaddress.ip_address("193.0.0.0")),
                                    int(ipaddress.ip_address("193.0.7.255")), "ZZ")])
    updated = GeoTable(geo_path(config))
    assert updated.lookup("193.0.0.1") == "ZZ" and updated.lookup("8.8.8.8") is None  # the update's table wins


def test_builder_makes_the_table_the_update_makes(tmp_path):
    files = [os.path.join(FIXTURES, f"delegated-{name}-extended-latest") for name in RIRS]
    out = str(tmp_path / "table.gz")
    done = subprocess.run([sys.executable, BUILDER, *files, "--built", "2026-01-02", "-o", out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "15 records -> 12 ranges" in done.stdout
    config = _config(tmp_path)
    update_geo(config, _fetch)
    assert read_table(out)[1] == read_table(geo_path(config))[1] and read_table(out)[0] == {"built": "2026-01-02"}


def test_builder_reads_the_packaged_records(tmp_path):
    """The sdist layout: v4.bin = a u32 per /16 (+1), then u32 starts, u32 ends, codes; v6.bin the
    same without the index, u128 columns. Two IPv4 records and an IPv6 /32."""
    v4 = [(int(ipaddress.ip_address("193.0.0.0")), int(ipaddress.ip_address("193.0.7.255")), b"NL"),
          (int(ipaddress.ip_address("200.160.0.0")), int(ipaddress.ip_address("200.160.15.255")), b"BR")]
    v6_first = int(ipaddress.ip_address("2001:67c::"))
    v6 = [(v6_first, v6_first + (1 << 96) - 1, b"NL")]
    blob4 = bytes(65537 * 4) + b"".join(s.to_bytes(4, "little") for s, _e, _c in v4) + \
        b"".join(e.to_bytes(4, "little") for _s, e, _c in v4) + b"".join(c for _s, _e, c in v4)
    blob6 = b"".join(s.to_bytes(16, "little") for s, _e, _c in v6) + \
        b"".join(e.to_bytes(16, "little") for _s, e, _c in v6) + b"".join(c for _s, _e, c in v6)
    sdist = str(tmp_path / "records.tar.gz")
    with tarfile.open(sdist, "w:gz") as archive:
        for name, blob in (("v4.bin", blob4), ("v6.bin", blob6)):
            info = tarfile.TarInfo(f"pkg-1.0/crate/src/data/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    out = str(tmp_path / "table.gz")
    done = subprocess.run([sys.executable, BUILDER, "--records-sdist", sdist, "-o", out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_table(out)[1] == [(4, *v4[0][:2], "NL"), (4, *v4[1][:2], "BR"), (6, *v6[0][:2], "NL")]


def test_event_country_rule():
    assert event_country("IP", "2.2.2.2", "10.0.0.1", "5.5.5.5") == "2.2.2.2"
    assert event_country("IPORT", "2.2.2.2:80", "10.0.0.1", "5.5.5.5") == "2.2.2.2"
    assert event_country("DNS", "evil.com", "10.0.0.1", "5.5.5.5") is None
    assert event_country("PATH", "/shell.php", "8.8.8.8", "10.0.0.1") == "8.8.8.8"
    assert event_country("PORT", "4444", "8.8.8.8", "10.0.0.1") == "8.8.8.8"
    assert event_country("URL", "evil.com/x", "10.0.0.1", "5.5.5.5") == "5.5.5.5"


def test_geo_and_check_ip_without_an_update(tmp_path):
    """A real server with an empty LOG_DIR and no update run: /geo and /check_ip country from the
    bundled table."""
    srv = Server(str(tmp_path), users=[], udp=False)
    assert not os.path.exists(os.path.join(str(tmp_path), "ip2cc.csv.gz"))
    now = time.time()
    srv.write_events([event_line(now, trail="8.8.8.8", dst="8.8.8.8"),
                      event_line(now, trail="193.0.0.10", dst="193.0.0.10"),
                      event_line(now, kind="URL", trail="evil.com/x", dst="200.160.2.3"),
                      event_line(now, kind="DNS", trail="evil.com", dst="1.1.1.1")])
    with srv:
        result = json.loads(srv.get("/geo")[1])
        assert result["counts"] == {"US": 1, "NL": 1, "BR": 1} and result["mapped"] == 3 and result["unmapped"] == 1
        cookie = srv.login()
        for address, expected in BUNDLED_CASES.items():
            status, body = srv.get(f"/check_ip?address={address}", cookie=cookie)
            assert status == 200 and json.loads(body)["country"] == expected, address


def test_geo_endpoint_counts_by_country(tmp_path):
    srv = Server(str(tmp_path), users=[], udp=False)
    assert update_geo(_config(tmp_path), _fetch).written
    now = time.time()
    srv.write_events([event_line(now, trail="8.8.8.8", dst="8.8.8.8"),
                      event_line(now, trail="2.1.1.1", dst="2.1.1.1"),
                      event_line(now, kind="DNS", trail="evil.com", dst="1.1.1.1"),
                      event_line(now, kind="URL", trail="evil.com/x", dst="1.1.1.1")])
    with srv:
        result = json.loads(srv.get("/geo")[1])
        assert result["counts"] == {"US": 1, "FR": 1, "AU": 1} and result["mapped"] == 3 and result["unmapped"] == 1
        srv.write_events([event_line(now, trail="8.8.8.9", dst="8.8.8.9")])
        result = json.loads(srv.get("/geo")[1])
        assert result["counts"]["US"] == 2 and result["mapped"] == 4
        # counts=0: no day scan, only whether there is a table (the web client counts its own view)
        assert json.loads(srv.get("/geo?counts=0")[1]) == {"counts": {}, "mapped": 0, "unmapped": 0, "home": None,
                                                            "table": True}


def test_an_unreadable_updated_table_falls_back_to_the_bundled_one(tmp_path):
    config = _config(tmp_path)
    path = geo_path(config)
    with open(BUNDLED_TABLE, "rb") as handle:
        body = handle.read()
    with open(path, "wb") as handle:  # a table cut short: its first half
        handle.write(body[:len(body) // 2])
    table = GeoTable(path)
    assert table.lookup("193.0.0.1") == "NL"
    assert update_geo(config, _fetch).written  # and the update rebuilds it, not waiting 30 days
    table.checked = 0.0
    assert table.lookup("193.0.0.1") is None and table.lookup("8.8.8.8") == "US"
