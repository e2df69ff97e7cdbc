"""HTTP connections: the listening socket, an event loop that reads requests, bounded worker
threads that answer them (written by respond.py), TLS.

Where it sits: between browsers/fail2ban/sensors (clients) and the endpoint handlers (api.py,
static.py); app.py owns the server and runs `serve_forever` in its main thread.

A connection costs a descriptor until its request is complete, never a thread. The event loop
(`selectors`, one thread) accepts, runs the TLS handshake (USE_SSL/SSL_PEM) without blocking,
and feeds the bytes to a `RequestReader` (messages.py), which answers a malformed request line,
head or size at once. Only a complete request (head, and the body it announces up to
MAX_POST_SIZE) goes to a worker; one request per connection (`Connection: close`, as the
original). At most MAX_REQUEST_THREADS workers, started as needed; when all are busy the loop
answers `503 Retry-After: 1` itself (through TLS too: the handshake is already done).

Deadlines: the handshake and the head within HEAD_TIMEOUT of the accept (408, or a close while
the handshake is unfinished); the body within REQUEST_TIMEOUT of the head; each response write
within REQUEST_TIMEOUT. Caps, counting the connections being answered too: at most
MAX_CONNECTIONS_PER_ADDRESS from one address (an IPv6 /64 counts as one): a connection over it
is closed as soon as it is accepted, before any TLS work, so re-connecting in a loop costs the
server an accept and a close; at most MAX_CONNECTIONS in all: at that cap the oldest connection
still waiting for its request is closed to make room (a new one is refused when none waits);
the bytes held for unfinished requests are capped the same way (BUFFER_BUDGET). An answer from the loop (an error, 408, 503) is followed by a
shutdown of the sending side and a short linger that discards what the client still sends, so
the answer is not destroyed by a reset. On shutdown the loop closes the waiting connections;
`join` gives requests being answered a grace period, then cuts them.
"""

from __future__ import annotations

import errno
import ipaddress
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

from core.server.messages import (
    Head,
    HttpError,
    Request,
    RequestReader,
    Response,
    build_request,
    text,
)
from core.server.respond import render, send

SWEEP_INTERVAL = 0.25          # how often the loop checks deadlines
LINGER = 2.0                   # after an answer from the loop: how long to discard input
ACCEPT_BATCH = 64              # accepts per readiness event
RECV_SIZE = 65536
RECV_BATCH = 64                # reads per readiness event
BUFFER_BUDGET = 128 << 20      # bytes held for unfinished requests (at least two maximal bodies)
ACCEPT_PAUSE = 0.1             # out of descriptors with nothing to close: accept again after this
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
def client_address(addr: tuple[Any, ...]) -> tuple[str, int]:
    host, port = str(addr[0]), int(addr[1]) if len(addr) > 1 else 0
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            host = str(ip.ipv4_mapped)
    except ValueError:
        pass
    return host, port


