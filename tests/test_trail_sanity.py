"""Trail sanity at update time: the rows that can never fire are counted, and domain or regex trails
that fire on a popular (canary) domain are refused by name, with the top-sites list served from a
local HTTP server (a hostile or truncated answer never replaces the last good copy), the bundled
seed offline, and both counts in the health report and `sensor.py -T`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from core.config import ROOT_DIR, build_config
from core.update.canary import CANARY_NAME, Canaries, canary_hits, parse_top_list
from core.update.orchestrate import update
from core.update.publish import health_path
from tests.kit.feedserver import FeedServer

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lists", "majestic_million.csv")
GREEDY_REGEX = r"g[a-z]{5}\.com"  # meant for look-alikes, fires on github.com and google.com
STATIC = {
    "suspicious/look_alike.txt": [GREEDY_REGEX, "amazonaws.com", "sharepoint.com", "cdn.adsrvmedia.net",
                                  "printer.local", "ä" * 70 + ".com", "bad..name.com", "evil-lookalike.net"],
    "suspicious/dynamic_domain.txt": ["duckdns.org"],
}


def read_csv(path: str) -> dict[str, tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {row[0]: (row[1], row[2]) for row in csv.reader(handle)}


@pytest.fixture()
def setup(tmp_path):
    static = tmp_path / "static"
    for name, rows in STATIC.items():
        path = static / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Reference: https://example.org/\n" + "\n".join(rows) + "\n", encoding="utf-8")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "watched.txt").write_text("reddit.com\n")  # the operator's own list is not second-guessed
    (tmp_path / "whitelist.txt").write_text("adsrvmedia.net\n")
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    config = build_config({"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "USE_FEED_UPDATES": "true",
                           "FEED_TIMEOUT": "2", "CUSTOM_TRAILS_DIR": str(custom),
                           "USER_WHITELIST": str(tmp_path / "whitelist.txt")}, env={})
    return config, str(static), str(feeds)


def run(config, static, feeds, server=None, **kwargs):
    lines: list[str] = []
    result = update(config, force=True, static_dir=static, feeds_dir=feeds, retries=1, backoff=0.01, geo=False,
                    base_url=server.base_url if server else None, printer=lines.append, **kwargs)
    return result, lines


def test_canary_refusals_name_the_trail_and_source_and_never_match_is_counted(setup):
    config, static, feeds = setup
    with FeedServer(files={CANARY_NAME: SAMPLE}) as server:
        result, lines = run(config, static, feeds, server)
    assert result.published, result.message
    trails = read_csv(config.TRAILS_FILE)
    refused = {item["trail"]: item for item in result.canary["trails"]}
    assert refused == {
        GREEDY_REGEX: {"trail": GREEDY_REGEX, "source": "(static)", "canary": "github.com"},
        "amazonaws.com": {"trail": "amazonaws.com", "source": "(static)", "canary": "amazonaws.com"},
        "sharepoint.com": {"trail": "sharepoint.com", "source": "(static)", "canary": "sharepoint.com"},
    }
    assert result.canary["status"] == "ok" and result.canary["fetched"] == 162 and result.canary["refused"] == 3
    for trail in refused:
        assert trail not in trails
    # a provider's own name is not reported by the sensor (dynamic DNS), the operator's list is theirs
    assert "duckdns.org" in trails and trails["reddit.com"][1] == "(custom)" and "evil-lookalike.net" in trails
    assert result.never_match == {"bad domain": 1, "ignored suffix in DNS (kept)": 1, "invalid key": 1, "whitelisted": 1}
    assert "printer.local" in trails  # HTTP Host and TLS SNI still check it
    assert result.dropped["fires on a popular domain"] == 3
    assert f"  refused {GREEDY_REGEX} from (static): fires on github.com" in lines
    assert "never match: 4 rows (1 bad domain, 1 ignored suffix in DNS (kept), 1 invalid key, 1 whitelisted)" in lines
    with open(health_path(config.TRAILS_FILE), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["never_match"] == result.never_match and report["canary"]["refused"] == 3

    # a hostile answer (an HTML page) or a truncated list never replaces the last good copy
    for behaviour, files in (({CANARY_NAME: "html"}, {}), ({}, {CANARY_NAME: __file__})):
        with FeedServer(behaviours=behaviour, files=files) as server:
            again, _ = run(config, static, feeds, server)
        assert again.canary["status"] == "stale" and again.canary["fetched"] == 162, again.canary
        assert "sharepoint.com" in {item["trail"] for item in again.canary["trails"]}

    # `sensor.py -T` shows both counts of the last update
    proc = subprocess.run([sys.executable, os.path.join(ROOT_DIR, "sensor.py"), "-T"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MALTRAIL_TRAILS_FILE": config.TRAILS_FILE,
                                            "MALTRAIL_DISABLE_CHECK_SUDO": "true", "MALTRAIL_LOG_DIR": static})
    assert "[ok] trail sanity (last update): never match: 4 rows" in proc.stdout, proc.stdout + proc.stderr
    assert "canary: 3 trails refused for firing on one of" in proc.stdout


def test_offline_update_checks_the_bundled_seed(setup):
    config, static, feeds = setup
    result, _ = run(config, static, feeds, offline=True)
    assert result.published, result.message
    assert {item["trail"] for item in result.canary["trails"]} == {GREEDY_REGEX, "amazonaws.com"}
    assert result.canary["fetched"] == 0 and result.canary["seed"] > 100
    assert "sharepoint.com" in read_csv(config.TRAILS_FILE)  # only the fetched list has it


def test_parse_top_list_formats():
    assert parse_top_list(["1,1,www.Google.com,com,1", "2,github.com", "wikipedia.org.", "x", "3,1,a..b,com"]) == \
        ["google.com", "github.com", "wikipedia.org"]
    assert parse_top_list((f"{i},n{i}.example.com" for i in range(50)), top=10)[-1] == "n9.example.com"


def test_parent_walk_and_exemptions():
    rows = {"blogspot.com": ("free web hosting (suspicious)", "(static)"),
            "evil.com": ("malware", "feed.example"),
            "ns1.example.com": ("x", "y"),
            "example.com": ("sinkhole (suspicious)", "feed.example"),
            "bad[0-9]+\\.example\\.net": ("malware", "feed.example")}
    names = frozenset({"blogspot.com", "www.evil.com", "ns1.example.com", "bad42.example.net"})
    report = canary_hits(rows, Canaries(names, "test"))
    # free hosting: its own name is exempt; evil.com fires on a child; the sinkhole trail does not
    # fire on an ns1. name; the regex fires on its match
    assert {hit.trail: hit.canary for hit in report.hits.values()} == {
        "evil.com": "www.evil.com", "ns1.example.com": "ns1.example.com",
        "bad[0-9]+\\.example\\.net": "bad42.example.net"}
