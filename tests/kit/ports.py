"""Free ports for the services the tests and benchmarks start (servers, sensors' APIs, ClickHouse,
TAXII peers): one rule for all of them."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port no socket holds on any address. The probe binds the wildcard, not 127.0.0.1: a port
    held on another address only (a client's TIME_WAIT on 127.0.0.30, say, after a test that logs
    in from many addresses) is free on 127.0.0.1 but refuses a later bind of 0.0.0.0."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])
