"""HTTP request heads reassembled per TCP connection, on the bounded flow table.

Where it sits: under core/detect/detector.py, next to the TLS ClientHello reassembly
(core/protocols/tls.py) and on the same `FlowTable` (core/protocols/flows.py). The usual request
(a whole head in one segment) never comes here; the detector hands this table only a segment
whose request head is cut by the segment's end, the following segments of such a connection,
and the positions where a connection's next request starts (after a body, or after a head it
reassembled).

Rules (docs/decoding.md, "HTTP request reassembly", says the same for operators):
- A connection is tracked from a client segment that starts a request whose head is not complete
  in it (`start`); the bytes are kept from the request's first byte, keyed by TCP sequence number.
- In-order bytes are appended; a segment ahead of the expected sequence number is held (at most
  `max_ahead` pieces, all within `max_bytes` of the head's start) until the hole before it is
  filled; a segment starting further ahead, or more pieces, abandon the connection (`gap`).
- Retransmitted and overlapping bytes: the first copy wins. Bytes already held, contiguous or
  ahead, are never replaced; only the parts of a segment that no earlier segment covered are used
  (`retransmitted`, `overlap`).
- The head is handed back once the blank line ending it is in the contiguous bytes (`completed`),
  or when `max_bytes` are held without it (`truncated`: what is held is evaluated). A connection
  idle for `ttl` seconds of packet time, or the least recently fed one when `max_flows` are
  tracked, is dropped when another starts (`expired`, `evicted`): its head is never evaluated.
- `resume` remembers, per connection, the sequence number where the next request starts (after a
  body whose end lies in a later segment, or after a reassembled head); a later segment that
  starts before it is body or a retransmission and is read only from that point on. It holds at
  most `max_flows` connections, each for `resume_ttl` seconds after it was set.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from core.protocols.flows import FlowTable
from core.protocols.http import could_start_request

MASK = 0xFFFFFFFF
HALF = 0x80000000
HEADER_LENGTHS = (32, 20, 24, 28, 36, 40, 44, 48, 52, 56, 60)  # timestamps (32) and bare (20) first


def payload_seq(buf: Any, poff: int, sport: int, dport: int) -> int | None:
    """The TCP sequence number of the first payload byte at `buf[poff]`, or None.

    The decoded packet carries the payload offset, not the TCP header's: the header is the one
    that ends exactly at `poff` (its data offset says so) and holds the packet's two ports. A SYN's
    data (TCP Fast Open) starts one after its sequence number."""
    ports = (sport << 16) | dport
    for length in HEADER_LENGTHS:
        h = poff - length
        if h >= 0 and buf[h + 12] >> 4 == length >> 2 and int.from_bytes(buf[h:h + 4], "big") == ports:
            seq = int.from_bytes(buf[h + 4:h + 8], "big")
            return (seq + 1) & MASK if buf[h + 13] & 0x02 else seq
    return None


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space (RFC 9293 modular comparison): negative when a is before b."""
    diff = (a - b) & MASK
    return diff - (1 << 32) if diff >= HALF else diff


class _Head:
    """One head being reassembled: its bytes from the request's first byte, that byte's sequence
    number, the pieces held beyond the contiguous bytes (offset from the first byte -> bytes; they
    never overlap each other or the contiguous bytes), and the packet time last fed."""

    __slots__ = ("data", "seq", "ahead", "seen")

    def __init__(self, data: bytearray, seq: int, seen: float) -> None:
        self.data = data
        self.seq = seq
        self.ahead: dict[int, bytes] = {}
        self.seen = seen


def _uncovered(start: int, payload: bytes, held: dict[int, bytes]) -> list[tuple[int, bytes]]:
    """The parts of `payload` (at offset `start`) that no held piece covers."""
    pieces = [(start, payload)]
    for offset, piece in held.items():
        end = offset + len(piece)
        kept: list[tuple[int, bytes]] = []
        for at, part in pieces:
            stop = at + len(part)
            if stop <= offset or at >= end:
                kept.append((at, part))
                continue
            if at < offset:
                kept.append((at, part[:offset - at]))
            if stop > end:
                kept.append((end, part[end - at:]))
        pieces = kept
    return pieces


