"""Signed UDP events: HMAC-SHA256 over each sensor -> server datagram (see docs/protocol.md).

Where it sits: between the sensor's UdpSink (which calls `Signer.sign` on every datagram) and the
server's UDP intake (which calls `Verifier.verify` before appending to the day file). Both sides
share UDP_KEY. The signed datagram is the plain one with a prefix:

    MTS1 <unix_ts> <sender>-<counter> <hex hmac> <plain datagram>

The HMAC-SHA256 (key = UDP_KEY as UTF-8) covers `MTS1 <unix_ts> <sender>-<counter> <plain datagram>`.
`sender` is 16 random lower-case hex digits chosen per Signer; `counter` counts up from 1. The
verifier drops datagrams that are unsigned, malformed or not in canonical form (counter 0 or with
leading zeros, an upper-case or short MAC, a sender id that is not 16 lower-case hex digits),
badly signed, older or newer than UDP_MAX_SKEW seconds, or replayed (a per-sender sliding window
of counters, constant memory per sender).

Replays across restarts: with a `state_path` the verifier keeps each sender's high-water mark
(highest counter, last timestamp) in a small file, rewritten atomically by `save()` which the
intake calls before it writes the lines of a batch (write-ahead: a line is never on disk while
the counter that admitted it is not). At start the marks are loaded and everything at or below a
sender's mark is a replay. The table holds MAX_SENDERS senders; when one is evicted, its last
timestamp raises a floor below which datagrams of senders not in the table are refused, so an
evicted sender's old datagrams cannot come back either.
"""

from __future__ import annotations

import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable

MAGIC = b"MTS1 "
WINDOW = 4096            # counters per sender remembered behind the highest one seen
MAX_SENDERS = 4096       # sender table cap; the least recently seen sender is evicted
STATE_MAGIC = "maltrail-udp-senders 1"
_HEAD_RE = re.compile(rb"MTS1 ([1-9]\d{0,11}) ([0-9a-f]{16})-([1-9]\d{0,18}) [0-9a-f]{64} ")


class Signer:
    """Adds the `MTS1` prefix to a datagram. One instance per sensor process (a fresh sender id)."""

    def __init__(self, key: str | bytes, clock: Callable[[], float] = time.time) -> None:
        import hmac  # here, not at the top: a sensor that does not sign never loads OpenSSL

        self.digest = hmac.digest
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.sender = os.urandom(8).hex().encode("ascii")
        self.counter = 0
        self.clock = clock

    def sign(self, data: bytes) -> bytes:
        self.counter += 1
        head = b"MTS1 %d %s-%d " % (int(self.clock()), self.sender, self.counter)
        mac = self.digest(self.key, head + data, "sha256").hex().encode("ascii")
        return head + mac + b" " + data


class _Window:
    """Anti-replay state of one sender: highest counter seen and a bitmap of the WINDOW below it."""

    __slots__ = ("top", "bits", "last_ts")

    def __init__(self, top: int = 0, last_ts: int = 0) -> None:
        self.top = top
        self.bits = (1 << WINDOW) - 1 if top else 0     # restored: everything up to the mark was seen
        self.last_ts = last_ts

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
    """Checks signed datagrams. `verify(data)` returns the plain datagram or None (and counts why).
    With `state_path`, `save()` persists the senders' high-water marks (see the module docstring)."""

    def __init__(self, key: str | bytes, max_skew: int = 300, clock: Callable[[], float] = time.time,
                 state_path: str | None = None, max_senders: int = MAX_SENDERS) -> None:
        import hmac  # as in Signer

        self.digest, self.compare = hmac.digest, hmac.compare_digest
        self.key = key.encode("utf-8") if isinstance(key, str) else key
        self.max_skew = max_skew
        self.clock = clock
        self.state_path = state_path
        self.max_senders = max_senders
        self.senders: OrderedDict[bytes, _Window] = OrderedDict()
        self.floor = 0           # datagrams of senders not in the table must be newer than this
        self.dirty = False
        self.counters = {"accepted": 0, "unsigned": 0, "malformed": 0, "bad_signature": 0,
                         "stale": 0, "replayed": 0, "state_errors": 0}
        if state_path:
            self._load(state_path)

    def verify(self, data: bytes) -> bytes | None:
        if not data.startswith(MAGIC):
            self.counters["unsigned"] += 1
            return None
        head = _HEAD_RE.match(data)
        if head is None:
            self.counters["malformed"] += 1
            return None
        ts_text, sender, counter_text = head.groups()
        end = head.end()
        payload = data[end:]
        expected = self.digest(self.key, data[: end - 65] + payload, "sha256").hex().encode("ascii")
        if not self.compare(expected, data[end - 65:end - 1]):
            self.counters["bad_signature"] += 1
            return None
        ts = int(ts_text)
        if abs(self.clock() - ts) > self.max_skew:
            self.counters["stale"] += 1
            return None
        window = self.senders.get(sender)
        if window is None:
            if ts <= self.floor:
                self.counters["replayed"] += 1
                return None
            if len(self.senders) >= self.max_senders:
                _, evicted = self.senders.popitem(last=False)
                self.floor = max(self.floor, evicted.last_ts)
            window = self.senders[sender] = _Window()
        else:
            self.senders.move_to_end(sender)
        if not window.accept(int(counter_text)):
            self.counters["replayed"] += 1
            return None
        window.last_ts = max(window.last_ts, ts)
        self.dirty = True
        self.counters["accepted"] += 1
        return payload

    # -- the high-water marks on disk ------------------------------------------------------------

    def _load(self, path: str) -> None:
        try:
            with open(path, encoding="ascii") as handle:
                lines = handle.read(64 * (self.max_senders + 2)).splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError):
            self.counters["state_errors"] += 1
            return
        if not lines or lines[0] != STATE_MAGIC:
            self.counters["state_errors"] += 1
            return
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "floor" and parts[1].isdigit():
                self.floor = max(self.floor, int(parts[1]))
            elif (len(parts) == 3 and re.fullmatch("[0-9a-f]{16}", parts[0]) and parts[1].isdigit()
                  and parts[2].isdigit() and len(self.senders) < self.max_senders):
                self.senders[parts[0].encode("ascii")] = _Window(int(parts[1]), int(parts[2]))

    def save(self) -> bool:
        """Write the marks if they changed (temporary file, then rename). False when it failed."""
        if not (self.dirty and self.state_path):
            return True
        tmp = f"{self.state_path}.tmp"
        text = "".join([f"{STATE_MAGIC}\nfloor {self.floor}\n"]
                       + [f"{sender.decode('ascii')} {w.top} {w.last_ts}\n" for sender, w in self.senders.items()])
        try:
            with open(tmp, "w", encoding="ascii") as handle:
                handle.write(text)
            os.replace(tmp, self.state_path)
        except OSError:
            self.counters["state_errors"] += 1
            return False
        self.dirty = False
        return True
