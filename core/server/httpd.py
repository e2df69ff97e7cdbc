"""HTTP mechanics: listening socket, bounded worker threads, reading requests, writing responses.

Where it sits: between browsers/fail2ban/sensors (clients) and the endpoint handlers (api.py,
static.py); app.py owns the server. The socket reader hands the request head to the pure parser
(messages.py `parse_head`). One request per connection (`Connection: close`, as the original).
The accept loop holds a semaphore of MAX_REQUEST_THREADS; when it is exhausted the accept thread
itself answers `503 Retry-After: 1` (plain HTTP) without starting a thread. Under TLS the 503
needs a handshake, so refused connections go to one refuser thread through a bounded queue
(REFUSE_QUEUE; each handshake limited to REFUSE_TIMEOUT); when that queue is full too, the
connection is closed. Every connection has a deadline for reading the request (REQUEST_TIMEOUT,
total, so a client that trickles bytes is cut off) and the same timeout on each write; bodies
over MAX_POST_SIZE get 413. TLS (USE_SSL/SSL_PEM) is negotiated in the worker thread, never in
the accept loop. On shutdown, `join` gives running requests a grace period, then cuts them.
"""

from __future__ import annotations

import gzip
import ipaddress
import queue
import socket
import ssl
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from core.server.messages import (
    MAX_HEADER_BYTES,
    REASONS,
    HttpError,
    Request,
    Response,
    build_request,
    parse_head,
    text,
)

REFUSE_QUEUE = 256
REFUSE_TIMEOUT = 2.0
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n")
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


def client_address(addr: tuple[Any, ...]) -> tuple[str, int]:
    host, port = str(addr[0]), int(addr[1]) if len(addr) > 1 else 0
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            host = str(ip.ipv4_mapped)
    except ValueError:
        pass
    return host, port


def read_request(sock: socket.socket, deadline: float, max_body: int, address: str, port: int,
                 tls: bool) -> Request:
    """Read one request off the connection: the head (until the blank line, at most
    MAX_HEADER_BYTES) through `parse_head`, then the announced body. Raises HttpError (answered)
    or OSError (the connection dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, deadline, 8192)
        if len(data) > MAX_HEADER_BYTES and b"\r\n\r\n" not in data[:MAX_HEADER_BYTES + 4]:
            raise HttpError(431)
    raw_head, _, body = data.partition(b"\r\n\r\n")
    head = parse_head(raw_head)
    if head.length > max_body:
        raise HttpError(413)
    body = body[:head.length]
    while len(body) < head.length:
        body += _recv(sock, deadline, min(65536, head.length - len(body)))
    return build_request(head, body, address, port, tls)


def _recv(sock: socket.socket, deadline: float, size: int) -> bytes:
    """Some bytes before the deadline: HttpError(408) when it passes, ConnectionResetError at EOF."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HttpError(408)
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(size)
    except TimeoutError:
        raise HttpError(408) from None
    if not chunk:
        raise ConnectionResetError("client closed")
    return chunk


