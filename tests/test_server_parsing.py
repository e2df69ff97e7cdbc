"""Request parsing in process: the pure head parser (core/server/messages.py `parse_head`) on good
and hostile heads, HTTP framing (RFC 9112: line ends, versions, Host, Content-Length and
Transfer-Encoding), the body's form fields (`build_request`), a seeded mutation fuzz (every input
gives a Head or an HttpError, nothing else), and the incremental `RequestReader` the server's
event loop feeds (pieces of any size, early answers, size limits)."""

from __future__ import annotations

import random

import pytest

from core.server.messages import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_QUERY_FIELDS,
    Head,
    HttpError,
    RequestReader,
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
    assert head.version == "HTTP/1.0"
    assert head.raw_path == "/js/%2e%2e/a%00b" and head.path == "/js/../a\x00b"
    assert head.params == {"q": ""} and head.headers == {"x-a": "2", "empty": ""}   # the last header wins
    head = parse_head(b"GET http://example.org:8080/a/b?c=d HTTP/1.1\r\nHost: example.org:8080")
    assert (head.target, head.raw_path, head.params) == ("/a/b?c=d", "/a/b", {"c": "d"})
    assert parse_head(b"GET https://example.org HTTP/1.1\r\nHost: example.org").target == "/"
    assert parse_head(b"HEAD / HTTP/1.1\r\nHost: h").method == "HEAD"
    head = parse_head(b"POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 000000000000042")
    assert head.length == 42


H = b"\r\nHost: h"     # an HTTP/1.1 request needs it: added so that each case tests its own rule

