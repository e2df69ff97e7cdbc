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
    tunnel_malformed impossible or truncated tunnel header (VXLAN, GENEVE, GRE, ERSPAN, MPLS)
    tunnel_too_deep  more than MAX_TUNNEL_DEPTH nested tunnels, or an MPLS stack over its limit

Tunnels (core/decode/tunnel.py): VXLAN and GENEVE (UDP to the configured ports), GRE with IP,
Ethernet (TEB), MPLS or ERSPAN I/II/III inside, IP-in-IP (4), IPv6-in-IP (41) and MPLS label
stacks are opened and the carried packet is decoded in their place, so `Decoded` describes the
inner packet (its offsets still point into the same buffer). Each opened header counts
`decap_<kind>` (vxlan, geneve, gre, gre_teb, erspan1, erspan2, erspan3, ip_in_ip, ipv6_in_ip,
mpls); a well-formed tunnel carrying something else (PPTP's GRE version 1, a GENEVE or GRE
protocol type other than IP/Ethernet/MPLS) counts `tunnel_unsupported` and the outer packet is
returned as before (an MPLS stack with nothing recognisable under it is `not_ip`). `skipped()`
and `decapsulated()` split a counters dict into the skip reasons and the decapsulations per kind.

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

from core.decode import link, tunnel
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
MAX_TUNNEL_DEPTH = 4
IPV6_EXT_GENERIC = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options: (len + 1) * 8
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE = 4, 41, 47

# EtherType .. IPv4 destination, from frame offset 12: type, ver/IHL, total length, fragment, proto, src, dst
_ETH_IPV4 = struct.Struct(">HBxH2xHxB2x4s4s").unpack_from
_IPV4 = struct.Struct(">BxH2xHxB2x4s4s").unpack_from
_IPV6 = struct.Struct(">4xHB1x16s16s").unpack_from
_TCP = struct.Struct(">HH8xBB").unpack_from
_UDP = struct.Struct(">HHH").unpack_from
_U16 = struct.Struct(">H").unpack_from
_new = tuple.__new__  # builds Decoded without the NamedTuple __new__ call overhead
DECAP = "decap_"
NOT_SKIPS = frozenset(("linktype_offset_locked", "tunnel_unsupported"))  # counted beside a record


def skipped(counters: dict[str, int]) -> dict[str, int]:
    """The counters that each stand for a frame decoded to None (reason -> frames)."""
    return {k: v for k, v in counters.items() if k not in NOT_SKIPS and not k.startswith(DECAP)}


def decapsulated(counters: dict[str, int]) -> dict[str, int]:
    """Tunnel headers opened, per kind (vxlan, gre, mpls, ...)."""
    return {k[len(DECAP):]: v for k, v in counters.items() if k.startswith(DECAP)}


