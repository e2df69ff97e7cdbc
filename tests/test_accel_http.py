"""C HTTP request parser (core.accel._http) against its specification core.protocols.http.parse_request_py.

Every check parses the same bytes with both implementations and requires equal records with equal
field types (bool is not int, str is not bytes): structured request heads built by hypothesis
(every method, origin/absolute/CONNECT targets, odd spacing, bare LF, Host variants with ports,
IPv6, userinfo and latin-1 bytes, header-name quirks, cuts, bodies), random and mutated bytes,
every latin-1 byte in the host and target, the conformance pcaps, and every test of
tests/test_http.py run again on the other implementation.
"""

from __future__ import annotations

import glob
import os
import random
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols import http
from tests.accel_twins import assert_same_record, load_twin
from tests.kit import pcapgen as g
from tests.test_http import CORPUS, corpus_tcp_payloads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


accel = load_twin("_http", http.HttpRequest)
pytestmark = pytest.mark.skipif(accel is None, reason="core.accel._http is not built "
                                "(run .venv/bin/python tools/build_accel.py)")
FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def same(payload: bytes) -> http.HttpRequest | None:
    """Parse with both; require equal results, field by field, with the same types."""
    assert accel is not None
    c = accel.parse_request(payload)
    assert_same_record(c, http.parse_request_py(payload), f"payload={payload!r}")
    return c


# --- structured request heads -------------------------------------------------------------------------

DICE = st.integers(0, 9)  # weighted choices: 0 (the common, well-formed case) is what shrinking aims at
METHOD = st.one_of(st.sampled_from(sorted(http.METHODS)),
                   st.sampled_from([b"GETX", b"get", b"", b"POSTAL", b"G", b"Connect", b"UNSUBSCRIBEX"]))
HOSTNAMES = [b"www.site1.com", b"Victim.EXAMPLE", b"a.example.", b"..", b"", b"203.0.113.9", b"[2001:db8::1]",
             b"2001:db8::1", b"[::1", b"::1]", b"[]", b"xn--d1acj3b", b"h\xc0\xd7\xde\xdf.example", b"\xa0host\x85",
             b"\x1chost\x1f", b" spaced host "]
PORTS = [b"", b":", b":80", b":8080", b":1", b":65535", b":65536", b":0", b":00080", b":99999", b":123456", b":012345",
         b":\xb2", b":8\xb3", b":\xb9", b":-1", b":+80", b": 80", b":80 ", b":8_0"]
USERINFOS = [b"", b"user@", b"user:pw@", b"a@b@", b"@", b"[x]@"]
HOSTNAME = st.one_of(st.sampled_from(HOSTNAMES), st.binary(max_size=12))
PORT = st.one_of(st.sampled_from(PORTS), st.binary(max_size=6).map(lambda b: b":" + b))
USERINFO = st.sampled_from(USERINFOS)


@st.composite
def authorities(draw: Any) -> bytes:
    if draw(DICE) == 9:
        return draw(st.binary(max_size=20))
    return draw(USERINFO) + draw(HOSTNAME) + draw(PORT)


@st.composite
def targets(draw: Any, connect: bool) -> bytes:
    kind = draw(DICE)
    if connect and kind <= 6:
        return draw(authorities())
    if kind <= 3:
        return draw(st.sampled_from([b"/", b"/static/img123.png?v=3", b"/a b/../c", b"*", b"/x#frag", b"/%00\xff"]))
    if kind <= 7:
        scheme = draw(st.sampled_from([b"http://", b"HTTP://", b"https://", b"hTtPs://", b"http:/", b"ftp://",
                                       b"http:///", b"https:", b"http\xaa//"]))
        rest = draw(st.sampled_from([b"", b"/", b"/path?q=1", b"?a=b", b"#f", b"?a/b", b"#x/y", b"/p q"]))
        return scheme + draw(authorities()) + rest
    return draw(st.binary(max_size=30))


NAMES = [b"Host", b"host", b"HOST", b"User-Agent", b"user-agent", b"USER-AGENT", b" host", b"\thost", b"\x0bhost",
         b"\rhost", b"host\x0c", b"Hostile", b"X-Forwarded-For", b"Accept", b"a" * 260, b"", b"ho st", b"h\xc5st"]
SEPARATOR = st.sampled_from([b": ", b":", b" :", b"\t: ", b"::", b"", b"\x0b:", b" " * 300 + b":"])


