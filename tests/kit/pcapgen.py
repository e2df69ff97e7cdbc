"""Test packet builder: frames from scratch with plain struct, pcap writing, and fuzz corpora.

Where it sits: test-only. Tests build frames here, write them with `write_pcap`, and replay them
through the real capture source / decoder / pipeline. Nothing here is imported by core/.

Layering is by composition, innermost first:

    frame = ether(ipv4("10.0.0.1", "8.8.8.8", udp(53000, 53, dns_query("example.com"))))
    frame = ether(ipv6("2001:db8::1", "2001:db8::2", tcp(1234, 80, payload=http_request()),
                       ext=[hop_by_hop(), fragment(0, more=True)]), vlans=[(0x8100, 10)])
    write_pcap(path, [(1700000000.25, frame)], linktype=LINKTYPE_ETHERNET)

`ipv4()`/`ipv6()` fill in TCP/UDP/ICMP/ICMPv6 checksums (when the payload's checksum is zero and
the packet is not a non-first fragment) so frames are also valid on a real wire.
`random_frames()` and `mutated_frames()` make deterministic garbage for fuzzing any stage.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterable, Sequence

# Link types (pcap LINKTYPE_/DLT_ values)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_IEEE802 = 6
LINKTYPE_ARCNET = 7
LINKTYPE_SLIP = 8
LINKTYPE_PPP = 9
LINKTYPE_FDDI = 10
LINKTYPE_RAW_12 = 12
LINKTYPE_RAW_14 = 14
LINKTYPE_18 = 18
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_PFLOG = 117
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# TCP flags
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# IP protocol numbers
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


# --- helpers ----------------------------------------------------------------------------------------

def _ip(addr: str | bytes) -> bytes:
    if isinstance(addr, bytes):
        return addr
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


_CSUM_AT = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMPV6: 2}


def _with_l4_checksum(proto: int, pseudo: bytes, l4: bytes) -> bytes:
    at = _CSUM_AT.get(proto)
    if at is None or len(l4) < at + 2 or l4[at:at + 2] != b"\x00\x00":
        return l4
    value = checksum(pseudo + l4)
    if proto == IPPROTO_UDP and value == 0:
        value = 0xFFFF
    return l4[:at] + struct.pack("!H", value) + l4[at + 2:]


# --- link layers ----------------------------------------------------------------------------------

def ether(payload: bytes, ethertype: int = 0x0800, src: bytes = MAC_A, dst: bytes = MAC_B,
          vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    """Ethernet II frame; `vlans` is an outer-first list of (tpid, vid), e.g. [(0x88a8, 1), (0x8100, 2)].
    `ethertype` 0x86DD is picked automatically when the payload is IPv6 and ethertype was left default."""
    if ethertype == 0x0800 and payload[:1] and payload[0] >> 4 == 6:
        ethertype = 0x86DD
    return dst + src + _tags(vlans) + struct.pack("!H", ethertype) + payload


def _tags(vlans: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("!HH", tpid, vid & 0x0FFF) for tpid, vid in vlans)


def tagged(frame: bytes, vlans: Sequence[tuple[int, int]]) -> bytes:
    """An Ethernet frame with VLAN tags (outer first, as `ether`) put after its addresses."""
    return frame[:12] + _tags(vlans) + frame[12:]


def cooked(frame: bytes, linktype: int) -> bytes:
    """An Ethernet frame as a Linux cooked capture (LINKTYPE_LINUX_SLL or _SLL2, what the "any"
    interface delivers) holds it: the cooked header in place of the addresses, the EtherType and
    everything after it (VLAN tags included) kept."""
    build = sll if linktype == LINKTYPE_LINUX_SLL else sll2
    return build(frame[14:], proto=int.from_bytes(frame[12:14], "big"))


def ether_8023_snap(payload: bytes, ethertype: int = 0x0800) -> bytes:
    """IEEE 802.3 frame (length field) with LLC/SNAP carrying `ethertype`."""
    llc = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype)
    return MAC_B + MAC_A + struct.pack("!H", len(llc) + len(payload)) + llc + payload


def pppoe(payload: bytes, session: int = 1, ppp_proto: int | None = None) -> bytes:
    """PPPoE session header + PPP protocol; put it inside ether(..., ethertype=0x8864)."""
    if ppp_proto is None:
        ppp_proto = 0x0057 if payload[:1] and payload[0] >> 4 == 6 else 0x0021
    return struct.pack("!BBHHH", 0x11, 0x00, session, len(payload) + 2, ppp_proto) + payload


def sll(payload: bytes, proto: int | None = None, pkttype: int = 0) -> bytes:
    """Linux cooked capture v1 (16 bytes)."""
    proto = _ethertype_for(payload) if proto is None else proto
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\x00\x00", proto) + payload


def sll2(payload: bytes, proto: int | None = None, ifindex: int = 2, pkttype: int = 0) -> bytes:
    """Linux cooked capture v2 (20 bytes)."""
    proto = _ethertype_for(payload) if proto is None else proto
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, MAC_A + b"\x00\x00") + payload


def null(payload: bytes, family: int | None = None, byteorder: str = "little") -> bytes:
    """BSD loopback (DLT_NULL): 4-byte address family in the capturing host's byte order."""
    family = _family_for(payload) if family is None else family
    return family.to_bytes(4, "little" if byteorder == "little" else "big") + payload


