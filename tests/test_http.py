"""HTTP parser: request forms (origin, absolute, CONNECT), header rules, responses, truncation, fuzz."""

from __future__ import annotations

import os
import random

import dpkt
import pytest

from core.protocols import http
from tests.kit import pcapgen as g

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")


def corpus_tcp_payloads(name: str) -> list[bytes]:
    out = []
    with open(os.path.join(CORPUS, name), "rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            l4 = getattr(dpkt.ethernet.Ethernet(frame).data, "data", None)
            if isinstance(l4, dpkt.tcp.TCP) and l4.data:
                out.append(bytes(l4.data))
    return out


# --- requests ---------------------------------------------------------------------------------------

def test_origin_form_request():
    req = http.parse_request(g.http_request("GET", "/a/b.php?x=1", host="Victim.Example:8080",
                                            headers=[("User-Agent", "curl/8.0"), ("Accept", "*/*")]))
    assert req is not None
    assert (req.method, req.target, req.path, req.version) == ("GET", "/a/b.php?x=1", "/a/b.php?x=1", "HTTP/1.1")
    assert (req.host, req.port, req.absolute) == ("victim.example", 8080, False)
    assert req.user_agent == "curl/8.0" and req.headers["accept"] == "*/*"
    assert req.complete_headers and req.body == b""


def test_header_names_are_case_insensitive_and_first_wins():
    payload = (b"GET / HTTP/1.1\r\nhOsT: First.example\r\nUSER-AGENT:  Agent/1  \r\nHost: second.example\r\n"
               b"X-Forwarded-For: 1.2.3.4\r\n\r\n")
    req = http.parse_request(payload)
    assert req is not None and req.host == "first.example" and req.user_agent == "Agent/1"
    assert req.headers["x-forwarded-for"] == "1.2.3.4" and req.headers["host"] == "First.example"


def test_absolute_uri_proxy_form():
    req = http.parse_request(b"GET HTTP://Proxy-Check.Example:8081/probe?x=1 HTTP/1.1\r\nHost: 203.0.113.1\r\n\r\n")
    assert req is not None and req.absolute
    assert (req.host, req.port, req.path) == ("proxy-check.example", 8081, "/probe?x=1")
    req = http.parse_request(b"GET http://user:pw@bare.example HTTP/1.0\r\n\r\n")
    assert req is not None and (req.host, req.port, req.path) == ("bare.example", None, "/")
    req = http.parse_request(b"GET http://q.example?a=b HTTP/1.0\r\n\r\n")
    assert req is not None and (req.host, req.path) == ("q.example", "/?a=b")


def test_connect_form():
    req = http.parse_request(b"CONNECT Tunnel.Example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n")
    assert req is not None and (req.method, req.host, req.port, req.path) == ("CONNECT", "tunnel.example", 443, "")
    req = http.parse_request(b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n")
    assert req is not None and (req.host, req.port) == ("2001:db8::1", 8443)


def test_host_forms():
    cases = {"a.example.": ("a.example", None), "[::1]:80": ("::1", 80), "::1": ("::1", None),
             "h.example:99999": ("h.example", None), "h.example:": ("h.example", None)}
    for value, expected in cases.items():
        req = http.parse_request(g.http_request(host=value))
        assert req is not None and (req.host, req.port) == expected, value
    req = http.parse_request(g.http_request(host=None))
    assert req is not None and req.host is None and req.port is None


def test_body_and_post():
    req = http.parse_request(g.http_request("POST", "/submit", body=b"q=1 UNION SELECT"))
    assert req is not None and req.method == "POST" and req.body == b"q=1 UNION SELECT"


def test_all_methods_and_spaces_in_target():
    for method in sorted(http.METHODS):
        req = http.parse_request(method + b" /x HTTP/1.1\r\n\r\n")
        assert req is not None and req.method == method.decode(), method
    req = http.parse_request(b"GET /a b/../c HTTP/1.1\r\nHost: s.example\r\n\r\n")
    assert req is not None and req.target == "/a b/../c" and req.version == "HTTP/1.1"
    req = http.parse_request(b"GET /old\r\n\r\n")  # HTTP/0.9 style, no version
    assert req is not None and req.target == "/old" and req.version == ""


def test_bare_lf_and_folded_and_junk_lines():
    req = http.parse_request(b"GET / HTTP/1.0\nHost: lf.example\n continued: x\nnocolon\n: empty\n\nbody")
    assert req is not None and req.host == "lf.example" and req.complete_headers and req.body == b"body"
    assert set(req.headers) == {"host"}


def test_cut_headers_keep_complete_lines_only():
    payload = g.http_request(headers=[("User-Agent", "agent-with-long-name/1.0")])
    cut = payload.index(b"agent-with") + 5
    req = http.parse_request(payload[:cut])
    assert req is not None and not req.complete_headers and req.host == "example.com"
    assert req.user_agent is None  # a partial line is dropped, never half-parsed


def test_header_bounds():
    many = [(f"X-H{i}", "v") for i in range(300)]
    req = http.parse_request(g.http_request(headers=many))
    assert req is not None and len(req.headers) <= http.MAX_HEADERS
    req = http.parse_request(g.http_request(headers=[("X-Long", "a" * 20000)]))
    assert req is not None and len(req.headers["x-long"]) == http.MAX_VALUE


@pytest.mark.parametrize("payload", [
    b"", b"GET", b"GET / HTTP/1.1", b"GETX / HTTP/1.1\r\n\r\n", b"get / HTTP/1.1\r\n\r\n",
    b"GET  \r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"HTTP/1.1 200 OK\r\n\r\n", b"POSTAL / HTTP/1.1\r\n",
])
def test_not_a_request(payload):
    assert http.parse_request(payload) is None


def test_request_truncated_at_every_byte():
    payload = g.http_request("GET", "/path?q=1", headers=[("User-Agent", "UA/1"), ("Accept", "*/*")], body=b"xyz")
    line_end = payload.index(b"\r\n") + 2
    for cut in range(len(payload) + 1):
        req = http.parse_request(payload[:cut])
        if cut < line_end:
            assert req is None, cut
        else:
            assert req is not None and req.target == "/path?q=1", cut
            for name, value in req.headers.items():  # whatever was parsed is whole
                assert name.encode() in payload.lower() and value.encode() + b"\r\n" in payload
            assert req.complete_headers == (payload.index(b"\r\n\r\n") + 4 <= cut)


# --- responses --------------------------------------------------------------------------------------

def test_response():
    payload = g.http_response(302, "Found", [("Location", "http://x.sinkdns.org/"), ("Server", "sinkhole")],
                              body=b"<html><title>Domain Seized</title>")
    resp = http.parse_response(payload)
    assert resp is not None and (resp.version, resp.status, resp.reason) == ("HTTP/1.1", 302, "Found")
    assert resp.headers["location"] == "http://x.sinkdns.org/" and resp.headers["server"] == "sinkhole"
    assert resp.body.startswith(b"<html>") and resp.complete_headers
    resp = http.parse_response(b"HTTP/1.0 404\r\nContent-Type: application/hta\r\n")
    assert resp is not None and resp.status == 404 and resp.reason == "" and not resp.complete_headers
    assert resp.headers["content-type"] == "application/hta"


@pytest.mark.parametrize("payload", [b"", b"HTTP/1.1 200 OK", b"HTTP/1.1 20 OK\r\n", b"HTTP/1.1 abc OK\r\n",
                                     b"HTTPS/1.1 200 OK\r\n", b"GET / HTTP/1.1\r\n\r\n"])
def test_not_a_response(payload):
    assert http.parse_response(payload) is None


# --- fuzz and corpus --------------------------------------------------------------------------------

def test_random_and_mutated_never_raise():
    rng = random.Random(3)
    bases = [g.http_request("POST", "/a?b=c", headers=[("User-Agent", "x")], body=b"k=v"),
             b"GET http://[::1]:80/x HTTP/1.1\r\n\r\n", b"CONNECT a:1 HTTP/1.1\r\n\r\n",
             g.http_response(200, "OK", [("Content-Type", "text/html")], b"<title>x</title>")]
    for i in range(10000):
        if i % 2:
            data = rng.choice(list(http._PREFIXES)) + rng.randbytes(rng.randrange(0, 80))
        else:
            mutable = bytearray(bases[i % len(bases)])
            for _ in range(rng.randrange(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.choice(b" :\r\n[]@/?#\x00Hh0")
            data = bytes(mutable)
        req = http.parse_request(data)
        if req is not None:
            assert isinstance(req.target, str) and req.target
            assert req.port is None or 0 < req.port < 65536
        http.parse_response(data)


def test_corpus_requests():
    requests = [http.parse_request(p) for p in corpus_tcp_payloads("http_heuristics.pcap")]
    hosts = {r.host for r in requests if r is not None}
    assert {"sqli.example", "trav.example", "198.51.100.99", "proxycheck.example"} <= hosts
    proxy = next(r for r in requests if r is not None and r.absolute)
    assert proxy.target == "http://proxycheck.example/" and proxy.headers["host"] == "203.0.113.17"
    post = next(r for r in requests if r is not None and r.method == "POST")
    assert post.body == b"q=1 UNION ALL SELECT pwd FROM users"
    trails = [http.parse_request(p) for p in corpus_tcp_payloads("http_trails.pcap")]
    assert [r.path for r in trails if r is not None] == ["/malicious-login.php", "/", "/bad/path"]


def test_named_header_lookup_agrees_with_the_full_header_dict():
    """request.header(name) (the packet path) and request.headers (everything) follow one rule set."""
    import random

    rng = random.Random(5)
    names = ["host", "user-agent", "x-forwarded-for", "hostile", "ho st", "Host", "HOST", " host", "x"]
    for _ in range(3000):
        lines = []
        for _ in range(rng.randrange(0, 8)):
            name = rng.choice(names)
            sep = rng.choice([":", " :", ":", "", "::"])
            value = rng.choice(["a.example", " b.example ", "", "1.2.3.4, 5.6.7.8", "x" * 20])
            lines.append(f"{name}{sep}{value}")
        end = rng.choice(["\r\n\r\n", "\r\n", "\n\n", ""])
        payload = ("GET / HTTP/1.1\r\n" + "\r\n".join(lines) + end).encode()
        req = http.parse_request(payload)
        assert req is not None
        full = dict(req.headers)
        fresh = http.parse_request(payload)
        for name in ("host", "user-agent", "x-forwarded-for", "hostile", "x"):
            assert fresh.header(name) == full.get(name), (payload, name)
