"""Poisoned and broken trail updates (the attacks of an adversary who controls or cuts a source),
run against the real update with its sources served by a local HTTP server: nothing unsafe is
published, a cut or half-served source does not shrink the set, and a ratchet of small cuts stops."""

from __future__ import annotations

import csv

import pytest

from core.config import build_config
from core.trails.store import TrailStore
from core.update.feedrun import FeedCache, FeedStatus, keep_good_copy
from core.update.orchestrate import DATA_DIR, UpdateStatus, update
from core.update.sanity import TrailRules
from tests.kit.feedserver import FeedServer

POISON = ["com", "*", ".", "0.0.0.0/0", "10.0.0.0/8", "1.0.0.0/8", "<script>alert(1)</script>", "evil\x00.com", "co.uk",
          ".*", "[a-z]+", "127.0.0.1", "::1", "fe80::1", "224.0.0.1", "a..b.com", "-bad-.com", "/",
          "ua:", "ua:Mozilla/5.0", "ua:mozilla", "ua:-", "ua:Evil\x00Bot/1.0", "ua:Evil\tBot/1.0",
          "ua:" + "A" * 1100]
GOOD = ["evil-c2.example.net", "9f2a5c7e1b3d4f6a8c0e2b4d6f8a0c2e4b6d8f0a", "72a589da586844d7f0818ce684948eea", "1.2.3.4", "5.63.151.0/24", "/.ku/sj'x.php", "evil.co.uk", "5.6.7.8:4444", "/gate.php", "bad.example.org/x/y.php",
        r"(android-roaming-[a-z]{4}\d?\.com)\?id=\d+", "2a00:1450::1", "xn--bcher-kva.example",
        "ua:Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1)", "ua:${jndi:ldap://x.example/a}", "ua:sqlmap/1.7"]


@pytest.mark.parametrize("key", POISON)
def test_sanity_rules_reject_poison(key):
    assert TrailRules.load(DATA_DIR).reject(key, "malware", "(remote custom)") is not None


@pytest.mark.parametrize("key", GOOD)
def test_sanity_rules_keep_real_trails(key):
    assert TrailRules.load(DATA_DIR).reject(key, "malware", "feed.example") is None


def test_operator_local_lists_may_name_a_suffix():
    rules = TrailRules.load(DATA_DIR)
    assert rules.reject("co.uk", "x", "(custom)") is None  # the operator's own list, as the original allows
    assert rules.reject("co.uk", "x", "(remote custom)") == "public suffix"


def _server_body(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _config(tmp_path, **extra):
    raw = {"TRAILS_FILE": str(tmp_path / "out" / "trails.csv"), "UPDATE_SERVER": "http://trails.example/trails.csv",
           "FEED_TIMEOUT": "2", "TRAIL_RELOAD_MIN_RATIO": "0.5", "CUSTOM_TRAILS_DIR": str(tmp_path / "none")}
    raw.update(extra)
    return build_config(raw, env={})


def _pull(config, body_path):
    with FeedServer(files={"update_server": str(body_path)}) as server:
        return update(config, base_url=server.base_url, retries=1, backoff=0.05, geo=False, force=False)


def _good_rows(n):
    return [(f"c2-{i}.evil.example", "malware", "srv") for i in range(n)]


def test_update_server_rows_are_validated_like_every_other_source(tmp_path):
    body = tmp_path / "body.csv"
    _server_body(body, _good_rows(2000) + [(key, "malware", "srv") for key in POISON])
    config = _config(tmp_path)
    result = _pull(config, body)
    assert result.status is UpdateStatus.PUBLISHED, result.message
    assert result.rows == 2000
    assert sum(result.rejected["UPDATE_SERVER"].values()) == len(POISON)
    store = TrailStore.open(config.TRAILS_FILE)
    try:
        for key in ("com", ".", "co.uk", "127.0.0.1"):
            assert store.get(key) is None and store.lookup_key(key) is None
        assert store.match_regex("example.com") is None
        assert store.get("c2-7.evil.example") is not None
    finally:
        store.close()


def test_a_cut_body_and_a_ratchet_of_cuts_are_refused(tmp_path):
    config = _config(tmp_path)
    body = tmp_path / "body.csv"
    _server_body(body, _good_rows(2000))
    assert _pull(config, body).status is UpdateStatus.PUBLISHED
    _server_body(body, _good_rows(2000)[:987])  # cut at a line boundary: about half
    cut = _pull(config, body)
    assert cut.status is UpdateStatus.REFUSED and "UPDATE_SERVER" in cut.message and "2,000" in cut.message
    _server_body(body, _good_rows(1100))  # 55%: allowed once...
    assert _pull(config, body).status is UpdateStatus.PUBLISHED
    _server_body(body, _good_rows(600))  # ...but the next 55% step is measured against the baseline, 2,000
    ratchet = _pull(config, body)
    assert ratchet.status is UpdateStatus.REFUSED, ratchet.message
    assert "baseline" in ratchet.message and "1,100" in ratchet.message
    with open(config.TRAILS_FILE, encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 1100


def test_a_half_served_feed_is_replaced_by_its_last_good_copy(tmp_path):
    cache = FeedCache(str(tmp_path / "feeds"))
    full = {f"10{i}.evil.example": ("malware", "f") for i in range(1000)}
    status = FeedStatus("f", "ok")
    assert keep_good_copy("f", dict(full), status, cache, 3600, 0.5) == full and status.status == "ok"
    half = dict(list(full.items())[:400])
    status = FeedStatus("f", "ok", rows=400)
    kept = keep_good_copy("f", half, status, cache, 3600, 0.5)
    assert kept == full and status.status == "shrunk" and "1,000" in (status.error or "")
    assert cache.row_count("f") == 1000  # the cut answer never replaces the good copy
    # past the grace period the smaller answer is all there is, and it is said
    status = FeedStatus("f", "ok", rows=400)
    assert keep_good_copy("f", half, status, cache, -1, 0.5) == half and "no last good copy" in (status.error or "")
