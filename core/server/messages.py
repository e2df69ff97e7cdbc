"""HTTP messages of the server: the request head parser and the Request/Response records.

Where it sits: httpd.py's socket reader collects the bytes before the blank line and hands them
to `parse_head`, reads the body the head announces, and builds the `Request` (`build_request`)
that the endpoint handlers (api.py, queries.py, lists.py, lookup.py, static.py) receive; they
answer a `Response` (or raise `HttpError`), which httpd.py writes. Nothing here touches a socket.

Head rules: request line `METHOD target HTTP/1.x` with exactly two spaces (else 400); GET, POST
and HEAD only (405); target at most 8192 characters (414), origin-form `/...` or absolute-form
`http(s)://host/...` (reduced to its path and query; anything else 400); at most MAX_HEADERS
header lines (431) of `name: value` with no space before the colon (400); names lower-cased,
the last occurrence wins; `Transfer-Encoding` is refused (411); `Content-Length` must be ASCII
digits, at most 15 (400). At most MAX_QUERY_FIELDS query (or form body) fields (400); the first
occurrence of a field wins.
"""

from __future__ import annotations

import json
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

REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 302: "Found", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
           429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


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


def parse_head(data: bytes) -> Head:
    """The bytes before the blank line (request line and headers) -> Head.

    Total over any input: every malformed or refused head raises HttpError with the status to
    answer (see the module docstring for the rules)."""
    if len(data) > MAX_HEADER_BYTES:
        raise HttpError(431)
    lines = data.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "Malformed request line")
    method, target = parts[0], parts[1]
    if method not in METHODS:
        raise HttpError(405)
    if len(target) > MAX_TARGET:
        raise HttpError(414)
    if len(lines) > MAX_HEADERS + 1:
        raise HttpError(431)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "Malformed header")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(411)
    length_text = headers.get("content-length", "0") or "0"
    if not (length_text.isascii() and length_text.isdigit()) or len(length_text) > 15:
        raise HttpError(400, "Bad Content-Length")
    target = _origin_form(target)
    raw_path, _, query = target.partition("?")
    path = urllib.parse.unquote(raw_path, errors="replace")
    return Head(method, target, raw_path, path, parse_form(query), headers, int(length_text))


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
