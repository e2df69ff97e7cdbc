"""The compiled HTTP request path (core/accel/_http.c request_seen) against the detector's Python path.

`Detector._tcp_payload` hands a client payload that starts an HTTP request to `request_seen` first
(after its flow-table tests): a whole GET/HEAD head that provably reports nothing (no URL or
User-Agent trail by the store's memos and bloom, no IP lookups to run, every request heuristic
quiet) is handled there, in order, with its one effect on the state: its step in the web-scan
window. Two production sensors (tests/kit) replay the same HTTP-heavy captures, one with
`request_seen` and one without (`_request_seen = None`: the Python path, its specification): event
lines, the web-scan table (every key's items in order), its counters and hold-offs, the host
whitelist memo, the store's URL-marker and User-Agent memos and the UA verdict memo must be
equal after every batch -- with repeated and new hosts, URL trails (host and bare path), `ua:`
trails, suspicious User-Agents, a listed server, whitelisted hosts, upper-case, bare-IPv4,
missing and non-ASCII hosts, ports, absolute-form and CONNECT requests, POST bodies, HEAD, encoded,
doubled-slash and spaced paths, request-battery and path-family hits and near misses, direct
downloads, web scans that alert, hold and run out, a full web-scan table, heads cut by their
segment, both batch walkers, a trail generation change, and the configurations that change the
path (CHECK_HOST_DOMAINS, CHECK_MISSING_HOST, heuristics off or partly disabled).
"""

from __future__ import annotations

import os
import random

import pytest

from core.accel import load
from core.detect.detector import Detector
from core.heuristics import http as http_heuristics
from core.trails.store import TrailStore
from tests.accel_twins import counting, digest_each_batch
from tests.kit import SensorKit
from tests.kit import pcapgen as g

pytestmark = pytest.mark.skipif(load("_http") is None, reason="core/accel/_http.c is not built "
                                "(run tools/build_accel.py)")

