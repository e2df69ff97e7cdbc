"""Per-packet orchestration: decoded packet → trail lookups and heuristic hooks → Events.

Where it sits: between capture/decode and the event pipeline. A capture source hands batches to
`Detector.process_batch`; each packet is decoded (core/decode), its protocol parsed when one can
carry an indicator (core/protocols), looked up in the trail store (core/trails/store.py, domains
through core/detect/domains.py, JA3/JA3S/JA4 of TLS hellos from core/protocols/fingerprints.py,
an HTTP request's User-Agent against the exact `ua:` trails),
and every hit becomes an `Event` passed to `events.emit`. Heuristic hooks are called for the
packets they are about. Exceptions are caught here, once per packet, and counted by type in
`errors` (the first of each kind is kept for the error report).

Fast path: most packets are bulk TCP (TLS application data) that can never match; they cost a
decode, a flag test and a first-byte test (`bulk_record`; plain Ethernet/IPv4 bulk is recognised
from its header bytes before decoding, tunnelled and IPv6 bulk right after). Text is made only on a hit or where a protocol needs it.
With the compiled pre-dispatch (core/accel/_decode.c) an Ethernet or Linux cooked ("any"
interface) batch is walked in C: bulk TCP is skipped there and the common frames arrive already
decoded; ICMP between addresses no IP
trail can hold ends there, and so does a SYN of such addresses whose port-scan count cannot alert
(counted in the heuristic's own table, `Heuristics.syn_shortcut`), a datagram of such addresses
whose only effect is its UDP-scan count (`Heuristics.udp_shortcut`) and a datagram equal to the
one before it. The Python loop below is the walk's specification and serves every other link
type (and builds without a compiler); it skips decoded bulk TCP on every link type.

A DNS query that reports nothing (its domain check a cached miss or a walk that provably misses)
is handled whole by core/accel/_dns.c (`_udp`), and so is an HTTP request head that reports
nothing by core/accel/_http.c (`_tcp_payload`): in order, with the live state, the Python lines
staying their specification.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Hashable, Iterable
from typing import cast

from core.accel import load as load_accel
from core.addr import ip_text
from core.capture.source import Meta
from core.config import Config
from core.decode.packet import Decoded, Decoder
from core.decode.tunnel import port_bytes, udp_tunnels
from core.detect.domains import IGNORE_DNS_QUERY_SUFFIXES, DomainChecker, ignored_query
from core.detect.urls import UrlChecker
from core.events import EventSink
from core.events.event import Event, TrailType
from core.heuristics import Heuristics
from core.heuristics.scan import SCAN_FLAGS, SYN  # the scan rule's flag combinations (never ACK)
from core.protocols import dns, fingerprints, heads, http, quic, tls
from core.trails.index import HOST_MARK
from core.trails.store import Trail, TrailStore
from core.trails.whitelist import Whitelist

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
ECHO_REQUEST = {ICMP: 8, ICMPV6: 128}
PROTO_NAMES = {
    TCP: "TCP", UDP: "UDP", ICMP: "ICMP", ICMPV6: "ICMPv6", 2: "IGMP", 4: "IPIP", 41: "IPv6", 47: "GRE",
    50: "ESP", 51: "AH", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP",
}
HTTP_FIRST_BYTES = frozenset(method[0] for method in http.METHODS) | {ord("H")}  # requests, "HTTP/" responses
PARSED_FIRST_BYTES = HTTP_FIRST_BYTES | {0x16}  # + TLS handshake records
TLS_HANDSHAKE = 0x16
DNS_PORT = 53
QTYPE_PTR, QTYPE_AAAA, QCLASS_IN = 12, 28, 1
MAX_ERROR_KINDS = 100
BULK, CLEAN, SYN_GAP, UDP_LAST = 1, 2, 4, 8  # record flags of core/accel/_decode.c
SCANNED_LINKTYPES = frozenset((1, 113, 276))  # Ethernet, Linux cooked v1 and v2 (the "any" interface)
HOST_CACHE_ENTRIES = 8192
Port = int | str  # "-" where an event has no ports
UdpKey = tuple[int, bytes, bytes, int, int, int]  # sec, src, dst, sport, dport, crc32 of the payload's first 512 bytes
# sec, usec, meta index, decoded, flags (a clock-only record flagged UDP_LAST holds a UdpKey in place of the Decoded)
ScanRecord = tuple[int, int, int, Decoded | None, int]
BODY_HEADERS = (b"content-length", b"transfer-encoding")  # a body may follow the head
BODILESS = frozenset(("GET", "HEAD"))  # methods whose later segments are not searched for a declared body


def bulk_record(d: Decoded) -> bool:
    """A decoded TCP packet that provably cannot produce an event (nothing tracked, no plugins):
    not a scan flag combination, no payload or a payload whose first byte starts nothing the
    sensor parses, neither port 53. core/accel/_decode.c applies the same test to its records."""
    return (d[1] == TCP and d[6] not in SCAN_FLAGS and (d[8] >= d[9] or d[7][d[8]] not in PARSED_FIRST_BYTES)
            and d[4] != DNS_PORT and d[5] != DNS_PORT)


def _port_key_text(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Detector:
    """Detection for one capture stream (one worker). State is bounded and owned here."""

    def __init__(self, config: Config, store: TrailStore, events: EventSink,
                 heuristics: Heuristics | None = None, whitelist: Whitelist | None = None,
                 plugins_wanted: bool = False) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.heuristics = heuristics or Heuristics()
        self.heuristics.frame = self._frame
        self.whitelist = whitelist
        self.domains = DomainChecker(store, whitelist, self.heuristics, config.DOMAIN_CACHE_ENTRIES)
        self.urls = UrlChecker(store)
        self.check_host_domains = bool(config.CHECK_HOST_DOMAINS)
        self.check_certificates = config.CHECK_TLS_CERTIFICATES
        self.plugins_wanted = plugins_wanted
        self.flights = tls.ServerFlights()
        self.hellos = tls.ClientHellos()
        self.initials = quic.Initials()
        self.heads = heads.RequestHeads()
        self._pending, self._resume = self.heads.tracked, self.heads.resume  # same objects for its lifetime
        self._decoders: dict[int, Decoder] = {}
        self._udp_tunnels = udp_tunnels(config)
        self._whitelisted_hosts: dict[str, bool] = {}
        self._last_syn: tuple[int, bytes, bytes, int, int] | None = None
        self._last_udp: UdpKey | None = None
        self._sec = 0
        self._buf: bytes = b""
        self._meta: Meta | tuple[int, int, int, int] = (0, 0, 0, 0)
        self._mi = 0
        self.packets = 0
        self.skipped_bulk = 0
        self.errors: dict[str, int] = {}
        self.first_errors: dict[str, str] = {}
        self._scan: Callable[..., tuple[list[ScanRecord], int, bytes]] | None = None  # core/accel/_decode.c
        accel = load_accel("_decode")
        if accel is not None:
            accel.init(Decoded, bytes(sorted(PARSED_FIRST_BYTES)), bytes(sorted(SCAN_FLAGS)),
                       *port_bytes(self._udp_tunnels))
            self._scan = accel.scan
        # core/accel/_dns.c: the duplicate-datagram test and a DNS query that reports nothing (see _udp)
        dns_accel = load_accel("_dns")
        self._datagram: Callable[..., int] | None = dns_accel.datagram if dns_accel is not None else None
        self._query_state: tuple[object, ...] | None = None  # what datagram reads for queries (_query_prepare)
        self._query_generation = -1
        # core/accel/_http.c: an HTTP request head that reports nothing, handled whole (see _tcp_payload)
        http_accel = load_accel("_http")
        self._request_seen: Callable[..., bool] | None = http_accel.request_seen if http_accel is not None else None
        self._request_state: tuple[object, ...] = ()  # what request_seen reads, for the store generation below
        self._request_generation = -1

    # -- entry points ---------------------------------------------------------------------------

    def swap_store(self, store: TrailStore) -> None:
        """Use a reloaded trail set from the next packet on (called between batches)."""
        self.store = store
        self.urls.store = store
        self.domains.swap_store(store)
        self.heuristics.swap_store(store)
        self._query_state, self._query_generation = None, -1  # the compiled paths' states name the old store's
        self._request_generation = -1  # memos and prefilters

    def decoder(self, linktype: int) -> Decoder:
        decoder = self._decoders.get(linktype)
        if decoder is None:
            decoder = self._decoders[linktype] = Decoder(linktype, self._udp_tunnels)
        return decoder

    def process_batch(self, linktype: int, buf: bytes, meta: Meta | bytes) -> None:
        """Walk one capture batch: meta holds (sec, usec, offset, caplen) per packet.

        Bulk TCP over Ethernet/IPv4 (the majority of mirrored traffic) is recognised from a few
        header bytes and skipped before decoding when it provably cannot produce an event: not a
        scan-flag combination, no payload or a payload whose first byte starts nothing we parse
        (TLS handshake, HTTP), not port 53, no TLS flow or HTTP request head being reassembled, no
        plugins."""
        if isinstance(meta, (bytes, bytearray)):
            meta = memoryview(meta).cast("I")  # pcapy-ng's packed records: 4 native uint32 each
        decode = self.decoder(linktype).decode
        self._buf, self._meta = buf, meta
        count = len(meta)
        self.packets += count // 4
        if self._scan is not None and linktype in SCANNED_LINKTYPES:
            self._process_scanned(linktype, buf, meta, decode)
            return
        self._process_python(buf, meta, decode, 0, not self.plugins_wanted, linktype == 1)

    def _process_python(self, buf: bytes, meta: Meta | bytes, decode: Callable[[bytes, int, int], Decoded | None],
                        start: int, bulk_skip: bool, ethernet: bool) -> None:
        """The batch loop from meta word `start` on (also the rest of a compiled scan, see below).
        `bulk_skip`: bulk TCP may be skipped (no plugins); `ethernet`: the frames are Ethernet, so
        plain IPv4 bulk is recognised from its header bytes before decoding."""
        handle = self._handle
        flights, hellos, pending = self.flights.tracked, self.hellos.tracked, self.heads.tracked
        parsed_first = PARSED_FIRST_BYTES
        scan_flags = SCAN_FLAGS
        for i in range(start, len(meta), 4):
            sec = meta[i]
            if sec != self._sec:
                self._advance(sec)
            off = meta[i + 2]
            caplen = meta[i + 3]
            if (bulk_skip and ethernet and caplen >= 54 and buf[off + 23] == 6 and buf[off + 14] == 0x45
                    and buf[off + 12] == 8 and buf[off + 13] == 0 and buf[off + 47] not in scan_flags
                    and not flights and not hellos and not pending):
                first = off + 34 + ((buf[off + 46] >> 4) << 2)
                if first >= off + caplen or buf[first] not in parsed_first:
                    ports = buf[off + 34:off + 38]
                    if ports[0:2] != b"\x00\x35" and ports[2:4] != b"\x00\x35":
                        self.skipped_bulk += 1
                        continue
            try:
                self._mi = i
                d = decode(buf, off, caplen)
                if d is not None:
                    if bulk_skip and d[1] == TCP and not flights and not hellos and not pending and bulk_record(d):
                        self.skipped_bulk += 1
                        continue
                    handle(sec, meta[i + 1], d)
            except Exception as ex:  # isolation point: one packet
                self._error(ex)

    def _process_scanned(self, linktype: int, buf: bytes, meta: Meta,
                         decode: Callable[[bytes, int, int], Decoded | None]) -> None:
        """The loop above with its skip test and common decoding done by core/accel/_decode.c:
        records are (sec, usec, meta index, Decoded or None = decode here, flags); index -1 only
        moves the packet clock (a packet skipped in C in a new second). Flag BULK: once C has
        returned a packet that may start flow tracking, it hands bulk packets back flagged and
        the live tracking state decides here, as in the loop above. Flag CLEAN: neither address
        passes the store's IP prefilters, so the handlers skip their IP and ip:port lookups. Clean
        SYNs whose port-scan counting cannot alert were counted in C (Heuristics.syn_shortcut) and
        are not among the records; flag SYN_GAP marks the first record after them. So were clean
        datagrams whose only effect is their UDP-scan count, and datagrams equal to the one before
        them (the duplicate test of `_udp`): a clock-only record flagged UDP_LAST carries the key
        of the last of them before the next datagram handled here (Heuristics.udp_shortcut)."""
        assert self._scan is not None
        flights, hellos, pending = self.flights.tracked, self.hellos.tracked, self.heads.tracked
        plugins = self.plugins_wanted
        ip_marks, port_marks = self.store.ip_prefilter()
        skipping = not plugins and not flights and not hellos and not pending
        heuristics = self.heuristics
        records, skipped, ended = self._scan(buf, meta, skipping, self._sec, ip_marks, port_marks,
                                             self.decoder(linktype).counters, heuristics.syn_shortcut(),
                                             heuristics.udp_shortcut(), self._last_udp, linktype)
        self.skipped_bulk += skipped
        # _handle's dispatch, one call shorter for the common records: a datagram goes to _udp, and
        # a TCP segment with payload and no scan flag combination (SYN among them) to _tcp_payload
        # alone, which is all _handle would call for either
        handle, udp, tcp_payload, scan_flags = self._handle, self._udp, self._tcp_payload, SCAN_FLAGS
        for sec, usec, i, d, flags in records:
            if sec != self._sec:
                self._advance(sec)
            if flags & SYN_GAP:
                self._last_syn = None  # SYNs counted in C came between: no duplicate of the last one here
            if i < 0:
                if flags & UDP_LAST:
                    self._last_udp = cast(UdpKey, d)  # the last datagram, ended in C
                continue
            if flags & BULK and not plugins and not flights and not hellos and not pending:
                self.skipped_bulk += 1
                continue
            try:
                self._mi = i
                if d is None:
                    d = decode(buf, meta[i + 2], meta[i + 3])
                    if d is None:
                        continue
                    if d[1] == TCP and not plugins and not flights and not hellos and not pending and bulk_record(d):
                        self.skipped_bulk += 1
                        continue
                proto = d[1]
                if proto == UDP:
                    udp(sec, usec, d, flags & CLEAN)
                elif proto == TCP and d[6] not in scan_flags and d[9] > d[8]:
                    tcp_payload(sec, usec, d, flags & CLEAN)
                else:
                    handle(sec, usec, d, flags & CLEAN)
            except Exception as ex:  # isolation point: one packet
                self._error(ex)
            if skipping and pending:
                # An HTTP head cut by its segment's end started tracking while C was still skipping
                # bulk packets (C stops only at TLS handshakes): its next segments may be among
                # them, so the rest of the batch is walked again by the Python loop.
                later = sum(1 for record in records if record[2] > i)
                later += sum(1 for index in memoryview(ended).cast("I") if index > i)  # ended in C, not bulk
                self.skipped_bulk -= (len(meta) - i - 4) // 4 - later
                self._process_python(buf, meta, decode, i + 4, not plugins, linktype == 1)
                return

    def process(self, linktype: int, sec: int, usec: int, frame: bytes) -> None:
        """One packet (tests, the self-test, plugins' callers)."""
        self.packets += 1
        if sec != self._sec:
            self._advance(sec)
        try:
            self._buf, self._meta, self._mi = frame, (sec, usec, 0, len(frame)), 0
            d = self.decoder(linktype).decode(frame, 0, len(frame))
            if d is not None:
                self._handle(sec, usec, d)
        except Exception as ex:  # isolation point: one packet
            self._error(ex)

    def process_packets(self, linktype: int, packets: Iterable[tuple[int, int, bytes]]) -> None:
        for sec, usec, frame in packets:
            self.process(linktype, sec, usec, frame)

    def _advance(self, sec: int) -> None:
        self._sec = sec
        self.heuristics.tick(sec)
        self.events.tick(sec)

    def _error(self, ex: Exception) -> None:
        kind = type(ex).__name__
        if kind not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            kind = "other"
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if kind not in self.first_errors:
            import traceback  # the first error of a kind only: not a start-up import

            self.first_errors[kind] = "".join(traceback.format_exception(ex)).rstrip()
            if self.config.SHOW_DEBUG:
                print(self.first_errors[kind], file=sys.stderr)

    def decode_counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for decoder in self._decoders.values():
            for key, value in decoder.counters.items():
                total[key] = total.get(key, 0) + value
        return total

    # -- dispatch -------------------------------------------------------------------------------

    def _handle(self, sec: int, usec: int, d: Decoded, clean: int = 0) -> None:
        """Dispatch one decoded packet; `clean` (from core/accel/_decode.c) says that neither
        address can have an IP or ip:port trail, so those lookups are skipped."""
        _, proto, _, _, _, _, flags, _, poff, pend = d
        if proto == TCP:
            if flags == SYN:
                self._tcp_syn(sec, usec, d, clean)
            if pend > poff:  # a SYN's data too (TCP Fast Open)
                self._tcp_payload(sec, usec, d, clean)
            if flags in SCAN_FLAGS:
                self.heuristics.tcp(sec, usec, d)
        elif proto == UDP:
            self._udp(sec, usec, d, clean)
        elif proto == ICMP or proto == ICMPV6:
            if flags == ECHO_REQUEST[proto] and not clean:
                self._ip_only(sec, usec, d)
        elif not clean:
            self._ip_only(sec, usec, d)

    def _frame(self) -> bytes:
        """The raw frame of the packet being handled (what plugins receive)."""
        meta, i = self._meta, self._mi
        return bytes(self._buf[meta[i + 2]:meta[i + 2] + meta[i + 3]])

    def _event(self, sec: int, usec: int, d: Decoded, type_: str, trail: str, hit: Trail | tuple[str, str],
               src_port: Port | None = None, dst_port: Port | None = None, proto: str | None = None) -> Event:
        return Event(sec, usec, ip_text(d.src), d.sport if src_port is None else src_port, ip_text(d.dst),
                     d.dport if dst_port is None else dst_port, proto or PROTO_NAMES.get(d.proto, str(d.proto)),
                     type_, trail, hit[0], hit[1])

    def _emit(self, sec: int, usec: int, d: Decoded, type_: str, trail: str, hit: Trail | tuple[str, str],
              src_port: Port | None = None, dst_port: Port | None = None, proto: str | None = None) -> None:
        event = self._event(sec, usec, d, type_, trail, hit, src_port, dst_port, proto)
        self.events.emit(event, self._frame())

    def _ip_event(self, sec: int, usec: int, d: Decoded, addr: bytes, port: int, hit: Trail, iport: bool,
                  proto: str | None = None, ports: bool = True) -> None:
        text = ip_text(addr)
        trail = _port_key_text(text, port) if iport else text
        if ports:
            self._emit(sec, usec, d, TrailType.IPORT if iport else TrailType.IP, trail, hit, proto=proto)
        else:
            self._emit(sec, usec, d, TrailType.IP, trail, hit, src_port="-", dst_port="-", proto=proto)

    # -- TCP ------------------------------------------------------------------------------------

    def _tcp_syn(self, sec: int, usec: int, d: Decoded, clean: int = 0) -> None:
        _, _, src, dst, sport, dport, _, _, _, _ = d
        key = (sec, src, dst, sport, dport)
        if key == self._last_syn:
            return
        self._last_syn = key
        if clean:
            return
        store = self.store
        hit = store.ip_port(dst, dport)
        iport = hit is not None
        if hit is None:
            hit = store.ip(dst)
        if hit is not None:
            info = hit.info
            if "attacker" not in info and ("parking site" not in info or dport in (80, 443)):
                self._ip_event(sec, usec, d, dst, dport, hit, iport)
                return
        if dst[0] == 127 and len(dst) == 4:  # IPv4 loopback
            return
        hit = store.ip_port(src, sport)
        iport = hit is not None
        if hit is None:
            hit = store.ip(src)
        if hit is not None and "malware" not in hit.info:
            self._ip_event(sec, usec, d, src, sport, hit, iport)

    def _plugin_feed(self, sec: int, usec: int, d: Decoded) -> None:
        """Plugins see the payload packets of a flow with a listed IP, without extra log lines."""
        for addr in (d.dst, d.src):
            hit = self.store.ip(addr)
            if hit is not None:
                event = self._event(sec, usec, d, TrailType.IP, ip_text(addr), hit)
                self.events.emit_plugins_only(event, self._frame())
                return

    def _tcp_payload(self, sec: int, usec: int, d: Decoded, clean: int = 0) -> None:
        if self.plugins_wanted:
            self._plugin_feed(sec, usec, d)
        _, _, src, dst, sport, dport, _, buf, poff, pend = d
        pending, resume = self._pending, self._resume
        if pending and (src, sport, dst, dport) in pending:  # before TLS: any byte may go on a head
            self._http_continued(sec, usec, d, clean)
            return
        first = buf[poff]
        if first == TLS_HANDSHAKE:
            payload = bytes(buf[poff:pend])
            if len(payload) > 5 and payload[5] == 1:
                hello = self.hellos.feed((src, sport, dst, dport), payload, sec)
                if hello:
                    self._client_hello(sec, usec, d, hello)
                return
            if len(payload) > 5 and payload[5] == 2:
                self._server_hello(sec, usec, d, payload)
            if self.check_certificates:
                self._certificates(sec, usec, d, payload)
            return
        if self.flights.tracked and (src, sport, dst, dport) in self.flights.tracked:
            self._certificates(sec, usec, d, bytes(buf[poff:pend]))
            return
        if self.hellos.tracked and (src, sport, dst, dport) in self.hellos.tracked:
            hello = self.hellos.feed((src, sport, dst, dport), bytes(buf[poff:pend]), sec)
            if hello:
                self._client_hello(sec, usec, d, hello)
            return
        if resume and (src, sport, dst, dport) in resume:  # body, retransmission or the next request
            self._http_segment(sec, usec, d, bytes(buf[poff:pend]), None, clean)
            return
        if first in HTTP_FIRST_BYTES:
            seen = self._request_seen  # a whole head that reports nothing: see core/accel/_http.c
            if seen is not None:
                if self._request_generation != self.store.generation:
                    self._request_prepare()
                if seen(d, sec, clean, self._request_state):
                    return
            payload = bytes(buf[poff:pend])
            request = http.parse_request(payload)
            if request is not None:
                if (request.complete_headers and not request.body
                        and (request.method in BODILESS or not request.may_have(BODY_HEADERS))):
                    self._http_request(sec, usec, d, request, clean)  # the usual: one whole head, nothing after
                else:
                    self._http_segment(sec, usec, d, payload, request, clean)
                return
            if http.could_start_request(payload[:4]):  # a request line cut after a few bytes
                self._http_segment(sec, usec, d, payload, None, clean)
                return
        if first == 0x48 and buf[poff:poff + 5] == b"HTTP/":  # "HTTP/" (H is also a request first byte)
            response = http.parse_response(bytes(buf[poff:pend]))
            if response is not None:
                self.heuristics.http_response(sec, usec, d, response)
            return
        if dport == DNS_PORT or sport == DNS_PORT:
            msg = dns.parse(bytes(buf[poff:pend]), tcp=True)
            if msg is not None:
                self._dns(sec, usec, d, msg, "TCP", clean)

    def _client_hello(self, sec: int, usec: int, d: Decoded, hello: tls.Hello) -> None:
        """SNI → domain check; the whole ClientHello → JA3 and JA4 trails (each hit an event)."""
        if hello.sni:
            self._domain(sec, usec, d, hello.sni, "TCP")
        if hello.message is None:
            return
        fields = fingerprints.client_hello_fields(hello.message)
        if fields is None:
            return
        for type_, value in ((TrailType.JA3, fingerprints.ja3(fields)), (TrailType.JA4, fingerprints.ja4(fields))):
            hit = self.store.get(value)
            if hit is not None:
                self._emit(sec, usec, d, type_, value, hit)

    def _server_hello(self, sec: int, usec: int, d: Decoded, payload: bytes) -> None:
        """JA3S of a ServerHello whole in this segment → JA3S trails (the same MD5 form as JA3)."""
        message = tls.server_hello_message(payload)
        value = fingerprints.server_hello_ja3s(message) if message else None
        if value:
            hit = self.store.get(value)
            if hit is not None:
                self._emit(sec, usec, d, TrailType.JA3S, value, hit)

    def _certificates(self, sec: int, usec: int, d: Decoded, payload: bytes) -> None:
        certs = self.flights.feed((d.src, d.sport, d.dst, d.dport), payload, sec)
        if not certs:
            return
        for der in certs[:1]:  # the leaf certificate identifies the server
            sha1 = tls.cert_sha1(der)
            hit = self.store.get(sha1)
            if hit is not None:
                self._emit(sec, usec, d, TrailType.CERT, sha1, hit)

    # -- HTTP -----------------------------------------------------------------------------------

    def _http_segment(self, sec: int, usec: int, d: Decoded, payload: bytes, request: http.HttpRequest | None, clean: int) -> None:
        """A client segment starting like a request that is not the usual single whole head: more
        requests or a body after it, a head it does not complete, or a connection whose next
        request is known to start further on (bytes before that are body or retransmitted)."""
        _, _, src, dst, sport, dport, _, buf, poff, _ = d
        key = (src, sport, dst, dport)
        seq = heads.payload_seq(buf, poff, sport, dport)
        start = 0
        if seq is not None and key in self.heads.resume:
            start = self.heads.skip(key, seq, len(payload))
            if start >= len(payload):
                return
            if start:
                request = None
        self._http_stream(sec, usec, d, key, payload, seq, start, request, clean)

    def _http_continued(self, sec: int, usec: int, d: Decoded, clean: int) -> None:
        """A segment of a connection whose request head is being reassembled."""
        _, _, src, dst, sport, dport, _, buf, poff, pend = d
        key = (src, sport, dst, dport)
        seq = heads.payload_seq(buf, poff, sport, dport)
        done = self.heads.feed(key, seq, bytes(buf[poff:pend]), sec) if seq is not None else None
        if done is not None:
            start_seq, data = done
            self._http_stream(sec, usec, d, key, data, start_seq, 0, None, clean, reassembled=True)

    def _http_stream(self, sec: int, usec: int, d: Decoded, key: Hashable, data: bytes, seq: int | None,
                     off: int, request: http.HttpRequest | None, clean: int, reassembled: bool = False) -> None:
        """Every request in `data` (client bytes from sequence number `seq`, None when unknown)
        from `off` on, stepping over each body by its framing (http.body_length), so a
        request-shaped text inside a body is never read as a request. A head cut by the end of
        `data` starts its reassembly; when a body continues past `data`, or after a reassembled
        head, the connection's next request start is remembered."""
        size = len(data)
        table = self.heads
        while off < size:
            chunk = data[off:] if off else data
            if request is None:
                request = http.parse_request(chunk)
            cut = seq is not None and len(chunk) < table.max_bytes
            if request is None:
                if cut and b"\n" not in chunk and http.could_start_request(chunk[:4]):
                    table.start(key, (seq + off) & heads.MASK, chunk, sec)  # type: ignore[operator]
                return
            if cut and not request.complete_headers and request.version:
                table.start(key, (seq + off) & heads.MASK, chunk, sec)  # type: ignore[operator]
                return
            body = request.body
            length = http.body_length(request) if request.complete_headers else None
            if length is not None and len(body) > length:
                request = request._replace(body=body[:length])
            self._http_request(sec, usec, d, request, clean)
            if length is None:  # the framing cannot be read: nothing after this head is read as a request
                off = size
                break
            off += len(chunk) - len(body) + length
            request = None
        if seq is not None and (off > size or reassembled):
            table.remember(key, (seq + off) & heads.MASK, sec)

    def _http_request(self, sec: int, usec: int, d: Decoded, request: http.HttpRequest, clean: int = 0) -> None:
        host = (request.host or "").lower()
        method = request.method
        if method == "CONNECT" or request.absolute:
            if host and self._domain(sec, usec, d, host, "TCP"):
                return
        elif host and self.check_host_domains and self._domain(sec, usec, d, host, "TCP"):
            return
        if host[:1].isalpha() and not clean:
            hit = self.store.ip(d.dst)
            if hit is not None:
                self._emit(sec, usec, d, TrailType.IP, f"{ip_text(d.dst)} ({host})", hit)
                return
        if method != "CONNECT" and not (host and self._host_whitelisted(host)):
            if self._url_trails(sec, usec, d, request, host or ip_text(d.dst)):
                return
        agent = request.user_agent
        if agent:
            hit = self.store.user_agent(agent)  # an exact `ua:` trail; remembered per distinct UA
            if hit is not None:
                self._emit(sec, usec, d, TrailType.UA, agent.strip(), hit)
                return
        self.heuristics.http_request(sec, usec, d, request)

    def _request_prepare(self) -> None:
        """The state core/accel/_http.c request_seen reads (its doc names each part), for the
        store's generation: the objects themselves, so it sees and changes the live state."""
        store = self.store
        markers, agents = store.memos()
        self._request_state = (self._whitelisted_hosts, self._host_whitelisted, markers, store.has_marker, HOST_MARK,
                               store.path_markers_maybe, agents, store.user_agent, self.check_host_domains,
                               self.heuristics.request_shortcut())
        self._request_generation = store.generation

    def _host_whitelisted(self, host: str) -> bool:
        """Whitelist verdict for an HTTP host, remembered (hosts repeat; bounded, cleared when full)."""
        verdict = self._whitelisted_hosts.get(host)
        if verdict is None:
            verdict = self.whitelist is not None and self.whitelist.domain(host)
            if len(self._whitelisted_hosts) >= HOST_CACHE_ENTRIES:
                self._whitelisted_hosts.clear()
            self._whitelisted_hosts[host] = verdict
        return verdict

    def _url_trails(self, sec: int, usec: int, d: Decoded, request: http.HttpRequest, host: str) -> bool:
        found = self.urls.check(request, host)
        if found is None:
            return False
        self._emit(sec, usec, d, found.kind, found.trail, found.hit)
        return True

    # -- UDP / DNS ------------------------------------------------------------------------------

    def _udp(self, sec: int, usec: int, d: Decoded, clean: int = 0) -> None:
        step = self._datagram
        if step is not None:
            # core/accel/_dns.c datagram: the duplicate test below, then a query whose domain check
            # misses (cached, or a walk the compiled path proves), whose step in the DNS-exhaustion
            # window cannot alert and whose IP lookups are skipped: it reports nothing, so the
            # compiled path applies what _dns would change (the window step, the domain check's
            # cache) and ends it
            done = step(d, sec, clean, self, self._query_state)
            if done:
                if done == 2:
                    self.domains.cache_hits += 1
                elif done == 4:
                    self.domains.cache_evictions += 1
                return  # 1: a repeat
            _, _, src, dst, sport, dport, _, buf, poff, pend = d
        else:
            _, _, src, dst, sport, dport, _, buf, poff, pend = d
            payload = buf[poff:pend] if pend - poff <= 512 else buf[poff:poff + 512]
            key = (sec, src, dst, sport, dport, zlib.crc32(payload))
            if key == self._last_udp:
                return
            self._last_udp = key
        if dport == DNS_PORT or sport == DNS_PORT:
            msg = dns.parse(bytes(buf[poff:pend]))
            if msg is not None:
                self._dns(sec, usec, d, msg, "UDP", clean)
                domains = self.domains
                if step is not None and domains.store.generation == domains.generation != self._query_generation:
                    self._query_prepare()  # (first query, or a new trail set): what the compiled path reads
                return
        if not clean:
            store = self.store
            hit = store.ip(dst)
            if hit is not None:
                self._ip_event(sec, usec, d, dst, dport, hit, False)
            else:
                hit = store.ip(src)
                if hit is not None and "malware" not in hit.info:
                    self._ip_event(sec, usec, d, src, sport, hit, False)
        if pend - poff > 20 and buf[poff] & 0xC0 == 0xC0:
            sni = self.initials.feed(bytes(buf[poff:pend]), sec)
            if sni:
                self._domain(sec, usec, d, sni, "UDP")
        self.heuristics.udp(sec, usec, d)

    def _query_prepare(self) -> None:
        """The state core/accel/_dns.c datagram reads for DNS queries (its doc names each part),
        for the store generation the domain check's cache belongs to: the objects themselves, so
        it sees and changes the live state."""
        domains, whitelist = self.domains, self.domains.whitelist
        self._query_state = (domains.store, domains.generation, domains.cache, IGNORE_DNS_QUERY_SUFFIXES,
                             self.heuristics.exhaustion_shortcut(), domains.cache_entries,
                             whitelist.domains if whitelist is not None else None,
                             domains.store.domain_suffixes, domains.store.regex_proofs())
        self._query_generation = domains.generation

    def _dns(self, sec: int, usec: int, d: Decoded, msg: dns.DnsMessage, proto: str, clean: int = 0) -> None:
        if msg.is_response:
            self.heuristics.dns_response(sec, usec, d, msg)
            return
        name = msg.qname
        if not name:
            return
        flooded = self.heuristics.dns_query(sec, usec, d, msg)
        if not ignored_query(name):
            if not flooded:
                self._domain(sec, usec, d, name, proto)
            else:  # under a base domain in a DNS-exhaustion hold: only the name's own trail
                exact = self.domains.exact(name)
                if exact is not None:
                    self._emit(sec, usec, d, TrailType.DNS, exact.trail, (exact.info, exact.reference), proto=proto)
        if msg.qtype != QTYPE_PTR and msg.qtype != QTYPE_AAAA and msg.qclass == QCLASS_IN and not clean:
            _, _, src, dst, _, dport, _, _, _, _ = d
            store = self.store
            hit = store.ip_port(dst, dport)
            if hit is not None:
                trail = f"{_port_key_text(ip_text(dst), dport)} ({name})"
                self._emit(sec, usec, d, TrailType.IPORT, trail, hit, proto=proto)
                return
            hit = store.ip(dst)
            if hit is not None:
                self._emit(sec, usec, d, TrailType.IP, f"{ip_text(dst)} ({name})", hit, proto=proto)
                return
            hit = store.ip(src)
            if hit is not None:
                self._emit(sec, usec, d, TrailType.IP, ip_text(src), hit, proto=proto)

    def _domain(self, sec: int, usec: int, d: Decoded, name: str, proto: str) -> bool:
        hit = self.domains.check(name)
        if hit is None:
            return False
        self._emit(sec, usec, d, TrailType.DNS, hit.trail, (hit.info, hit.reference), proto=proto)
        return True

    # -- ICMP and other protocols ---------------------------------------------------------------

    def _ip_only(self, sec: int, usec: int, d: Decoded) -> None:
        hit = self.store.ip(d.dst)
        addr = d.dst
        if hit is None:
            hit = self.store.ip(d.src)
            addr = d.src
        if hit is not None:
            self._ip_event(sec, usec, d, addr, 0, hit, False, ports=False)
