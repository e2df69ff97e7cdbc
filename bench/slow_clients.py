"""The slow-client attack against a running server, and how an analyst fares meanwhile.

Opens N connections that never finish their request (a partial request head, or with --tls a
TLS handshake that stops after part of a ClientHello), spread over one or more source
addresses, re-opens each one the server closes (in a child process, so that the attack does not
slow the analyst's client down), and meanwhile makes an analyst's requests (from its own source
address) one after the other, timing each. Prints what the attackers held and what the analyst
got (served: any answer but 429 or 5xx; refused: 429 or 5xx; failed: no answer):

    python3 bench/slow_clients.py --url http://127.0.0.1:8338 [--sockets 1000] [--source 127.0.0.10]
        [--spread 200] [--analyst-source 127.0.0.3] [--seconds 10] [--user admin --password PW]

--spread N uses N consecutive IPv4 source addresses from --source (on loopback every 127.x.y.z
is local). The exit status is 0 when every analyst request was served within --bound seconds
(default 1), else 1. Standard library only; the tests of the server use these classes
against a real server.py (tests/test_server_slow_clients.py). Raise `ulimit -n` above --sockets.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import multiprocessing
import socket
import ssl
import statistics
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

PARTIAL_HEAD = b"GET / HTTP/1.1\r\nHost: victim\r\nUser-Agent: slow\r\nX-Padding: "
# a TLS record header announcing a 512-byte ClientHello, then only its first bytes
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(20))


def addresses(first: str, count: int) -> list[str]:
    start = ipaddress.IPv4Address(first)
    return [str(start + n) for n in range(count)]


class SlowClients:
    """Connections that stall before their request is complete; closed ones can be re-opened."""

    def __init__(self, host: str, port: int, sources: list[str] | None, tls: bool = False) -> None:
        self.host = host
        self.port = port
        self.sources: list[str | None] = list(sources) if sources else [None]
        self.payload = PARTIAL_HELLO if tls else PARTIAL_HEAD
        self.socks: list[socket.socket | None] = []
        self.opened = 0
        self.closed_by_server = 0
        self.connect_failed = 0
        self.lock = threading.Lock()

    def _connect(self, index: int) -> socket.socket | None:
        source = self.sources[index % len(self.sources)]
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5,
                                            source_address=(source, 0) if source else None)
            sock.sendall(self.payload)
            sock.setblocking(False)
        except OSError:
            self.connect_failed += 1
            return None
        self.opened += 1
        return sock

    def open(self, count: int) -> None:
        """Open `count` stalled connections, round-robin over the source addresses."""
        for _ in range(count):
            with self.lock:
                self.socks.append(self._connect(len(self.socks)))

    def survivors(self) -> list[int]:
        """Indices of the connections the server still holds open; the ones it closed are counted
        and forgotten (set to None)."""
        alive = []
        with self.lock:
            for index, sock in enumerate(self.socks):
                if sock is None:
                    continue
                try:
                    closed = sock.recv(4096) == b""
                    if not closed:             # an answer (408, 503): the server is closing it
                        closed = True
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    sock.close()
                    self.socks[index] = None
                    self.closed_by_server += 1
                else:
                    alive.append(index)
        return alive

    def reopen(self) -> int:
        """Re-open every connection the server has closed; how many were re-opened."""
        self.survivors()
        count = 0
        with self.lock:
            for index, sock in enumerate(self.socks):
                if sock is None:
                    self.socks[index] = self._connect(index)
                    count += 1
        return count

    def close(self) -> None:
        with self.lock:
            for sock in self.socks:
                if sock is not None:
                    sock.close()
            self.socks = []


def _attack_child(clients: SlowClients, count: int, pause: float, pipe: Connection) -> None:
    clients.open(count)
    time.sleep(0.5)
    pipe.send(clients.survivors())
    while not pipe.poll(pause):
        clients.reopen()
    pipe.recv()
    held = len(clients.survivors())
    pipe.send({"opened": clients.opened, "held_at_end": held, "closed_by_server": clients.closed_by_server,
               "connect_failed": clients.connect_failed})
    clients.close()


class Attack:
    """SlowClients in a child process: `start()` opens them and returns the indices the server
    still holds half a second later; then they are re-opened whenever closed until `stop()`,
    which returns the counts."""

    def __init__(self, clients: SlowClients, count: int, pause: float = 0.05) -> None:
        self.parent, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_attack_child, args=(clients, count, pause, child), daemon=True)

    def start(self, timeout: float = 120.0) -> list[int]:
        self.process.start()
        if not self.parent.poll(timeout):
            raise TimeoutError("the slow clients did not open in time")
        held: list[int] = self.parent.recv()
        return held

    def stop(self, timeout: float = 30.0) -> dict[str, int]:
        self.parent.send("stop")
        counts: dict[str, int] = self.parent.recv() if self.parent.poll(timeout) else {}
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
        return counts


@dataclass
class Timings:
    """What an analyst's requests got: (what, status or error, seconds) each."""

    results: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, what: str, outcome: str, seconds: float) -> None:
        self.results.append((what, outcome, seconds))

    def count(self, kind: str, bound: float | None = None) -> int:
        return sum(1 for _, outcome, sec in self.results
                   if outcome_kind(outcome) == kind and (bound is None or sec <= bound))

    def report(self, bound: float) -> str:
        times = [sec for _, _, sec in self.results] or [0.0]
        return (f"analyst: requests={len(self.results)} served={self.count('served')} "
                f"served_within_{bound:g}s={self.count('served', bound)} refused={self.count('refused')} "
                f"failed={self.count('failed')} median={statistics.median(times):.3f}s slowest={max(times):.3f}s")


