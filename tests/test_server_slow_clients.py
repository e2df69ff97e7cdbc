"""Slow clients and HTTP framing against a real server.py on 127.0.0.1 (docs/security.md, "Slow
clients and HTTP framing").

1,000 stalled connections (partial request heads, or TLS handshakes stopped inside the
ClientHello), from one source address and spread over 200, re-opened as fast as the server
closes them, while an analyst on another address logs in and loads the page, /events, /fail2ban
and /ping one request after the other: every answer must be a 200 within 1 s, the server must
not spend a thread per stalled connection; over the per-address cap new connections are
closed, and at the total cap the oldest waiting connections are the ones closed. Then the head deadline apart from the body's,
bare-LF and version-less request lines answered at once, and RFC 9112 framing (two
Content-Length values, Content-Length with Transfer-Encoding, Host, versions)."""

from __future__ import annotations

import re
import resource
import select
import socket
import statistics
import time
import urllib.parse

import pytest

from bench.slow_clients import Attack, SlowClients, addresses, analyst_request, client_context
from core.server.httpd import address_key
from tests.kit.server import Server, event_line, raw_http, thread_count

SLOW = 1000                  # stalled connections
BOUND = 1.0                  # seconds an analyst request may take
WINDOW = 3.0                 # seconds of analyst requests under attack
ANALYST = "127.0.0.3"
ATTACKERS = "127.0.0.10"     # first attacker address (127.0.0.10 .. 127.0.0.209 when spread)
PER_ADDRESS = 64             # MAX_CONNECTIONS_PER_ADDRESS default
SLACK = 16                   # accept-order jitter allowed when checking which connections were kept


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """This process holds the attack's sockets: raise its soft RLIMIT_NOFILE as needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW + 512
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the hard open-file limit ({hard}) is below the {need} this test needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def analyst(srv: Server, seconds: float) -> list[tuple[str, str, float]]:
    """An analyst's requests one after the other for `seconds`, each on a new connection (one TLS
    client context, as a browser): (what, status or error, seconds)."""
    context = client_context() if srv.tls else None
    login = urllib.parse.urlencode({"username": "admin", "password": "changeme!"}).encode()
    results: list[tuple[str, str, float]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome, sec, response = analyst_request("127.0.0.1", srv.port, context, ANALYST, "POST", "/login", login)
        results.append(("/login", outcome, sec))
        cookies = [value.split(";", 1)[0] for value in (response.headers.get_all("set-cookie") or [])] \
            if response is not None else []
        cookie = next((value for value in cookies if value.startswith("maltrail_sessid=")), None)
        for path in ("/", "/events", "/fail2ban", "/ping"):
            outcome, sec, _ = analyst_request("127.0.0.1", srv.port, context, ANALYST, "GET", path, cookie=cookie)
            results.append((path, outcome, sec))
        time.sleep(0.02)
    return results


def assert_all_served(results: list[tuple[str, str, float]], label: str) -> None:
    times = [sec for _, _, sec in results]
    print(f"\n{label}: {len(results)} analyst requests, median {statistics.median(times) * 1000:.1f} ms, "
          f"slowest {max(times) * 1000:.1f} ms")
    bad = [(what, outcome, round(sec, 3)) for what, outcome, sec in results if outcome != "200" or sec > BOUND]
    assert len(results) >= 10 and not bad, bad[:10]


ATTACKS = [
    pytest.param(False, 1, "", id="heads-one-address"),
    pytest.param(False, 200, "", id="heads-200-addresses"),
    pytest.param(False, 200, "MAX_CONNECTIONS 400\n", id="heads-200-addresses-total-cap"),
    pytest.param(True, 1, "", id="tls-one-address"),
    pytest.param(True, 200, "", id="tls-200-addresses"),
]


def attack_while_analyst_works(srv: Server, tls: bool, spread: int, cap: int, label: str) -> None:
    """SLOW stalled connections from `spread` addresses (at most `cap` of them kept by the
    server), then the analyst's requests while the attack goes on; every one served in time."""
    assert srv.proc is not None
    attack = Attack(SlowClients("127.0.0.1", srv.port, addresses(ATTACKERS, spread), tls=tls), SLOW)
    try:
        held = attack.start()
        assert len(held) <= cap and len(held) >= min(cap, SLOW) - SLACK, (len(held), cap)
        if spread == 1:                     # the first ones were kept, the later ones refused
            assert max(held) < cap + SLACK, max(held)
        elif cap < SLOW:                    # the oldest waiting connections were the ones closed
            assert min(held) >= SLOW - cap - SLACK, min(held)
        assert thread_count(srv.proc.pid) < 20   # a descriptor each, not a thread each
        results = analyst(srv, WINDOW)       # while the attack re-opens what the server closes
    finally:
        counts = attack.stop()
    print(f"\nattack: {counts}, {len(held)} held after the first {SLOW}")
    assert_all_served(results, label)


