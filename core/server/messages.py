"""HTTP messages of the server: request framing and head parsing, the Request/Response records.

Where it sits: httpd.py's event loop feeds the bytes of a connection to a `RequestReader`, which
finds the end of the head, checks the request line as soon as it is complete, parses the head
(`parse_head`) and waits for the body it announces; the worker builds the `Request`
(`build_request`) that the endpoint handlers (api.py, queries.py, lists.py, lookup.py, static.py)
receive; they answer a `Response` (or raise `HttpError`), which httpd.py writes. Nothing here
touches a socket.

Framing (RFC 9112): lines end with CRLF or a bare LF (a CR elsewhere is refused, 400); empty
lines before the request line are skipped; the head ends at the first empty line. Request line
`METHOD target HTTP/x.y` with exactly two spaces, else 400 (also for `GET /ping` with no
version: answered as soon as the line is complete); a version that is not `HTTP/digit.digit` is
400, a major version other than 1 is 505, and HTTP/1.2 to 1.9 are handled as HTTP/1.1 (RFC 9110
6.2). GET, POST and HEAD only (405); target at most 8192 characters (414), origin-form `/...` or
absolute-form `http(s)://host/...` (reduced to its path and query; anything else 400). At most
MAX_HEADERS header lines (431) of `name: value` with no space before the colon (400); names
lower-cased, the last occurrence wins, except: an HTTP/1.1 request needs exactly one `Host`
(400 without or with two), of host[:port] syntax; `Content-Length` lines or list members must be
ASCII digits (at most 15) and all the same number (else 400: two different lengths are how a
body is smuggled past a front end); `Transfer-Encoding` with `Content-Length`, in an HTTP/1.0
request, or without `chunked` last is 400, a coding other than chunked 501, and chunked itself
411 (this server takes bodies with a Content-Length only). Every error closes the connection.
At most MAX_QUERY_FIELDS query (or form body) fields (400); the first occurrence of a field wins.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 32768
MAX_QUERY_FIELDS = 100
MAX_HEADERS = 100
MAX_TARGET = 8192
METHODS = ("GET", "POST", "HEAD")
FORM_TYPES = ("application/x-www-form-urlencoded", "text/plain", "")
VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?")
HEAD_END = re.compile(rb"\n\r?\n")

REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 302: "Found", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class HttpError(Exception):
    """A request that gets an error answer: the status and a one-line text body."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message or REASONS.get(status, "")


@dataclass(frozen=True)
class Head:
    """A parsed request line and headers (what comes before the body)."""

    method: str
    target: str                   # origin-form target (an absolute-form one reduced to path?query)
    raw_path: str                 # path as sent (still percent-encoded)
    path: str                     # percent-decoded path
    params: dict[str, str]        # query fields
    headers: dict[str, str]       # lower-case names
    length: int                   # Content-Length (0 when absent)
    version: str = "HTTP/1.1"     # HTTP/1.0 or HTTP/1.1


@dataclass
class Request:
    method: str
    target: str
    path: str                     # percent-decoded path without the query
    raw_path: str                 # path as sent (still percent-encoded)
    params: dict[str, str]
    headers: dict[str, str]       # lower-case names
    body: bytes
    address: str                  # client address (IPv4-mapped IPv6 unwrapped)
    port: int
    tls: bool
    sock: socket.socket | None = None   # the connection (/live watches it for the client leaving)
    attrs: dict[str, object] = field(default_factory=dict)

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    length: int | None = None     # for iterable bodies: the exact byte count when known
    compressible: bool = True     # may be gzip-encoded when the client accepts it
    cache: str = "no-store"       # Cache-Control


def text(status: int, body: str, **kw: object) -> Response:
    return Response(status, body.encode("utf-8"), **kw)  # type: ignore[arg-type]


def json_response(obj: object, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), "application/json")


def parse_request_line(line: str) -> tuple[str, str, str]:
    """`METHOD target HTTP/x.y` -> (method, target as sent, "HTTP/1.0" or "HTTP/1.1"); HttpError
    otherwise (400, 405, 414, 505: see the module docstring)."""
    if "\r" in line:
        raise HttpError(400, "Bare CR in the request line")
    parts = line.split(" ")
    version = VERSION.fullmatch(parts[2]) if len(parts) == 3 else None
    if version is None:
        raise HttpError(400, "Malformed request line")
    if version.group(1) != "1":
        raise HttpError(505)
    method, target = parts[0], parts[1]
    if method not in METHODS:
        raise HttpError(405)
    if len(target) > MAX_TARGET:
        raise HttpError(414)
    return method, target, "HTTP/1.0" if version.group(2) == "0" else "HTTP/1.1"


