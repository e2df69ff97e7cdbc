"""HTTP/1.x parser: TCP payload bytes -> HttpRequest / HttpResponse or None.

Where it sits: detect.py calls `parse_request()` on client payloads (Host/URL/path/UA trails,
CONNECT and absolute-URI proxy requests, the HTTP heuristics) and `parse_response()` on server
payloads (sinkhole, seized-domain and content-type heuristics). The parsers read bytes at hand;
a head cut over several segments is put together first by core/protocols/heads.py, and
`body_length` (Content-Length, chunked framing) lets the detector step from one request to the
next of a pipelined run.

Rules (never raises):
- Fast reject: the first four bytes must be the start of a known method (requests) or `HTTP`
  (responses); anything else costs one slice and one set lookup.
- The request line must be complete (ends in CRLF or LF) and look like `METHOD SP target
  [SP HTTP/x.y]`; otherwise None. A target may itself contain spaces (hostile clients send
  them); the version is the last word when it starts with `HTTP/`.
- Headers: names are case-insensitive (stored lower-case), values are stripped; the first
  occurrence wins; at most MAX_HEADERS headers, names longer than MAX_NAME and lines without a
  colon are skipped, values are cut at MAX_VALUE characters. A header line cut by the end of the
  segment (no line end) is dropped, since its value may be partial. `complete_headers` says
  whether the blank line ending the header block was seen; `body` is what follows it (possibly
  a prefix of the real body).
- Host: lower-case, without port, brackets (IPv6 literals) or trailing dot. For an absolute-URI
  target (`http://host[:port]/path`, proxy form) the URI authority is used (RFC 9112 §3.2.2),
  else the Host header; CONNECT takes `host:port` from the target. `port` is the explicit port
  from that same source, or None.
- Everything textual is decoded latin-1 (never fails; bytes map 1:1 to characters).

Implementations: `parse_request_py()` below is the specification. `parse_request` is bound to the
compiled twin `core.accel._http.parse_request` when it is built (tools/build_accel.py) and not
disabled by MALTRAIL_PURE_PYTHON=1, else to `parse_request_py`; both return the same record for
every input (tests/test_accel_http.py compares them on fuzzed payloads).
"""

from __future__ import annotations

from typing import NamedTuple

from core.accel import load

MAX_HEADERS = 100
MAX_NAME = 256
MAX_VALUE = 8192

METHODS = frozenset((
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"PATCH", b"TRACE",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
    b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE", b"NOTIFY", b"SUBSCRIBE", b"UNSUBSCRIBE",
    b"PURGE", b"ACL", b"LINK", b"UNLINK", b"BIND", b"REBIND", b"UNBIND", b"MKCALENDAR",
))
# The first four bytes of every method followed by a space (or of the method itself when longer).
_PREFIXES = frozenset((m + b" ")[:4] for m in METHODS)
# Every shorter start of those (a request line cut after one to three bytes).
_SHORT_PREFIXES = frozenset(p[:k] for p in _PREFIXES for k in range(1, 4))
MAX_CHUNKS = 1000


class HttpRequest(NamedTuple):
    """One HTTP request head as seen in a single segment.

    `headers` (all of them, lower-case names, first occurrence wins) is built on first use and
    kept in `cache`; the packet path only needs a few named headers, which `header(name)` finds
    directly in the raw header block `block` (`lower`: the same, lower-cased), with the same rules."""

    method: str
    target: str
    path: str
    version: str
    host: str | None
    port: int | None
    absolute: bool
    user_agent: str | None
    body: bytes
    complete_headers: bool
    block: bytes
    lower: bytes
    cache: list[dict[str, str]]

    @property
    def headers(self) -> dict[str, str]:
        if not self.cache:
            self.cache.append(_header_dict(self.block))
        return self.cache[0]

    def header(self, name: str) -> str | None:
        """The first `name:` header (name lower-case), or None."""
        if self.cache:
            return self.cache[0].get(name)
        return _find_header(self.block, self.lower, name.encode("latin-1"))

    def may_have(self, tokens: tuple[bytes, ...]) -> bool:
        """False only when no header name or value can hold any of the lower-case `tokens`
        (a cheap test before several `header()` calls)."""
        if self.cache:
            return True
        lower = self.lower
        for token in tokens:
            if token in lower:
                return True
        return False


class HttpResponse(NamedTuple):
    """One HTTP response head (status line, headers) and the body prefix in the same segment."""

    version: str
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    complete_headers: bool


