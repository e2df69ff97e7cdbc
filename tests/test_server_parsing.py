"""Request parsing in process: the pure head parser (core/server/messages.py `parse_head`) on good
and hostile heads, the body's form fields (`build_request`), a seeded mutation fuzz (every input
gives a Head or an HttpError, nothing else), and httpd's socket reader over a real socket pair
(body reading, size limits, the deadline, a client that goes away)."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from core.server.httpd import read_request
from core.server.messages import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_QUERY_FIELDS,
    Head,
    HttpError,
    build_request,
    parse_head,
)


def status_of(data: bytes) -> int:
    try:
        parse_head(data)
    except HttpError as ex:
        return ex.status
    return 200


def test_a_plain_get():
    head = parse_head(b"GET /events?date=2024-01-01&x=%41%20b&x=second HTTP/1.1\r\nHost: h\r\n"
                      b"Accept-Encoding: gzip\r\nCookie: a=1; maltrail_sessid=abc")
    assert head.method == "GET" and head.target == "/events?date=2024-01-01&x=%41%20b&x=second"
    assert head.raw_path == head.path == "/events"
    assert head.params == {"date": "2024-01-01", "x": "A b"}              # the first occurrence wins
    assert head.headers == {"host": "h", "accept-encoding": "gzip", "cookie": "a=1; maltrail_sessid=abc"}
    assert head.length == 0
    request = build_request(head, b"", "10.0.0.1", 4444, False)
    assert request.cookie("maltrail_sessid") == "abc" and request.cookie("nope") is None


def test_paths_headers_and_absolute_form():
    head = parse_head(b"GET /js/%2e%2e/a%00b?q HTTP/1.0\r\nX-A: 1\r\nx-a:  2  \r\nEmpty:")
    assert head.raw_path == "/js/%2e%2e/a%00b" and head.path == "/js/../a\x00b"
    assert head.params == {"q": ""} and head.headers == {"x-a": "2", "empty": ""}   # the last header wins
    head = parse_head(b"GET http://example.org:8080/a/b?c=d HTTP/1.1")
    assert (head.target, head.raw_path, head.params) == ("/a/b?c=d", "/a/b", {"c": "d"})
    assert parse_head(b"GET https://example.org HTTP/1.1").target == "/"
    assert parse_head(b"HEAD / HTTP/1.1").method == "HEAD"
    head = parse_head(b"POST /login HTTP/1.1\r\nContent-Length: 000000000000042")
    assert head.length == 42


HOSTILE = [
    (b"", 400), (b"GET", 400), (b"GET /", 400), (b"GET  / HTTP/1.1", 400), (b"GET / HTTP/1.1 x", 400),
    (b"GET / HTTP/9", 400), (b"GET / http/1.1", 400), (b"GET / HTTP/2.0", 400),
    (b"FOO / HTTP/1.1", 405), (b"get / HTTP/1.1", 405), (b"PUT / HTTP/1.1", 405), (b"OPTIONS * HTTP/1.1", 405),
    (b"GET /" + b"a" * 8192 + b" HTTP/1.1", 414), (b"GET /" + b"a" * 8191 + b" HTTP/1.1", 200),
    (b"GET / HTTP/1.1" + b"\r\nX: y" * (MAX_HEADERS + 1), 431), (b"GET / HTTP/1.1" + b"\r\nX: y" * MAX_HEADERS, 200),
    (b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * MAX_HEADER_BYTES, 431),
    (b"GET / HTTP/1.1\r\nBad Header", 400), (b"GET / HTTP/1.1\r\n: no name", 400),
    (b"GET / HTTP/1.1\r\nName : space before the colon", 400), (b"GET / HTTP/1.1\r\n Folded: x", 400),
    (b"GET / HTTP/1.1\r\n\r\nX: y", 400),                           # an empty line inside the head
    (b"GET / HTTP/1.1\nHost: x", 400),                              # bare LF: one malformed request line
    (b"POST /login HTTP/1.1\r\nTransfer-Encoding: chunked", 411),
    (b"POST /login HTTP/1.1\r\nContent-Length: -5", 400), (b"POST / HTTP/1.1\r\nContent-Length: 1e3", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 1 2", 400), (b"POST / HTTP/1.1\r\nContent-Length: 0x10", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: 9999999999999999", 400),  # 16 digits
    (b"POST / HTTP/1.1\r\nContent-Length: \xb2", 400),              # a digit to str.isdigit, not to int()
    (b"POST / HTTP/1.1\r\nContent-Length: \xd9\xa3", 400),
    (b"GET foo HTTP/1.1", 400), (b"GET * HTTP/1.1", 400), (b"GET ftp://x/ HTTP/1.1", 400),
    (b"GET http://[x/ HTTP/1.1", 400),                              # urlsplit refuses it
    (b"GET /?" + b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS + 1)) + b" HTTP/1.1", 400),
    (b"GET /?" + b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS)) + b" HTTP/1.1", 200),
    (b"GET /\xff\xfe%ff%c0%af HTTP/1.1\r\nX-\x00: \x00\xff", 200),  # odd bytes are data, not errors
]


@pytest.mark.parametrize("data, status", HOSTILE, ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else str(v))
def test_hostile_heads(data, status):
    assert status_of(data) == status


def test_error_messages_are_one_line():
    for data, status in HOSTILE:
        if status != 200:
            with pytest.raises(HttpError) as info:
                parse_head(data)
            assert info.value.message and "\n" not in info.value.message


def test_mutation_fuzz_gives_a_head_or_an_http_error():
    seeds = [b"GET /events?date=2024-01-01 HTTP/1.1\r\nHost: x\r\nCookie: maltrail_sessid=ab",
             b"POST http://h/login?a=b HTTP/1.0\r\nContent-Length: 12\r\nContent-Type: text/plain",
             b"HEAD /%2e%2e/x HTTP/1.1\r\nRange: bytes=0-1"]
    alphabet = b" :\r\n/?=&%[]@#\x00\xff\xb2\xd9\xa30123456789HTPGEOSTchunked-"
    rng = random.Random(1337)
    statuses: dict[int, int] = {}
    for _ in range(20000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op, at = rng.randint(0, 2), rng.randint(0, len(data))
            if op == 0:
                data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            elif op == 1:
                del data[at:at + rng.randint(1, 4)]
            else:
                data[at:at + 1] = bytes([rng.randint(0, 255)])
        try:
            head = parse_head(bytes(data))
        except HttpError as ex:
            statuses[ex.status] = statuses.get(ex.status, 0) + 1
            continue
        assert isinstance(head, Head) and head.target.startswith("/") and head.length >= 0
        statuses[200] = statuses.get(200, 0) + 1
    assert set(statuses) >= {200, 400, 405}, statuses


def test_form_body_fields():
    head = parse_head(b"POST /login?username=query&keep=1 HTTP/1.1\r\nContent-Length: 29\r\n"
                      b"Content-Type: application/x-www-form-urlencoded; charset=UTF-8")
    request = build_request(head, b"username=body&password=p%26w", "127.0.0.1", 1, True)
    assert request.params == {"username": "body", "keep": "1", "password": "p&w"}
    assert request.tls and request.body == b"username=body&password=p%26w"
    json_head = parse_head(b"POST /login HTTP/1.1\r\nContent-Type: application/json")
    assert build_request(json_head, b"username=x", "127.0.0.1", 1, False).params == {}
    get_head = parse_head(b"GET /x HTTP/1.1")
    assert build_request(get_head, b"a=1", "127.0.0.1", 1, False).params == {}
    with pytest.raises(HttpError) as info:
        build_request(head, b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS + 1)), "127.0.0.1", 1, False)
    assert info.value.status == 400


# -- the socket reader -----------------------------------------------------------------------------

def _read(chunks: list[bytes], *, max_body: int = 1000, timeout: float = 2.0, pause: float = 0.0,
          close: bool = True):
    server, client = socket.socketpair()

    def feed() -> None:
        for chunk in chunks:
            try:
                client.sendall(chunk)
            except OSError:
                return
            time.sleep(pause)
        if close:
            client.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        return read_request(server, time.monotonic() + timeout, max_body, "192.0.2.1", 5000, False)
    finally:
        writer.join()
        server.close()
        client.close()


def test_reader_collects_a_head_and_body_sent_in_pieces():
    raw = b"POST /login HTTP/1.1\r\nContent-Length: 27\r\n\r\nusername=admin&password=pw!extra-bytes-ignored"
    request = _read([raw[n:n + 7] for n in range(0, len(raw), 7)])
    assert request.params == {"username": "admin", "password": "pw!"}
    assert request.body == b"username=admin&password=pw!" and request.address == "192.0.2.1"


def test_reader_limits():
    with pytest.raises(HttpError) as info:
        _read([b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"], max_body=1000)
    assert info.value.status == 413
    with pytest.raises(HttpError) as info:
        _read([b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEADER_BYTES + 10)])
    assert info.value.status == 431
    with pytest.raises(HttpError) as info:                   # the head never ends
        _read([b"GET / HTTP/1.1\r\n"], timeout=0.3, close=False)
    assert info.value.status == 408
    with pytest.raises(HttpError) as info:                   # a body trickled past the deadline
        _read([b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", b"a", b"b", b"c"], timeout=0.5, pause=0.3,
              close=False)
    assert info.value.status == 408
    with pytest.raises(ConnectionResetError):               # the client leaves before the body is complete
        _read([b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"])
    with pytest.raises(HttpError) as info:                   # the head itself is checked by parse_head
        _read([b"FOO / HTTP/1.1\r\n\r\n"])
    assert info.value.status == 405