HOSTILE = [
    (b"", 400), (b"GET", 400), (b"GET /", 400), (b"GET  / HTTP/1.1" + H, 400), (b"GET / HTTP/1.1 x" + H, 400),
    (b"GET / HTTP/9" + H, 400), (b"GET / http/1.1" + H, 400), (b"GET / HTTP/1.10" + H, 400),
    (b"GET / HTTP/1.1\r" + H, 400),                                 # a bare CR
    (b"FOO / HTTP/1.1" + H, 405), (b"get / HTTP/1.1" + H, 405), (b"PUT / HTTP/1.1" + H, 405),
    (b"OPTIONS * HTTP/1.1" + H, 405),
    (b"GET /" + b"a" * 8192 + b" HTTP/1.1" + H, 414), (b"GET /" + b"a" * 8191 + b" HTTP/1.1" + H, 200),
    (b"GET / HTTP/1.1" + H + b"\r\nX: y" * MAX_HEADERS, 431), (b"GET / HTTP/1.1" + H + b"\r\nX: y" * (MAX_HEADERS - 1), 200),
    (b"GET / HTTP/1.1" + H + b"\r\nX: " + b"y" * MAX_HEADER_BYTES, 431),
    (b"GET / HTTP/1.1" + H + b"\r\nBad Header", 400), (b"GET / HTTP/1.1" + H + b"\r\n: no name", 400),
    (b"GET / HTTP/1.1" + H + b"\r\nName : space before the colon", 400),
    (b"GET / HTTP/1.1" + H + b"\r\n Folded: x", 400),
    (b"GET / HTTP/1.1" + H + b"\r\n\r\nX: y", 400),                  # an empty line inside the head
    (b"GET / HTTP/1.1" + H + b"\r\nX: a\rb", 400),                     # a bare CR in a value
    (b"GET / HTTP/1.1\nHost: x", 200), (b"GET / HTTP/1.1\nHost: x\r\nA: b\nC: d", 200),   # bare LF ends a line
    (b"POST /login HTTP/1.1" + H + b"\r\nTransfer-Encoding: chunked", 411),
    (b"POST /login HTTP/1.1" + H + b"\r\nContent-Length: -5", 400),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 1e3", 400),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 1 2", 400),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 0x10", 400),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 9999999999999999", 400),  # 16 digits
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: \xb2", 400),              # a digit to str.isdigit, not to int()
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: \xd9\xa3", 400),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length:", 400),
    (b"GET foo HTTP/1.1" + H, 400), (b"GET * HTTP/1.1" + H, 400), (b"GET ftp://x/ HTTP/1.1" + H, 400),
    (b"GET http://[x/ HTTP/1.1" + H, 400),                              # urlsplit refuses it
    (b"GET /?" + b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS + 1)) + b" HTTP/1.1" + H, 400),
    (b"GET /?" + b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS)) + b" HTTP/1.1" + H, 200),
    (b"GET /\xff\xfe%ff%c0%af HTTP/1.1" + H + b"\r\nX-\x00: \x00\xff", 200),  # odd bytes are data, not errors
] + [(data, status) for data, status, _ in [
    (b"GET / HTTP/1.1", 400, "no Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a", 400, "two Host lines"),
    (b"GET / HTTP/1.1\r\nHost: a b", 400, "a Host that is not host[:port]"),
    (b"GET / HTTP/1.1\r\nHost: a/b", 400, ""),
    (b"GET / HTTP/1.1\r\nHost: user@a", 400, ""),
    (b"GET / HTTP/1.1\r\nHost: ", 200, "empty Host: allowed (RFC 9112 3.2)"),
    (b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8338", 200, ""),
    (b"GET / HTTP/1.1\r\nHost: maltrail.example:8338", 200, ""),
    (b"GET / HTTP/1.0", 200, "HTTP/1.0 needs no Host"),
    (b"GET / HTTP/1.9\r\nHost: h", 200, "a higher 1.x is handled as 1.1 (RFC 9110 6.2)"),
    (b"GET / HTTP/1.9", 400, "... including the Host rule"),
    (b"GET / HTTP/2.0\r\nHost: h", 505, "another major version"),
    (b"GET / HTTP/0.9", 505, ""),
    (b"GET / HTTP/3.0\r\nHost: h", 505, ""),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 0\r\nContent-Length: 42", 400, "two different lengths"),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 42\r\nContent-Length: 0", 400, "in either order"),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 42, 0", 400, "as a list"),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 42,", 400, "an empty list member"),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 42\r\nContent-Length: 42", 200, "the same length twice"),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 42, 042", 200, ""),
    (b"POST / HTTP/1.1" + H + b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", 400, "CL with TE"),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding: chunked\r\nContent-Length: 5", 400, ""),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding: gzip", 400, "chunked not last"),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding: chunked, gzip", 400, ""),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding:", 400, ""),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding: gzip, chunked", 501, "a coding this server lacks"),
    (b"POST / HTTP/1.1" + H + b"\r\nTransfer-Encoding: Chunked", 411, "chunked bodies are not taken"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked", 400, "TE in HTTP/1.0 (RFC 9112 6.1)"),
]]


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
             b"HEAD /%2e%2e/x HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1"]
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
    head = parse_head(b"POST /login?username=query&keep=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 29\r\n"
                      b"Content-Type: application/x-www-form-urlencoded; charset=UTF-8")
    request = build_request(head, b"username=body&password=p%26w", "127.0.0.1", 1, True)
    assert request.params == {"username": "body", "keep": "1", "password": "p&w"}
    assert request.tls and request.body == b"username=body&password=p%26w"
    json_head = parse_head(b"POST /login HTTP/1.0\r\nContent-Type: application/json")
    assert build_request(json_head, b"username=x", "127.0.0.1", 1, False).params == {}
    get_head = parse_head(b"GET /x HTTP/1.0")
    assert build_request(get_head, b"a=1", "127.0.0.1", 1, False).params == {}
    with pytest.raises(HttpError) as info:
        build_request(head, b"&".join(b"a%d=1" % n for n in range(MAX_QUERY_FIELDS + 1)), "127.0.0.1", 1, False)
    assert info.value.status == 400


# -- the incremental reader -----------------------------------------------------------------------

def read_in_pieces(raw: bytes, size: int, max_body: int = 1000) -> tuple[RequestReader, int]:
    """Feed `raw` in pieces of `size` bytes until the reader has the request: (reader, bytes fed)."""
    reader = RequestReader(max_body)
    for at in range(0, len(raw), size):
        if reader.feed(raw[at:at + size]):
            return reader, at + size
    raise AssertionError("the request never completed")


