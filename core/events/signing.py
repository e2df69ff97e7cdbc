"""Signed UDP events: HMAC-SHA256 over each sensor -> server datagram (see docs/protocol.md).

Where it sits: between the sensor's UdpSink (which calls `Signer.sign` on every datagram) and the
server's UDP intake (which calls `Verifier.verify` before appending to the day file). Both sides
share UDP_KEY. The signed datagram is the plain one with a prefix:

    MTS1 <unix_ts> <sender>-<counter> <hex hmac> <plain datagram>

The HMAC-SHA256 (key = UDP_KEY as UTF-8) covers `MTS1 <unix_ts> <sender>-<counter> <plain datagram>`.
`sender` is 16 random hex digits chosen per Signer; `counter` counts up from 1. The verifier
drops datagrams that are unsigned, malformed, badly signed, older or newer than UDP_MAX_SKEW
seconds, or replayed (a per-sender sliding window of counters, constant memory per sender).
"""

from __future__ import annotations

import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable

MAGIC = b"MTS1 "
WINDOW = 4096            # counters per sender remembered behind the highest one seen
MAX_SENDERS = 4096       # sender table cap; the least recently seen sender is evicted


class Signer:
    """Adds the `MTS1` prefix to a datagram. One instance per sensor process (a fresh sender id)."""

    def __init__(self, key: str | bytes, clock: Callable[[], float] = time.time) -> None:
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.sender = os.urandom(8).hex().encode("ascii")
        self.counter = 0
        self.clock = clock

    def sign(self, data: bytes) -> bytes:
        self.counter += 1
        head = b"MTS1 %d %s-%d " % (int(self.clock()), self.sender, self.counter)
        mac = hmac.digest(self.key, head + data, "sha256").hex().encode("ascii")
        return head + mac + b" " + data


class _Window:
    """Anti-replay state of one sender: highest counter seen and a bitmap of the WINDOW below it."""

    __slots__ = ("top", "bits")

    def __init__(self) -> None:
        self.top = 0
        self.bits = 0

    def accept(self, counter: int) -> bool:
        if counter > self.top:
            shift = counter - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.top = counter
            return True
        offset = self.top - counter
        if offset >= WINDOW:
            return False
        mask = 1 << offset
        if self.bits & mask:
            return False
        self.bits |= mask
        return True


class Verifier:
    """Checks signed datagrams. `verify(data)` returns the plain datagram or None (and counts why)."""

    def __init__(self, key: str | bytes, max_skew: int = 300, clock: Callable[[], float] = time.time) -> None:
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.max_skew = max_skew
        self.clock = clock
        self.senders: OrderedDict[bytes, _Window] = OrderedDict()
        self.counters = {"accepted": 0, "unsigned": 0, "malformed": 0, "bad_signature": 0,
                         "stale": 0, "replayed": 0}

    def verify(self, data: bytes) -> bytes | None:
        if not data.startswith(MAGIC):
            self.counters["unsigned"] += 1
            return None
        parts = data.split(b" ", 4)
        if len(parts) != 5:
            self.counters["malformed"] += 1
            return None
        _, ts_text, nonce, mac, payload = parts
        sender, _, counter_text = nonce.partition(b"-")
        if not (ts_text.isdigit() and counter_text.isdigit() and len(ts_text) <= 12 and len(counter_text) <= 19
                and 1 <= len(sender) <= 32 and len(mac) == 64):
            self.counters["malformed"] += 1
            return None
        head = data[: len(data) - len(payload) - 65]
        expected = hmac.digest(self.key, head + payload, "sha256").hex().encode("ascii")
        if not hmac.compare_digest(expected, mac.lower()):
            self.counters["bad_signature"] += 1
            return None
        if abs(self.clock() - int(ts_text)) > self.max_skew:
            self.counters["stale"] += 1
            return None
        window = self.senders.get(sender)
        if window is None:
            if len(self.senders) >= MAX_SENDERS:
                self.senders.popitem(last=False)
            window = self.senders[sender] = _Window()
        else:
            self.senders.move_to_end(sender)
        if not window.accept(int(counter_text)):
            self.counters["replayed"] += 1
            return None
        self.counters["accepted"] += 1
        return payload