T0 = 1_700_000_000
LISTED_SERVER = "198.51.100.80"
TRAILS = [
    ("evil-url.net/payload/drop.php", "malware (test)", "(static)"),
    ("/bare-evil-path.php", "malware (test)", "(static)"),
    ("/evil-dir/drop.php", "malware (test)", "(static)"),
    ("/bad-caf\xe9.php", "malware (test)", "(static)"),  # reached by a path Python lower-cases beyond ASCII
    ("ua:EvilAgent/1.0", "malware (test)", "(static)"),
    ("proxied-evil.net", "malware (test)", "(static)"),
    (LISTED_SERVER, "malware (test)", "(static)"),
]
LATE_TRAILS = [("late-url.net/late/path.php", "malware (test)", "(static)")]  # in the reloaded set only
WHITELISTED = "whitelisted-cdn.net"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
ODD_REQUESTS = [  # (method, target, headers): each takes another turn of the Python path, or hits
    ("GET", "/payload/drop.php", {"Host": "evil-url.net"}), ("GET", "/bare-evil-path.php", {"Host": "cdn.site1.com"}),
    ("GET", "/", {"Host": "www.site2.com", "User-Agent": "EvilAgent/1.0"}),
    ("GET", "/", {"Host": "www.site3.com", "User-Agent": "sqlmap/1.5"}),
    ("GET", "/x", {"Host": f"img.{WHITELISTED}"}), ("GET", "/x", {"Host": "WWW.Site4.COM"}),
    ("GET", "/bin.sh", {"Host": "192.0.2.99"}), ("GET", "/x", {"Host": ""}), ("GET", "/x", {}),
    ("GET", "/x", {"Host": "caf\xe9.site5.com"}), ("GET", "/x", {"Host": "www.site6.com:8080"}),
    ("GET", "http://proxied-evil.net/probe", {"Host": "proxied-evil.net"}), ("CONNECT", "proxied-evil.net:443", {}),
    ("HEAD", "/index.html", {"Host": "www.site7.com"}), ("GET", "/a%20b.php?q=%27", {"Host": "www.site8.com"}),
    ("GET", "/a+b", {"Host": "www.site8.com"}), ("GET", "//double//slash", {"Host": "www.site8.com"}),
    ("GET", "/spaced path", {"Host": "www.site8.com"}), ("GET", "/item?id=1' or '1'='1", {"Host": "www.site9.com"}),
    ("GET", "/item?id=union", {"Host": "www.site9.com"}), ("GET", "/phpmyadmin/", {"Host": "www.site10.com"}),
    ("GET", "/phpmyadminx/", {"Host": "www.site10.com"}), ("GET", "/setup.exe", {"Host": "www.site11.com"}),
    ("GET", "/installer-long-name.exe", {"Host": "www.site11.com"}), ("GET", "/run.EXE?x=1", {"Host": "www.site11.com"}),
    ("GET", "/run.exe?x", {"Host": "www.site11.com"}), ("GET", "", {"Host": "www.site12.com"}),
    ("GET", "/ctl\x01char", {"Host": "www.site12.com"}), ("GET", "/x", {"Host": "_srv.site13.com"}),
    ("GET", "/late/path.php", {"Host": "late-url.net", "User-Agent": BROWSER}),
    ("GET", "/bare-evil-path.php trailing", {"Host": "cdn.site1.com"}), ("GET", "//evil-dir//drop.php", {"Host": "cdn.site1.com"}),
    ("GET", "/index.html", {"Host": "proxied-evil.net"}),  # a host that is a domain trail (CHECK_HOST_DOMAINS)
    ("GET", "/item?id=1%27%20or%20%271%27%3D%271", {"Host": "www.site9.com"}),  # hits once decoded
    ("GET", "/item?q=x+union+select+password+from+users", {"Host": "www.site9.com"}),
    ("GET", "/search?q=<script>alert(1)</script>", {"Host": "www.site9.com"}),
    ("GET", "/static/../../etc/passwd", {"Host": "www.site9.com"}),
    ("GET", "/BAD-CAF\xc9.php", {"Host": "www.site9.com"}),
]
PIPELINED = (g.http_request("GET", "/first", {"Host": "www.site14.com", "User-Agent": BROWSER}, host=None)
             + g.http_request("GET", "/payload/drop.php", {"Host": "evil-url.net"}, host=None))


def http_capture(path: str, seed: int) -> None:
    rng = random.Random(seed)
    hosts = [f"www.site{n}.{rng.choice(('com', 'net', 'org'))}" for n in range(150)]
    frames: list[tuple[float, bytes]] = []
    t = float(T0)
    for n in range(5000):
        t += rng.choice((0.01, 0.05, 0.2)) if n % 1500 else 75.0  # now and then past every window
        client = f"10.0.{n % 4}.{rng.randrange(2, 6)}"  # few pairs: keys with several items fill the table
        server = f"93.184.{n % 3}.{rng.randrange(1, 6)}"
        sport = 30000 + n % 30000
        kind = rng.random()
        if kind < 0.55:  # the usual: known hosts, new paths, the same browser (a few first segments per pair)
            request = g.http_request("GET", f"/static{n % 4}/img{rng.randrange(10**5)}.png?v=3",
                                     {"Host": rng.choice(hosts), "User-Agent": BROWSER, "Accept": "*/*"})
        elif kind < 0.65:  # one client sweeping first path segments on one server: web scans
            client, server = "10.9.9.9", f"93.184.9.{n % 3 + 1}"
            request = g.http_request("GET", f"/dir{rng.randrange(40)}/file", {"Host": "scanned.site0.com", "User-Agent": BROWSER})
        elif kind < 0.72:
            method, target, headers = rng.choice(ODD_REQUESTS)
            request = g.http_request(method, target, headers, host=None)
        elif kind < 0.75:  # a named host on a listed server: its IP lookups
            server = LISTED_SERVER
            request = g.http_request("GET", "/index.html", {"Host": rng.choice(hosts), "User-Agent": BROWSER})
        elif kind < 0.78:  # bodies, cut heads, two requests in one segment
            if n % 3 == 0:
                request = g.http_request("POST", "/form", {"Host": rng.choice(hosts)}, body=b"a=1&b=2")
            elif n % 3 == 1:
                request = g.http_request("GET", "/cut", {"Host": rng.choice(hosts), "User-Agent": BROWSER})[:-9]
            else:
                request = PIPELINED
        elif kind < 0.80:  # a User-Agent seen once only
            request = g.http_request("GET", "/", {"Host": rng.choice(hosts), "User-Agent": f"Agent/{n}"})
        elif kind < 0.81:  # absolute form to a known host: its domain check, then a proxy probe
            host = rng.choice(hosts)
            request = g.http_request("GET", f"http://{host}/probe", {"Host": host, "User-Agent": BROWSER})
        else:  # other traffic between the requests
            frames.append((t, g.ether(g.ipv4(server, client, g.tcp(443, sport, 0x18, b"\x17\x03\x03\x00\x04data")))))
            continue
        frames.append((t, g.ether(g.ipv4(client, server, g.tcp(sport, 80, 0x18, request)))))
    g.write_pcap(path, frames)