def attack_config(tmp_path, tls: bool, extra: str = "") -> str:
    # the stalled connections are not cut by the deadline; the analyst may fetch /fail2ban
    config = f"HEAD_TIMEOUT 60\nFAIL2BAN_REGEX attacker\nFAIL2BAN_ALLOWLIST {ANALYST}\n" + extra
    if tls:
        from tests.test_tls_server import make_pem

        config += f"USE_SSL true\nSSL_PEM {make_pem(str(tmp_path / 'server.pem'))}\n"
    return config


@pytest.mark.parametrize("tls, spread, extra", ATTACKS)
def test_stalled_connections_do_not_take_the_server_down(tmp_path, tls, spread, extra):
    srv = Server(str(tmp_path), extra=attack_config(tmp_path, tls, extra), udp=False, tls=tls)
    srv.write_events([event_line(time.time())])
    cap = 400 if extra else PER_ADDRESS if spread == 1 else SLOW
    with srv:
        attack_while_analyst_works(srv, tls, spread, cap, f"tls={tls} spread={spread} {extra.strip()}")
    assert "Traceback" not in srv.stderr


def test_the_connection_cap_fits_a_low_open_file_limit(tmp_path):
    """A server whose hard RLIMIT_NOFILE is 512 lowers MAX_CONNECTIONS to fit it (and says so),
    so 1,000 stalled connections cannot exhaust its descriptors: the analyst is still served."""
    limit = 512
    srv = Server(str(tmp_path), extra=attack_config(tmp_path, False), udp=False,
                 preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    srv.write_events([event_line(time.time())])
    cap = limit - 64 - 100              # RESERVED_DESCRIPTORS and MAX_REQUEST_THREADS
    with srv:
        assert f"MAX_CONNECTIONS lowered from 4096 to {cap}" in srv.read_err()
        attack_while_analyst_works(srv, False, 200, cap, f"RLIMIT_NOFILE {limit}")
    assert "Traceback" not in srv.stderr


def test_the_per_address_cap_counts_an_ipv6_64_as_one_address():
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64"


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes: (bytes, seconds it took)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out, time.monotonic() - started


def test_the_head_deadline_is_short_and_the_body_has_its_own(tmp_path):
    with Server(str(tmp_path), extra="HEAD_TIMEOUT 1\nREQUEST_TIMEOUT 30\n", udp=False) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:        # a head that stops
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
            answer, took = read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408") and 0.8 < took < 2.5, (answer[:40], took)
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:        # a head that trickles
            started = time.monotonic()
            for byte in b"GET /ping HTTP/1.1\r\nHost: slow\r\nX: abcdefghijklmnopqrstuvwxyz\r\n":
                if select.select([sock], [], [], 0.1)[0]:                   # answered: stop sending
                    break
                sock.sendall(bytes([byte]))
            took = time.monotonic() - started
            answer, _ = read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 408") and 0.8 < took < 2.5, (answer[:40], took)
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:        # a body slower than HEAD_TIMEOUT
            sock.sendall(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
            for byte in b"a=b&c=de":
                time.sleep(0.3)
                sock.sendall(bytes([byte]))
            answer, _ = read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"pong"), answer[:60]
    assert "Traceback" not in srv.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("framing")), udp=False)
    srv.start()
    yield srv
    srv.stop()
    assert "Traceback" not in srv.stderr


