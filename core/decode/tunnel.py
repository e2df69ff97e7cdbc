"""Tunnel headers: where the carried packet starts inside VXLAN, GENEVE, GRE, ERSPAN and MPLS.

Where it sits: inside decode. `core/decode/packet.py` calls these when an IP packet is UDP to a
tunnel port, GRE (IP protocol 47), or when a link layer or tunnel carries an MPLS label stack; it
walks the carried packet as if it had been captured on its own, so detection sees the inner
addresses, ports and payload. IP-in-IP (4) and IPv6-in-IP (41) need no header parser: the carried
IP header starts right after the outer one.

Every parser takes the batch buffer, the tunnel header's offset and the captured end, and returns
`(kind, carried, start)`: `kind` names the encapsulation for the decapsulation counters, `carried`
what starts at `start` (ETHERNET, IPV4, IPV6, IP = either by version nibble, MPLS), or one of the
negative verdicts MALFORMED (impossible or truncated header), TOO_DEEP (label stack longer than
MAX_MPLS_LABELS) and UNSUPPORTED (a well-formed header carrying something else, e.g. PPTP's GRE
version 1 or a GENEVE protocol type other than Ethernet/IP/MPLS). Nothing past `end` is read.
"""

from __future__ import annotations

from collections.abc import Callable

from core.config import Config, ConfigError, parse_ports

ETHERNET, IPV4, IPV6, IP, MPLS = 1, 4, 6, 2, 3
MALFORMED, TOO_DEEP, UNSUPPORTED = -1, -2, -3

MAX_MPLS_LABELS = 8
# every kind a decoder counts as decap_<kind> (core/decode/packet.py), for metrics
KINDS = ("vxlan", "geneve", "gre", "gre_teb", "erspan1", "erspan2", "erspan3", "ip_in_ip", "ipv6_in_ip", "mpls")

ETH_IPV4, ETH_IPV6, ETH_TEB = 0x0800, 0x86DD, 0x6558
ETH_MPLS = frozenset((0x8847, 0x8848))  # unicast, multicast
ETH_ERSPAN_1_2, ETH_ERSPAN_3 = 0x88BE, 0x22EB
# EtherTypes that make the bytes after an MPLS stack plausible as an Ethernet header (pseudowire)
PLAUSIBLE_INNER_ETHERTYPES = frozenset((0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x8847, 0x8848, 0x8864, 0x0806))
GRE_C, GRE_K, GRE_S = 0x80, 0x20, 0x10
GRE_MUST_BE_ZERO = 0x4C  # routing present, strict source route, recursion bit 2 (RFC 2784: discard)

DEFAULT_VXLAN_PORTS = "4789"
DEFAULT_GENEVE_PORTS = "6081"

Verdict = tuple[str, int, int]
UdpTunnel = Callable[[bytes, int, int], Verdict]


def _by_ethertype(kind: str, ethertype: int, start: int) -> Verdict:
    if ethertype == ETH_IPV4:
        return kind, IPV4, start
    if ethertype == ETH_IPV6:
        return kind, IPV6, start
    if ethertype == ETH_TEB:
        return kind, ETHERNET, start
    if ethertype in ETH_MPLS:
        return kind, MPLS, start
    return kind, UNSUPPORTED, start


def vxlan(buf: bytes, pos: int, end: int) -> Verdict:
    """RFC 7348: flags (I bit 0x08 must be set), 24 reserved bits, VNI, 8 reserved bits; Ethernet follows."""
    if pos + 8 > end or not buf[pos] & 0x08:
        return "vxlan", MALFORMED, pos
    return "vxlan", ETHERNET, pos + 8


def geneve(buf: bytes, pos: int, end: int) -> Verdict:
    """RFC 8926: version 0, options length in 4-byte words (skipped), protocol type as an EtherType."""
    if pos + 8 > end or buf[pos] >> 6:
        return "geneve", MALFORMED, pos
    start = pos + 8 + ((buf[pos] & 0x3F) << 2)
    if start > end:
        return "geneve", MALFORMED, pos
    return _by_ethertype("geneve", (buf[pos + 2] << 8) | buf[pos + 3], start)


def gre(buf: bytes, pos: int, end: int) -> Verdict:
    """RFC 2784/2890 GRE version 0 with optional checksum, key and sequence number words.

    Protocol 0x0800/0x86DD: IP (kind gre); 0x6558: Ethernet (gre_teb); 0x8847/0x8848: MPLS (gre);
    0x88BE: ERSPAN type I without a sequence number, type II with one (8-byte header, version 1);
    0x22EB: ERSPAN type III (12-byte header, version 2, plus the 8-byte platform sub-header when
    its O bit is set; frame type 0 Ethernet, 2 IP)."""
    if pos + 4 > end:
        return "gre", MALFORMED, pos
    flags = buf[pos]
    if flags & GRE_MUST_BE_ZERO:
        return "gre", MALFORMED, pos
    if buf[pos + 1] & 0x07:  # version 1 is PPTP's enhanced GRE (PPP inside)
        return "gre", UNSUPPORTED, pos
    start = pos + 4
    if flags & GRE_C:
        start += 4
    if flags & GRE_K:
        start += 4
    if flags & GRE_S:
        start += 4
    if start > end:
        return "gre", MALFORMED, pos
    ethertype = (buf[pos + 2] << 8) | buf[pos + 3]
    if ethertype == ETH_ERSPAN_1_2:
        if not flags & GRE_S:
            return "erspan1", ETHERNET, start
        if start + 8 > end or buf[start] >> 4 != 1:
            return "erspan2", MALFORMED, pos
        return "erspan2", ETHERNET, start + 8
    if ethertype == ETH_ERSPAN_3:
        if start + 12 > end or buf[start] >> 4 != 2:
            return "erspan3", MALFORMED, pos
        frame_type = (buf[start + 10] >> 2) & 0x1F
        inner = start + (20 if buf[start + 11] & 1 else 12)
        if inner > end:
            return "erspan3", MALFORMED, pos
        if frame_type == 0:
            return "erspan3", ETHERNET, inner
        if frame_type == 2:
            return "erspan3", IP, inner
        return "erspan3", UNSUPPORTED, inner
    return _by_ethertype("gre_teb" if ethertype == ETH_TEB else "gre", ethertype, start)