def snapshot(detector: Detector) -> tuple:
    """The state the request path reads or changes: the web-scan window (every key's items in
    order, counters, hold-offs), the host whitelist memo, the store's marker and UA memos, the UA
    verdict memo."""
    markers, agents = detector.store.memos()
    state: tuple = (dict(detector._whitelisted_hosts), dict(markers), dict(agents), list(detector.domains.cache.items()))
    http = getattr(detector.heuristics, "http", None)
    if http is not None:
        web = http.web
        table = {key: list(items.items()) if isinstance(items, dict) else items for key, items in web.table.items()}
        state += (table, dict(web.alerted), web.refused, web.evicted, web.trimmed, web.alerts, dict(http.ua_cache.data))
    return state


def replay(path: str, folder: str, compiled: bool, walker: bool, batch_size: int, bump: bool,
           conf: dict[str, object]) -> tuple[tuple, list[int], list[int]]:
    """-> (event lines and the final snapshot, a digest of the snapshot after every batch, the
    count of request_seen's answers: [not handled, handled])."""
    kit = SensorKit(TRAILS, folder=folder, whitelist=[WHITELISTED], EVENT_THROTTLE_MODE="off", **conf)
    detector = kit.detector
    if not walker:
        detector._scan = None
    assert detector._request_seen is not None
    counted, handled = counting(detector._request_seen, 2)  # [not handled, handled]
    detector._request_seen = counted if compiled else None
    digests = digest_each_batch(kit.sensor, lambda: snapshot(detector))
    kit.feed_pcap(path, batch_size=batch_size)
    if bump:  # a reload between batches: the old store's memos and prefilter must not be read
        late = os.path.join(folder, "late")
        os.makedirs(late, exist_ok=True)
        detector.swap_store(TrailStore.from_rows(TRAILS + LATE_TRAILS, late))
        kit.feed_pcap(path, batch_size=batch_size)
    kit.close()
    assert detector.errors == {}
    return (kit.lines, *snapshot(detector)), digests, handled


RUNS = [  # (batch size, web-scan table keys, generation change, configuration)
    (64, 50_000, False, {}),
    (1, 50_000, False, {}),
    (7, 4, False, {}),
    (512, 50_000, True, {}),
    (64, 50_000, False, {"CHECK_HOST_DOMAINS": True, "CHECK_MISSING_HOST": True}),
    (64, 50_000, False, {"DISABLED_HEURISTICS": "web_scanning,user_agent"}),
    (64, 50_000, False, {"DISABLED_HEURISTICS": "suspicious_request,direct_download"}),
    (64, 50_000, False, {"USE_HEURISTICS": False}),
    (64, 50_000, False, {"WEB_SCANNING_THRESHOLD": 1}),
]