@st.composite
def header_lines(draw: Any) -> bytes:
    kind = draw(DICE)
    if kind == 9:
        return draw(st.binary(max_size=30))
    name = draw(st.sampled_from(NAMES)) if kind <= 6 else draw(st.binary(max_size=10))
    if name.lower().strip() == b"host" and draw(st.booleans()):
        value = draw(authorities())
    else:
        value = draw(st.one_of(st.sampled_from([b"curl/8.0", b" padded \t", b"", b"\xa0ua\x85", b"x" * 9000]),
                               st.binary(max_size=20)))
    return name + draw(SEPARATOR) + value


@st.composite
def requests(draw: Any) -> bytes:
    method = draw(METHOD)
    target = draw(targets(connect=method == b"CONNECT"))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"", b"http/1.1", b"HTTP/", b"HTTP"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r\r\n", b"\n\r"]))
    sp1 = draw(st.sampled_from([b" ", b" ", b"  ", b"\t", b""]))
    sp2 = draw(st.sampled_from([b" ", b" ", b"   ", b"\t", b""])) if version else b""
    line = method + sp1 + target + sp2 + version + draw(st.sampled_from([b"", b"", b" ", b"  "]))
    lines = draw(st.lists(header_lines(), max_size=8))
    if draw(DICE) == 9:  # push the interesting headers past byte 256 / past line MAX_HEADERS
        filler = [b"X-Pad: " + b"p" * draw(st.integers(0, 400))] * draw(st.sampled_from([1, 99, 100, 101]))
        lines = filler + lines
    head = line + eol + b"".join(h + draw(st.sampled_from([b"\r\n", b"\n"])) for h in lines)
    head += draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"", b"\r\n\r\n"]))
    payload = head + draw(st.one_of(st.just(b""), st.binary(max_size=40),
                                    st.sampled_from([b"q=1 UNION SELECT", b"\r\n\r\nHost: late.example\r\n\r\n"])))
    if draw(DICE) >= 8:
        payload = payload[:draw(st.integers(0, len(payload)))]
    return payload


@FUZZ
@given(requests())
def test_structured_requests(payload: bytes) -> None:
    same(payload)


@FUZZ
@given(requests(), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.integers(0, 2)),
                            min_size=1, max_size=4))
def test_mutated_requests(payload: bytes, edits: list[tuple[int, int, int]]) -> None:
    data = bytearray(payload)
    for where, byte, how in edits:
        at = where % (len(data) + 1)
        if how == 0 and at < len(data):
            data[at] = byte
        elif how == 1:
            data.insert(at, byte)
        else:
            del data[at:at + 1]
    same(bytes(data))


@settings(max_examples=2000, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=64), st.sampled_from(sorted(http._PREFIXES)).flatmap(
    lambda prefix: st.binary(max_size=64).map(lambda tail: prefix + tail))))
def test_random_bytes(payload: bytes) -> None:
    same(payload)


def test_seeded_mutations_in_volume() -> None:
    """Many cheap random edits of realistic heads (hypothesis above explores structure, this volume)."""
    rng = random.Random(11)
    bases = [g.http_request("GET", "/static/img123.png?v=3", host="www.site1.com",
                            headers=[("User-Agent", "Mozilla/5.0 (X11)"), ("Accept", "*/*")]),
             g.http_request("POST", "/a?b=c", host="[2001:db8::1]:8080", headers=[("User-Agent", "x")], body=b"k=v"),
             b"GET http://user:pw@Proxy.Example:8081/probe?x=1 HTTP/1.1\r\nHost: 203.0.113.1\r\n\r\n",
             b"CONNECT Tunnel.Example:443 HTTP/1.1\r\nHost: tunnel.example:443\r\n\r\n",
             b"GET / HTTP/1.0\nHost: lf.example\n continued: x\nnocolon\n: empty\n\nbody"]
    alphabet = b" :\r\n[]@/?#.\t\x00\x0b\x0c\x1c\x85\xa0\xb2\xc0\xd7Hh0"
    for _ in range(100000):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(len(data))] = rng.choice(alphabet)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data) + 1):]
        same(bytes(data))


# --- exhaustive edges: every authority shape in every place, the size limits at their boundaries -------

def test_every_authority_shape_in_every_place() -> None:
    for user in USERINFOS:
        for name in HOSTNAMES:
            for port in PORTS:
                authority = user + name + port
                same(b"GET / HTTP/1.1\r\nHost: " + authority + b"\r\n\r\n")
                same(b"GET http://" + authority + b"/p HTTP/1.1\r\nHost: other.example\r\n\r\n")
                same(b"GET HTTPS://" + authority + b"?q HTTP/1.1\r\n\r\n")
                same(b"CONNECT " + authority + b" HTTP/1.1\r\nHost: h.example:8\r\n\r\n")