def _plausible_ethernet(buf: bytes, pos: int, end: int) -> bool:
    return pos + 14 <= end and ((buf[pos + 12] << 8) | buf[pos + 13]) in PLAUSIBLE_INNER_ETHERTYPES


def mpls(buf: bytes, pos: int, end: int) -> Verdict:
    """An MPLS label stack (unicast or multicast) walked to its bottom-of-stack entry; then IPv4 or
    IPv6 by the first nibble, else an Ethernet pseudowire: with the 4-byte control word (first
    nibble 0, RFC 4385) when the Ethernet header after it is plausible, else without it."""
    for _ in range(MAX_MPLS_LABELS):
        if pos + 4 > end:
            return "mpls", MALFORMED, pos
        bottom = buf[pos + 2] & 1
        pos += 4
        if bottom:
            break
    else:
        return "mpls", TOO_DEEP, pos
    if pos >= end:
        return "mpls", MALFORMED, pos
    nibble = buf[pos] >> 4
    if nibble == 4:
        return "mpls", IPV4, pos
    if nibble == 6:
        return "mpls", IPV6, pos
    if nibble == 0 and _plausible_ethernet(buf, pos + 4, end):
        return "mpls", ETHERNET, pos + 4
    if _plausible_ethernet(buf, pos, end):
        return "mpls", ETHERNET, pos
    return "mpls", UNSUPPORTED, pos


def udp_tunnels(config: Config | None = None) -> dict[int, UdpTunnel]:
    """UDP destination port -> tunnel header parser, from TUNNEL_VXLAN_PORTS and TUNNEL_GENEVE_PORTS
    (defaults 4789 and 6081 without a configuration)."""
    vxlan_raw = DEFAULT_VXLAN_PORTS if config is None else config.TUNNEL_VXLAN_PORTS
    geneve_raw = DEFAULT_GENEVE_PORTS if config is None else config.TUNNEL_GENEVE_PORTS
    ports: dict[int, UdpTunnel] = {port: vxlan for port in parse_ports("TUNNEL_VXLAN_PORTS", vxlan_raw)}
    for port in parse_ports("TUNNEL_GENEVE_PORTS", geneve_raw):
        if port in ports:
            raise ConfigError("TUNNEL_GENEVE_PORTS", geneve_raw, f"port {port} is also a VXLAN port")
        ports[port] = geneve
    return ports


def port_bytes(ports: dict[int, UdpTunnel]) -> tuple[bytes, bytes]:
    """The VXLAN and the GENEVE ports as big-endian 16-bit numbers (core/accel/_decode.c init())."""
    return (b"".join(port.to_bytes(2, "big") for port in sorted(ports) if ports[port] is vxlan),
            b"".join(port.to_bytes(2, "big") for port in sorted(ports) if ports[port] is geneve))


def probe_frames(tunnels: dict[int, UdpTunnel]) -> dict[str, bytes]:
    """One Ethernet frame per encapsulation, each carrying the same TCP SYN, for checking that a
    capture filter lets tunnelled mirrors through (`sensor.py -T`). UDP kinds use their first port."""
    def ipv4(proto: int, payload: bytes) -> bytes:
        return bytes((0x45, 0, (20 + len(payload)) >> 8, (20 + len(payload)) & 0xFF, 0, 0, 0, 0, 64, proto, 0, 0,
                      198, 18, 0, 1, 198, 18, 0, 2)) + payload

    def ether(ethertype: int, payload: bytes) -> bytes:
        return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + ethertype.to_bytes(2, "big") + payload

    def udp(port: int, payload: bytes) -> bytes:
        return ipv4(17, b"\xc0\x00" + port.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + b"\0\0"
                    + payload)

    syn = ipv4(6, b"\x9c\x40\x00\x50" + bytes(8) + b"\x50\x02\xff\xff" + bytes(4))
    frame = ether(ETH_IPV4, syn)
    probes = {
        "GRE": ether(ETH_IPV4, ipv4(47, b"\x00\x00\x08\x00" + syn)),
        "ERSPAN": ether(ETH_IPV4, ipv4(47, b"\x10\x00\x88\xbe" + bytes(4) + b"\x10\x00\x00\x01" + bytes(4) + frame)),
        "IP-in-IP": ether(ETH_IPV4, ipv4(4, syn)),
        "MPLS": ether(0x8847, b"\x00\x06\x41\x40" + syn),
    }
    for name, parser in (("VXLAN", vxlan), ("GENEVE", geneve)):
        ports = sorted(port for port, kind in tunnels.items() if kind is parser)
        if ports:
            header = b"\x08\x00\x00\x00\x00\x00\x2a\x00" if parser is vxlan else b"\x00\x00\x65\x58\x00\x00\x2a\x00"
            probes[name] = ether(ETH_IPV4, udp(ports[0], header + frame))
    return probes
