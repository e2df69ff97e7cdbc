"""Every feed module in trails/feeds/ run for real against its saved sample, plus the fetch/parse helpers."""

from __future__ import annotations

import importlib
import re

import pytest

from core.update.feedrun import discover_feeds
from core.update.feeds import (
    FeedContext,
    FeedError,
    domains_in_lines,
    expand_cidr,
    ips_in_lines,
    strip_scheme,
    urls_in_lines,
)
from tests.kit.feedserver import FeedServer, sample_path

FEEDS = discover_feeds()
KEYS = {"ABUSEIPDB_API_KEY": "test-abuseipdb", "OTX_API_KEY": "test-otx", "PHISHTANK_API_KEY": "test-phishtank"}


@pytest.fixture(scope="module")
def server():
    with FeedServer() as feed_server:
        yield feed_server


def context(server: FeedServer, name: str, **changes) -> FeedContext:
    settings = {"timeout": 5, "retries": 2, "backoff": 0.05, "api_keys": KEYS, "base_url": server.base_url}
    base = FeedContext(**{**settings, **changes})
    return base.for_feed(name)


def test_at_least_seventy_distinct_feeds():
    assert len(FEEDS) >= 70
    urls = {importlib.import_module(f"trails.feeds.{name}").__url__ for name in FEEDS}
    assert len(urls) == len(FEEDS)


@pytest.mark.parametrize("name", FEEDS)
def test_module_contract_and_documentation(name):
    module = importlib.import_module(f"trails.feeds.{name}")
    for attribute in ("__url__", "__check__", "__info__", "__reference__"):
        assert isinstance(getattr(module, attribute), str) and getattr(module, attribute), attribute
    assert callable(module.fetch)
    for section in ("Source:", "Terms:", "Format:", "Category:"):
        assert section in (module.__doc__ or ""), f"{name} docstring lacks {section}"
    path = sample_path(name)
    assert path, f"no sample body for {name} in tests/data/feeds/"
    with open(path, encoding="utf-8") as handle:
        assert module.__check__ in handle.read(), "the sample must pass the module's own sanity check"


@pytest.mark.parametrize("name", FEEDS)
def test_feed_parses_its_sample(server, name):
    module = importlib.import_module(f"trails.feeds.{name}")
    ctx = context(server, name)
    try:
        trails = module.fetch(ctx)
    finally:
        ctx.close()
    assert isinstance(trails, dict) and trails, f"{name} parsed nothing from its sample"
    for key, value in trails.items():
        assert isinstance(key, str) and key == key.strip() and key, key
        assert not re.search(r"[\s,]", key) or name == "statics", key
        info, reference = value
        assert info and reference
        if name != "statics":
            assert reference == module.__reference__
    # the request went through the real URL (rewritten to the local server)
    assert any(feed == name for feed, _url, _headers in server.requests)


def test_feed_specific_parsing(server):
    def run(name):
        ctx = context(server, name)
        try:
            return importlib.import_module(f"trails.feeds.{name}").fetch(ctx)
        finally:
            ctx.close()

    feodo = run("feodotrackerip")
    assert feodo["50.16.16.211"] == ("qakbot (malware)", "feodotracker.abuse.ch")
    assert "162.243.103.246" not in feodo  # offline rows are skipped
    threatfox = run("threatfox")
    assert threatfox["91.92.243.73:7000"][0] == "asyncrat (malware)"
    assert threatfox["cobalt-beacon-cdn.com"][0] == "cobalt strike (malware)"
    assert threatfox["stealc-panel.xyz/2a3b4c5d6e.php"][0] == "stealc (malware)"
    assert not any(len(key) == 64 for key in threatfox)  # hashes are not trails
    assert run("sslblcert")["6d9a4a0a4c2f3e1b7e8f5a3b2c1d0e9f8a7b6c5d"][0] == "asyncrat c2 cert (suspicious)"
    assert run("sslblip")["91.92.243.73:8443"][0] == "c2 server (malware)"
    dns = run("emergingthreatsdns")
    assert dns["steamcommunlty-trade.shop"][0] == "lumma stealer (malware)"
    assert dns["kindlyupdate.top"][0] == "darkgate (malware)"  # |2e| decoded, leading dot dropped
    assert "notadomain" not in dns
    assert set(run("emergingthreatsbot")) == {"45.155.205.233", "91.92.243.73", "185.224.128.17"}
    nodes = run("torprojectnodes")
    assert "2a0b:f4c2:2::34" in nodes and "95.216.163.36" in nodes
    assert set(run("ipsum")) == {"194.26.29.114", "185.224.128.17"}  # fewer than 3 lists: skipped
    assert "amadey-gate.top/9bDc8sQ/" in run("viriback")
    assert len([k for k in run("dshieldblock") if k.startswith("80.82.77.")]) == 256
    drop = run("spamhausdrop")
    assert "62.182.157.200" in drop and "91.200.12.3" in drop and "1.10.16.1" not in drop  # /20 too large
    assert run("otx")["lumma-cdn-files.shop"][0] == "lumma (malware)"
    assert run("phishstats") == {"wellsfargo-verify-id.com/signon/": ("phishing", "phishstats.info")}
    assert run("dataplane")["159.223.60.12"] == ("known attacker", "dataplane.org")
    otx_request = [h for feed, _u, h in server.requests if feed == "otx"][-1]
    assert otx_request.get("X-OTX-API-KEY") == "test-otx"
    phishtank_url = [u for feed, u, _h in server.requests if feed == "phishtank"][-1]
    assert "/test-phishtank/" in phishtank_url