def outcome_kind(outcome: str) -> str:
    """served (an answer, errors such as 404 included), refused (429, 5xx) or failed (no answer)."""
    if not outcome.isdigit():
        return "failed"
    return "refused" if outcome == "429" or outcome >= "500" else "served"


def client_context() -> ssl.SSLContext:
    """One TLS client context for all the analyst's requests, as a browser keeps one (building
    one per request costs more CPU than the request); the server's certificate is not checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def analyst_request(host: str, port: int, context: ssl.SSLContext | None, source: str | None, method: str,
                    path: str, body: bytes | None = None, cookie: str | None = None,
                    timeout: float = 10.0) -> tuple[str, float, http.client.HTTPResponse | None]:
    """One request on a new connection (HTTPS with `context`): (status or error name, seconds, response)."""
    conn: http.client.HTTPConnection
    address = (source, 0) if source else None
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, source_address=address, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=address)
    started = time.monotonic()
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return str(response.status), time.monotonic() - started, response
    except (OSError, http.client.HTTPException) as ex:
        return type(ex).__name__, time.monotonic() - started, None
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8338")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--source", help="first source address of the slow clients")
    parser.add_argument("--spread", type=int, default=1, help="consecutive source addresses from --source")
    parser.add_argument("--analyst-source", help="source address of the analyst's requests")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the analyst keeps asking")
    parser.add_argument("--bound", type=float, default=1.0, help="seconds an analyst request may take")
    parser.add_argument("--tls", action="store_true", help="stall TLS handshakes (default for https://)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="also log in (POST /login) and fetch /events as the analyst")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    tls = url.scheme == "https"
    host, port = url.hostname or "127.0.0.1", url.port or (443 if tls else 80)
    sources = addresses(args.source, args.spread) if args.source else None
    attack = Attack(SlowClients(host, port, sources, tls=tls or args.tls), args.sockets)
    started = time.monotonic()
    held = attack.start()
    print(f"slow clients: {args.sockets} opened in {time.monotonic() - started:.1f}s, "
          f"{len(held)} still open half a second later", flush=True)
    timings = Timings()
    context = client_context() if tls else None
    login = None
    if args.password:
        login = urllib.parse.urlencode({"username": args.user, "password": args.password}).encode()
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        cookie = None
        if login is not None:
            outcome, sec, response = analyst_request(host, port, context, args.analyst_source, "POST", "/login",
                                                     login)
            timings.add("/login", outcome, sec)
            cookie = (response.getheader("set-cookie") or "").split(";", 1)[0] if response is not None else None
        for path in ("/ping", "/", "/fail2ban") + (("/events",) if cookie else ()):
            outcome, sec, _ = analyst_request(host, port, context, args.analyst_source, "GET", path, cookie=cookie)
            timings.add(path, outcome, sec)
    counts = attack.stop()
    print("slow clients: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    print(timings.report(args.bound))
    return 0 if timings.count("served", args.bound) == len(timings.results) else 1


if __name__ == "__main__":
    sys.exit(main())
