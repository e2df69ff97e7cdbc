"""The test kit's free ports hold for servers that bind the wildcard (HTTP_ADDRESS 0.0.0.0, the
Docker image): a port taken on another loopback address only must never be handed out."""

from __future__ import annotations

import socket

from tests.kit.ports import free_port


def test_a_free_port_is_free_on_the_wildcard_after_clients_from_other_addresses():
    # what a login-throttling test leaves behind: clients bound to 127.0.0.30 that closed first,
    # their ports in TIME_WAIT on that address (a probe on 127.0.0.1 does not see them)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        for _ in range(3000):
            client = socket.socket()
            client.bind(("127.0.0.30", 0))
            client.connect(listener.getsockname())
            accepted, _ = listener.accept()
            client.close()
            accepted.close()
    for _ in range(200):
        port = free_port()
        with socket.socket() as server:     # what server.py does for HTTP_ADDRESS 0.0.0.0
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("0.0.0.0", port))
            server.listen(1)