def loop(payload: bytes, family: int | None = None) -> bytes:
    """OpenBSD loopback (DLT_LOOP): 4-byte address family in network byte order."""
    family = _family_for(payload) if family is None else family
    return family.to_bytes(4, "big") + payload


def ppp(payload: bytes, proto: int | None = None, hdlc: bool = True) -> bytes:
    """PPP: `ff 03` address/control + protocol (hdlc=True), or the bare 2-byte protocol."""
    if proto is None:
        proto = 0x0057 if payload[:1] and payload[0] >> 4 == 6 else 0x0021
    return (b"\xff\x03" if hdlc else b"") + struct.pack("!H", proto) + payload


def raw(payload: bytes) -> bytes:
    """DLT_RAW / LINKTYPE_IPV4 / LINKTYPE_IPV6: the IP packet itself."""
    return payload


def ieee802(payload: bytes, ethertype: int | None = None) -> bytes:
    """Token Ring (22 bytes: AC, FC, dst, src, LLC/SNAP)."""
    ethertype = _ethertype_for(payload) if ethertype is None else ethertype
    return b"\x10\x40" + MAC_B + MAC_A + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + payload


def fddi(payload: bytes, ethertype: int | None = None) -> bytes:
    """FDDI (21 bytes: FC, dst, src, LLC/SNAP)."""
    ethertype = _ethertype_for(payload) if ethertype is None else ethertype
    return b"\x50" + MAC_B + MAC_A + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype) + payload


def arcnet(payload: bytes) -> bytes:
    """ARCNET RFC 1201 header (6 bytes: src, dst, protocol 0xd4, split flag, sequence)."""
    return b"\x01\x02\xd4\x00\x00\x01" + payload


def slip(payload: bytes) -> bytes:
    """BSD SLIP pseudo-header (16 bytes: direction + compressed-header area)."""
    return b"\x00" + b"\x40" + b"\x00" * 14 + payload


def pflog(payload: bytes, family: int | None = None, hdrlen: int = 61) -> bytes:
    """pflog header: length byte (61 on current BSDs, padded to 64 on the wire), af, action, ..."""
    family = _family_for(payload) if family is None else family
    padded = (hdrlen + 3) & ~3
    head = bytes([hdrlen, family, 0, 0]) + b"em0".ljust(16, b"\x00")
    return head.ljust(padded, b"\x00") + payload


def _ethertype_for(payload: bytes) -> int:
    return 0x86DD if payload[:1] and payload[0] >> 4 == 6 else 0x0800


def _family_for(payload: bytes) -> int:
    return 24 if payload[:1] and payload[0] >> 4 == 6 else 2  # AF_INET6 is 24 on OpenBSD/NetBSD


# --- network layer ----------------------------------------------------------------------------------

