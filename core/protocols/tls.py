"""TLS: ClientHello SNI, and the server's certificate chain from the first server flight.

Where it sits: detect.py feeds client TCP payloads that start a ClientHello to one `ClientHellos`
object it owns (the SNI host goes to the domain check with proto TCP, the message to the
fingerprints) and feeds server->client TCP payloads to one `ServerFlights`
object it owns; when that returns DER certificates, `cert_sha1()` of the leaf is looked up in the
trail store (CERT trails). `quic.py` reuses `handshake_sni()` on decrypted CRYPTO data.

ClientHello: `client_hello_sni()` looks at one segment. Handshake records in it are concatenated
(a ClientHello fragmented over several records in one segment is handled) and the extensions
are walked as far as the bytes go. A ClientHello larger than a segment (post-quantum key shares
push browsers' past 1500 bytes, and extension order is randomised) is completed by the stateful
`ClientHellos` helper, which keeps the few flows whose first segment ended before the end of the
message: it reports the SNI as soon as it is readable and the whole message (what the JA3/JA4
fingerprints of core/protocols/fingerprints.py read) once complete. `server_hello_message()`
gives the ServerHello of a server payload (JA3S).
The host name is returned lower-case without a trailing dot, and only when it consists of
letters, digits, `-`, `_` and `.` (anything else -> None).

Server flight reassembly (`ServerFlights`), TLS <= 1.2 only:
- A flow is tracked from a payload that starts with a handshake record holding a ServerHello;
  payloads of untracked flows that do not start that way cost one dict lookup and return None.
- Segments are assumed to arrive in order. When the caller passes TCP sequence numbers
  (`seq=`), retransmitted bytes are skipped and a gap (an out-of-order or lost segment) abandons
  the flow (counter `out_of_order`). Without sequence numbers a gap shows up as bad framing
  and the flow is abandoned as `not_tls` or `malformed`.
- The Certificate message is extracted even when it spans several TCP segments and several TLS
  records; the DER list (leaf first) is returned once it is complete and the flow is dropped.
- The flow is abandoned as soon as the data shows there will be no readable certificate: TLS 1.3
  (supported_versions = 0x0304 in the ServerHello: certificates are encrypted), a first message
  that is not a ServerHello, a non-handshake record or any other handshake message before the
  Certificate (session resumption, anonymous suites), or more than `max_bytes` buffered.
- Bounded state: at most `max_flows` flows (least recently fed evicted first), `max_bytes` per
  flow, and flows idle for more than `ttl` seconds of packet time are expired when new flows
  start. Every drop is counted in `counters`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, NamedTuple

from core.digests import sha1
from core.protocols.flows import FlowTable

MAX_CERTS = 16
_VALID_HOST = re.compile(rb"[A-Za-z0-9_\-]([A-Za-z0-9_.\-]{0,252})")

HANDSHAKE = 0x16
CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
EXT_SERVER_NAME = 0
EXT_SUPPORTED_VERSIONS = 43
TLS13 = 0x0304


def cert_sha1(der: bytes) -> str:
    """Lower-case hex SHA-1 of a DER certificate: the form certificate trails are written in."""
    return sha1(der, usedforsecurity=False).hexdigest()


def _u16(data: bytes | bytearray, off: int) -> int:
    return (data[off] << 8) | data[off + 1]


def _u24(data: bytes | bytearray, off: int) -> int:
    return (data[off] << 16) | (data[off + 1] << 8) | data[off + 2]


def _clean_host(raw: bytes) -> str | None:
    if _VALID_HOST.fullmatch(raw) is None:
        return None
    return raw.rstrip(b".").lower().decode("ascii")


def handshake_sni(hs: bytes) -> str | None:
    """SNI host_name from handshake bytes that start with a (possibly cut) ClientHello message."""
    n = len(hs)
    if n < 43 or hs[0] != CLIENT_HELLO:
        return None
    end = min(n, 4 + _u24(hs, 1))
    off = 4 + 2 + 32  # message header, legacy_version, random
    off += 1 + hs[off]  # session id
    if off + 2 > end:
        return None
    off += 2 + _u16(hs, off)  # cipher suites
    if off + 1 > end:
        return None
    off += 1 + hs[off]  # compression methods
    if off + 2 > end:
        return None
    ext_end = min(end, off + 2 + _u16(hs, off))
    off += 2
    while off + 4 <= ext_end:
        ext_type = _u16(hs, off)
        ext_len = _u16(hs, off + 2)
        off += 4
        if ext_type == EXT_SERVER_NAME:
            stop = min(ext_end, off + ext_len)
            off += 2  # server_name_list length
            while off + 3 <= stop:
                name_type = hs[off]
                name_len = _u16(hs, off + 1)
                off += 3
                if off + name_len > stop:
                    return None
                if name_type == 0:
                    return _clean_host(hs[off:off + name_len])
                off += name_len
            return None
        off += ext_len
    return None


def _handshake_records(payload: bytes, msg_type: int) -> bytes | None:
    """Handshake bytes of the records at the start of `payload` when they begin a `msg_type`
    message (joined across records, maybe cut)."""
    if len(payload) < 6 or payload[0] != HANDSHAKE or payload[1] != 3 or payload[5] != msg_type:
        return None
    rec_len = _u16(payload, 3)
    if len(payload) <= 5 + rec_len or (len(payload) >= 9 and rec_len >= 4 + _u24(payload, 6)):
        return payload[5:5 + rec_len]
    # The message continues in further records: join the handshake fragments we have.
    parts: list[bytes] = []
    off = 0
    n = len(payload)
    while off + 5 <= n and payload[off] == HANDSHAKE and payload[off + 1] == 3 and len(parts) < 64:
        rec_len = _u16(payload, off + 3)
        parts.append(payload[off + 5:off + 5 + rec_len])
        off += 5 + rec_len
    return b"".join(parts)


def _client_hello_handshake(payload: bytes) -> bytes | None:
    """Handshake bytes of the ClientHello records at the start of `payload` (joined, maybe cut)."""
    return _handshake_records(payload, CLIENT_HELLO)


def server_hello_message(payload: bytes) -> bytes | None:
    """The whole ServerHello message at the start of a server payload, or None (not one, or cut)."""
    hs = _handshake_records(payload, SERVER_HELLO)
    if hs is None or not handshake_complete(hs):
        return None
    return hs[:4 + _u24(hs, 1)]


def client_hello_sni(payload: bytes) -> str | None:
    """SNI of a TLS ClientHello at the start of a TCP payload; None when absent or not TLS."""
    if len(payload) < 48 or payload[0] != HANDSHAKE or payload[1] != 3 or payload[5] != CLIENT_HELLO:
        return None
    hs = _client_hello_handshake(payload)
    return handshake_sni(hs) if hs else None


def handshake_complete(hs: bytes) -> bool:
    """True when `hs` holds a whole handshake message (so a missing SNI will not come later)."""
    return len(hs) >= 4 and len(hs) >= 4 + _u24(hs, 1)


class Hello(NamedTuple):
    """What one fed segment revealed: the SNI the first time it is readable, the whole
    ClientHello message (for the fingerprints, core/protocols/fingerprints.py) once complete."""

    sni: str | None
    message: bytes | None


class ClientHellos(FlowTable):
    """Bounded reassembly of ClientHellos larger than one TCP segment (big post-quantum key shares).

    `feed(flow_key, payload, now)` returns a `Hello` when the segment revealed something: at
    once for the usual single-segment ClientHello (SNI and whole message, no state kept), else
    the SNI as soon as it is readable and the whole message once the following in-order
    segments of the same flow complete it. A flow is kept only while its ClientHello is
    incomplete; it is dropped when the message completes, beyond `max_bytes`, by LRU beyond
    `max_flows`, or after `ttl` seconds of packet time idle. Outcomes are counted in `counters`.
    """

    outcomes = ("pending", "reassembled", "no_sni", "too_big")

    def __init__(self, max_flows: int = 4096, max_bytes: int = 16 * 1024, ttl: float = 10.0) -> None:
        super().__init__(max_flows, max_bytes, ttl)

    def feed(self, flow_key: Hashable, payload: bytes, now: float = 0.0) -> Hello | None:
        """Add one in-order client segment; what it revealed, else None."""
        entry = self._flows.get(flow_key)
        if entry is None:
            if len(payload) < 9:
                return None
            hs = _client_hello_handshake(payload)
            if hs is None:
                return None
            sni = handshake_sni(hs)
            if handshake_complete(hs):
                return Hello(sni, hs[:4 + _u24(hs, 1)])
            self._make_room(now)
            self._flows[flow_key] = (bytearray(payload), now, sni is not None)
            self.counters["pending"] += 1
            return Hello(sni, None) if sni is not None else None
        buffered, _, reported = entry
        buffered += payload
        if len(buffered) > self.max_bytes:
            del self._flows[flow_key]
            self.counters["too_big"] += 1
            return None
        hs = _client_hello_handshake(bytes(buffered))
        if hs is None:
            del self._flows[flow_key]
            return None
        sni = None if reported else handshake_sni(hs)
        if handshake_complete(hs):
            del self._flows[flow_key]
            self.counters["reassembled"] += 1
            if sni is None and not reported:
                self.counters["no_sni"] += 1
            return Hello(sni, hs[:4 + _u24(hs, 1)])
        self._flows[flow_key] = (buffered, now, reported or sni is not None)
        self._flows.move_to_end(flow_key)
        return Hello(sni, None) if sni is not None else None


def _server_hello_is_tls13(body: bytes) -> bool:
    """True when a complete ServerHello body selects TLS 1.3 through supported_versions."""
    n = len(body)
    off = 2 + 32
    if off >= n:
        return False
    off += 1 + body[off] + 2 + 1  # session id, cipher suite, compression method
    if off + 2 > n:
        return False
    ext_end = min(n, off + 2 + _u16(body, off))
    off += 2
    while off + 4 <= ext_end:
        ext_type, ext_len = _u16(body, off), _u16(body, off + 2)
        off += 4
        if ext_type == EXT_SUPPORTED_VERSIONS and ext_len == 2 and off + 2 <= n:
            return _u16(body, off) == TLS13
        off += ext_len
    return False


def _certificate_list(body: bytes) -> list[bytes] | None:
    """DER certificates of a TLS <= 1.2 Certificate message body; None when malformed or empty."""
    if len(body) < 3:
        return None
    end = min(len(body), 3 + _u24(body, 0))
    off = 3
    certs: list[bytes] = []
    while off + 3 <= end and len(certs) < MAX_CERTS:
        size = _u24(body, off)
        off += 3
        if size == 0 or off + size > end:
            return None
        certs.append(body[off:off + size])
        off += size
    return certs or None


class _Flow:
    """Reassembly state of one server flight."""

    __slots__ = ("stream", "record_left", "hs", "hello_seen", "next_seq", "last", "total")

    def __init__(self, now: float) -> None:
        self.stream = bytearray()  # TCP bytes not yet split into records
        self.record_left = 0  # bytes of the current handshake record still to come
        self.hs = bytearray()  # handshake-layer bytes not yet consumed
        self.hello_seen = False
        self.next_seq: int | None = None
        self.last = now
        self.total = 0


class ServerFlights(FlowTable):
    """Bounded per-flow reassembly of first server flights, yielding the certificate chain.

    `flow_key` is any hashable value identifying one direction of one connection (e.g. the
    server->client 4-tuple). `now` is the packet time in seconds (drives expiry; offline replay
    stays deterministic); `seq` is the TCP sequence number of the segment, if known.
    """

    outcomes = ("started", "certificates", "too_big", "not_tls", "tls13", "no_cert", "out_of_order",
                "malformed")

    def __init__(self, max_flows: int = 4096, max_bytes: int = 64 * 1024, ttl: float = 30.0) -> None:
        super().__init__(max_flows, max_bytes, ttl)

    def _last_seen(self, entry: Any) -> float:
        return float(entry.last)

    def feed(self, flow_key: Hashable, payload: bytes, now: float = 0.0,
             seq: int | None = None) -> list[bytes] | None:
        """Add one in-order segment; the DER certificate list (leaf first) once complete, else None."""
        if not payload:
            return None
        flow = self._flows.get(flow_key)
        if flow is None:
            if len(payload) < 6 or payload[0] != HANDSHAKE or payload[1] != 3 or payload[5] != SERVER_HELLO:
                return None
            flow = self._start(flow_key, now)
        else:
            self._flows.move_to_end(flow_key)
            flow.last = now
        if seq is not None:
            if flow.next_seq is not None and seq != flow.next_seq:
                behind = (flow.next_seq - seq) & 0xFFFFFFFF
                if behind >= 0x80000000:  # a gap: bytes are missing
                    self._drop(flow_key, "out_of_order")
                    return None
                if behind >= len(payload):  # a pure retransmission
                    return None
                payload = payload[behind:]
                seq = flow.next_seq
            flow.next_seq = (seq + len(payload)) & 0xFFFFFFFF
        flow.total += len(payload)
        if flow.total > self.max_bytes:
            self._drop(flow_key, "too_big")
            return None
        flow.stream += payload
        reason = self._split_records(flow)
        if reason:
            self._drop(flow_key, reason)
            return None
        return self._read_messages(flow_key, flow)

    def _start(self, flow_key: Hashable, now: float) -> _Flow:
        self._make_room(now)
        flow = self._flows[flow_key] = _Flow(now)
        self.counters["started"] += 1
        return flow

    def _drop(self, flow_key: Hashable, reason: str) -> None:
        self._flows.pop(flow_key, None)
        self.counters[reason] += 1

    @staticmethod
    def _split_records(flow: _Flow) -> str | None:
        """Move record payloads from `stream` to `hs`; a drop reason when framing says stop."""
        stream = flow.stream
        while stream:
            if flow.record_left == 0:
                if len(stream) < 5:
                    return None
                if stream[0] != HANDSHAKE:
                    # ChangeCipherSpec/Finished before any certificate: resumption; else not TLS.
                    return "no_cert" if stream[0] in (0x14, 0x15, 0x17) and stream[1] == 3 else "not_tls"
                if stream[1] != 3:
                    return "not_tls"
                flow.record_left = (stream[3] << 8) | stream[4]
                if flow.record_left == 0 or flow.record_left > 18432:
                    return "malformed"
                del stream[:5]
            take = min(flow.record_left, len(stream))
            flow.hs += stream[:take]
            del stream[:take]
            flow.record_left -= take
        return None

    def _read_messages(self, flow_key: Hashable, flow: _Flow) -> list[bytes] | None:
        hs = flow.hs
        while len(hs) >= 4:
            mtype = hs[0]
            size = _u24(hs, 1)
            if size + 4 > self.max_bytes:
                self._drop(flow_key, "too_big")
                return None
            complete = len(hs) >= 4 + size
            if not flow.hello_seen:
                if mtype != SERVER_HELLO:
                    self._drop(flow_key, "not_tls")
                    return None
                if not complete:
                    return None
                if _server_hello_is_tls13(bytes(hs[4:4 + size])):
                    self._drop(flow_key, "tls13")
                    return None
                flow.hello_seen = True
                del hs[:4 + size]
                continue
            if mtype != CERTIFICATE:
                self._drop(flow_key, "no_cert")
                return None
            if not complete:
                return None
            certs = _certificate_list(bytes(hs[4:4 + size]))
            if certs is None:
                self._drop(flow_key, "malformed")
                return None
            self._drop(flow_key, "certificates")
            return certs
        return None