def parse_head(data: bytes) -> Head:
    """The bytes before the empty line (request line and headers) -> Head.

    Total over any input: every malformed or refused head raises HttpError with the status to
    answer (see the module docstring for the rules)."""
    if len(data) > MAX_HEADER_BYTES:
        raise HttpError(431)
    lines = [line[:-1] if line.endswith("\r") else line for line in data.decode("latin-1").split("\n")]
    method, target, version = parse_request_line(lines[0])
    if len(lines) > MAX_HEADERS + 1:
        raise HttpError(431)
    headers: dict[str, str] = {}
    lengths: list[str] = []
    codings: list[str] = []
    hosts = 0
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or "\r" in line:
            raise HttpError(400, "Malformed header")
        name, value = name.lower(), value.strip()
        headers[name] = value
        if name == "content-length":
            lengths.extend(item.strip() for item in value.split(","))
        elif name == "transfer-encoding":
            codings.extend(item.strip().lower() for item in value.split(",") if item.strip())
        elif name == "host":
            hosts += 1
    if hosts > 1 or (hosts == 0 and version == "HTTP/1.1"):
        raise HttpError(400, "An HTTP/1.1 request needs exactly one Host header")
    if hosts and not HOST.fullmatch(headers["host"]):
        raise HttpError(400, "Bad Host header")
    target = _origin_form(target)
    raw_path, _, query = target.partition("?")
    path = urllib.parse.unquote(raw_path, errors="replace")
    return Head(method, target, raw_path, path, parse_form(query), headers,
                _body_length(lengths, codings, "transfer-encoding" in headers, version), version)


def _body_length(lengths: list[str], codings: list[str], chunked_framing: bool, version: str) -> int:
    """The body length the head announces (RFC 9112 6.1-6.3), or HttpError."""
    if chunked_framing:
        if lengths:
            raise HttpError(400, "Transfer-Encoding together with Content-Length")
        if version == "HTTP/1.0" or not codings or codings[-1] != "chunked":
            raise HttpError(400, "Bad Transfer-Encoding")
        if any(coding != "chunked" for coding in codings):
            raise HttpError(501, "Transfer coding not supported")
        raise HttpError(411)
    if not lengths:
        return 0
    if not all(item.isascii() and item.isdigit() and len(item) <= 15 for item in lengths):
        raise HttpError(400, "Bad Content-Length")
    if len({int(item) for item in lengths}) != 1:
        raise HttpError(400, "Conflicting Content-Length values")
    return int(lengths[0])


def _origin_form(target: str) -> str:
    """`/path?query` of a target; an absolute-form target keeps only its path and query."""
    if target.startswith(("http://", "https://")):
        try:
            split = urllib.parse.urlsplit(target)
        except ValueError:                  # e.g. a bracketed host that is not an IPv6 address
            raise HttpError(400, "Bad request target") from None
        target = (split.path or "/") + ("?" + split.query if "?" in target else "")
    if not target.startswith("/"):
        raise HttpError(400, "Bad request target")
    return target


def parse_form(query: str) -> dict[str, str]:
    """`a=1&b=2` (query string or form body) -> fields; the first occurrence of a name wins."""
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS,
                                       errors="replace")
    except ValueError:
        raise HttpError(400, "Too many parameters") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def build_request(head: Head, body: bytes, address: str, port: int, tls: bool) -> Request:
    """The Request handlers receive: a form-encoded POST body's fields are added to the query's
    (a field in both takes the body's value)."""
    params = dict(head.params)
    if head.method == "POST" and body:
        ctype = head.headers.get("content-type", FORM_TYPES[0]).split(";")[0].strip().lower()
        if ctype in FORM_TYPES:
            params.update(parse_form(body.decode("utf-8", "replace")))
    return Request(head.method, head.target, head.path, head.raw_path, params, dict(head.headers), body,
                   address, port, tls)


class RequestReader:
    """One request assembled from the bytes of a connection as they arrive.

    `feed(data)` returns True once the head and the whole body it announces are in (`head`,
    `body`); it raises HttpError as soon as the bytes so far settle the answer: a malformed
    request line when that line is complete (not when the head would be), a head over
    MAX_HEADER_BYTES, a head `parse_head` refuses, a body over `max_body` (413, before reading
    it). Work per byte is constant, however the bytes are split."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.buf = bytearray()
        self.skipped = 0              # empty lines before the request line (RFC 9112 2.2)
        self.line_checked = False
        self.scan = 0                 # where the search for the end of the head resumes
        self.head: Head | None = None
        self.body_at = 0

    def feed(self, data: bytes) -> bool:
        if not self.buf:
            kept = data.lstrip(b"\r\n")
            self.skipped += len(data) - len(kept)
            if self.skipped > MAX_HEADER_BYTES:
                raise HttpError(400, "No request line")
            data = kept
        self.buf += data
        if self.head is None and not self._find_head():
            return False
        assert self.head is not None
        return len(self.buf) - self.body_at >= self.head.length

    @property
    def body(self) -> bytes:
        assert self.head is not None
        return bytes(self.buf[self.body_at:self.body_at + self.head.length])

    def _find_head(self) -> bool:
        buf = self.buf
        if not self.line_checked:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise HttpError(431)
                return False
            line = bytes(buf[:end])
            parse_request_line(line[:-1].decode("latin-1") if line.endswith(b"\r") else line.decode("latin-1"))
            self.line_checked = True
            self.scan = end
        found = HEAD_END.search(buf, self.scan)
        if found is None:
            if len(buf) > MAX_HEADER_BYTES + 2:
                raise HttpError(431)
            self.scan = max(self.scan, len(buf) - 2)
            return False
        head = parse_head(bytes(buf[:found.start()]))
        if head.length > self.max_body:
            raise HttpError(413)
        self.head = head
        self.body_at = found.end()
        return True