class RequestHeads(FlowTable):
    """Bounded per-connection reassembly of HTTP request heads (see the module docstring)."""

    outcomes = ("pending", "completed", "truncated", "gap", "not_http", "retransmitted", "overlap",
                "reordered", "resumed", "resume_expired", "resume_evicted")

    def __init__(self, max_flows: int = 4096, max_bytes: int = 8192, ttl: float = 10.0, max_ahead: int = 8,
                 resume_ttl: float = 60.0) -> None:
        super().__init__(max_flows, max_bytes, ttl)
        self.max_ahead = max_ahead
        self.resume_ttl = resume_ttl
        self.resume: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def _last_seen(self, entry: Any) -> float:
        return float(entry.seen)

    def start(self, flow_key: Hashable, seq: int, data: bytes, now: float) -> None:
        """Track a connection whose segment at `seq` starts a request head that it does not complete."""
        self._make_room(now)
        self._flows[flow_key] = _Head(bytearray(data[:self.max_bytes]), seq, now)
        self.counters["pending"] += 1

    def feed(self, flow_key: Hashable, seq: int, payload: bytes, now: float) -> tuple[int, bytes] | None:
        """Add one segment of a tracked connection; `(sequence number, bytes)` from the request's
        first byte once the head is complete or `max_bytes` are held, else None."""
        head: _Head = self._flows[flow_key]
        data = head.data
        before = len(data)
        start = seq_diff(seq, head.seq)  # offset of the segment from the request's first byte
        head.seen = now
        self._flows.move_to_end(flow_key)
        if start >= self.max_bytes:  # far ahead: a lost segment, or another connection on these ports
            self._drop(flow_key, "gap")
            return None
        payload = payload[:self.max_bytes - start]
        if start < before:  # the first copy wins: only bytes beyond those held are used
            self.counters["retransmitted" if start + len(payload) <= before else "overlap"] += 1
            payload = payload[before - start:]
            start = before
        pieces = [piece for piece in _uncovered(start, payload, head.ahead) if piece[1]]
        if start > before:  # a hole before it: hold its pieces until the hole is filled
            if len(head.ahead) + len(pieces) > self.max_ahead:
                self._drop(flow_key, "gap")
                return None
            self.counters["reordered"] += 1
        for offset, piece in pieces:
            head.ahead[offset] = piece
        while len(data) in head.ahead:
            data += head.ahead.pop(len(data))
        if len(data) == before:
            return None
        if not could_start_request(bytes(data[:8])):
            self._drop(flow_key, "not_http")
            return None
        scan = max(0, before - 3)
        if data.find(b"\n\r\n", scan) >= 0 or data.find(b"\n\n", scan) >= 0:
            del self._flows[flow_key]
            self.counters["completed"] += 1
            return head.seq, bytes(data)
        if len(data) >= self.max_bytes:
            del self._flows[flow_key]
            self.counters["truncated"] += 1
            return head.seq, bytes(data)
        return None

    def _drop(self, flow_key: Hashable, outcome: str) -> None:
        del self._flows[flow_key]
        self.counters[outcome] += 1

    # -- where the next request starts ------------------------------------------------------------

    def remember(self, flow_key: Hashable, next_seq: int, now: float) -> None:
        """The connection's next request starts at `next_seq` (bytes before it are body or seen)."""
        resume = self.resume
        limit = now - self.resume_ttl
        while resume:
            oldest = next(iter(resume))
            if resume[oldest][1] >= limit:
                break
            del resume[oldest]
            self.counters["resume_expired"] += 1
        if flow_key not in resume and len(resume) >= self.max_flows:
            resume.popitem(last=False)
            self.counters["resume_evicted"] += 1
        resume[flow_key] = (next_seq, now)
        resume.move_to_end(flow_key)

    def skip(self, flow_key: Hashable, seq: int, size: int) -> int:
        """How many leading bytes of a segment at `seq` (of `size` bytes) come before the position
        remembered for its connection (0 when none); the position is forgotten once reached."""
        entry = self.resume.get(flow_key)
        if entry is None:
            return 0
        before = seq_diff(entry[0], seq)
        if before <= 0:
            del self.resume[flow_key]
            return 0
        if before < size:
            del self.resume[flow_key]
            self.counters["resumed"] += 1
        return min(before, size)
