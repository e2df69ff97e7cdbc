"""Packet decoding: link layer -> IPv4/IPv6 (options, extension headers) -> TCP/UDP/ICMP/ICMPv6.

Where it sits: between capture and protocols. The pipeline builds one `Decoder(linktype)` per link
type and calls `decode(buf, offset, length)` for every frame of a batch (`buf` is the batch buffer
from pcapy-ng `next_batch`, the frame is `buf[offset:offset+length]`; nothing past offset+length
is ever read and the frame is never copied). The result is a `Decoded` tuple whose L4 payload is
`buf[poff:pend]`, or None for frames that cannot produce a detection; the reason is counted in
`decoder.counters` (never raised, never printed per packet):

    truncated        the frame ends inside a header
    bad_header       impossible header values (IHL < 5, total length < IHL, TCP offset < 5, ...)
    not_ip           ARP, LLDP, other EtherTypes / PPP protocols / address families
    fragment         a non-first IPv4/IPv6 fragment (first fragments are decoded)
    vlan_too_deep    more than link.MAX_VLAN_DEPTH stacked VLAN tags
    bad_link_header  malformed link header (e.g. PPPoE version)
    ext_too_deep     more than MAX_IPV6_EXT IPv6 extension headers
    offset_unknown   unknown link type, IP offset not locked yet (see guess.py)
    unsupported_linktype  unknown link type and no plausible IP header in the frame
    linktype_offset_locked  (set to 1) the IP offset of an unknown link type was inferred

Payload rules: TCP payload after the data offset (clipped to the captured end when only options
are cut); UDP payload bounded by the UDP length; ICMP/ICMPv6 `flags` is the type and the payload is
what follows type/code/checksum; any other IP protocol gives ports 0 and an empty payload. IPv4
payload ends at min(total length, captured end); IPv6 at min(40 + payload length, captured end).

Speed: Ethernet + IPv4 (IHL 5, not a later fragment) + TCP/UDP takes a fast path of two
`unpack_from` calls, and Ethernet + IPv6 without extension headers a short one; everything else
goes through the general path below them (bench/bench_decode.py prints ns/packet per frame kind).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from core.decode import link
from core.decode.guess import OffsetGuesser


class Decoded(NamedTuple):
    family: int
    proto: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    flags: int
    buf: bytes
    poff: int
    pend: int

    @property
    def payload(self) -> bytes:
        """The L4 payload as bytes (a copy; hot paths should slice buf[poff:pend] only when needed)."""
        return self.buf[self.poff:self.pend]


MAX_IPV6_EXT = 8
IPV6_EXT_GENERIC = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options: (len + 1) * 8
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58

# EtherType .. IPv4 destination, from frame offset 12: type, ver/IHL, total length, fragment, proto, src, dst
_ETH_IPV4 = struct.Struct(">HBxH2xHxB2x4s4s").unpack_from
_IPV4 = struct.Struct(">BxH2xHxB2x4s4s").unpack_from
_IPV6 = struct.Struct(">4xHB1x16s16s").unpack_from
_TCP = struct.Struct(">HH8xBB").unpack_from
_UDP = struct.Struct(">HHH").unpack_from
_U16 = struct.Struct(">H").unpack_from
_new = tuple.__new__  # builds Decoded without the NamedTuple __new__ call overhead


class Decoder:
    """Decodes frames of one link type. Keeps only counters (and, for unknown link types, the
    inferred IP offset); safe to reuse for every packet of a capture."""

    def __init__(self, linktype: int) -> None:
        self.linktype = linktype
        self.counters: dict[str, int] = {}
        self._ethernet = linktype == 1
        self._link = link.LINK_PARSERS.get(linktype)
        self._guesser = OffsetGuesser() if self._link is None else None

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1

    def decode(self, buf: bytes, offset: int, length: int) -> Decoded | None:
        """Decode the frame buf[offset:offset+length]; None (counted) when it yields nothing to match."""
        if self._ethernet and length >= 34:
            et, vihl, tl, frag, proto, src, dst = _ETH_IPV4(buf, offset + 12)
            if et == 0x0800 and vihl == 0x45 and not frag & 0x1FFF:
                end = offset + length
                ip_end = offset + 14 + tl
                if ip_end < end:
                    end = ip_end
                l4 = offset + 34
                if proto == 6:
                    if l4 + 20 <= end:
                        sport, dport, doff, flags = _TCP(buf, l4)
                        poff = l4 + ((doff >> 4) << 2)
                        if doff >= 0x50 and poff <= end:
                            return _new(Decoded, (4, 6, src, dst, sport, dport, flags, buf, poff, end))
                elif proto == 17:
                    if l4 + 8 <= end:
                        sport, dport, ulen = _UDP(buf, l4)
                        if ulen >= 8:
                            uend = l4 + ulen
                            return _new(Decoded, (4, 17, src, dst, sport, dport, 0, buf, l4 + 8,
                                                  uend if uend < end else end))
            elif et == 0x86DD and length >= 54 and buf[offset + 14] >> 4 == 6:
                plen, nh, src, dst = _IPV6(buf, offset + 14)
                if nh == 6 or nh == 17:  # no extension headers
                    end = offset + length
                    if plen and offset + 54 + plen < end:
                        end = offset + 54 + plen
                    return self._transport(6, nh, src, dst, buf, offset + 54, end)
        return self._decode_general(buf, offset, offset + length)

    # --- general path ---------------------------------------------------------------------------

    def _decode_general(self, buf: bytes, offset: int, end: int) -> Decoded | None:
        if self._link is not None:
            ip = self._link(buf, offset, end)
            if ip < 0:
                self._count(link.REASONS[ip])
                return None
        else:
            ip = self._guess(buf, offset, end)
            if ip < 0:
                return None
        if ip >= end:
            self._count("truncated")
            return None
        version = buf[ip] >> 4
        if version == 4:
            return self._ipv4(buf, ip, end)
        if version == 6:
            return self._ipv6(buf, ip, end)
        self._count("not_ip")
        return None

    def _guess(self, buf: bytes, offset: int, end: int) -> int:
        guesser = self._guesser
        assert guesser is not None
        was_locked = guesser.locked is not None
        rel = guesser.feed(buf, offset, end)
        if rel < 0:
            self._count("offset_unknown")
            return -1
        if not was_locked:
            self.counters["linktype_offset_locked"] = 1
        return offset + rel

    def _ipv4(self, buf: bytes, ip: int, end: int) -> Decoded | None:
        if ip + 20 > end:
            self._count("truncated")
            return None
        vihl, tl, frag, proto, src, dst = _IPV4(buf, ip)
        ihl = (vihl & 15) << 2
        if ihl < 20 or tl < ihl:
            self._count("bad_header")
            return None
        if frag & 0x1FFF:
            self._count("fragment")
            return None
        if ip + tl < end:
            end = ip + tl
        l4 = ip + ihl
        if l4 > end:
            self._count("truncated")
            return None
        return self._transport(4, proto, src, dst, buf, l4, end)

    def _ipv6(self, buf: bytes, ip: int, end: int) -> Decoded | None:
        if ip + 40 > end:
            self._count("truncated")
            return None
        plen, nh, src, dst = _IPV6(buf, ip)
        if plen and ip + 40 + plen < end:
            end = ip + 40 + plen
        pos = ip + 40
        walked = 0
        while nh in IPV6_EXT_GENERIC or nh == 44 or nh == 51:
            walked += 1
            if walked > MAX_IPV6_EXT:
                self._count("ext_too_deep")
                return None
            if pos + 8 > end:  # every extension header is at least 8 bytes
                self._count("truncated")
                return None
            if nh == 44:
                if _U16(buf, pos + 2)[0] & 0xFFF8:
                    self._count("fragment")
                    return None
                nh = buf[pos]
                pos += 8
            elif nh == 51:
                nh, size = buf[pos], (buf[pos + 1] + 2) << 2
                pos += size
            else:
                nh, size = buf[pos], (buf[pos + 1] + 1) << 3
                pos += size
        if pos > end:
            self._count("truncated")
            return None
        return self._transport(6, nh, src, dst, buf, pos, end)

    def _transport(self, family: int, proto: int, src: bytes, dst: bytes, buf: bytes,
                   l4: int, end: int) -> Decoded | None:
        if proto == IPPROTO_TCP:
            if l4 + 20 > end:
                self._count("truncated")
                return None
            sport, dport, doff, flags = _TCP(buf, l4)
            if doff < 0x50:
                self._count("bad_header")
                return None
            poff = l4 + ((doff >> 4) << 2)
            return _new(Decoded, (family, 6, src, dst, sport, dport, flags, buf,
                                  poff if poff < end else end, end))
        if proto == IPPROTO_UDP:
            if l4 + 8 > end:
                self._count("truncated")
                return None
            sport, dport, ulen = _UDP(buf, l4)
            if ulen:  # 0 = IPv6 jumbogram: the IP length bounds the payload
                if ulen < 8:
                    self._count("bad_header")
                    return None
                if l4 + ulen < end:
                    end = l4 + ulen
            return _new(Decoded, (family, 17, src, dst, sport, dport, 0, buf, l4 + 8, end))
        if proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            if l4 + 4 > end:
                self._count("truncated")
                return None
            return _new(Decoded, (family, proto, src, dst, 0, 0, buf[l4], buf, l4 + 4, end))
        return _new(Decoded, (family, proto, src, dst, 0, 0, 0, buf, l4, l4))