def test_user_agent_and_gzip(server):
    ctx = context(server, "ciarmy")
    assert "45.155.205.233" in ctx.retrieve("https://cinsscore.com/list/ci-badguys.txt")
    ctx.close()
    headers = [h for feed, _u, h in server.requests if feed == "ciarmy"][-1]
    assert headers["User-Agent"].startswith("Maltrail/")
    assert "gzip" in headers["Accept-Encoding"]


@pytest.mark.parametrize("behaviour, message", [
    ("html", "HTML page"), ("empty", "empty response"), ("503", "HTTP 503"), ("huge", "exceeds the cap"),
])
def test_bad_bodies_raise_feed_error(behaviour, message):
    with FeedServer(behaviours={"x": behaviour}) as server:
        ctx = context(server, "x", max_size=1 << 20)
        with pytest.raises(FeedError, match=message):
            ctx.retrieve("http://feed.invalid/list.txt")


def test_timeout_is_retried_then_reported():
    with FeedServer(behaviours={"x": "timeout"}, delay=2.5) as server:
        ctx = context(server, "x", timeout=1)
        with pytest.raises(FeedError, match="connection failed"):
            ctx.retrieve("http://feed.invalid/list.txt")
        assert len([1 for feed, _u, _h in server.requests if feed == "x"]) == 2


def test_flaky_server_succeeds_on_retry():
    with FeedServer(behaviours={"ciarmy": "flaky"}) as server:
        ctx = context(server, "ciarmy")
        assert "80.94.95.81" in ctx.retrieve("https://cinsscore.com/list/ci-badguys.txt", ".")
        assert len(server.requests) == 2


def test_check_text_must_be_present(server):
    ctx = context(server, "ciarmy")
    with pytest.raises(FeedError, match="sanity check"):
        ctx.retrieve("https://cinsscore.com/list/ci-badguys.txt", "no such text")


def test_connection_refused_is_a_feed_error():
    ctx = FeedContext(timeout=1, retries=1, base_url="http://127.0.0.1:9").for_feed("x")
    with pytest.raises(FeedError, match="connection failed"):
        ctx.retrieve("http://feed.invalid/")


def test_parsers():
    text = "# c\n1.2.3.4\n 5.6.7.8 # note\n300.1.1.1\n9.9.9.9\t12\n10.1.1.0/30\n2001:db8::1\nfoo\n"
    assert set(ips_in_lines(text, "i", "r")) == {"1.2.3.4", "5.6.7.8", "9.9.9.9"}
    assert set(ips_in_lines(text, "i", "r", expand=True)) == {"1.2.3.4", "5.6.7.8", "9.9.9.9", "10.1.1.0",
                                                              "10.1.1.1", "10.1.1.2", "10.1.1.3"}
    assert len(expand_cidr("10.0.0.0/22")) == 1024 and expand_cidr("10.0.0.0/21") == []
    assert expand_cidr("10.0.0.0/8") == [] and expand_cidr("10.0.0.300/30") == []
    assert strip_scheme("HTTPS://Evil.com") == "Evil.com/"
    assert strip_scheme("http://a.com/x/y?z=1#frag") == "a.com/x/y?z=1"
    hosts = "0.0.0.0 bad.com\n127.0.0.1 localhost\n||ads.bad.net^\n*.wild.org\nexample.com # c\n! x\nnot a domain\n"
    assert set(domains_in_lines(hosts, "i", "r")) == {"bad.com", "ads.bad.net", "wild.org", "example.com"}
    assert set(urls_in_lines("http://a.com/x\nftp://b.org/y z\nnodots\n", "i", "r")) == {"a.com/x", "b.org/y"}
