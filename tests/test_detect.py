"""Exact-trail detection through the production sensor (tests/kit: build_sensor, with its whitelist,
ignore, condense and throttle stages): every rule of spec §1.7, positive and negative."""

from __future__ import annotations

import os

import pytest

from core.detect.urls import bracket_url, url_candidates
from core.trails.store import TrailStore
from tests.kit import SensorKit
from tests.kit import pcapgen as g

ROWS = [
    ("evil-test-domain.com", "malware (test)", "(static)"),
    ("evil-parent.com", "malware (test)", "(static)"),
    ("badsite.onion", "malware (test)", "(static)"),
    ("evilname", "malware (test)", "(static)"),
    ("66.66.66.66", "malware (test)", "(static)"),
    ("6.6.6.6:8443", "malware (test)", "(static)"),
    ("198.51.100.53", "known attacker", "(static)"),
    ("198.51.100.66", "botnet c2 (test)", "(static)"),
    ("198.51.100.91", "parking site (suspicious)", "(static)"),
    ("203.0.113.44", "malware (test)", "(static)"),
    ("/malicious-login.php", "malware (test)", "(static)"),
    ("evil-url.example/bad/path", "malware (test)", "(static)"),
    ("dead::beef", "malware (test)", "(static)"),
    ("[dead::1]:443", "malware (test)", "(static)"),
    (r"dga[0-9]+\.wildcard-test\.com", "malware (test)", "(static)"),
    ("tls-evil.example", "malware (test)", "(static)"),
    ("quic-evil.example", "malware (test)", "(static)"),
    ("sinky.net", "sinkhole foo (suspicious)", "(static)"),
    ("dyndns-provider.net", "dynamic domain (suspicious)", "(static)"),
    ("192.0.2.53:53", "bad resolver (malware)", "(static)"),
    ("7.7.7.7", "phishing (test)", "(static)"),
    ("gate.example/", "malware (test)", "(static)"),
    ("/panel/gate.php?cmd=ping", "c2 panel (malware)", "(static)"),
    ("whitelisted-but-listed.example", "malware (test)", "(static)"),
]
LOCAL = "10.0.0.66"
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return TrailStore.from_rows(ROWS, str(tmp_path_factory.mktemp("store")))


@pytest.fixture()
def run(store, tmp_path):
    """Feed frames (Ethernet) through a fresh sensor; return every event the run writes."""

    def feed(*frames: bytes, times: list[int] | None = None, **overrides: str):
        kit = SensorKit(store, folder=str(tmp_path), whitelist=["whitelisted-but-listed.example", "1.1.1.1"],
                        USE_HEURISTICS=False, **overrides)
        events = kit.replay((times[n] if times else T0 + n, frame) for n, frame in enumerate(frames))
        assert kit.errors == {}
        return events

    return feed


def syn(src: str, dst: str, dport: int = 443, sport: int = 40000) -> bytes:
    ip = g.ipv6 if ":" in src else g.ipv4
    return g.ether(ip(src, dst, g.tcp(sport, dport, g.SYN)))


def dnsq(name: str, dst: str = "8.8.8.8", sport: int = 40000, qtype: int | str = 1, tcp: bool = False) -> bytes:
    payload = g.dns_query(name, qtype=qtype, tcp=tcp)
    l4 = g.tcp(sport, 53, 0x18, payload) if tcp else g.udp(sport, 53, payload)
    return g.ether(g.ipv4(LOCAL, dst, l4))


def http(path: str, host: str | None, dst: str = "93.184.216.34", method: str = "GET", body: bytes = b"") -> bytes:
    headers = [("Host", host)] if host else []
    return g.ether(g.ipv4(LOCAL, dst, g.tcp(40001, 80, 0x18, g.http_request(method, path, headers, body))))


def trails(events) -> list[str]:
    return [e.trail for e in events]


# -- IP trails ------------------------------------------------------------------------------------

def test_syn_to_listed_ip(run):
    events = run(syn(LOCAL, "66.66.66.66"))
    assert [(e.type, e.trail, e.info, e.dst_port, e.proto) for e in events] == [
        ("IP", "66.66.66.66", "malware (test)", 443, "TCP")]


def test_ip_port_trail_matches_only_its_port(run):
    assert [(e.type, e.trail) for e in run(syn(LOCAL, "6.6.6.6", 8443))] == [("IPORT", "6.6.6.6:8443")]
    assert run(syn(LOCAL, "6.6.6.6", 8444)) == []