class Decoder:
    """Decodes frames of one link type. Keeps only counters (and, for unknown link types, the
    inferred IP offset); safe to reuse for every packet of a capture."""

    def __init__(self, linktype: int, udp_tunnels: dict[int, tunnel.UdpTunnel] | None = None) -> None:
        self.linktype = linktype
        self._udp_tunnels = tunnel.udp_tunnels() if udp_tunnels is None else udp_tunnels
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
                            if uend > end:
                                uend = end
                            if dport in self._udp_tunnels:
                                return self._udp_tunnel(4, src, dst, sport, dport, buf, l4 + 8, uend, 0)
                            return _new(Decoded, (4, 17, src, dst, sport, dport, 0, buf, l4 + 8, uend))
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
            if ip >= link.MPLS_AT:
                return self._carried(tunnel.mpls(buf, ip - link.MPLS_AT, end), buf, end, 0)
        else:
            ip = self._guess(buf, offset, end)
            if ip < 0:
                return None
        return self._ip_at(buf, ip, end, 0)

    def _ip_at(self, buf: bytes, ip: int, end: int, depth: int) -> Decoded | None:
        if ip >= end:
            self._count("truncated")
            return None
        version = buf[ip] >> 4
        if version == 4:
            return self._ipv4(buf, ip, end, depth)
        if version == 6:
            return self._ipv6(buf, ip, end, depth)
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

    def _ipv4(self, buf: bytes, ip: int, end: int, depth: int = 0) -> Decoded | None:
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
        return self._transport(4, proto, src, dst, buf, l4, end, depth)

    def _ipv6(self, buf: bytes, ip: int, end: int, depth: int = 0) -> Decoded | None:
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
        return self._transport(6, nh, src, dst, buf, pos, end, depth)

    def _transport(self, family: int, proto: int, src: bytes, dst: bytes, buf: bytes,
                   l4: int, end: int, depth: int = 0) -> Decoded | None:
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
            if dport in self._udp_tunnels:
                return self._udp_tunnel(family, src, dst, sport, dport, buf, l4 + 8, end, depth)
            return _new(Decoded, (family, 17, src, dst, sport, dport, 0, buf, l4 + 8, end))
        if proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            if l4 + 4 > end:
                self._count("truncated")
                return None
            return _new(Decoded, (family, proto, src, dst, 0, 0, buf[l4], buf, l4 + 4, end))
        if proto == IPPROTO_IPIP:
            return self._carried(("ip_in_ip", tunnel.IPV4, l4), buf, end, depth)
        if proto == IPPROTO_IPV6:
            return self._carried(("ipv6_in_ip", tunnel.IPV6, l4), buf, end, depth)
        if proto == IPPROTO_GRE:
            verdict = tunnel.gre(buf, l4, end)
            if verdict[1] != tunnel.UNSUPPORTED:
                return self._carried(verdict, buf, end, depth)
            self._count("tunnel_unsupported")
        return _new(Decoded, (family, proto, src, dst, 0, 0, 0, buf, l4, l4))

    # --- tunnels (core/decode/tunnel.py) ------------------------------------------------------------

    def _udp_tunnel(self, family: int, src: bytes, dst: bytes, sport: int, dport: int, buf: bytes,
                    poff: int, pend: int, depth: int) -> Decoded | None:
        verdict = self._udp_tunnels[dport](buf, poff, pend)
        if verdict[1] != tunnel.UNSUPPORTED:
            return self._carried(verdict, buf, pend, depth)
        self._count("tunnel_unsupported")
        return _new(Decoded, (family, 17, src, dst, sport, dport, 0, buf, poff, pend))

    def _carried(self, verdict: tunnel.Verdict, buf: bytes, end: int, depth: int) -> Decoded | None:
        """Decode what a tunnel header carries (`verdict` from core/decode/tunnel.py), one level deeper."""
        kind, carried, start = verdict
        if carried < 0:  # (UNSUPPORTED only comes from an MPLS stack: its callers have no outer packet)
            self._count("not_ip" if carried == tunnel.UNSUPPORTED else
                        "tunnel_too_deep" if carried == tunnel.TOO_DEEP else "tunnel_malformed")
            return None
        depth += 1
        if depth > MAX_TUNNEL_DEPTH:
            self._count("tunnel_too_deep")
            return None
        self._count(DECAP + kind)
        if carried == tunnel.ETHERNET:
            ip = link.ethernet(buf, start, end)
            if ip < 0:
                self._count(link.REASONS[ip])
                return None
            if ip >= link.MPLS_AT:
                return self._carried(tunnel.mpls(buf, ip - link.MPLS_AT, end), buf, end, depth)
            return self._ip_at(buf, ip, end, depth)
        if carried == tunnel.MPLS:
            return self._carried(tunnel.mpls(buf, start, end), buf, end, depth)
        if carried != tunnel.IP and start < end and buf[start] >> 4 != carried:
            self._count("tunnel_malformed")  # e.g. IP protocol 4 with an IPv6 header inside
            return None
        return self._ip_at(buf, start, end, depth)