def ipv4(src: str | bytes, dst: str | bytes, payload: bytes = b"", proto: int | None = None,
         options: bytes = b"", frag_offset: int = 0, mf: bool = False, df: bool = False,
         ident: int = 0x1234, ttl: int = 64, total_length: int | None = None,
         ihl: int | None = None, version: int = 4) -> bytes:
    """IPv4 packet. `proto` is guessed from the payload builder when omitted (see tcp/udp/icmp).
    `frag_offset` is in bytes (multiple of 8). `total_length`/`ihl`/`version` override for bad packets."""
    proto = _guess_proto(payload) if proto is None else proto
    options = options + b"\x00" * (-len(options) % 4)
    hl = 20 + len(options)
    ihl_val = hl // 4 if ihl is None else ihl
    tl = hl + len(payload) if total_length is None else total_length
    frag = (frag_offset // 8) | (0x2000 if mf else 0) | (0x4000 if df else 0)
    s, d = _ip(src), _ip(dst)
    if frag_offset == 0:
        payload = _with_l4_checksum(proto, s + d + struct.pack("!BBH", 0, proto, len(payload)), payload)
    head = struct.pack("!BBHHHBBH4s4s", (version << 4) | (ihl_val & 0xF), 0, tl & 0xFFFF, ident, frag,
                       ttl, proto, 0, s, d) + options
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + payload


# IPv6 extension headers: each helper returns (next-header number, header bytes with a placeholder
# next-header byte) and ipv6() chains them.

def hop_by_hop(options: bytes = b"\x01\x04\x00\x00\x00\x00") -> tuple[int, bytes]:
    return 0, _ext_body(options)


def dest_opts(options: bytes = b"\x01\x04\x00\x00\x00\x00") -> tuple[int, bytes]:
    return 60, _ext_body(options)


def routing(addresses: Sequence[str] = ("2001:db8::99",), segments_left: int = 0) -> tuple[int, bytes]:
    """Type 0-style routing header carrying `addresses` (segments_left usually 0 in tests)."""
    body = bytes([0, segments_left]) + b"\x00" * 4 + b"".join(_ip(a) for a in addresses)
    return 43, bytes([0, len(body) // 8]) + body


def fragment(offset: int = 0, more: bool = False, ident: int = 0xABCD) -> tuple[int, bytes]:
    """Fragment header; `offset` in bytes (multiple of 8)."""
    return 44, struct.pack("!BBHI", 0, 0, (offset // 8) << 3 | (1 if more else 0), ident)


def auth_header(icv: bytes = b"\x00" * 12) -> tuple[int, bytes]:
    """AH: length field is in 4-byte units minus 2."""
    total = 12 + len(icv)
    return 51, struct.pack("!BBHII", 0, total // 4 - 2, 0, 0x100, 1) + icv


def _ext_body(options: bytes) -> bytes:
    data = b"\x00\x00" + options
    data += b"\x00" * (-len(data) % 8)
    return bytes([0, len(data) // 8 - 1]) + data[2:]


def ipv6(src: str | bytes, dst: str | bytes, payload: bytes = b"", proto: int | None = None,
         ext: Sequence[tuple[int, bytes]] = (), hop_limit: int = 64,
         payload_length: int | None = None) -> bytes:
    """IPv6 packet with an optional chain of extension headers (hop_by_hop(), routing(), ...)."""
    proto = _guess_proto(payload, v6=True) if proto is None else proto
    s, d = _ip(src), _ip(dst)
    non_first = any(kind == 44 and (struct.unpack("!H", body[2:4])[0] >> 3) for kind, body in ext)
    if not non_first:
        payload = _with_l4_checksum(proto, s + d + struct.pack("!I3xB", len(payload), proto), payload)
    chain = b""
    kinds = [k for k, _ in ext] + [proto]
    for i, (_, body) in enumerate(ext):
        chain += bytes([kinds[i + 1]]) + body[1:]
    first = kinds[0]
    plen = len(chain) + len(payload) if payload_length is None else payload_length
    return struct.pack("!IHBB16s16s", 0x60000000, plen & 0xFFFF, first, hop_limit, s, d) + chain + payload


# --- transport layer (payload builders carry their protocol for ipv4()/ipv6()) ------------------------

class _L4(bytes):
    proto = 0


class _TCP(_L4):
    proto = IPPROTO_TCP


class _UDP(_L4):
    proto = IPPROTO_UDP


class _ICMP(_L4):
    proto = IPPROTO_ICMP


class _ICMP6(_L4):
    proto = IPPROTO_ICMPV6


def _guess_proto(payload: bytes, v6: bool = False) -> int:
    proto = getattr(payload, "proto", 0)
    if proto == IPPROTO_ICMP and v6:
        return IPPROTO_ICMPV6
    return proto or 255


def tcp(sport: int = 40000, dport: int = 80, flags: int = SYN, payload: bytes = b"", seq: int = 1,
        ack: int = 0, options: bytes = b"", window: int = 65535, data_offset: int | None = None) -> bytes:
    options = options + b"\x00" * (-len(options) % 4)
    doff = (20 + len(options)) // 4 if data_offset is None else data_offset
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
    return _TCP(head + options + payload)


def udp(sport: int = 40000, dport: int = 53, payload: bytes = b"", length: int | None = None) -> bytes:
    ulen = 8 + len(payload) if length is None else length
    return _UDP(struct.pack("!HHHH", sport, dport, ulen & 0xFFFF, 0) + payload)


def icmp(type_: int = 8, code: int = 0, ident: int = 1, seq: int = 1, payload: bytes = b"ping") -> bytes:
    """ICMP echo-style message (checksum filled in); for IPv6 use icmpv6()."""
    body = struct.pack("!BBHHH", type_, code, 0, ident, seq) + payload
    return _ICMP(body[:2] + struct.pack("!H", checksum(body)) + body[4:])


def icmpv6(type_: int = 128, code: int = 0, ident: int = 1, seq: int = 1, payload: bytes = b"ping") -> bytes:
    """ICMPv6 echo-style message (checksum filled in by ipv6(), which knows the pseudo-header)."""
    return _ICMP6(struct.pack("!BBHHH", type_, code, 0, ident, seq) + payload)


# --- application layer ------------------------------------------------------------------------------

_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
           "SRV": 33, "ANY": 255}


def dns_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            raw_label = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw_label)]) + raw_label
    return out + b"\x00"


def _qtype(qtype: int | str) -> int:
    return _QTYPES[qtype.upper()] if isinstance(qtype, str) else qtype


def _tcp_frame(msg: bytes, tcp_: bool) -> bytes:
    return struct.pack("!H", len(msg)) + msg if tcp_ else msg


def dns_query(name: str, qtype: int | str = 1, txid: int = 0x1337, tcp: bool = False,
              flags: int = 0x0100) -> bytes:
    """DNS query message (RD set); `tcp=True` prefixes the 2-byte length."""
    msg = struct.pack("!HHHHHH", txid, flags, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", _qtype(qtype), 1)
    return _tcp_frame(msg, tcp)


def dns_response(name: str, answers: Iterable[tuple[int | str, object]] = (), rcode: int = 0,
                 qtype: int | str = 1, txid: int = 0x1337, compress: bool = True, tcp: bool = False,
                 ttl: int = 300) -> bytes:
    """DNS response. `answers`: (type, value): "A"/"AAAA" with address text, "CNAME"/"NS"/"PTR" with a
    name, "TXT" with text, or (type number, rdata bytes). Owner names are a pointer to the question
    (0xc00c) when `compress`, else written out in full."""
    answers = list(answers)
    head = struct.pack("!HHHHHH", txid, 0x8180 | (rcode & 0xF), 1, len(answers), 0, 0)
    body = dns_name(name) + struct.pack("!HH", _qtype(qtype), 1)
    owner = b"\xc0\x0c" if compress else dns_name(name)
    for rtype, value in answers:
        code = _qtype(rtype)
        if isinstance(value, bytes):
            rdata = value
        elif code in (1, 28):
            rdata = _ip(str(value))
        elif code in (2, 5, 12):
            rdata = dns_name(str(value))
        elif code == 16:
            text = str(value).encode()
            rdata = bytes([len(text)]) + text
        else:
            raise ValueError(f"cannot build rdata for type {rtype!r}")
        body += owner + struct.pack("!HHIH", code, 1, ttl, len(rdata)) + rdata
    return _tcp_frame(head + body, tcp)


def http_request(method: str = "GET", path: str = "/", headers: Iterable[tuple[str, str]] | dict | None = None,
                 body: bytes = b"", host: str | None = "example.com", version: str = "HTTP/1.1") -> bytes:
    """HTTP/1.x request bytes; `headers` as a dict or (name, value) pairs, Host first when given."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if host is not None and not any(k.lower() == "host" for k, _ in pairs):
        pairs.insert(0, ("Host", host))
    if body and not any(k.lower() == "content-length" for k, _ in pairs):
        pairs.append(("Content-Length", str(len(body))))
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_response(status: int = 200, reason: str = "OK", headers: Iterable[tuple[str, str]] | dict | None = None,
                  body: bytes = b"") -> bytes:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    pairs.append(("Content-Length", str(len(body))))
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class TcpSession:
    """One client-server TCP connection with real sequence numbers, as Ethernet frames.

    `handshake()` gives SYN, SYN-ACK, ACK; `client(data, at=None)` one client segment carrying
    `data` at stream offset `at` (default: right after the bytes sent so far, so a retransmission
    or a reordered segment is `client(data, at=earlier_offset)`), followed by nothing: `ack()`
    gives the server's ACK of everything sent. Timestamp options (12 bytes, a 32-byte TCP header)
    ride on every segment like Linux peers send them; `fast_open(data, cookie)` is a SYN carrying
    data with a TFO cookie option (RFC 7413)."""

    def __init__(self, client: str = "10.0.0.5", server: str = "93.184.216.34", sport: int = 41000,
                 dport: int = 80, isn: int = 0xFFFFFF00, server_isn: int = 0x12345678) -> None:
        self.client_addr, self.server_addr, self.sport, self.dport = client, server, sport, dport
        self.isn, self.server_isn = isn, server_isn
        self.sent = 0  # client stream bytes sent so far (highest offset reached)
        self.options = b"\x01\x01\x08\x0a" + struct.pack("!II", 1000, 0)

    def _ip(self, src: str, dst: str, payload: bytes) -> bytes:
        return ether(ipv6(src, dst, payload) if ":" in src else ipv4(src, dst, payload))

    def handshake(self) -> list[bytes]:
        return [self._ip(self.client_addr, self.server_addr,
                         tcp(self.sport, self.dport, SYN, seq=self.isn, options=self.options)),
                self._ip(self.server_addr, self.client_addr,
                         tcp(self.dport, self.sport, SYN | ACK, seq=self.server_isn, ack=(self.isn + 1) & 0xFFFFFFFF,
                             options=self.options)),
                self._ack_from_client()]

    def _ack_from_client(self) -> bytes:
        return self._ip(self.client_addr, self.server_addr,
                        tcp(self.sport, self.dport, ACK, seq=(self.isn + 1 + self.sent) & 0xFFFFFFFF,
                            ack=(self.server_isn + 1) & 0xFFFFFFFF, options=self.options))

    def fast_open(self, data: bytes, cookie: bytes = b"\x5a" * 8) -> bytes:
        self.sent = len(data)
        option = bytes([34, 2 + len(cookie)]) + cookie  # TCP Fast Open cookie
        return self._ip(self.client_addr, self.server_addr,
                        tcp(self.sport, self.dport, SYN, data, seq=self.isn, options=self.options + option))

    def client(self, data: bytes, at: int | None = None) -> bytes:
        at = self.sent if at is None else at
        self.sent = max(self.sent, at + len(data))
        return self._ip(self.client_addr, self.server_addr,
                        tcp(self.sport, self.dport, PSH | ACK, data, seq=(self.isn + 1 + at) & 0xFFFFFFFF,
                            ack=(self.server_isn + 1) & 0xFFFFFFFF, options=self.options))

    def ack(self) -> bytes:
        return self._ip(self.server_addr, self.client_addr,
                        tcp(self.dport, self.sport, ACK, seq=(self.server_isn + 1) & 0xFFFFFFFF,
                            ack=(self.isn + 1 + self.sent) & 0xFFFFFFFF, options=self.options))


# --- pcap files -------------------------------------------------------------------------------------

def write_pcap(path: str, packets: Iterable[tuple[float, bytes]], linktype: int = LINKTYPE_ETHERNET,
               snaplen: int = 65535, nanosecond: bool = False) -> str:
    """Classic little-endian pcap file; each packet is (timestamp seconds as float, frame bytes).
    Frames longer than `snaplen` are stored truncated (caplen < len), as tcpdump -s would."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    scale = 1_000_000_000 if nanosecond else 1_000_000
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for ts, frame in packets:
            sec = int(ts)
            frac = round((ts - sec) * scale)  # split first: ts * 1e9 would lose nanoseconds to float rounding
            if frac >= scale:
                sec, frac = sec + 1, frac - scale
            data = bytes(frame[:snaplen])
            fh.write(struct.pack("<IIII", sec, frac, len(data), len(frame)) + data)
    return path


def read_pcap(path: str) -> tuple[int, list[tuple[float, bytes]]]:
    """Minimal reader for classic pcap (either byte order, µs or ns): (linktype, [(ts, frame)])."""
    with open(path, "rb") as fh:
        data = fh.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    scale = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(end + "IIII", data[pos:pos + 16])
        out.append((sec + frac / scale, data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, out


# --- fuzz corpora -------------------------------------------------------------------------------------

def sample_frames(linktype: int = LINKTYPE_ETHERNET) -> list[bytes]:
    """A small set of valid frames (TCP/UDP/DNS/HTTP/ICMP, v4 and v6, tags, PPPoE) framed for `linktype`.
    Useful as the base for mutated_frames()."""
    v4 = [
        ipv4("10.0.0.1", "93.184.216.34", tcp(40000, 80, PSH | ACK, http_request("GET", "/x?a=1"))),
        ipv4("10.0.0.1", "8.8.8.8", udp(53000, 53, dns_query("www.example.com"))),
        ipv4("8.8.8.8", "10.0.0.1", udp(53, 53000, dns_response("www.example.com", [("A", "1.2.3.4")]))),
        ipv4("10.0.0.1", "10.0.0.2", icmp(), options=b"\x07\x07\x04" + b"\x00" * 4),
        ipv4("10.0.0.1", "10.0.0.2", tcp(1, 443, SYN), frag_offset=0, mf=True),
    ]
    v6 = [
        ipv6("2001:db8::1", "2001:db8::2", tcp(40000, 443, SYN)),
        ipv6("2001:db8::1", "2001:db8::53", udp(5353, 53, dns_query("v6.example.org", "AAAA")),
             ext=[hop_by_hop(), dest_opts()]),
        ipv6("2001:db8::1", "2001:db8::2", icmpv6(), ext=[routing(), fragment(0, more=True)]),
    ]
    packets = v4 + v6
    if linktype == LINKTYPE_ETHERNET:
        frames = [ether(p) for p in packets]
        frames += [ether(v4[0], vlans=[(0x8100, 10)]), ether(v6[0], vlans=[(0x88a8, 1), (0x8100, 2)]),
                   ether(pppoe(v4[1]), ethertype=0x8864), ether_8023_snap(v4[2])]
        return frames
    wrap = {
        LINKTYPE_NULL: null, LINKTYPE_LOOP: loop, LINKTYPE_18: null, LINKTYPE_PPP: ppp,
        LINKTYPE_LINUX_SLL: sll, LINKTYPE_LINUX_SLL2: sll2, LINKTYPE_IEEE802: ieee802,
        LINKTYPE_FDDI: fddi, LINKTYPE_ARCNET: arcnet, LINKTYPE_SLIP: slip, LINKTYPE_PFLOG: pflog,
    }.get(linktype, raw)
    if linktype == LINKTYPE_IPV4:
        packets = v4
    elif linktype == LINKTYPE_IPV6:
        packets = v6
    return [wrap(p) for p in packets]


def random_frames(n: int, seed: int = 0, max_len: int = 200) -> list[bytes]:
    """`n` frames of random bytes, a third of them starting with plausible Ethernet/IP headers
    (so decoders get past the first checks before hitting garbage)."""
    rng = random.Random(seed)
    out = []
    prefixes = [b"", MAC_B + MAC_A + b"\x08\x00\x45", MAC_B + MAC_A + b"\x86\xdd\x60",
                MAC_B + MAC_A + b"\x81\x00\x00\x01\x08\x00\x45", b"\x45", b"\x60", b"\x02\x00\x00\x00\x45"]
    for _ in range(n):
        length = rng.randrange(0, max_len)
        body = rng.randbytes(length)
        if rng.random() < 0.35:
            body = rng.choice(prefixes) + body
        out.append(body)
    return out


def mutated_frames(base_frames: Sequence[bytes], n: int, seed: int = 0) -> list[bytes]:
    """`n` mutants of `base_frames`: bit flips, byte overwrites with boundary values, truncation,
    extension with junk, inserted/deleted bytes, and length fields set to extremes."""
    rng = random.Random(seed)
    special = [0x00, 0x01, 0x05, 0x0F, 0x3F, 0x40, 0x45, 0x4F, 0x60, 0x7F, 0x80, 0x81, 0xAA, 0xFE, 0xFF]
    out = []
    for _ in range(n):
        frame = bytearray(rng.choice(base_frames))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            if not frame:
                frame = bytearray(rng.randbytes(rng.randrange(1, 40)))
                continue
            pos = rng.randrange(len(frame))
            if op == 0:
                frame[pos] ^= 1 << rng.randrange(8)
            elif op == 1:
                frame[pos] = rng.choice(special)
            elif op == 2:
                del frame[rng.randrange(len(frame) + 1):]
            elif op == 3:
                frame += rng.randbytes(rng.randrange(1, 64))
            elif op == 4:
                if rng.random() < 0.5:
                    frame.insert(pos, rng.randrange(256))
                else:
                    del frame[pos]
            else:
                frame[pos:pos + 2] = rng.choice([b"\x00\x00", b"\xff\xff", b"\x00\x14", b"\x05\xdc"])
        out.append(bytes(frame))
    return out