def test_limits_at_their_boundaries() -> None:
    limit, names, lines = http.MAX_VALUE, http.MAX_NAME, http.MAX_HEADERS
    for size in (limit - 1, limit, limit + 1):
        for pad in (b"", b" ", b" \t\x0b"):
            req = same(b"GET / HTTP/1.1\r\nUser-Agent: " + b"u" * (size - 1) + pad + b"v" + pad + b"\r\n\r\n")
            assert req is not None and req.user_agent is not None and len(req.user_agent) <= limit
            same(b"GET / HTTP/1.1\r\nHost: " + b"h" * (size - 1) + pad + b"v:80\r\n\r\n")
    for spaces in range(names - 6, names + 2):  # the colon's offset in its line around MAX_NAME
        for before in (b"", b"A: b\r\n", b"X: " + b"x" * 300 + b"\r\n"):
            req = same(b"GET / HTTP/1.1\r\n" + before + b"Host" + b" " * spaces + b": h.example\r\n\r\n")
            assert req is not None and (req.host == "h.example") == (4 + spaces <= names)
    for count in (lines - 2, lines - 1, lines, lines + 1):  # the header's line number around MAX_HEADERS
        filler = b"X-Pad: p\r\n" * count
        req = same(b"GET / HTTP/1.1\r\n" + filler + b"Host: h.example\r\nUser-Agent: u\r\n\r\n")
        assert req is not None and (req.host == "h.example") == (count < lines)
        assert (req.user_agent == "u") == (count + 1 < lines)


# --- every latin-1 byte (the text tables: str.lower, str.strip, ASCII-only digits) --------------------