def _line_end(payload: bytes, start: int) -> tuple[int, int]:
    """(end of line content, start of next line) for the line at `start`, or (-1, -1) if cut."""
    nl = payload.find(b"\n", start)
    if nl < 0:
        return -1, -1
    return (nl - 1 if nl > start and payload[nl - 1] == 13 else nl), nl + 1


def _header_block(payload: bytes, off: int) -> tuple[bytes, bytes, bool]:
    """Header block starting at `off` -> (block of whole lines, body, complete)."""
    head_end = payload.find(b"\r\n\r\n", off - 2) if off >= 2 else -1
    if head_end >= 0:
        return payload[off:head_end + 2], payload[head_end + 4:], True
    bare = payload.find(b"\n\n", off - 1) if off >= 1 else -1
    if bare >= 0:  # bare-LF clients
        return payload[off:bare + 1], payload[bare + 2:], True
    last = payload.rfind(b"\n")  # a header line cut by the end of the segment is dropped
    return (payload[off:last + 1] if last >= off else b""), b"", False


def _header_dict(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    lines = block.split(b"\n")
    lines.pop()  # the element after the final line end
    for line in lines[:MAX_HEADERS]:
        colon = line.find(b":")
        if colon <= 0 or colon > MAX_NAME or line[0] in (32, 9):  # no name, too long, folded
            continue
        name = line[:colon].rstrip(b" \t").lower().decode("latin-1")  # as _find_header: only SP/HT before ':'
        if name and name not in headers:
            headers[name] = line[colon + 1:].strip()[:MAX_VALUE].decode("latin-1")
    return headers


def _find_header(block: bytes, lower: bytes, name: bytes) -> str | None:
    """The first header called `name` in `block` (same rules as _header_dict), or None."""
    if lower.startswith(name):
        begin = 0
    else:
        begin = lower.find(b"\n" + name) + 1
        if begin == 0:
            return None
    size = len(lower)
    width = len(name)
    while True:
        pos = begin + width
        # optional whitespace between the name and the colon, as strip() allows
        while pos < size and lower[pos] in (32, 9):
            pos += 1
        if pos < size and lower[pos] == 58 and pos - begin <= MAX_NAME:  # colon offset within its line
            end = lower.find(b"\n", pos)
            # the header must be on one of the first MAX_HEADERS lines
            if end >= 0 and (begin == 0 or lower.count(b"\n", 0, begin) < MAX_HEADERS):
                return block[pos + 1:end].strip()[:MAX_VALUE].decode("latin-1")
            return None
        begin = lower.find(b"\n" + name, begin) + 1
        if begin == 0:
            return None


def _parse_headers(payload: bytes, off: int) -> tuple[dict[str, str], bytes, bool]:
    """Header block starting at `off` -> (headers, body, complete) (responses)."""
    block, body, complete = _header_block(payload, off)
    return _header_dict(block), body, complete


def _split_host(authority: str) -> tuple[str | None, int | None]:
    """`host[:port]`, `[v6][:port]` or `user@host` -> (lower-case host, port or None)."""
    authority = authority.strip()
    if ":" not in authority and "@" not in authority and "[" not in authority:  # the usual `Host: name`
        host = authority.lower().rstrip(".")
        return (host or None), None
    at = authority.rfind("@")
    if at >= 0:
        authority = authority[at + 1:]
    port: int | None = None
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            return None, None
        host, rest = authority[1:close], authority[close + 1:]
        if rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit() and len(rest) <= 6:
            port = int(rest[1:])
    elif authority.count(":") > 1:  # a bare IPv6 literal: no port can be told apart
        host = authority
    else:
        colon = authority.rfind(":")
        host = authority
        if colon >= 0:
            digits = authority[colon + 1:]
            host = authority[:colon]
            if digits.isascii() and digits.isdigit() and len(digits) <= 5:  # not '²' (int() rejects it)
                port = int(digits)
    host = host.lower().rstrip(".")
    if port is not None and not 0 < port < 65536:
        port = None
    return (host or None), port


_new_request = tuple.__new__  # builds the record without the generated keyword __new__


def parse_request_py(payload: bytes) -> HttpRequest | None:
    """Parse an HTTP request head; None when the payload is not an HTTP request (the specification)."""
    if payload[:4] not in _PREFIXES:
        return None
    newline = payload.find(b"\n")
    if newline < 0:
        return None
    off = newline + 1
    line = payload[:newline - 1] if newline > 0 and payload[newline - 1] == 13 else payload[:newline]
    sp = line.find(b" ")
    method = line[:sp]
    if sp <= 0 or method not in METHODS:
        return None
    rest = line[sp + 1:].strip(b" ")
    version = b""
    last = rest.rfind(b" ")
    if last > 0 and rest[last + 1:].startswith(b"HTTP/"):
        version, rest = rest[last + 1:], rest[:last].rstrip(b" ")
    if not rest:
        return None
    target = rest.decode("latin-1")
    block, body, complete = _header_block(payload, off)
    lower = block.lower()

    absolute = False
    path = target
    host: str | None = None
    port: int | None = None
    low = target[:8].lower()
    if method == b"CONNECT":
        host, port = _split_host(target)
        path = ""
    elif low.startswith(("http://", "https://")):
        absolute = True
        after_scheme = target.find("//") + 2
        slash = target.find("/", after_scheme)
        for sep in ("?", "#"):  # the authority also ends at a query or fragment
            cut = target.find(sep, after_scheme)
            if cut >= 0 and (slash < 0 or cut < slash):
                slash = cut
        authority = target[after_scheme:slash] if slash >= 0 else target[after_scheme:]
        path = target[slash:] if slash >= 0 else "/"
        if not path.startswith("/"):
            path = "/" + path
        host, port = _split_host(authority)
    if host is None:
        value = _find_header(block, lower, b"host")
        if value is not None:
            host, port = _split_host(value)
    return _new_request(HttpRequest, (method.decode("latin-1"), target, path, version.decode("latin-1"), host, port,
                                      absolute, _find_header(block, lower, b"user-agent"), body, complete, block,
                                      lower, []))


def could_start_request(payload: bytes) -> bool:
    """True when `payload` can be the start of a request line: its first four bytes start a
    method and a space, or it is shorter and a start of those."""
    if len(payload) >= 4:
        return payload[:4] in _PREFIXES
    return payload in _SHORT_PREFIXES


def chunked_length(body: bytes) -> int | None:
    """Length of the chunked encoding (RFC 9112 §7.1) at the start of `body`, last chunk and
    trailer section included; None when it does not end within `body` or is malformed."""
    off = 0
    for _ in range(MAX_CHUNKS):
        end, nxt = _line_end(body, off)
        if end < 0:
            return None
        digits = body[off:end].split(b";", 1)[0].strip(b" \t")
        if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
            return None
        size = int(digits, 16)
        if size == 0:
            while True:  # trailer lines up to the empty one
                end, after = _line_end(body, nxt)
                if end < 0:
                    return None
                if end == nxt:
                    return after
                nxt = after
        off = nxt + size
        end, nxt = _line_end(body, off)  # the line end after the chunk's data
        if end != off:
            return None
        off = nxt
    return None


def body_length(request: HttpRequest) -> int | None:
    """How many bytes of body follow a request head (RFC 9112 §6.3): the chunked encoding's length
    when `Transfer-Encoding` ends in chunked (None until it ends within `request.body`), else
    `Content-Length`, else 0. None when the framing cannot be read: another transfer coding, or
    a Content-Length that is not one number (repeated equal values are accepted)."""
    coding = request.header("transfer-encoding")
    if coding is not None:
        if coding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            return None
        return chunked_length(request.body)
    length = request.header("content-length")
    if length is None:
        return 0
    values = {value.strip() for value in length.split(",")}
    if len(values) != 1:
        return None
    value = values.pop()
    if not value.isascii() or not value.isdigit() or len(value) > 15:
        return None
    return int(value)


def parse_response(payload: bytes) -> HttpResponse | None:
    """Parse an HTTP response head; None when the payload does not start with a status line."""
    if payload[:5] != b"HTTP/":
        return None
    line_end, off = _line_end(payload, 0)
    if line_end < 0:
        return None
    parts = payload[:line_end].split(b" ", 2)
    if len(parts) < 2 or len(parts[1]) != 3 or not parts[1].isdigit():
        return None
    reason = parts[2].strip().decode("latin-1") if len(parts) == 3 else ""
    headers, body, complete = _parse_headers(payload, off)
    return HttpResponse(parts[0].decode("latin-1"), int(parts[1]), reason, headers, body, complete)


parse_request = parse_request_py
_accel = load("_http")
if _accel is not None:
    _accel.init(HttpRequest)
    parse_request = _accel.parse_request