def test_attacker_outbound_suppressed_and_inbound_reported(run):
    assert run(syn(LOCAL, "198.51.100.53")) == []
    events = run(syn("198.51.100.53", LOCAL, 22))
    assert trails(events) == ["198.51.100.53"]


def test_inbound_malware_is_backscatter(run):
    assert run(syn("66.66.66.66", LOCAL, 22)) == []
    assert trails(run(syn("198.51.100.66", LOCAL, 22))) == ["198.51.100.66"]


def test_parking_site_only_on_web_ports(run):
    assert trails(run(syn(LOCAL, "198.51.100.91", 80))) == ["198.51.100.91"]
    assert run(syn(LOCAL, "198.51.100.91", 25)) == []


def test_only_pure_syn_counts(run):
    ack = g.ether(g.ipv4(LOCAL, "66.66.66.66", g.tcp(40000, 443, 0x10)))
    synack = g.ether(g.ipv4("66.66.66.66", LOCAL, g.tcp(443, 40000, 0x12)))
    assert run(ack, synack) == []


def test_duplicate_syn_same_second_collapses(run):
    frame = syn(LOCAL, "66.66.66.66")
    assert len(run(frame, frame, frame, times=[T0, T0, T0])) == 1
    assert len(run(frame, frame, times=[T0, T0 + 1])) == 2


def test_ipv6_ip_and_port(run):
    assert trails(run(syn("2001:db8::1", "dead::beef"))) == ["dead::beef"]
    events = run(syn("2001:db8::1", "dead::1", 443))
    assert [(e.type, e.trail) for e in events] == [("IPORT", "[dead::1]:443")]
    assert run(syn("2001:db8::1", "dead::1", 80)) == []


def test_udp_and_icmp(run):
    udp = g.ether(g.ipv4(LOCAL, "66.66.66.66", g.udp(40000, 9999, b"x")))
    assert trails(run(udp)) == ["66.66.66.66"]
    echo = g.ether(g.ipv4(LOCAL, "7.7.7.7", g.icmp(8)))
    reply = g.ether(g.ipv4(LOCAL, "7.7.7.7", g.icmp(0)))
    events = run(echo, reply)
    assert [(e.trail, e.proto, e.src_port, e.dst_port) for e in events] == [("7.7.7.7", "ICMP", "-", "-")]


# -- DNS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, trail", [
    ("evil-test-domain.com", "evil-test-domain.com"),
    ("EVIL-Test-Domain.COM", "evil-test-domain.com"),
    ("www.evil-parent.com", "(www).evil-parent.com"),
    ("a.b.evil-parent.com", "(a.b).evil-parent.com"),
    ("badsite.onion.to", "badsite.onion(.to)"),
    ("evilname.ip-adress.com", "evilname(.ip-adress.com)"),
    ("dga1234.wildcard-test.com", "dga1234.wildcard-test.com"),
    ("x.dga77.wildcard-test.com", "(x.)dga77.wildcard-test.com"),
    ("sub.dyndns-provider.net", "(sub).dyndns-provider.net"),
])
def test_dns_trails(run, name, trail):
    events = run(dnsq(name))
    assert [(e.type, e.trail, e.proto) for e in events] == [("DNS", trail, "UDP")]


@pytest.mark.parametrize("name", [
    "notevil-parent.com",          # shares a suffix string, not a label boundary
    "evil-parent.com.attacker.net",
    "dgaxyz.wildcard-test.com",
    "clean.example.org",
    "dyndns-provider.net",     # the provider itself is not flagged
    "www.dyndns-provider.net",
    "ns1.sinky.net",           # service prefix vs a suspicious/sinkhole trail
    "whitelisted-but-listed.example",
    "evil-test-domain.com.local",  # ignored suffix
    "1.2.3.4",
])
def test_dns_non_matches(run, name):
    assert run(dnsq(name)) == []


def test_dns_over_tcp(run):
    assert trails(run(dnsq("evil-test-domain.com", tcp=True))) == ["evil-test-domain.com"]


def test_two_different_queries_on_one_socket_same_second(run):
    a, b = dnsq("evil-test-domain.com"), dnsq("www.evil-parent.com")
    assert trails(run(a, b, times=[T0, T0])) == ["evil-test-domain.com", "(www).evil-parent.com"]


def test_resolver_trail(run):
    events = run(dnsq("clean.example.org", dst="192.0.2.53"))
    assert [(e.type, e.trail) for e in events] == [("IPORT", "192.0.2.53:53 (clean.example.org)")]
    assert run(dnsq("clean.example.org", dst="192.0.2.53", qtype="PTR")) == []


