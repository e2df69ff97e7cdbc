"""The intake's batched receive: core/accel/_recv.c `receive` (recvmmsg) against its pure-Python
twin core/server/intake.py `receive_py` on real UDP sockets over loopback: for the same queue of
datagrams both return the same datagrams in the same order, a chunk at a time, [] once the queue
is empty, and the errors recv raises."""

from __future__ import annotations

import importlib
import random
import socket
from collections.abc import Callable

import pytest

from core.server.intake import RECV_CHUNK, receive_py

try:
    accel = importlib.import_module("core.accel._recv")     # directly: also under MALTRAIL_PURE_PYTHON=1
except ImportError:
    accel = None
pytestmark = pytest.mark.skipif(accel is None, reason="core/accel/_recv not built (tools/build_accel.py)")


def pair() -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    return receiver, sender


def twins(receiver: socket.socket) -> dict[str, Callable[[], list[bytes]]]:
    assert accel is not None
    scratch = bytearray(accel.SLOT * RECV_CHUNK)
    return {"c": lambda: accel.receive(receiver.fileno(), scratch), "python": lambda: receive_py(receiver, RECV_CHUNK)}


def datagrams(rnd: random.Random) -> list[bytes]:
    sizes = [0, 1, 2, 100, 1471, 1472, 9000, 65507] + [rnd.randrange(0, 3000) for _ in range(300)]
    return [rnd.randbytes(size) for size in sizes]


@pytest.mark.parametrize("kind", ["c", "python"])
def test_every_datagram_in_order_a_chunk_at_a_time(kind):
    receiver, sender = pair()
    try:
        receive = twins(receiver)[kind]
        assert receive() == []                   # nothing queued: no wait, nothing
        sent = datagrams(random.Random(3))
        for data in sent:
            sender.send(data)
        got: list[bytes] = []
        sizes = []
        while chunk := receive():
            sizes.append(len(chunk))
            got.extend(chunk)
        assert got == sent
        assert max(sizes) == RECV_CHUNK and sizes[-1] == len(sent) % RECV_CHUNK
        assert receive() == []
    finally:
        receiver.close()
        sender.close()


def test_both_twins_read_one_queue_alike():
    receiver, sender = pair()
    try:
        calls = twins(receiver)
        rnd = random.Random(4)
        sent = datagrams(rnd)
        for data in sent:
            sender.send(data)
        got: list[bytes] = []
        while True:             # alternate the two on the same socket: one stream, no gap, no repeat
            chunk = calls[rnd.choice(["c", "python"])]()
            if not chunk:
                break
            got.extend(chunk)
        assert got == sent
    finally:
        receiver.close()
        sender.close()


@pytest.mark.parametrize("kind", ["c", "python"])
def test_a_closed_socket_raises_as_recv_does(kind):
    receiver, sender = pair()
    sender.close()
    receive = twins(receiver)[kind]
    receiver.close()
    with pytest.raises(OSError):
        receive()


def test_a_scratch_without_a_slot_is_refused():
    assert accel is not None
    receiver, sender = pair()
    try:
        with pytest.raises(ValueError):
            accel.receive(receiver.fileno(), bytearray(100))
    finally:
        receiver.close()
        sender.close()
