"""Test tunnel builder: wraps captured frames in VXLAN, GENEVE, GRE, ERSPAN, IP-in-IP and MPLS.

Where it sits: test-only, beside tests/pcapgen.py (whose builders it uses for the outer headers).
`wrap(kind, frame, linktype)` turns one captured frame (Ethernet or raw IP) into an Ethernet frame
carrying it between two outer hosts that appear in no trail; `wrap_pcap` does it for a capture file.
The header builders follow the RFCs / vendor formats the decoder implements (core/decode/tunnel.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from core.decode import link
from tests.kit import pcapgen as g

OUTER_A, OUTER_B = "198.18.0.1", "198.18.0.2"        # RFC 2544 benchmarking range: in no trail
OUTER6_A, OUTER6_B = "2001:db8:ffff::1", "2001:db8:ffff::2"
MID_A, MID_B = "198.18.1.1", "198.18.1.2"            # the middle level of nested tunnels


def vxlan(frame: bytes, vni: int = 42) -> bytes:
    return struct.pack("!BxxxI", 0x08, vni << 8) + frame


def geneve(payload: bytes, proto: int = 0x6558, options: bytes = b"", vni: int = 7, version: int = 0,
           opt_words: int | None = None) -> bytes:
    words = len(options) // 4 if opt_words is None else opt_words
    return struct.pack("!BBHI", (version << 6) | words, 0, proto, vni << 8) + options + payload


def gre(payload: bytes, proto: int, csum: bool = False, key: int | None = None, seq: int | None = None,
        flags: int = 0, version: int = 0) -> bytes:
    flags |= (0x80 if csum else 0) | (0x20 if key is not None else 0) | (0x10 if seq is not None else 0)
    out = struct.pack("!BBH", flags, version, proto)
    if csum:
        out += b"\x00\x00\x00\x00"
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    if csum:
        value = g.checksum(out + payload)
        out = out[:4] + struct.pack("!H", value) + out[6:]
    return out + payload


def erspan2_header(session: int = 5, vlan: int = 0, index: int = 0, version: int = 1) -> bytes:
    return struct.pack("!HHI", (version << 12) | vlan, session & 0x3FF, index & 0xFFFFF)


def erspan3_header(session: int = 5, platform: bool = False, frame_type: int = 0, version: int = 2) -> bytes:
    word2 = (frame_type << 10) | (1 if platform else 0)  # P, FT(5), HW ID(6), D, Gra(2), O
    head = struct.pack("!HHIHH", (version << 12), session & 0x3FF, 0x01020304, 0, word2)
    return head + (struct.pack("!II", 0x0A000000, 0x11223344) if platform else b"")


def mpls(payload: bytes, labels: tuple[int, ...] = (100, 200), control_word: bool = False,
         bottom: bool = True) -> bytes:
    out = b""
    for n, label in enumerate(labels):
        bos = 1 if bottom and n == len(labels) - 1 else 0
        out += struct.pack("!I", (label << 12) | (bos << 8) | 64)
    return out + (b"\x00\x00\x00\x01" if control_word else b"") + payload


def ip_of(frame: bytes, linktype: int) -> bytes | None:
    """The IP packet inside a captured frame, or None when the frame carries none."""
    if linktype != g.LINKTYPE_ETHERNET:
        return frame
    start = link.ethernet(frame, 0, len(frame))
    if start < 0 or start >= link.MPLS_AT or start >= len(frame):
        return None
    return frame[start:]


def ether_of(frame: bytes, linktype: int) -> bytes:
    """The captured frame as an Ethernet frame (raw IP gets an Ethernet header)."""
    if linktype == g.LINKTYPE_ETHERNET:
        return frame
    return g.ether(frame, ethertype=0x86DD if frame[:1] and frame[0] >> 4 == 6 else 0x0800)


def _ethertype(ip: bytes) -> int:
    return 0x86DD if ip[:1] and ip[0] >> 4 == 6 else 0x0800


def _outer(payload: bytes, proto: int) -> bytes:
    return g.ether(g.ipv4(OUTER_A, OUTER_B, payload, proto=proto))


def _udp(payload: bytes, dport: int) -> bytes:
    return g.ether(g.ipv4(OUTER_A, OUTER_B, g.udp(49152, dport, payload)))


# kind -> (carries Ethernet frames?, builder of the outer frame from the carried bytes)
KINDS: dict[str, tuple[bool, Callable[[bytes], bytes]]] = {
    "vxlan": (True, lambda f: _udp(vxlan(f), 4789)),
    "geneve": (True, lambda f: _udp(geneve(f, options=b"\x01\x02\x03\x02" + b"\xaa" * 8), 6081)),
    "geneve_ip": (False, lambda ip: _udp(geneve(ip, proto=_ethertype(ip), options=b"\x00" * 4), 6081)),
    "gre_ip": (False, lambda ip: _outer(gre(ip, _ethertype(ip), csum=True, key=9, seq=1), 47)),
    "gre_teb": (True, lambda f: _outer(gre(f, 0x6558, key=3), 47)),
    "erspan1": (True, lambda f: _outer(gre(f, 0x88BE), 47)),
    "erspan2": (True, lambda f: _outer(gre(erspan2_header() + f, 0x88BE, seq=11), 47)),
    "erspan3": (True, lambda f: _outer(gre(erspan3_header() + f, 0x22EB, seq=12), 47)),
    "erspan3_platform": (True, lambda f: _outer(gre(erspan3_header(platform=True) + f, 0x22EB, seq=13), 47)),
    "ip_in_ip": (False, lambda ip: _outer(ip, 41 if ip[0] >> 4 == 6 else 4)),
    "ip_in_ipv6": (False, lambda ip: g.ether(g.ipv6(OUTER6_A, OUTER6_B, ip, proto=41 if ip[0] >> 4 == 6 else 4))),
    "mpls_ip": (False, lambda ip: g.ether(mpls(ip), ethertype=0x8847)),
    "mpls_multicast": (False, lambda ip: g.ether(mpls(ip, labels=(300,)), ethertype=0x8848)),
    "mpls_pw_cw": (True, lambda f: g.ether(mpls(f, control_word=True), ethertype=0x8847)),
    "vlan_gre_vxlan": (True, lambda f: g.ether(g.ipv4(OUTER_A, OUTER_B, gre(
        g.ipv4(MID_A, MID_B, g.udp(40000, 4789, vxlan(f))), 0x0800), proto=47), vlans=[(0x8100, 12)])),
    "gre_mpls_geneve": (False, lambda ip: _outer(gre(mpls(g.ipv4(MID_A, MID_B, g.udp(
        40000, 6081, geneve(ip, proto=_ethertype(ip))))), 0x8847), 47)),
}


def wrap(kind: str, frame: bytes, linktype: int) -> bytes:
    """`frame` (as captured on `linktype`) inside the encapsulation `kind`, as an Ethernet frame.
    Frames without an IP packet stay as they are for the kinds that carry IP."""
    carries_ethernet, build = KINDS[kind]
    if carries_ethernet:
        return build(ether_of(frame, linktype))
    ip = ip_of(frame, linktype)
    if not ip:
        return ether_of(frame, linktype)
    return build(ip)


def wrap_pcap(kind: str, source: str, target: str) -> str:
    linktype, packets = g.read_pcap(source)
    return g.write_pcap(target, [(ts, wrap(kind, frame, linktype)) for ts, frame in packets])