@pytest.mark.parametrize("walker", [True, False], ids=["c-walk", "python-loop"])
@pytest.mark.parametrize("run", RUNS, ids=[f"run{n}" for n in range(len(RUNS))])
def test_compiled_requests_leave_events_and_state_as_python(tmp_path, monkeypatch, walker, run):
    batch_size, max_keys, bump, conf = run
    monkeypatch.setattr(http_heuristics, "WEB_SCAN_MAX_KEYS", max_keys)  # read when the table is built
    path = str(tmp_path / "http.pcap")
    http_capture(path, seed=11)
    fast, fast_digests, handled = replay(path, str(tmp_path), True, walker, batch_size, bump, conf)
    slow, slow_digests, _ = replay(path, str(tmp_path), False, walker, batch_size, bump, conf)
    assert fast == slow
    assert fast_digests == slow_digests  # after every batch, not only at the end
    python, done = handled
    assert python > 300, handled  # the rare cases stayed in Python
    if walker and not conf.get("CHECK_HOST_DOMAINS") and max_keys > 100:
        assert done > 1000, handled  # and the usual request ended in C
    text = "\n".join(slow[0])
    for trail in ("evil-url.net/payload/drop.php", "/bare-evil-path.php", "EvilAgent/1.0", "proxied-evil.net",
                  LISTED_SERVER, "/evil-dir/drop.php", "(cdn.site1.com)/bare-evil-path.php( trailing)",
                  "(www.site9.com)/BAD-CAF\xc9.php"):
        assert trail in text, trail
    if conf.get("USE_HEURISTICS") is not False and not conf.get("DISABLED_HEURISTICS"):
        for info in ("potential web scanning", "user agent (suspicious)", "potential sql injection",
                     "direct .exe download", "potential web scan (", "potential proxy probe", "potential xss injection",
                     "potential directory traversal"):
            assert info in text, info
        if max_keys < 100:
            assert slow[7] > 0  # refused: a full web-scan table
    assert ("late-url.net/late/path.php" in text) == bump


def test_request_seen_refuses_what_it_cannot_read():
    accel = load("_http")
    assert accel is not None

    def packet(payload: bytes) -> tuple:  # a Decoded TCP record of `payload`, after 3 other bytes
        return (4, 6, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000, 80, 0x18, b"abc" + payload, 3, 3 + len(payload))

    calls: list[str] = []

    def answer(value: object):  # a memo's function: records the call, answers `value`
        return lambda key: calls.append(key) or value

    def state(hosts=None, listed=False, markers=None, agents=None, maybe=False, heuristics=None):
        return (hosts if hosts is not None else {}, answer(listed), markers if markers is not None else {}, answer(False),
                "\x01", lambda path: maybe, agents if agents is not None else {}, answer(None), False, heuristics)

    head = packet(b"GET / HTTP/1.1\r\n\r\n")
    for args in ((head, 1, 1, state()[:9]), (head, 1.5, 1, state()), ((1, 2), 1, 1, state()),
                 (head, 1, 1, ([],) + state()[1:]), (head, 1, 1)):
        with pytest.raises(TypeError):
            accel.request_seen(*args)
    with pytest.raises(ValueError):  # offsets outside the buffer
        accel.request_seen(head[:8] + (3, 300), 1, 1, state())
    request = packet(g.http_request("GET", "/x", {"Host": "WWW.Example.com", "User-Agent": "A"}, host=None))
    # unknown host and agent: their functions answer (and would remember), in the Python path's order
    assert accel.request_seen(request, 1, 1, state()) is True
    assert calls == ["www.example.com", "\x01www.example.com", "A"]
    calls.clear()
    known = state({"www.example.com": False}, markers={"\x01www.example.com": False}, agents={"A": None})
    assert accel.request_seen(request, 1, 1, known) is True and calls == []  # remembered: no call
    assert accel.request_seen(request, 1, 0, known) is False  # a named host's IP lookups
    assert accel.request_seen(request, 1, 1, state({"www.example.com": False}, maybe=True)) is False  # a marker may hit
    assert accel.request_seen(request, 1, 1, state({"www.example.com": True}, maybe=True)) is True  # whitelisted
    assert accel.request_seen(request, 1, 1, state(agents={"A": ("trail",)})) is False  # a ua: trail
    with pytest.raises(TypeError):  # a malformed heuristics state is an error, not a guess
        accel.request_seen(request, 1, 1, state(heuristics=(True,)))