def test_whitelisted_resolver_trail_is_filtered(tmp_path):
    """A resolver trail on an address of the bundled whitelist (8.8.4.4) is found by detection and
    dropped by the whitelist filter of the event path: nothing is written."""
    kit = SensorKit([("8.8.4.4:53", "bad resolver (malware)", "(static)")], folder=str(tmp_path))
    assert kit.replay([(T0, dnsq("clean.example.org", dst="8.8.4.4"))]) == []
    assert kit.sensor.events.emitted == 1 and kit.sensor.events.filtered == 1


def test_negative_cache_does_not_hide_hits(run):
    frames = [dnsq("clean.example.org", sport=40000 + i) for i in range(3)] + [dnsq("evil-test-domain.com")]
    assert trails(run(*frames)) == ["evil-test-domain.com"]


# -- HTTP -----------------------------------------------------------------------------------------

def test_url_path_trail(run):
    events = run(http("/malicious-login.php?user=x", "victim.example"))
    assert [(e.type, e.trail) for e in events] == [("URL", "(victim.example)/malicious-login.php(?user=x)")]


def test_host_path_trail_and_host_annotated_ip(run):
    assert trails(run(http("/bad/path", "evil-url.example"))) == ["evil-url.example/bad/path"]
    assert trails(run(http("/bad/pathology", "other.example"))) == []
    assert trails(run(http("/", "hostcheck.example", dst="203.0.113.44"))) == ["203.0.113.44 (hostcheck.example)"]


def test_host_only_url_trail(run):
    assert trails(run(http("/any/thing", "gate.example"))) == ["gate.example/(any/thing)"]


def test_proxy_and_connect_requests_check_the_domain(run):
    proxy = http("http://www.evil-parent.com/x", None)
    connect = http("evil-test-domain.com:443", None, method="CONNECT")
    assert trails(run(proxy, connect)) == ["(www).evil-parent.com", "evil-test-domain.com"]


def test_host_domains_only_when_enabled(run):
    frame = http("/", "evil-test-domain.com")
    assert run(frame) == []
    assert trails(run(frame, CHECK_HOST_DOMAINS="true")) == ["evil-test-domain.com"]


def test_whitelisted_host_skips_url_trails(run):
    assert run(http("/malicious-login.php", "whitelisted-but-listed.example")) == []


def test_post_form_trail(run):
    frame = http("/panel/gate.php", "c2.example.net", method="POST", body=b"cmd=ping")
    events = run(frame)
    assert [(e.type, e.trail) for e in events] == [("HTTP", "c2.example.net(/panel/gate.php (POST cmd=ping))")]
    assert run(http("/panel/gate.php", "c2.example.net", method="POST", body=b"cmd=pong")) == []


def test_url_candidates_order():
    assert url_candidates("/a/b/c.php?x=1&y=2") == [
        "/a/b/c.php?x=1&y=2", "/a/b/c.php", "/a/b/c.php?x=", "/a/b/c.php?x=&y=", "/c.php?x=&y=", "/a/b/", "/c.php"]
    assert bracket_url("h.example/p?q", "/p") == "(h.example)/p(?q)"
    # the base without its trailing slash: `/dir/?query` reaches a `host/dir` trail
    assert url_candidates("/bad/path/?id=7") == ["/bad/path/?id=7", "/bad/path/", "/bad/path", "/bad/path/?id=", "/?id="]


def test_directory_with_query_hits_host_dir_trail(run):
    events = run(http("/bad/path/?id=7", "evil-url.example"))
    assert [(e.type, e.trail) for e in events] == [("URL", "evil-url.example/bad/path(/?id=7)")]


# -- TLS and QUIC ---------------------------------------------------------------------------------

def corpus_frames(name: str) -> list[bytes]:
    path = os.path.join(os.path.dirname(__file__), "data", "conformance", name)
    return [frame for _, frame in g.read_pcap(path)[1]]


def test_tls_sni_and_quic_sni(run):
    assert trails(run(*corpus_frames("tls_sni.pcap"))) == ["tls-evil.example"]
    events = run(*corpus_frames("quic_sni.pcap"))
    assert [(e.trail, e.proto) for e in events] == [("quic-evil.example", "UDP")]


