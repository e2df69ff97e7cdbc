"""Login traffic for the throttling tests: distinct loopback source addresses, a form POST that
returns the status, the cookies and the headers, and attackers that fail continuously in the
background while a test logs in (tests/test_server_login.py, tests/test_web_login_attack.py)."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Callable, Iterator

from tests.kit.server import Server


def addresses(count: int, first: int = 1) -> list[str]:
    """`count` distinct loopback source addresses 127.<a>.<b>.<c> (all route to lo)."""
    return [f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(first, first + count)]


def post_full(server: Server, path: str, body: str, source: str = "127.0.0.1",
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, str]]:
    """POST a form: the status, every cookie the answer sets, and its headers (lower-case names)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", path, body=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        cookies = {}
        for value in resp.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            cookies[name] = rest.split(";", 1)[0]
        return resp.status, cookies, {k.lower(): v for k, v in resp.headers.items()}
    finally:
        conn.close()


def post(server: Server, path: str, body: str, source: str = "127.0.0.1",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """POST a form; the status and every cookie the answer sets."""
    return post_full(server, path, body, source, headers)[:2]


@contextlib.contextmanager
def failing_neighbour(srv: Server, body: Callable[[int], str], source: str | Callable[[int], str],
                      threads: int = 4) -> Iterator[list[int]]:
    """`threads` threads post wrong logins (`body(n)`) from `source` (an address, or a function of
    the attempt number: many addresses) until the block ends; yields the list their answers'
    statuses go into."""
    stop = threading.Event()
    statuses: list[int] = []
    where = source if callable(source) else (lambda n: source)

    def attack(offset: int) -> None:
        n = offset
        while not stop.is_set():
            statuses.append(post(srv, "/login", body(n), where(n))[0])
            n += threads

    workers = [threading.Thread(target=attack, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        yield statuses
    finally:
        stop.set()
        for worker in workers:
            worker.join()