@pytest.mark.parametrize("byte", range(256))
def test_every_latin1_byte(byte: int) -> None:
    c = bytes([byte])
    for value in (b"a" + c + b"b", c + b"host" + c, b"h:" + c, b"h:8" + c, b"[" + c + b"]:8" + c, b"u" + c + b"@h",
                  c, c + b":" + c, b"h." + c + b".", b"[::1]" + c):
        same(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\nUser-Agent: " + value + b"\r\n\r\n")
        same(b"GET http://" + value + b"/p HTTP/1.1\r\n\r\n")
        same(b"CONNECT " + value + b" HTTP/1.1\r\n\r\n")
    for line in (b"GET /" + c + b" HTTP/1.1\r\n\r\n", b"GET" + c + b"/ HTTP/1.1\n\n", b"GET /x" + c + b"HTTP/1.1\r\n",
                 b"GET / HTTP/1.1\r\n" + c + b"host: h\r\n\r\n", b"GET / HTTP/1.1\r\nhost" + c + b": h\r\n\r\n",
                 b"GET / HTTP/1.1\r\nhost: h" + c + b"\r\n\r\n", b"GET / HTTP/1.1" + c + b"\r\n\r\n"):
        same(line)
    # independent of the Python twin: the host is the latin-1 text lower-cased the way str.lower() does it
    req = same(b"GET / HTTP/1.1\r\nHost: a" + c + b"b\r\n\r\n")
    if c not in b":@\n":
        assert req is not None and req.host == ("a" + chr(byte) + "b").lower(), req


# --- the conformance corpus and tests/test_http.py ------------------------------------------------------

def test_conformance_corpus_payloads() -> None:
    parsed = 0
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.pcap"))):
        for payload in corpus_tcp_payloads(os.path.basename(path)):
            parsed += same(payload) is not None
    assert parsed >= 6


def test_http_suite_on_the_other_implementation() -> None:
    """tests/test_http.py runs on whichever parser is bound in this process; run it on the other."""
    env = dict(os.environ)
    if http.parse_request is http.parse_request_py:
        env.pop("MALTRAIL_PURE_PYTHON", None)
        expect = "<built-in function parse_request>"
    else:
        env["MALTRAIL_PURE_PYTHON"] = "1"
        expect = "<function parse_request_py"
    bound = subprocess.run([sys.executable, "-c", "from core.protocols import http; print(http.parse_request)"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bound.stdout.startswith(expect), bound.stdout + bound.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_http.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_http_suite_inputs() -> None:
    """The inputs tests/test_http.py builds, parsed by both here."""
    payloads = [g.http_request("GET", "/a/b.php?x=1", host="Victim.Example:8080",
                               headers=[("User-Agent", "curl/8.0"), ("Accept", "*/*")]),
                g.http_request(headers=[(f"X-H{i}", "v") for i in range(300)]),
                g.http_request(headers=[("X-Long", "a" * 20000)]),
                g.http_request(host=None), g.http_request("POST", "/submit", body=b"q=1 UNION SELECT")]
    payloads += [g.http_request(host=h) for h in ("a.example.", "[::1]:80", "::1", "h.example:99999", "h.example:")]
    payloads += [m + b" /x HTTP/1.1\r\n\r\n" for m in sorted(http.METHODS)]
    payloads += [b"", b"GET", b"GET / HTTP/1.1", b"GETX / HTTP/1.1\r\n\r\n", b"get / HTTP/1.1\r\n\r\n",
                 b"GET  \r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"HTTP/1.1 200 OK\r\n\r\n", b"POSTAL / HTTP/1.1\r\n",
                 b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", b"GET http://q.example?a=b HTTP/1.0\r\n\r\n"]
    full = g.http_request("GET", "/path?q=1", headers=[("User-Agent", "UA/1"), ("Accept", "*/*")], body=b"xyz")
    payloads += [full[:cut] for cut in range(len(full) + 1)]
    assert sum(same(p) is not None for p in payloads) > 40


# --- the record ---------------------------------------------------------------------------------------------

def test_record_type_and_methods_on_the_c_result() -> None:
    assert accel is not None
    payload = (b"GET /x HTTP/1.1\r\nHost: Www.Site1.com:8080\r\nUser-Agent:  UA/1 \r\nX-Forwarded-For: 1.2.3.4\r\n"
               b"Cookie: a=b\r\n\r\nbody")
    req = accel.parse_request(payload)
    assert isinstance(req, http.HttpRequest) and isinstance(req, tuple) and len(req) == 13
    assert (req.method, req.path, req.version, req.host, req.port) == ("GET", "/x", "HTTP/1.1", "www.site1.com", 8080)
    assert req.may_have((b"forwarded",)) and not req.may_have((b"nothing-like-this",))
    assert req.header("x-forwarded-for") == "1.2.3.4" and req.header("cookie") == "a=b"
    assert req.header("absent") is None
    assert req.headers == {"host": "Www.Site1.com:8080", "user-agent": "UA/1", "x-forwarded-for": "1.2.3.4",
                           "cookie": "a=b"}
    assert req.cache and req.header("cookie") == "a=b" and req.may_have((b"nothing",))  # now from the cache
    assert req._asdict()["body"] == b"body" and req._replace(port=1).port == 1
    assert repr(req).startswith("HttpRequest(method='GET'")
    other = accel.parse_request(payload)
    assert other is not None and other.cache == [] and other.cache is not req.cache  # a fresh list per call
    with pytest.raises(TypeError):
        hash(req)  # as the Python record: the cache list is unhashable


def test_header_lookup_agrees_with_header_dict_on_c_results() -> None:
    """header(name) on the C record's raw block and the full header dict follow one rule set."""
    assert accel is not None
    rng = random.Random(7)
    names = ["host", "user-agent", "Host", " host", "\x0bhost", "host\r", "hostile", "x"]
    for _ in range(3000):
        lines = [rng.choice(names) + rng.choice([":", " :", "\t:", "\x0c:", ""]) + rng.choice([" v", "w ", ""])
                 for _ in range(rng.randrange(0, 6))]
        if rng.random() < 0.2:
            lines.insert(0, "X-Pad: " + "p" * rng.randrange(200, 400))
        payload = ("GET / HTTP/1.1\r\n" + "\r\n".join(lines) + rng.choice(["\r\n\r\n", "\r\n", ""])).encode("latin-1")
        fresh = same(payload)
        full = accel.parse_request(payload)
        assert fresh is not None and full is not None
        headers = full.headers
        for name in ("host", "user-agent", "hostile", "x"):
            assert fresh.header(name) == headers.get(name), (payload, name)


def test_init_and_argument_errors() -> None:
    assert accel is not None
    with pytest.raises(TypeError):
        accel.init(int)
    with pytest.raises(TypeError):
        accel.init(http.HttpResponse)  # a tuple subclass with 6 fields
    with pytest.raises(TypeError):
        accel.parse_request("GET / HTTP/1.1\r\n\r\n")
    accel.init(http.HttpRequest)
    assert accel.parse_request(b"GET / HTTP/1.1\r\n\r\n") is not None


def test_no_leak_per_call() -> None:
    """Every object the C parser creates is owned by the record (or freed): allocated blocks stay flat."""
    assert accel is not None
    payloads = [g.http_request("GET", "/a", headers=[("User-Agent", "u")], body=b"b"),
                b"GET http://u@h.example:81?q HTTP/1.1\r\n\r\n", b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", b"junk"]
    for p in payloads:
        accel.parse_request(p)
    before = sys.getallocatedblocks()
    for _ in range(5000):
        for p in payloads:
            accel.parse_request(p)
    assert sys.getallocatedblocks() - before < 1000
