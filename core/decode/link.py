"""Link layers: where the IP header starts inside a captured frame, for every supported link type.

Where it sits: the first step of decode. `core/decode/packet.py` looks up the function for the
capture's link type once (`LINK_PARSERS[linktype]`) and calls it per packet with the frame's start
and captured end inside the batch buffer. Each function returns the absolute offset of the IP
header, or one of the negative reason codes below (the decoder turns them into counters).

Supported (pcap DLT/LINKTYPE numbers): 0 NULL and 18 (4-byte host-order family), 108 LOOP (network
order; both byte orders accepted for all three), 1 EN10MB (Ethernet II and 802.3 LLC/SNAP), 6 IEEE802
(22), 7 ARCNET (6), 8 SLIP (16), 9 PPP (with or without the ff03 HDLC address/control), 10 FDDI (21),
117 PFLOG (header length from its first byte, word aligned; 48 when implausible), 12/14/101 RAW,
228 IPV4, 229 IPV6, 113 LINUX_SLL, 276 LINUX_SLL2. Ethernet-like links (EN10MB, SLL, SLL2) walk
802.1Q/802.1ad/QinQ tags (0x8100, 0x88a8, 0x9100) up to MAX_VLAN_DEPTH and PPPoE sessions (0x8864).
An MPLS EtherType (0x8847 unicast, 0x8848 multicast) ends the walk: the offset of the label stack
is returned with MPLS_AT added, and the decoder walks the stack (core/decode/tunnel.py).
Link types not in the table are handled by `core/decode/guess.py`.
"""

from __future__ import annotations

from collections.abc import Callable

TRUNCATED = -1
NOT_IP = -2
VLAN_TOO_DEEP = -3
BAD_LINK = -4

REASONS = {TRUNCATED: "truncated", NOT_IP: "not_ip", VLAN_TOO_DEEP: "vlan_too_deep", BAD_LINK: "bad_link_header"}

MAX_VLAN_DEPTH = 4
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_PPPOE_SESSION = 0x8864
ETH_MPLS_UNICAST, ETH_MPLS_MULTICAST = 0x8847, 0x8848
MPLS_AT = 1 << 48  # added to the offset of an MPLS label stack (offsets are far below it)
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
# address families seen in NULL/LOOP headers: AF_INET, and AF_INET6 on Linux/FreeBSD/NetBSD+OpenBSD/macOS
IP_FAMILIES = frozenset((2, 10, 24, 28, 30))

LinkParser = Callable[[bytes, int, int], int]


def after_ethertype(buf: bytes, ethertype: int, pos: int, end: int) -> int:
    """IP offset for a payload of type `ethertype` starting at `pos`, walking VLAN tags, PPPoE and
    one LLC/SNAP header (802.3 length field); MPLS_AT + offset for an MPLS label stack."""
    depth = 0
    snap = False
    while ethertype != ETH_IPV4 and ethertype != ETH_IPV6:
        if ethertype in VLAN_TPIDS:
            depth += 1
            if depth > MAX_VLAN_DEPTH:
                return VLAN_TOO_DEEP
            if pos + 4 > end:
                return TRUNCATED
            ethertype = (buf[pos + 2] << 8) | buf[pos + 3]
            pos += 4
        elif ethertype == ETH_PPPOE_SESSION:
            if pos + 8 > end:
                return TRUNCATED
            if buf[pos] != 0x11 or buf[pos + 1] != 0:
                return BAD_LINK
            proto = (buf[pos + 6] << 8) | buf[pos + 7]
            if proto == PPP_IPV4 or proto == PPP_IPV6:
                return pos + 8
            return NOT_IP
        elif ethertype <= 1500 and not snap:
            if pos + 8 > end:
                return TRUNCATED
            if buf[pos] != 0xAA or buf[pos + 1] != 0xAA or buf[pos + 2] != 0x03:
                return NOT_IP
            ethertype = (buf[pos + 6] << 8) | buf[pos + 7]
            pos += 8
            snap = True
        elif ethertype == ETH_MPLS_UNICAST or ethertype == ETH_MPLS_MULTICAST:
            return MPLS_AT + pos
        else:
            return NOT_IP
    return pos


def ethernet(buf: bytes, off: int, end: int) -> int:
    if off + 14 > end:
        return TRUNCATED
    return after_ethertype(buf, (buf[off + 12] << 8) | buf[off + 13], off + 14, end)


def linux_sll(buf: bytes, off: int, end: int) -> int:
    if off + 16 > end:
        return TRUNCATED
    return after_ethertype(buf, (buf[off + 14] << 8) | buf[off + 15], off + 16, end)


def linux_sll2(buf: bytes, off: int, end: int) -> int:
    if off + 20 > end:
        return TRUNCATED
    return after_ethertype(buf, (buf[off] << 8) | buf[off + 1], off + 20, end)


def bsd_null(buf: bytes, off: int, end: int) -> int:
    """NULL / LOOP / 18: a 4-byte address family, in either byte order."""
    if off + 4 > end:
        return TRUNCATED
    family = buf[off] | (buf[off + 1] << 8) | (buf[off + 2] << 16) | (buf[off + 3] << 24)
    if family > 0xFFFF:
        family = buf[off + 3] | (buf[off + 2] << 8)
    if family in IP_FAMILIES:
        return off + 4
    return NOT_IP


def ppp(buf: bytes, off: int, end: int) -> int:
    if off + 2 > end:
        return TRUNCATED
    if buf[off] == 0xFF and buf[off + 1] == 0x03:
        off += 2
        if off + 2 > end:
            return TRUNCATED
    proto = (buf[off] << 8) | buf[off + 1]
    if proto == PPP_IPV4 or proto == PPP_IPV6:
        return off + 2
    return NOT_IP


def pflog(buf: bytes, off: int, end: int) -> int:
    if off + 1 > end:
        return TRUNCATED
    hdrlen = (buf[off] + 3) & ~3
    return off + (hdrlen if 44 <= hdrlen <= 128 else 48)


def fixed(header_len: int) -> LinkParser:
    """A link with a fixed-size header; the IP version nibble decides the family."""
    def parse(buf: bytes, off: int, end: int) -> int:
        return off + header_len
    parse.__name__ = f"fixed_{header_len}"
    return parse


LINK_PARSERS: dict[int, LinkParser] = {
    0: bsd_null,
    1: ethernet,
    6: fixed(22),
    7: fixed(6),
    8: fixed(16),
    9: ppp,
    10: fixed(21),
    12: fixed(0),
    14: fixed(0),
    18: bsd_null,
    101: fixed(0),
    108: bsd_null,
    113: linux_sll,
    117: pflog,
    228: fixed(0),
    229: fixed(0),
    276: linux_sll2,
}

LINK_NAMES = {
    0: "NULL", 1: "EN10MB", 6: "IEEE802", 7: "ARCNET", 8: "SLIP", 9: "PPP", 10: "FDDI", 12: "RAW",
    14: "RAW", 18: "DLT18", 101: "RAW", 108: "LOOP", 113: "LINUX_SLL", 117: "PFLOG", 228: "IPV4",
    229: "IPV6", 276: "LINUX_SLL2",
}