def first_error(raw: bytes, size: int = 1, max_body: int = 1000) -> tuple[int, int]:
    """Feed byte by byte (by default): (status of the HttpError, how many bytes it took)."""
    reader = RequestReader(max_body)
    for at in range(0, len(raw), size):
        try:
            if reader.feed(raw[at:at + size]):
                raise AssertionError("complete, no error")
        except HttpError as ex:
            return ex.status, min(at + size, len(raw))
    raise AssertionError("still waiting for more")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100000])
def test_reader_collects_a_head_and_body_in_pieces_of_any_size(size):
    raw = b"POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 27\r\n\r\nusername=admin&password=pw!extra"
    reader, _ = read_in_pieces(raw, size)
    assert reader.head is not None and reader.head.path == "/login"
    assert reader.body == b"username=admin&password=pw!"
    request = build_request(reader.head, reader.body, "192.0.2.1", 5000, False)
    assert request.params == {"username": "admin", "password": "pw!"} and request.address == "192.0.2.1"


@pytest.mark.parametrize("ends", [b"\r\n", b"\n"])
def test_reader_accepts_bare_lf_and_skips_empty_lines_before_the_request(ends):
    raw = (ends * 3 + b"GET /ping?a=1 HTTP/1.1" + ends + b"Host: x" + ends + b"Accept: */*" + ends + ends)
    for size in (1, 5, len(raw)):
        reader, used = read_in_pieces(raw, size)
        assert reader.head is not None and reader.head.path == "/ping" and reader.head.params == {"a": "1"}
        assert reader.head.headers == {"host": "x", "accept": "*/*"} and reader.body == b""
        assert used >= len(raw) and used - size < len(raw)   # complete on the last byte, not before


def test_reader_answers_a_bad_request_line_when_that_line_ends():
    assert first_error(b"GET /ping\r\n" + b"x" * 50) == (400, len(b"GET /ping\r\n"))     # HTTP/0.9 style
    assert first_error(b"GET /ping\n") == (400, len(b"GET /ping\n"))
    assert first_error(b"GET / HTTP/2.0\r\n") == (505, len(b"GET / HTTP/2.0\r\n"))
    assert first_error(b"BREW / HTTP/1.1\r\n") == (405, len(b"BREW / HTTP/1.1\r\n"))
    assert first_error(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n")[0] == 400   # a TLS hello on the plain port


def test_reader_framing_errors_come_with_the_head():
    head = b"POST /login HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 42\r\n\r\n"
    assert first_error(head + b"username=admin&password=x") == (400, len(head))
    assert first_error(b"GET / HTTP/1.1\r\n\r\n") == (400, len(b"GET / HTTP/1.1\r\n\r\n"))     # no Host


def test_reader_limits():
    assert first_error(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n", size=4096)[0] == 413
    reader, _ = read_in_pieces(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"a" * 1000, 333)
    assert len(reader.body) == 1000
    status, used = first_error(b"GET / HTTP/1.1\r\nX: " + b"a" * (2 * MAX_HEADER_BYTES), size=4096)
    assert status == 431 and used <= MAX_HEADER_BYTES + 4096 * 2
    status, used = first_error(b"GET /" + b"a" * (2 * MAX_HEADER_BYTES), size=4096)         # a line that never ends
    assert status == 431 and used <= MAX_HEADER_BYTES + 4096 * 2
    status, used = first_error(b"\r\n" * MAX_HEADER_BYTES, size=4096)                        # only empty lines
    assert status == 400 and used <= MAX_HEADER_BYTES + 4096 * 2
    reader = RequestReader(1000)                             # a head that never ends waits (the loop's deadline ends it)
    assert not reader.feed(b"GET / HTTP/1.1\r\nHost: h\r\n") and reader.head is None


def test_reader_work_is_linear_in_a_trickled_head():
    reader = RequestReader(0)
    assert not reader.feed(b"GET / HTTP/1.1\r\n")
    scans = []
    for _ in range(MAX_HEADER_BYTES - 100):
        reader.feed(b"a")
        scans.append(reader.scan)
    assert scans[-1] >= len(reader.buf) - 2         # each byte resumes the search near the end