def test_certificate_sha1_across_segments(tmp_path):
    """A CERT trail fires on the leaf certificate of a server flight spread over three segments."""
    from core.protocols.tls import cert_sha1
    from tests.test_tls import ders_of, make_chain, server_flight

    ders = ders_of(make_chain())
    sha1 = cert_sha1(ders[0])
    flight = server_flight(ders, record_size=700)
    thirds = [flight[: len(flight) // 3], flight[len(flight) // 3: 2 * len(flight) // 3], flight[2 * len(flight) // 3:]]
    packets = [(T0 + n / 1e6, g.ether(g.ipv4("198.51.100.7", LOCAL, g.tcp(443, 40000, 0x18, part))))
               for n, part in enumerate(thirds)]
    (tmp_path / "a").mkdir()
    kit = SensorKit([(sha1, "dridex c2 cert (suspicious)", "sslbl.abuse.ch")], folder=str(tmp_path / "a"))
    assert [(e.type, e.trail, e.info) for e in kit.replay(packets)] == [("CERT", sha1, "dridex c2 cert (suspicious)")]
    (tmp_path / "o").mkdir()
    other = SensorKit([("00" * 20, "x (suspicious)", "r")], folder=str(tmp_path / "o"))
    assert other.replay(packets) == []


def test_batch_path_bulk_skip_keeps_every_detection(tmp_path):
    """The batch walker's bulk-TCP early exit must not hide anything the per-packet path finds:
    a certificate flight whose later segments start mid-record, DNS over TCP, an uncommon HTTP
    method and a stealth-scan flag, interleaved with bulk TLS application data."""
    from core.protocols.tls import cert_sha1
    from tests.test_tls import ders_of, make_chain, server_flight

    ders = ders_of(make_chain())
    sha1 = cert_sha1(ders[0])
    rows = ROWS + [(sha1, "dridex c2 cert (suspicious)", "(static)"), ("/dav/x", "webdav (malware)", "(static)")]
    store = TrailStore.from_rows(rows, str(tmp_path))
    flight = server_flight(ders, record_size=700)
    parts = [flight[:300], flight[300:1400], flight[1400:]]
    bulk = g.ether(g.ipv4("93.184.216.34", LOCAL, g.tcp(443, 40002, 0x18, b"\x17\x03\x03\x00\x10" + bytes(16))))
    frames = [bulk]
    for part in parts:
        frames += [g.ether(g.ipv4("198.51.100.7", LOCAL, g.tcp(443, 40000, 0x18, part))), bulk]
    frames += [dnsq("evil-test-domain.com", tcp=True), bulk,
               g.ether(g.ipv4(LOCAL, "93.184.216.34", g.tcp(40003, 8081, 0x18, g.http_request("MKCOL", "/dav/x", [("Host", "h.example")])))),
               g.ether(g.ipv4(LOCAL, "66.66.66.66", g.tcp(40004, 443, 0x29)))]
    path = str(tmp_path / "mix.pcap")
    g.write_pcap(path, [(T0 + n / 10, frame) for n, frame in enumerate(frames)])
    kit = SensorKit(store, folder=str(tmp_path))
    kit.feed_pcap(path)
    kit.close()
    assert kit.errors == {}
    assert {(e.type, e.trail) for e in kit.events} == {
        ("CERT", sha1), ("DNS", "evil-test-domain.com"), ("URL", "(h.example)/dav/x")}
    assert kit.detector.skipped_bulk == 3  # not while the certificate flow is being reassembled


def test_swap_store_drops_cached_answers(tmp_path):
    """After a trail reload a name cached as clean under the old set is checked again."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    old = TrailStore.from_rows([("x.example.net", "malware (test)", "(static)")], str(tmp_path / "a"))
    new = TrailStore.from_rows([("fresh-evil.net", "malware (test)", "(static)")], str(tmp_path / "b"))
    kit = SensorKit(old, folder=str(tmp_path))
    assert kit.feed(dnsq("fresh-evil.net"), T0) == []
    kit.detector.swap_store(new)
    kit.feed(dnsq("fresh-evil.net", sport=40001), T0 + 1)
    assert trails(kit.events) == ["fresh-evil.net"]


def test_candidate_markers_cover_every_candidate():
    """The early exit in URL matching is exact: the markers it checks include the marker of every
    candidate the full list would try (random paths, queries, bodies, odd separators)."""
    import random

    from core.detect.urls import candidate_markers
    from core.trails.index import url_marker

    rng = random.Random(11)
    alphabet = "ab/?=&.%-x"
    for _ in range(30000):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5))) if rng.random() < 0.3 else ""
        wanted = {url_marker(candidate) for candidate in url_candidates(path, body)}
        assert wanted <= candidate_markers(path, body, url_marker), (path, body)
