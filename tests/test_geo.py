"""Address -> country table from RIR delegated statistics (fixture files), and /geo on a real server."""

from __future__ import annotations

import json
import os
import time

from core.config import build_config
from core.update.geo import GeoTable, event_country, geo_path, merge, parse_delegated, update_geo
from tests.kit.server import Server, event_line

FIXTURES = os.path.join(os.path.dirname(__file__), "data", "geo")


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


def test_update_builds_table_and_lookups(tmp_path):
    config = build_config({"TRAILS_FILE": str(tmp_path / "trails.csv")}, env={})
    messages: list[str] = []
    report = update_geo(config, _fetch, messages.append)
    assert report["ripencc"] == 5 and report["arin"] == 3 and report["apnic"] == 2 and report["lacnic"] == 0
    assert any("lacnic" in m for m in messages)
    table = GeoTable(geo_path(config))
    assert table.available()
    cases = {"2.15.255.255": "FR", "5.1.1.200": "DE", "5.2.0.1": None, "8.8.8.8": "US", "8.8.9.9": "US",
             "8.8.10.1": None, "1.1.1.1": "AU", "1.0.20.1": "JP", "2001:610:ab::1": "NL",
             "2607:f0ff::1": "CA", "10.0.0.1": None, "not-an-ip": None, "31.45.200.1": "HR"}
    for address, expected in cases.items():
        assert table.lookup(address) == expected, address


def test_every_rir_failing_keeps_the_old_table(tmp_path):
    config = build_config({"TRAILS_FILE": str(tmp_path / "trails.csv")}, env={})
    update_geo(config, _fetch)
    before = os.path.getsize(geo_path(config))

    def broken(url):
        raise OSError("offline")

    assert sum(update_geo(config, broken).values()) == 0
    assert os.path.getsize(geo_path(config)) == before


def test_event_country_rule():
    assert event_country("IP", "2.2.2.2", "10.0.0.1", "5.5.5.5") == "2.2.2.2"
    assert event_country("IPORT", "2.2.2.2:80", "10.0.0.1", "5.5.5.5") == "2.2.2.2"
    assert event_country("DNS", "evil.com", "10.0.0.1", "5.5.5.5") is None
    assert event_country("PATH", "/shell.php", "8.8.8.8", "10.0.0.1") == "8.8.8.8"
    assert event_country("PORT", "4444", "8.8.8.8", "10.0.0.1") == "8.8.8.8"
    assert event_country("URL", "evil.com/x", "10.0.0.1", "5.5.5.5") == "5.5.5.5"


def test_geo_endpoint_counts_by_country(tmp_path):
    srv = Server(str(tmp_path), users=[], udp=False)
    config = build_config({"TRAILS_FILE": os.path.join(str(tmp_path), "trails.csv")}, env={})
    update_geo(config, _fetch)
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