def address_key(address: str) -> str:
    """What the per-address cap counts: the IPv4 address, or the /64 of an IPv6 address (one
    host usually has a whole /64 to pick from)."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network(f"{address.split('%', 1)[0]}/64", strict=False))
    except ValueError:
        return address


class Waiting:
    """A connection in the event loop: handshaking, reading its request, or lingering after an answer."""

    __slots__ = ("sock", "address", "port", "key", "deadline", "reader", "handshaking", "lingering", "size",
                 "closed")

    def __init__(self, sock: socket.socket, address: str, port: int, key: str, deadline: float,
                 reader: RequestReader, handshaking: bool) -> None:
        self.sock = sock
        self.address = address
        self.port = port
        self.key = key
        self.deadline = deadline
        self.reader = reader
        self.handshaking = handshaking
        self.lingering = False
        self.size = 0                  # bytes fed to the reader (counted in BUFFER_BUDGET)
        self.closed = False


class Job(NamedTuple):
    """A complete request handed to a worker."""

    sock: socket.socket
    head: Head
    body: bytes
    address: str
    port: int
    key: str


class HttpServer:
    """HTTP(S) server: an event loop for connections, a bounded pool of threads for requests."""

    def __init__(self, address: str, port: int, handler: Callable[[Request], Response], *,
                 max_threads: int = 100, timeout: float = 60.0, head_timeout: float = 10.0,
                 max_body: int = 10 << 20, max_connections: int = 4096, max_per_address: int = 64,
                 ssl_context: ssl.SSLContext | None = None, server_name: str = "Maltrail") -> None:
        self.handler = handler
        self.max_threads = max_threads
        self.timeout = timeout
        self.head_timeout = head_timeout
        self.max_body = max_body
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.buffer_budget = max(BUFFER_BUDGET, 2 * max_body)
        self.ssl_context = ssl_context
        self.server_name = server_name
        self.counters = {"requests": 0, "refused_busy": 0, "refused_address": 0, "refused_full": 0, "evicted": 0,
                         "timeouts": 0, "bad_requests": 0, "tls_failed": 0, "errors": 0}
        # the event loop's own state (its thread only)
        self.waiting: dict[int, Waiting] = {}              # fd -> connection, in accept order
        self.buffered = 0
        self.paused_until = 0.0
        # shared with the workers, under the lock
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)      # notified when a worker finishes a request
        self.open_total = 0                             # connections holding a descriptor
        self.open_by_key: dict[str, int] = {}
        self.active = 0                                 # requests handed to workers, not finished
        self.serving: dict[int, socket.socket] = {}     # their connections (cut by join)
        self.workers: list[threading.Thread] = []
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.stopping = threading.Event()
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

    @property
    def open_connections(self) -> int:
        with self.lock:
            return self.open_total

    def summary(self) -> str:
        with self.lock:
            return "http: " + " ".join(f"{k}={v}" for k, v in self.counters.items())

    # -- the event loop ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept and read requests until `shutdown`; then close the connections still waiting."""
        selector = selectors.DefaultSelector()
        try:
            self.sock.setblocking(False)
            selector.register(self.sock, selectors.EVENT_READ, None)
        except (OSError, ValueError):        # shut down before the loop started
            selector.close()
            return
        listening = True
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        try:
            while not self.stopping.is_set():
                for key, _ in selector.select(SWEEP_INTERVAL):
                    if key.data is None:
                        if not self._accept(selector):
                            selector.unregister(self.sock)
                            listening = False
                    elif not key.data.closed:
                        self._ready(selector, key.data)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(selector, now)
                    next_sweep = now + SWEEP_INTERVAL
                if not listening and now >= self.paused_until and not self.stopping.is_set():
                    selector.register(self.sock, selectors.EVENT_READ, None)
                    listening = True
        finally:
            for conn in list(self.waiting.values()):
                self._drop(selector, conn)
            selector.close()
            self.sock.close()

    def _accept(self, selector: selectors.BaseSelector) -> bool:
        """Accept what is pending; False when out of descriptors with none to free (pause accepting)."""
        for _ in range(ACCEPT_BATCH):
            try:
                raw, addr = self.sock.accept()
            except BlockingIOError:
                return True
            except OSError as ex:
                if ex.errno in OUT_OF_DESCRIPTORS:
                    if self._evict_oldest(selector, self.waiting):
                        continue
                    self.paused_until = time.monotonic() + ACCEPT_PAUSE
                    return False
                return True                    # ECONNABORTED and friends, or the socket was closed
            address, port = client_address(addr)
            key = address_key(address)
            with self.lock:
                key_full = self.open_by_key.get(key, 0) >= self.max_per_address
                total_full = self.open_total >= self.max_connections
            if key_full:
                self._count("refused_address")
                raw.close()
            elif total_full and not self._evict_oldest(selector, self.waiting):
                self._count("refused_full")
                raw.close()
            else:
                self._admit(selector, raw, address, port, key)
        return True

    def _evict_oldest(self, selector: selectors.BaseSelector, table: dict[int, Waiting]) -> bool:
        for conn in table.values():
            self._count("evicted")
            self._drop(selector, conn)
            return True
        return False

    def _admit(self, selector: selectors.BaseSelector, raw: socket.socket, address: str, port: int,
               key: str) -> None:
        with self.lock:
            self.open_total += 1
            self.open_by_key[key] = self.open_by_key.get(key, 0) + 1
        sock = raw
        try:
            raw.setblocking(False)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            conn = Waiting(sock, address, port, key, time.monotonic() + self.head_timeout,
                           RequestReader(self.max_body), self.ssl_context is not None)
            selector.register(sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            sock.close()
            raw.close()
            self._release(key)
            return
        self.waiting[sock.fileno()] = conn
        self._ready(selector, conn)            # a TLS server speaks after the ClientHello: try at once

    def _ready(self, selector: selectors.BaseSelector, conn: Waiting) -> None:
        """The connection is readable (or writable during a handshake): make progress."""
        try:
            if conn.handshaking and not self._handshake(selector, conn):
                return
            complete = self._pull(conn, selector)
        except HttpError as ex:
            self._count("bad_requests")
            self._answer(selector, conn, text(ex.status, ex.message + "\n"))
            return
        except ssl.SSLError:
            if conn.handshaking:
                self._count("tls_failed")
            self._drop(selector, conn)
            return
        except (OSError, ValueError):
            self._drop(selector, conn)
            return
        if complete and not conn.closed:
            self._dispatch(selector, conn)

    def _handshake(self, selector: selectors.BaseSelector, conn: Waiting) -> bool:
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(conn.sock, selectors.EVENT_READ, conn)
            return False
        except ssl.SSLWantWriteError:
            selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return False
        conn.handshaking = False
        selector.modify(conn.sock, selectors.EVENT_READ, conn)
        return True

    def _pull(self, conn: Waiting, selector: selectors.BaseSelector) -> bool:
        """Read what has arrived into the reader; True once the request is complete."""
        for _ in range(RECV_BATCH):
            try:
                data = conn.sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            if not data:
                raise ConnectionResetError("client closed")
            if conn.lingering:
                continue
            had_head = conn.reader.head is not None
            conn.size += len(data)
            self.buffered += len(data)
            done = conn.reader.feed(data)
            if not had_head and conn.reader.head is not None:
                conn.deadline = time.monotonic() + self.timeout      # the body's own deadline
            while self.buffered > self.buffer_budget and not conn.closed:
                self._evict_oldest(selector, self.waiting)
            if done or conn.closed:
                return done
        return False

    def _dispatch(self, selector: selectors.BaseSelector, conn: Waiting) -> None:
        """A complete request: to a worker, or 503 when all MAX_REQUEST_THREADS are busy."""
        with self.lock:
            busy = self.active >= self.max_threads
            if not busy:
                self.active += 1
            spawn = not busy and self.active > len(self.workers)
        if busy:
            self._count("refused_busy")
            self._answer(selector, conn, Response(503, b"", headers=[("Retry-After", "1")]))
            return
        assert conn.reader.head is not None
        job = Job(conn.sock, conn.reader.head, conn.reader.body, conn.address, conn.port, conn.key)
        self._forget(selector, conn)
        if spawn:
            worker = threading.Thread(target=self._work, name="http-worker", daemon=True)
            try:
                worker.start()
            except RuntimeError:               # no more threads from the system: 503 from here
                with self.lock:
                    self.active -= 1
                self._count("refused_busy")
                self._release(conn.key)
                job.sock.close()
                return
            with self.lock:
                self.workers.append(worker)
        self.jobs.put(job)

    def _answer(self, selector: selectors.BaseSelector, conn: Waiting, response: Response) -> None:
        """Answer from the loop (non-blocking, small answers), then linger: discard input until
        the client closes or LINGER passes. Unfinished TLS handshakes are just closed."""
        if conn.handshaking or conn.lingering:
            self._drop(selector, conn)
            return
        head, body = render(None, response, self.server_name)
        try:
            conn.sock.send(head + (body if isinstance(body, bytes) else b""))
            conn.sock.shutdown(socket.SHUT_WR)
            selector.modify(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError):
            self._drop(selector, conn)
            return
        conn.lingering = True
        conn.deadline = time.monotonic() + LINGER
        self.buffered -= conn.size
        conn.size = 0
        conn.reader = RequestReader(0)

    def _sweep(self, selector: selectors.BaseSelector, now: float) -> None:
        for conn in list(self.waiting.values()):
            if now < conn.deadline or conn.closed:
                continue
            if conn.lingering:
                self._drop(selector, conn)
            else:
                self._count("timeouts")
                self._answer(selector, conn, text(408, "Request Timeout\n"))

    def _forget(self, selector: selectors.BaseSelector, conn: Waiting) -> None:
        """The loop lets go of the connection (a worker has it, or it is being closed)."""
        conn.closed = True
        self.waiting.pop(conn.sock.fileno(), None)
        self.buffered -= conn.size
        conn.size = 0
        try:
            selector.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, selector: selectors.BaseSelector, conn: Waiting) -> None:
        if conn.closed:
            return
        self._forget(selector, conn)
        try:
            conn.sock.close()
        except OSError:
            pass
        self._release(conn.key)

    def _release(self, key: str) -> None:
        with self.lock:
            self._release_locked(key)

    def _release_locked(self, key: str) -> None:
        self.open_total -= 1
        left = self.open_by_key.get(key, 1) - 1
        if left > 0:
            self.open_by_key[key] = left
        else:
            self.open_by_key.pop(key, None)

    # -- stop ----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting (serve_forever returns within SWEEP_INTERVAL); workers finish on their own."""
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def join(self, grace: float) -> bool:
        """After shutdown: give the requests being answered `grace` seconds to finish, then cut
        their connections (a slow reader would otherwise hold its worker until REQUEST_TIMEOUT)
        and stop the workers. False when a request is still running after that."""
        with self.idle:
            if not self.idle.wait_for(lambda: self.active == 0, grace):
                for sock in list(self.serving.values()):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            done = self.idle.wait_for(lambda: self.active == 0, 2.0)
            workers = list(self.workers)
        for _ in workers:
            self.jobs.put(None)
        for worker in workers:
            worker.join(1.0)
        return done

    # -- the workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                self.serving[id(job.sock)] = job.sock
            try:
                self._serve(job)
            except (OSError, ValueError):
                pass
            except Exception:  # noqa: BLE001 - isolation point: one request
                self._count("errors")
                traceback.print_exc(file=sys.stderr)
            finally:
                try:
                    job.sock.close()
                except OSError:
                    pass
                with self.idle:
                    self.serving.pop(id(job.sock), None)
                    self._release_locked(job.key)
                    self.active -= 1
                    self.idle.notify_all()

    def _serve(self, job: Job) -> None:
        sock = job.sock
        sock.settimeout(self.timeout)
        try:
            request = build_request(job.head, job.body, job.address, job.port, self.ssl_context is not None)
        except HttpError as ex:
            send(sock, None, text(ex.status, ex.message + "\n"), self.server_name)
            return
        request.sock = sock
        self._count("requests")
        try:
            response = self.handler(request)
        except HttpError as ex:
            response = text(ex.status, ex.message + "\n")
        except Exception:  # noqa: BLE001 - isolation point: one request
            self._count("errors")
            traceback.print_exc(file=sys.stderr)
            response = text(500, "Internal Server Error\n")
        send(sock, request, response, self.server_name)


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
