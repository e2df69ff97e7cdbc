"""Fuller data sets: the published User-Agent list and whitelist fetched at update time from a local
HTTP server, hostile entries refused, a broken answer never replacing the good copy, and the
sensor using the fetched entries next to the bundled ones."""

from __future__ import annotations

import os

from core.config import build_config
from core.trails.whitelist import Whitelist
from core.update.orchestrate import DATA_DIR, update
from core.update.publish import list_path
from tests.kit import T0, SensorKit
from tests.kit import pcapgen as g
from tests.kit.feedserver import FeedServer

LISTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lists")
FILES = {"list-ua": os.path.join(LISTS, "ua.txt"), "list-whitelist": os.path.join(LISTS, "whitelist.txt")}
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def make(tmp_path):
    static = tmp_path / "static" / "malware"
    static.mkdir(parents=True)
    static.joinpath("sample.txt").write_text("# Reference: https://example.org/\nevil.cdn-sample-7.net\nkept-evil.example.org\n")
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    config = build_config({"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "USE_FEED_UPDATES": "true",
                           "FEED_TIMEOUT": "2"}, env={})
    return config, str(tmp_path / "static"), str(feeds)


def run(config, static, feeds, server):
    lines: list[str] = []
    result = update(config, force=True, static_dir=static, feeds_dir=feeds, retries=1, backoff=0.01, geo=False,
                    base_url=server.base_url, printer=lines.append)
    return result, lines


def ua_request(agent: str) -> bytes:
    return g.ether(g.ipv4("10.0.0.5", "93.184.216.34", g.tcp(40000, 80, 0x18, g.http_request(
        "GET", "/", {"User-Agent": agent}, host="plain.example"))))


def test_lists_are_fetched_checked_kept_and_used(tmp_path):
    config, static, feeds = make(tmp_path)
    with FeedServer(files=FILES) as server:
        result, lines = run(config, static, feeds, server)
    assert result.published, result.message
    ua, wl = result.lists["ua"], result.lists["whitelist"]
    assert ua["status"] == "ok" and ua["entries"] == 132 and ua["dropped"] == {"too broad": 3, "malformed": 1}
    assert wl["status"] == "ok" and wl["entries"] == 112 and wl["dropped"] == {"too broad": 3, "malformed": 3}
    assert any(line.startswith("list ua: 132 fetched entries [ok] + 251 bundled, 4 entries refused") for line in lines)
    # the whitelist additions already apply to this run's trails
    with open(config.TRAILS_FILE, encoding="utf-8") as handle:
        published = handle.read()
    assert "kept-evil.example.org" in published and "evil.cdn-sample-7.net" not in published
    assert Whitelist.load(config).domain("x.cdn-sample-42.net")
    entries = open(list_path(config.TRAILS_FILE, "ua"), encoding="utf-8").read().splitlines()
    assert r"Mozilla/4\.0\ \(compatible;\ evil\-loader\ 1\.0\)" in entries and ".*" not in entries

    # the sensor reads them next to the bundled list
    kit = SensorKit(folder=str(tmp_path / "kit"), USE_HEURISTICS=True, TRAILS_FILE=config.TRAILS_FILE,
                    EVENT_THROTTLE_MODE="off")
    bundled = {line.rstrip("\n") for line in open(os.path.join(DATA_DIR, "ua.txt"), encoding="utf-8")
               if line.strip() and not line.startswith("#")}
    assert kit.detector.heuristics.patterns.ua_count == len(bundled | set(entries)) > 251 + 100
    hits = kit.feed(ua_request("testbot-77/3 (linux)"), T0) + kit.feed(ua_request(BROWSER), T0 + 1)
    hits += kit.feed(ua_request("Mozilla/4.0 (compatible; evil-loader 1.0)"), T0 + 2)
    kit.close()
    assert [e.info for e in kit.events] == ["user agent (suspicious)"] * 2, hits
    bundled_only = SensorKit(folder=str(tmp_path / "b"), USE_HEURISTICS=True,
                             TRAILS_FILE=str(tmp_path / "elsewhere" / "trails.csv"), EVENT_THROTTLE_MODE="off")
    bundled_only.feed(ua_request("testbot-77/3 (linux)"), T0)
    bundled_only.close()
    assert bundled_only.events == []

    # a hostile (HTML) or truncated answer never replaces the good copy
    short = tmp_path / "short.txt"
    short.write_text("sqlmap\nnikto\n")
    for behaviours, files in (({"list-ua": "html", "list-whitelist": "503"}, {}),
                              ({}, {"list-ua": str(short), "list-whitelist": str(short)})):
        with FeedServer(behaviours=behaviours, files=files) as server:
            again, _ = run(config, static, feeds, server)
        assert again.lists["ua"]["status"] == "stale" and again.lists["ua"]["entries"] == 132, again.lists
        assert again.lists["whitelist"]["status"] == "stale" and again.lists["whitelist"]["entries"] == 112
        assert len(open(list_path(config.TRAILS_FILE, "ua"), encoding="utf-8").read().splitlines()) == 132


def test_offline_update_fetches_nothing(tmp_path):
    config, static, feeds = make(tmp_path)
    result = update(config, force=True, offline=True, static_dir=static, feeds_dir=feeds, geo=False)
    assert result.published and result.lists == {}
    assert not os.path.exists(list_path(config.TRAILS_FILE, "ua"))
    assert os.path.isfile(os.path.join(DATA_DIR, "ua.txt"))