def statuses(answer: bytes) -> list[int]:
    """The status of every response in what the server sent."""
    return [int(code) for code in re.findall(rb"(?:^|\r\n\r\n)HTTP/1\.1 (\d{3}) ", answer)]


def exchange(port: int, data: bytes) -> tuple[bytes, float]:
    """Send `data` without closing our side; what comes back until the server closes, and when."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        return read_until_closed(sock, 5)


@pytest.mark.parametrize("request_bytes", [
    b"GET /ping HTTP/1.1\nHost: x\n\n",
    b"GET /ping HTTP/1.1\r\nHost: x\nAccept: */*\r\n\n",
    b"\r\nGET /ping HTTP/1.0\n\n",
    b"POST /ping HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc",
], ids=["lf", "mixed", "empty-line-first", "lf-post"])
def test_bare_lf_requests_are_answered(server, request_bytes):
    answer, took = exchange(server.port, request_bytes)
    assert statuses(answer) == [200] and answer.endswith(b"pong") and took < BOUND, (answer[:60], took)


@pytest.mark.parametrize("request_bytes", [b"GET /ping\r\n", b"GET /ping\n", b"GET /ping HTTP/1.1 extra\r\n"])
def test_a_request_line_without_a_version_is_400_at_once(server, request_bytes):
    answer, took = exchange(server.port, request_bytes)          # no empty line follows: nothing to wait for
    assert statuses(answer) == [400] and took < BOUND, (answer[:60], took)


def test_two_content_lengths_are_refused_and_the_connection_closed(server):
    form = b"username=admin&password=changeme%21"
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    for lengths in ((0, len(form)), (len(form), 0), (len(form), len(form) + 1)):
        framing = b"".join(b"Content-Length: %d\r\n" % n for n in lengths)
        answer, _ = exchange(server.port, head + framing + b"\r\n" + form)
        assert statuses(answer) == [400] and b"maltrail_sessid" not in answer, (lengths, answer[:80])
    # the bytes after the head are never taken as a second request: one answer, then the close
    smuggled = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    framing = b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
    answer, _ = exchange(server.port, head + framing + smuggled)
    assert statuses(answer) == [400] and b"pong" not in answer
    same = b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(form), len(form))   # agreeing values
    answer, _ = exchange(server.port, head + same + form)
    assert statuses(answer) == [200] and b"maltrail_sessid" in answer


def test_transfer_encoding_framing(server):
    cases = [(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
             (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
             (b"Transfer-Encoding: gzip\r\n", 400),
             (b"Transfer-Encoding: gzip, chunked\r\n", 501),
             (b"Transfer-Encoding: chunked\r\n", 411)]
    for framing, status in cases:
        answer, _ = exchange(server.port, b"POST /ping HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n5\r\nhello\r\n0\r\n\r\n")
        assert statuses(answer) == [status], (framing, answer[:60])


def test_host_and_versions(server):
    cases = [(b"GET /ping HTTP/1.1\r\n\r\n", 400), (b"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
             (b"GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n", 400), (b"GET /ping HTTP/1.0\r\n\r\n", 200),
             (b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:8338\r\n\r\n", 200),
             (b"GET /ping HTTP/2.0\r\nHost: x\r\n\r\n", 505), (b"GET /ping HTTP/0.9\r\n\r\n", 505),
             (b"GET /ping HTTP/1.x\r\nHost: x\r\n\r\n", 400), (b"GET /ping HTTP/11\r\nHost: x\r\n\r\n", 400)]
    for request_bytes, status in cases:
        answer = raw_http(server.port, request_bytes, timeout=5)
        assert statuses(answer) == [status], (request_bytes, answer[:60])
