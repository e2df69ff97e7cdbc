"""The trail update end to end: every real feed module against a local server of saved samples, the
merge rules, the grace period, atomic publication, UPDATE_SERVER mode and the CLI."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from core.config import ROOT_DIR, build_config
from core.update.feedrun import discover_feeds
from core.update.merge import MergeStats, Ranges, TrailMerger, normalise_key
from core.update.orchestrate import DATA_DIR, update
from core.update.publish import health_path
from core.update.sanity import TrailRules
from tests.kit.feedserver import FeedServer

BROKEN = {"greensnow": "timeout", "openphish": "html", "binarydefense": "empty"}
KEYS = {"ABUSEIPDB_API_KEY": "k1", "OTX_API_KEY": "k2", "PHISHTANK_API_KEY": "k3"}
REGEX_TRAIL = r"(android-roaming-[a-z]{4}\d?\.com)\?id=\d+"


def read_csv(path: str) -> dict[str, tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert all(len(row) == 3 for row in rows)
    return {row[0]: (row[1], row[2]) for row in rows}


def make_config(tmp_path, **extra):
    custom = tmp_path / "custom"
    custom.mkdir(exist_ok=True)
    (custom / "my_list.txt").write_text("# mine\nasyncrat-c2-panel.net\nhttps://Evil-Custom.example.net/Gate.php\n")
    whitelist = tmp_path / "whitelist.txt"
    whitelist.write_text("adsrvmedia.net\n")
    raw = {"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "USE_FEED_UPDATES": "true", "FEED_TIMEOUT": "2",
           "FEED_CONCURRENCY": "16", "IP_MINIMUM_FEEDS": "3", "CUSTOM_TRAILS_DIR": str(custom),
           "DISABLED_FEEDS": "turris", "DISABLED_TRAILS_INFO_REGEX": "tor exit node",
           "USER_WHITELIST": str(whitelist), **KEYS}
    raw.update(extra)
    return build_config(raw, env={})


def run(config, server, **kwargs):
    kwargs.setdefault("base_url", server.base_url)
    return update(config, retries=2, backoff=0.05, geo=False, **kwargs)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("update")
    config = make_config(tmp_path)
    with FeedServer(behaviours=BROKEN, delay=4.5) as server:
        result = run(config, server)
    return tmp_path, config, result


def test_end_to_end_publishes_merged_trails(first_run):
    _tmp, config, result = first_run
    assert result.published, result.message
    trails = read_csv(config.TRAILS_FILE)
    assert result.rows == len(trails) > 1000
    # IP_MINIMUM_FEEDS: consensus addresses survive with every reference; single-feed ones do not
    info, reference = trails["80.94.95.81"]
    assert reference.startswith("cinsscore.com (+") or "(+" in reference
    assert "abuseipdb.com" in reference and "iplists.firehol.org" in reference
    # low-priority infos (attacker, reputation, ...) never overwrite: the ET C2 entry wins
    assert trails["45.155.205.233"][0] == "potential malware site"
    for single in ("87.251.75.145", "61.177.172.140", "218.92.0.112", "141.98.11.11"):
        assert single not in trails
    # bogons and CDN edges are dropped even with enough feeds behind them
    assert "192.0.2.1" not in trails and "10.0.0.5" not in trails and "104.16.1.1" not in trails
    assert result.dropped.get("bogon", 0) + result.dropped.get("private or reserved address", 0) >= 1
    assert result.dropped["cdn"] >= 1
    # normalisation: scheme, www., query and case
    assert trails["cdn-update-files.com/upd/setup.exe"] == ("malware", "urlhaus.abuse.ch")
    assert trails["malware-drop.net/a.exe"][0] == "malware"
    assert "amadey-gate.top/9bdc8sq/" in trails
    assert trails["lockbit-decryptor-pay.com"][0] == "ransomware (malware)"
    assert "50.16.16.211" not in trails  # a C2 address too needs IP_MINIMUM_FEEDS references
    assert trails["91.92.243.73"][0] == "lumma (malware)"  # botvrij + ET + OTX: later feeds win
    assert trails["91.92.243.73:7000"][0] == "asyncrat (malware)"
    # regex trails keep their `?` (the original cut them at the first one)
    assert trails[REGEX_TRAIL] == ("android roamingmantis (malware)", "(static)")
    # static trails and their precedence
    assert trails["duckdns.org"] == ("dynamic domain (suspicious)", "(static)")
    assert trails["162.142.125.7"] == ("mass scanner", "(static)")
    assert trails["steamcommunlty-trade.shop"][1].startswith("(static)")  # static beats the ET feed
    # custom trails win over static ones
    assert trails["asyncrat-c2-panel.net"][0] == "my list"
    assert trails["asyncrat-c2-panel.net"][1].startswith("(custom)")
    assert trails["evil-custom.example.net/gate.php"] == ("my list", "(custom)")
    # whitelist and DISABLED_TRAILS_INFO_REGEX
    assert "adsrvmedia.net" not in trails and result.dropped["whitelisted"] >= 1
    assert "185.220.101.45" not in trails
    # TLS fingerprints are not names: JA3 and certificate SHA-1 rows reach the sensor
    assert trails["b386946a5a44d1ddcc843bc75336dfce"] == ("dridex ja3 (suspicious)", "sslbl.abuse.ch")
    assert trails["6d9a4a0a4c2f3e1b7e8f5a3b2c1d0e9f8a7b6c5d"][0] == "asyncrat c2 cert (suspicious)"
    # the published file loads in the trail store
    from core.trails.store import TrailStore

    store = TrailStore.open(config.TRAILS_FILE)
    assert store.get("duckdns.org").info == "dynamic domain (suspicious)"
    assert store.ip(socket.inet_aton("91.92.243.73")).info == "lumma (malware)"


def test_health_report_lists_every_feed(first_run):
    _tmp, config, result = first_run
    with open(health_path(config.TRAILS_FILE), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["published"] is True and report["rows"] == result.rows
    feeds = {item["name"]: item for item in report["feeds"]}
    assert set(feeds) == set(discover_feeds())
    assert feeds["greensnow"]["status"] == "failed" and "connection failed" in feeds["greensnow"]["error"]
    assert feeds["openphish"]["status"] == "failed" and "HTML page" in feeds["openphish"]["error"]
    assert feeds["binarydefense"]["status"] == "failed" and "empty" in feeds["binarydefense"]["error"]
    assert feeds["turris"] == {**feeds["turris"], "status": "disabled", "error": "DISABLED_FEEDS"}
    assert feeds["torproject"]["status"] == "disabled"
    healthy = [name for name, item in feeds.items() if item["status"] == "ok"]
    assert len(healthy) == len(feeds) - 5
    for name in healthy:
        assert feeds[name]["rows"] > 0 and feeds[name]["seconds"] >= 0 and feeds[name]["error"] is None


def test_failed_feed_keeps_its_trails_for_the_grace_period(first_run, tmp_path):
    first_tmp, config, _result = first_run
    with FeedServer(behaviours={**BROKEN, "ciarmy": "503"}) as server:
        again = run(config, server, force=True)
        assert again.published
        status = {item.name: item for item in again.feeds}["ciarmy"]
        assert status.status == "stale" and status.rows == 6 and "HTTP 503" in status.error
        assert "cinsscore.com" in read_csv(config.TRAILS_FILE)["80.94.95.81"][1]
        expired = run(config.replace(FEED_GRACE_PERIOD=0), server, force=True)
    status = {item.name: item for item in expired.feeds}["ciarmy"]
    assert status.status == "failed" and "older than FEED_GRACE_PERIOD" in status.error
    assert "cinsscore.com" not in read_csv(config.TRAILS_FILE)["80.94.95.81"][1]


def test_small_or_empty_result_is_not_published(first_run, tmp_path):
    _tmp, config, _result = first_run
    before = os.stat(config.TRAILS_FILE)
    os.utime(config.TRAILS_FILE, (0, 0))  # make it stale so the rebuild runs without --force
    refused = update(config.replace(TRAIL_RELOAD_MIN_RATIO=0.99), offline=True, geo=False)
    assert not refused.published and "TRAIL_RELOAD_MIN_RATIO" in refused.message
    after = os.stat(config.TRAILS_FILE)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert not [name for name in os.listdir(os.path.dirname(config.TRAILS_FILE)) if name.endswith(".tmp")]
    empty = update(config.replace(CUSTOM_TRAILS_DIR=str(tmp_path), TRAILS_FILE=str(tmp_path / "e.csv")),
                   offline=True, geo=False, static_dir=str(tmp_path / "none"))
    assert not empty.published and "empty" in empty.message and not os.path.exists(tmp_path / "e.csv")
    forced = update(config, offline=True, force=True, geo=False)
    assert forced.published and forced.rows < refused.previous_rows


def test_up_to_date_file_is_not_rebuilt(tmp_path):
    config = make_config(tmp_path, USE_FEED_UPDATES="false")
    assert update(config, geo=False).published
    assert update(config, geo=False).message == "trails are up to date"
    assert update(config, geo=False, scheduled=True).message == "trails are up to date"
    assert "DISABLE_TRAIL_UPDATES" in update(config.replace(DISABLE_TRAIL_UPDATES=True), scheduled=True).message


def test_readers_never_see_a_partial_file(tmp_path):
    config = make_config(tmp_path, USE_FEED_UPDATES="false")
    assert update(config, geo=False).published
    expected = len(read_csv(config.TRAILS_FILE))
    stop = threading.Event()
    seen: list[int] = []

    def reader():
        while not stop.is_set():
            with open(config.TRAILS_FILE, encoding="utf-8", newline="") as handle:
                data = handle.read()
            assert data.endswith("\n")
            seen.append(len(data.splitlines()))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(4):
            assert update(config, force=True, offline=True, geo=False).published
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) == {expected}


def test_update_server_mode(tmp_path):
    good = tmp_path / "served.csv"
    good.write_text("evil.example.org,remote (malware),(static)\n1.2.3.4,known attacker,x.org\nbroken row\n")
    config = make_config(tmp_path, UPDATE_SERVER="http://192.0.2.10:8338/trails")
    with FeedServer(files={"update_server": str(good)}) as server:
        result = run(config, server)
        assert result.published and result.rows == 2 and "1 malformed" in result.message
        assert read_csv(config.TRAILS_FILE)["evil.example.org"] == ("remote (malware)", "(static)")
        [(feed, url, _headers)] = server.requests
        assert feed == "update_server" and url == "http://192.0.2.10:8338/trails"
    with FeedServer(behaviours={"update_server": "html"}) as server:
        result = run(config, server)
    assert not result.published and "HTML" in result.message
    assert len(read_csv(config.TRAILS_FILE)) == 2


def test_custom_trails_url(tmp_path):
    body = tmp_path / "remote.txt"
    body.write_text("# remote list\nremote-bad.example.com\n45.67.89.0/30\n")
    config = make_config(tmp_path, USE_FEED_UPDATES="false", CUSTOM_TRAILS_URL="http://lists.invalid/a.txt")
    with FeedServer(files={"custom_url": str(body)}) as server:
        result = run(config, server, force=True)
    trails = read_csv(config.TRAILS_FILE)
    assert trails["remote-bad.example.com"] == ("blacklisted", "(remote custom)")
    assert trails["45.67.89.3"] == ("blacklisted", "(remote custom)")
    assert any(item.name == "(remote custom)" and item.rows == 5 for item in result.feeds)


def test_merge_rules_directly():
    merger = TrailMerger()
    merger.add("1.1.1.1", "known attacker", "a.org")
    merger.add("1.1.1.1", "asyncrat (malware)", "b.org")  # a non-low-priority info overwrites
    merger.add("1.1.1.1", "bad reputation", "c.org")  # low priority: kept, reference collected
    merger.add("WWW.Example.COM", "phishing", "d.org")
    merger.add("example.com", "spammer", "e.org")
    merger.add("example.com", "suspicious thing", "(static)")  # static wins
    merger.add("example.com", "crawler", "f.org")
    merger.add("parked.test", "x", "(static)")
    merger.add("8.8.4.4", "mass scanner", "(static)")
    merger.add("8.8.4.4", "known attacker", "g.org")
    merger.add("8.8.4.4", "something", "(static)")
    merger.add("8.8.4.4", "ipinfo (suspicious)", "h.org")  # ipinfo/mass scanner always win
    merger.add("com", "tld", "i.org")
    merger.add("192.0.2.55", "parking site (suspicious)", "(static)")
    merger.add("192.0.2.56", "malicious", "(static)")
    merger.add("300.1.2.3", "x", "(static)")
    merger.add("9.9.9.9", "malware", "(static)")
    merger.add("a.com/x//y?q=1", "m", "(static)")
    merger.add("/path?q=1", "m", "(static)")
    merger.add(r"(evil-[A-Z]\D)\?x", "m", "(static)")
    merger.add("bücher-böse.de", "m", "(static)")
    config = build_config({"IP_MINIMUM_FEEDS": "3"}, env={})
    stats = MergeStats()
    from core.trails.whitelist import Whitelist

    rows = {key: (info, ref) for key, info, ref in merger.rows(config, Whitelist(), Ranges(["192.0.2.0/24"]),
                                                             Ranges(), stats, TrailRules.load(DATA_DIR))}
    assert rows["1.1.1.1"] == ("asyncrat (malware)", "b.org (+a.org,c.org)")
    assert rows["example.com"][0] == "suspicious thing" and rows["example.com"][1].startswith("(static) (+")
    assert rows["8.8.4.4"][0] == "ipinfo (suspicious)"
    assert "com" not in rows and stats.dropped["tld-like"] == 1
    assert "192.0.2.55" in rows and "192.0.2.56" not in rows  # parking is exempt from the bogon filter
    assert "300.1.2.3" not in rows and stats.dropped["bad octet"] == 1
    assert rows["9.9.9.9"][0] == "potential malware site"
    assert "a.com/x/y" in rows and "/path?q=1" in rows
    assert r"(evil-[a-z]\D)\?x" in rows  # lower-cased, escapes and `?` untouched
    assert "xn--bcher-bse-q9a6a.de" in rows or any(key.startswith("xn--") for key in rows)
    assert normalise_key("  ") is None and normalise_key("x" * 3000) is None


def test_cli_offline_and_help(tmp_path):
    conf = tmp_path / "maltrail.conf"
    conf.write_text(f"TRAILS_FILE {tmp_path / 'cli.csv'}\nCUSTOM_TRAILS_DIR {tmp_path}\n")
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, os.path.join(ROOT_DIR, "core", "update"), "-c", str(conf),
                           "--offline", "--force", "--no-geo"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "published" in done.stdout and (tmp_path / "cli.csv").stat().st_size > 0
    assert (tmp_path / "cli.health.json").exists()
    helped = subprocess.run([sys.executable, "-m", "core.update", "--help"], capture_output=True, text=True,
                            cwd=ROOT_DIR, timeout=60)
    assert helped.returncode == 0 and "--offline" in helped.stdout
    bad = subprocess.run([sys.executable, os.path.join(ROOT_DIR, "core", "update"), "-c",
                          str(tmp_path / "missing.conf")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "configuration error" in bad.stderr


def test_update_refreshes_geo_tables_from_the_registries(tmp_path):
    """The update's geo refresh end to end: saved RIR files served locally; then, forced, with two
    registries failing (a 503 and an empty body), which keeps the table."""
    from core.update.geo import GeoTable, geo_path, read_table

    geo_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "geo")
    rirs = ("arin", "ripencc", "apnic", "lacnic", "afrinic")
    files = {f"geo-{rir}": os.path.join(geo_dir, f"delegated-{rir}-extended-latest") for rir in rirs}
    # ratio 0: the fixtures' dozen ranges may replace the bundled table (tests/test_geo.py covers the rule)
    config = make_config(tmp_path, USE_FEED_UPDATES="false", TRAIL_RELOAD_MIN_RATIO="0")
    said: list[str] = []
    with FeedServer(files=files) as server:
        result = update(config, base_url=server.base_url, retries=1, backoff=0.05, printer=said.append)
    assert result.published, result.message
    assert "geo table refreshed from 5 registries (15 records)" in said, said
    table = GeoTable(geo_path(config), fallback=None)
    assert table.lookup("8.8.8.8") == "US" and table.lookup("200.160.1.1") == "BR"
    before = read_table(geo_path(config))
    said.clear()
    with FeedServer(files=files, behaviours={"geo-lacnic": "503", "geo-afrinic": "empty"}) as server:
        update(config, force=True, base_url=server.base_url, retries=1, backoff=0.05, printer=said.append)
    assert "geo table kept: no records from lacnic, afrinic" in said, said
    assert read_table(geo_path(config)) == before


@pytest.mark.parametrize("current,new,allow_empty,refused", [
    (0, 0, False, True), (0, 0, True, False), (100, 0, True, True), (100, 49, False, True),
    (100, 50, False, False), (100, 500, False, False), (0, 5, False, False),
])
def test_one_size_rule_for_the_update_and_the_sensor_reload(tmp_path, current, new, allow_empty, refused):
    """The update's publication and a running sensor's reload refuse exactly the same replacements."""
    from core.ops.reload import acceptable
    from core.update.orchestrate import publish_refusal

    config = make_config(tmp_path, TRAIL_RELOAD_MIN_RATIO="0.5", ALLOW_EMPTY_TRAILS=str(allow_empty).lower())
    ok, _why = acceptable(current, new, config)
    assert ok is not refused
    if not allow_empty:
        assert (publish_refusal(config, new, current, force=False) is not None) is refused
    assert publish_refusal(config, new, current, force=True) is None


def test_feed_modules_may_take_the_context_or_not():
    """The feed runner accepts `fetch(ctx)` (this project's modules) and `fetch()` (no context)."""
    from core.update.feedrun import call_fetch
    from core.update.feeds import FeedContext

    ctx = FeedContext()
    assert call_fetch(lambda c: {"a.example": ("x", c.__class__.__name__)}, ctx) == {"a.example": ("x", "FeedContext")}
    assert call_fetch(lambda: {"b.example": ("y", "z")}, ctx) == {"b.example": ("y", "z")}
