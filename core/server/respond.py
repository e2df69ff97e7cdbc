"""HTTP responses on the wire: the head (status line, standard and security headers), gzip
(whole bodies, or streamed for iterable bodies such as day logs), and writing to a socket.

Where it sits: httpd.py renders the answers its event loop gives itself (errors, 408, 503) with
`render` and its workers write the handlers' `Response`s (messages.py) with `send`."""

from __future__ import annotations

import gzip
import socket
import time
import zlib
from collections.abc import Iterable, Iterator

from core.server.messages import REASONS, Request, Response

GZIP_TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")

SECURITY_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
     "connect-src 'self'; font-src 'self'; object-src 'none'; frame-src 'none'; frame-ancestors 'none'; "
     "base-uri 'none'; form-action 'self'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def render(request: Request | None, response: Response, server_name: str) -> tuple[bytes, bytes | Iterable[bytes] | None]:
    """The response head, and the body to send after it (None: no body; an iterable body is then closed)."""
    headers = [("Server", server_name), ("Date", _http_date(time.time())),
               ("Connection", "close"), ("Content-Type", response.content_type),
               ("Cache-Control", response.cache)]
    headers.extend(SECURITY_HEADERS)
    headers.extend(response.headers)
    body = response.body
    length = response.length
    accepts_gzip = request is not None and "gzip" in request.headers.get("accept-encoding", "").lower()
    gzip_ok = (accepts_gzip and response.compressible and response.status == 200
               and response.content_type.startswith(GZIP_TYPES))
    if isinstance(body, bytes | bytearray):
        if gzip_ok and len(body) > 512:
            body = gzip.compress(bytes(body), 6)
            headers.append(("Content-Encoding", "gzip"))
            headers.append(("Vary", "Accept-Encoding"))
        length = len(body)
    elif gzip_ok:
        body = _gzip_stream(body)
        length = None
        headers.append(("Content-Encoding", "gzip"))
        headers.append(("Vary", "Accept-Encoding"))
    if length is not None and response.status not in (204, 304):
        headers.append(("Content-Length", str(length)))
    reason = REASONS.get(response.status, "Status")
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    if request is not None and request.method == "HEAD" or response.status in (204, 304):
        _close_iter(body)
        return head.encode("latin-1", "replace"), None
    return head.encode("latin-1", "replace"), bytes(body) if isinstance(body, bytearray) else body


def send(sock: socket.socket, request: Request | None, response: Response, server_name: str) -> None:
    """Write the whole response (blocking, under the socket's timeout)."""
    head, body = render(request, response, server_name)
    sock.sendall(head)
    if body is None:
        return
    if isinstance(body, bytes):
        if body:
            sock.sendall(body)
        return
    try:
        for chunk in body:
            if chunk:
                sock.sendall(chunk)
    finally:
        _close_iter(body)


def _close_iter(body: object) -> None:
    close = getattr(body, "close", None)
    if close is not None and not isinstance(body, bytes | bytearray):
        close()


def _gzip_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    # level 1: streamed bodies are day logs (/events); on a generated 25 MB day level 1 runs at
    # ~230 MB/s to 18% of the size, level 6 at ~75 MB/s to 14%, and compression was the slowest
    # server step of a big-day load
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    try:
        for chunk in chunks:
            out = comp.compress(chunk)
            if out:
                yield out
        yield comp.flush()
    finally:
        _close_iter(chunks)


def _http_date(sec: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(sec))