class HttpServer:
    """Threaded HTTP(S) server with a hard cap on request threads."""

    def __init__(self, address: str, port: int, handler: Callable[[Request], Response], *,
                 max_threads: int = 100, timeout: float = 60.0, max_body: int = 10 << 20,
                 ssl_context: ssl.SSLContext | None = None, server_name: str = "Maltrail") -> None:
        self.handler = handler
        self.max_threads = max_threads
        self.timeout = timeout
        self.max_body = max_body
        self.ssl_context = ssl_context
        self.server_name = server_name
        self.slots = threading.BoundedSemaphore(max_threads)
        self.counters = {"requests": 0, "refused_busy": 0, "refused_closed": 0, "errors": 0, "timeouts": 0}
        self.refusals: queue.Queue[socket.socket] = queue.Queue(REFUSE_QUEUE)
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)     # notified when a worker finishes
        self.active = 0                                # worker threads running
        self.connections: dict[int, socket.socket] = {}  # their sockets (the TLS one once wrapped)
        self.stopping = threading.Event()
        self.refuser: threading.Thread | None = None
        infos = socket.getaddrinfo(address or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                try:
                    self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                except OSError:
                    pass
            self.sock.bind(sockaddr)
            self.sock.listen(1024)
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]

    def _count(self, key: str) -> None:
        with self.lock:
            self.counters[key] += 1

    def serve_forever(self) -> None:
        if self.ssl_context is not None:
            self.refuser = threading.Thread(target=self._refuser, name="tls-refuser", daemon=True)
            self.refuser.start()
        self.sock.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.stopping.is_set():
                    break
                time.sleep(0.05)   # EMFILE and friends: back off instead of spinning
                continue
            if not self.slots.acquire(blocking=False):
                self._count("refused_busy")
                self._refuse(conn)
                continue
            with self.lock:
                self.active += 1
                self.connections[id(conn)] = conn
            try:
                threading.Thread(target=self._worker, args=(conn, addr), daemon=True).start()
            except RuntimeError:
                self._finished(id(conn))
                self._refuse(conn)

    def _finished(self, key: int) -> None:
        with self.idle:
            self.active -= 1
            self.connections.pop(key, None)
            self.idle.notify_all()
        self.slots.release()

    def _refuse(self, conn: socket.socket) -> None:
        """Busy: plain HTTP gets its 503 right here; TLS connections are queued for the refuser."""
        if self.ssl_context is not None:
            try:
                self.refusals.put_nowait(conn)
                return
            except queue.Full:
                self._count("refused_closed")
                conn.close()
                return
        try:
            conn.setblocking(False)
            conn.send(BUSY_RESPONSE)
        except OSError:
            pass
        finally:
            conn.close()

    def _refuser(self) -> None:
        """TLS only: handshake (bounded in time) and answer 503 to connections over the cap."""
        assert self.ssl_context is not None
        while not self.stopping.is_set():
            try:
                conn = self.refusals.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                conn.settimeout(REFUSE_TIMEOUT)
                tls = self.ssl_context.wrap_socket(conn, server_side=True)
                # read the request head first (briefly, bounded): closing with unread data makes
                # the kernel send a reset that can destroy the 503 before the client reads it
                tls.settimeout(0.5)
                seen = b""
                try:
                    while b"\r\n\r\n" not in seen and len(seen) < MAX_HEADER_BYTES:
                        chunk = tls.recv(8192)
                        if not chunk:
                            break
                        seen += chunk
                except (OSError, ValueError):
                    pass
                tls.settimeout(REFUSE_TIMEOUT)
                tls.sendall(BUSY_RESPONSE)
                tls.close()
            except (OSError, ValueError):
                pass
            finally:
                conn.close()

    def shutdown(self) -> None:
        """Stop accepting (serve_forever returns within half a second); workers finish on their own."""
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def join(self, grace: float) -> bool:
        """After shutdown: give the running requests `grace` seconds to finish, then cut their
        connections (a slow client would otherwise hold its worker until REQUEST_TIMEOUT) and wait
        for the workers and the refuser. False when a worker is still running after that."""
        with self.idle:
            if not self.idle.wait_for(lambda: self.active == 0, grace):
                for sock in list(self.connections.values()):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            done = self.idle.wait_for(lambda: self.active == 0, 2.0)
        if self.refuser is not None:
            self.refuser.join(REFUSE_TIMEOUT + 1.0)
        return done

    def _worker(self, conn: socket.socket, addr: tuple[Any, ...]) -> None:
        sock: socket.socket = conn
        try:
            address, port = client_address(addr)
            deadline = time.monotonic() + self.timeout
            conn.settimeout(self.timeout)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                with self.lock:
                    self.connections[id(conn)] = sock      # the TLS socket now owns the descriptor
                sock.do_handshake()
            self._serve(sock, address, port, deadline)
        except (OSError, ssl.SSLError, ValueError):
            pass
        except Exception:  # noqa: BLE001 - isolation point: one connection
            self._count("errors")
            traceback.print_exc(file=sys.stderr)
        finally:
            for owner in (sock, conn):
                try:
                    owner.close()
                except OSError:
                    pass
            self._finished(id(conn))

    def _serve(self, sock: socket.socket, address: str, port: int, deadline: float) -> None:
        try:
            request = read_request(sock, deadline, self.max_body, address, port, self.ssl_context is not None)
        except HttpError as ex:
            if ex.status == 408:
                self._count("timeouts")
            self._send(sock, None, text(ex.status, ex.message + "\n"))
            return
        request.sock = sock
        self._count("requests")
        sock.settimeout(self.timeout)
        try:
            response = self.handler(request)
        except HttpError as ex:
            response = text(ex.status, ex.message + "\n")
        except Exception:  # noqa: BLE001 - isolation point: one request
            self._count("errors")
            traceback.print_exc(file=sys.stderr)
            response = text(500, "Internal Server Error\n")
        self._send(sock, request, response)

    def _send(self, sock: socket.socket, request: Request | None, response: Response) -> None:
        headers = [("Server", self.server_name), ("Date", _http_date(time.time())),
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
        sock.sendall(head.encode("latin-1", "replace"))
        if request is not None and request.method == "HEAD" or response.status in (204, 304):
            _close_iter(body)
            return
        if isinstance(body, bytes | bytearray):
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


def make_ssl_context(pem: str) -> ssl.SSLContext:
    """TLS context from one PEM file holding the private key and the certificate (chain).
    Raises ValueError with a one-line, operator-readable reason when the file cannot be used."""
    try:
        with open(pem, "rb") as handle:
            data = handle.read(1 << 20)
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except IsADirectoryError:
        raise ValueError("is a directory, not a PEM file") from None
    except OSError as ex:
        raise ValueError(f"cannot read it ({ex.strerror or ex})") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no certificate in it (expected a PEM with the private key and the certificate)")
    if b"PRIVATE KEY-----" not in data:
        raise ValueError("no private key in it (expected a PEM with the private key and the certificate)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(pem)
    except ssl.SSLError as ex:
        reason = ex.reason or str(ex)
        raise ValueError(f"the key or certificate is not usable ({reason})") from None
    except OSError as ex:
        raise ValueError(f"cannot load it ({ex.strerror or ex})") from None
    return context
