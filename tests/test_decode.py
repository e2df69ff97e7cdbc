"""Decoder tests: every link type, VLAN/QinQ, PPPoE, IPv4 options and fragments, IPv6 extension
headers, transport layers, truncation at every byte, and the conformance corpus against dpkt."""

from __future__ import annotations

import json
import os
import socket

import dpkt
import pcapy
import pytest

from core.decode import Decoded, Decoder
from core.decode.link import MAX_VLAN_DEPTH
from tests.kit import pcapgen as g

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")
JUNK = b"\x45\x00\xff\xff" * 16  # IP-looking bytes: reading past the frame would be noticed

HTTP = g.http_request("GET", "/index.php?id=1", {"User-Agent": "test"})
V4_TCP = g.ipv4("10.1.2.3", "93.184.216.34", g.tcp(40001, 80, g.PSH | g.ACK, HTTP))
V4_UDP = g.ipv4("10.1.2.3", "8.8.8.8", g.udp(53001, 53, g.dns_query("example.com")))
V6_TCP = g.ipv6("2001:db8::1", "2001:db8::2", g.tcp(40002, 443, g.SYN, b"hello"))
V6_UDP = g.ipv6("2001:db8::1", "2001:db8::53", g.udp(5353, 53, g.dns_query("example.org", "AAAA")))


def ip(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def decode(linktype: int, frame: bytes) -> tuple[Decoded | None, Decoder]:
    """Decode `frame` placed inside a larger buffer (junk before and after), as in a batch."""
    decoder = Decoder(linktype)
    buf = JUNK[:7] + frame + JUNK
    return decoder.decode(buf, 7, len(frame)), decoder


def payload(d: Decoded) -> bytes:
    return d.buf[d.poff:d.pend]


def check_v4_tcp(d: Decoded | None) -> None:
    assert d is not None
    assert (d.family, d.proto, d.src, d.dst) == (4, 6, ip("10.1.2.3"), ip("93.184.216.34"))
    assert (d.sport, d.dport, d.flags) == (40001, 80, g.PSH | g.ACK)
    assert payload(d) == HTTP


def check_v6_udp(d: Decoded | None) -> None:
    assert d is not None
    assert (d.family, d.proto, d.src, d.dst) == (6, 17, ip("2001:db8::1"), ip("2001:db8::53"))
    assert (d.sport, d.dport, d.flags) == (5353, 53, 0)
    assert payload(d) == g.dns_query("example.org", "AAAA")


# --- link types ----------------------------------------------------------------------------------

FRAMINGS = [
    (0, g.null), (0, lambda p: g.null(p, byteorder="big")), (18, g.null), (108, g.loop),
    (1, g.ether), (1, g.ether_8023_snap), (6, g.ieee802), (7, g.arcnet), (8, g.slip),
    (9, g.ppp), (9, lambda p: g.ppp(p, hdlc=False)), (10, g.fddi), (117, g.pflog),
    (117, lambda p: b"\x00" * 48 + p), (12, g.raw), (14, g.raw), (101, g.raw),
    (113, g.sll), (276, g.sll2),
]


@pytest.mark.parametrize("linktype,frame", FRAMINGS)
def test_link_types_ipv4_and_ipv6(linktype, frame):
    d, decoder = decode(linktype, frame(V4_TCP))
    check_v4_tcp(d)
    d, decoder = decode(linktype, frame(V6_UDP))
    check_v6_udp(d)
    assert decoder.counters == {}


def test_raw_ipv4_and_ipv6_link_types():
    check_v4_tcp(decode(228, V4_TCP)[0])
    check_v6_udp(decode(229, V6_UDP)[0])


@pytest.mark.parametrize("linktype,frame", [
    (0, g.null(V4_TCP, family=17)),                     # AF_NETBIOS-ish, not IP
    (108, g.loop(V4_TCP, family=7)),
    (9, g.ppp(V4_TCP, proto=0xC021)),                    # LCP
    (9, g.ppp(V4_TCP, proto=0x8021, hdlc=False)),        # IPCP
    (1, g.ether(b"\x00\x01\x08\x00\x06\x04" + b"\x00" * 22, ethertype=0x0806)),  # ARP
    (1, g.ether(V4_TCP, ethertype=0x88CC)),               # LLDP
    (1, g.ether_8023_snap(V4_TCP)[:14] + b"\x42\x42\x03" + V4_TCP),  # 802.3 with STP LLC
    (113, g.sll(V4_TCP, proto=0x0806)),
    (276, g.sll2(V4_TCP, proto=0x0004)),
    (101, b"\x50" + V4_TCP[1:]),                          # IP version 5
    (6, g.ieee802(b"\x00" * 40)),
])
def test_link_types_not_ip(linktype, frame):
    d, decoder = decode(linktype, frame)
    assert d is None
    assert decoder.counters == {"not_ip": 1}


@pytest.mark.parametrize("linktype", [0, 1, 9, 108, 113, 276, 117])
def test_link_header_truncated(linktype):
    d, decoder = decode(linktype, b"\xff")
    assert d is None
    assert sum(decoder.counters.values()) == 1
    assert set(decoder.counters) <= {"truncated", "not_ip"}


# --- VLAN, QinQ, PPPoE ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", range(1, MAX_VLAN_DEPTH + 1))
@pytest.mark.parametrize("tpid", [0x8100, 0x88A8, 0x9100])
def test_vlan_depths(depth, tpid):
    vlans = [(tpid, 100 + i) for i in range(depth)]
    check_v4_tcp(decode(1, g.ether(V4_TCP, vlans=vlans))[0])
    check_v6_udp(decode(1, g.ether(V6_UDP, vlans=vlans))[0])


def test_qinq_mixed_tpids_and_sll_vlan():
    check_v4_tcp(decode(1, g.ether(V4_TCP, vlans=[(0x88A8, 1), (0x8100, 2)]))[0])
    check_v4_tcp(decode(1, g.ether(V4_TCP, vlans=[(0x9100, 1), (0x88A8, 2), (0x8100, 3)]))[0])
    check_v4_tcp(decode(113, g.sll(b"\x00\x05\x08\x00" + V4_TCP, proto=0x8100))[0])


def test_vlan_depth_five_refused():
    d, decoder = decode(1, g.ether(V4_TCP, vlans=[(0x8100, i) for i in range(MAX_VLAN_DEPTH + 1)]))
    assert d is None
    assert decoder.counters == {"vlan_too_deep": 1}


def test_pppoe_ipv4_ipv6_and_in_vlan():
    check_v4_tcp(decode(1, g.ether(g.pppoe(V4_TCP), ethertype=0x8864))[0])
    check_v6_udp(decode(1, g.ether(g.pppoe(V6_UDP), ethertype=0x8864))[0])
    check_v4_tcp(decode(1, g.ether(g.pppoe(V4_TCP), ethertype=0x8864, vlans=[(0x8100, 7)]))[0])


def test_pppoe_negative():
    d, decoder = decode(1, g.ether(g.pppoe(V4_TCP, ppp_proto=0xC021), ethertype=0x8864))
    assert d is None and decoder.counters == {"not_ip": 1}
    bad_version = bytearray(g.ether(g.pppoe(V4_TCP), ethertype=0x8864))
    bad_version[14] = 0x21
    d, decoder = decode(1, bytes(bad_version))
    assert d is None and decoder.counters == {"bad_link_header": 1}
    d, decoder = decode(1, g.ether(b"\x11\x00\x00", ethertype=0x8864))
    assert d is None and decoder.counters == {"truncated": 1}
    d, decoder = decode(1, g.ether(g.pppoe(V4_TCP), ethertype=0x8863))  # discovery stage
    assert d is None and decoder.counters == {"not_ip": 1}


BOTH_PATHS = pytest.mark.parametrize("linktype,frame", [(1, g.ether), (113, g.sll)], ids=["fast", "general"])


# --- IPv4 ------------------------------------------------------------------------------------------

@BOTH_PATHS
def test_ipv4_options_honoured(linktype, frame):
    options = b"\x07\x0b\x04" + b"\x0a\x00\x00\x09" * 2  # record route
    pkt = g.ipv4("10.1.2.3", "93.184.216.34", g.tcp(40001, 80, g.PSH | g.ACK, HTTP), options=options)
    check_v4_tcp(decode(linktype, frame(pkt))[0])
    pkt = g.ipv4("10.1.2.3", "93.184.216.34", g.tcp(40001, 80, g.PSH | g.ACK, HTTP), options=b"\x01" * 40)
    check_v4_tcp(decode(linktype, frame(pkt))[0])


@BOTH_PATHS
@pytest.mark.parametrize("kwargs,reason", [
    ({"ihl": 4}, "bad_header"),
    ({"ihl": 0}, "bad_header"),
    ({"total_length": 19}, "bad_header"),
    ({"options": b"\x01" * 8, "total_length": 24}, "bad_header"),
    ({"ihl": 15, "total_length": 100}, "truncated"),  # 60-byte header claimed, only 40 bytes captured
])
def test_ipv4_bad_headers(kwargs, reason, linktype, frame):
    pkt = g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(), **kwargs)
    d, decoder = decode(linktype, frame(pkt))
    assert d is None
    assert decoder.counters == {reason: 1}


@BOTH_PATHS
def test_ipv4_total_length_bounds_payload(linktype, frame):
    padded = frame(g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(1, 2, g.ACK))) + b"\x00" * 6  # Ethernet padding
    d, _ = decode(linktype, padded)
    assert d is not None and payload(d) == b""
    longer = g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(1, 2, g.ACK, b"abcdef"), total_length=1500)
    d, _ = decode(linktype, frame(longer))  # claims more than captured: captured end wins
    assert d is not None and payload(d) == b"abcdef"


@BOTH_PATHS
def test_ipv4_fragments_first_decoded_later_skipped(linktype, frame):
    first = g.ipv4("10.1.2.3", "93.184.216.34", g.tcp(40001, 80, g.PSH | g.ACK, HTTP), mf=True)
    check_v4_tcp(decode(linktype, frame(first))[0])
    for offset, mf in ((8, True), (1480, False), (8184 * 8, False)):
        later = g.ipv4("10.1.2.3", "93.184.216.34", b"continued data", proto=6, frag_offset=offset, mf=mf)
        d, decoder = decode(linktype, frame(later))
        assert d is None and decoder.counters == {"fragment": 1}
    dont = g.ipv4("10.1.2.3", "93.184.216.34", g.tcp(40001, 80, g.PSH | g.ACK, HTTP), df=True)
    check_v4_tcp(decode(linktype, frame(dont))[0])


# --- IPv6 ------------------------------------------------------------------------------------------

EXTS = {
    "hop_by_hop": g.hop_by_hop(), "routing": g.routing(["2001:db8::7", "2001:db8::8"]),
    "fragment_first": g.fragment(0, more=True), "dest_opts": g.dest_opts(b"\x01" * 14),
    "auth": g.auth_header(),
}


@BOTH_PATHS
@pytest.mark.parametrize("name", list(EXTS))
def test_ipv6_each_extension_header(name, linktype, frame):
    check_v6_udp(decode(linktype, frame(g.ipv6("2001:db8::1", "2001:db8::53", g.udp(5353, 53, g.dns_query(
        "example.org", "AAAA")), ext=[EXTS[name]])))[0])


@BOTH_PATHS
def test_ipv6_extension_chain_and_icmpv6(linktype, frame):
    chain = [g.hop_by_hop(), g.dest_opts(), g.routing(), g.fragment(0, more=True), g.auth_header(), g.dest_opts()]
    d, _ = decode(linktype, frame(g.ipv6("2001:db8::1", "2001:db8::2", g.icmpv6(128, payload=b"xyz"), ext=chain)))
    assert d is not None and (d.family, d.proto, d.flags, d.sport, d.dport) == (6, 58, 128, 0, 0)
    assert payload(d) == b"\x00\x01\x00\x01xyz"


@BOTH_PATHS
def test_ipv6_non_first_fragment_skipped(linktype, frame):
    pkt = g.ipv6("2001:db8::1", "2001:db8::2", b"rest of datagram", proto=17, ext=[g.fragment(1448)])
    d, decoder = decode(linktype, frame(pkt))
    assert d is None and decoder.counters == {"fragment": 1}


@BOTH_PATHS
def test_ipv6_extension_walk_bounded(linktype, frame):
    pkt = g.ipv6("2001:db8::1", "2001:db8::2", g.udp(1, 2, b"x"), ext=[g.dest_opts()] * 9)
    d, decoder = decode(linktype, frame(pkt))
    assert d is None and decoder.counters == {"ext_too_deep": 1}
    pkt = g.ipv6("2001:db8::1", "2001:db8::2", g.udp(1, 2, b"x"), ext=[g.dest_opts()] * 8)
    assert decode(linktype, frame(pkt))[0] is not None


@BOTH_PATHS
def test_ipv6_extension_header_past_end(linktype, frame):
    pkt = bytearray(g.ipv6("2001:db8::1", "2001:db8::2", g.udp(1, 2, b"x"), ext=[g.hop_by_hop()]))
    pkt[41] = 200  # hop-by-hop length far beyond the packet
    d, decoder = decode(linktype, frame(bytes(pkt)))
    assert d is None and decoder.counters == {"truncated": 1}


@BOTH_PATHS
def test_ipv6_no_next_header_and_payload_length(linktype, frame):
    d, _ = decode(linktype, frame(g.ipv6("2001:db8::1", "2001:db8::2", b"", proto=59)))
    assert d is not None and (d.proto, d.sport, d.dport, payload(d)) == (59, 0, 0, b"")
    short = g.ipv6("2001:db8::1", "2001:db8::2", g.udp(7, 9, b"abcdef"), payload_length=10)
    d, _ = decode(linktype, frame(short))
    assert d is not None and payload(d) == b"ab"  # payload length bounds the packet


# --- transport ---------------------------------------------------------------------------------------

@BOTH_PATHS
def test_tcp_options_and_data_offset(linktype, frame):
    seg = g.tcp(1234, 8080, g.SYN | g.ACK, b"data!", options=b"\x02\x04\x05\xb4\x01\x03\x03\x07")
    d, _ = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", seg)))
    assert d is not None and (d.sport, d.dport, d.flags, payload(d)) == (1234, 8080, 0x12, b"data!")
    d, decoder = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(data_offset=4))))
    assert d is None and decoder.counters == {"bad_header": 1}
    cut = frame(g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(5, 6, g.SYN, data_offset=15)))  # options missing
    d, _ = decode(linktype, cut)
    assert d is not None and (d.sport, d.dport, d.flags, payload(d)) == (5, 6, g.SYN, b"")


@BOTH_PATHS
def test_udp_length_bounds_payload(linktype, frame):
    d, _ = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"abcdef", length=11))))
    assert d is not None and payload(d) == b"abc"
    d, decoder = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"abcdef", length=7))))
    assert d is None and decoder.counters == {"bad_header": 1}
    d, _ = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"abc", length=900))))
    assert d is not None and payload(d) == b"abc"


@BOTH_PATHS
def test_icmp_types_and_other_protocols(linktype, frame):
    d, _ = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.icmp(8, payload=b"ping"))))
    assert d is not None and (d.proto, d.flags, d.sport, d.dport) == (1, 8, 0, 0)
    d, _ = decode(linktype, frame(g.ipv4("10.0.0.1", "10.0.0.2", g.icmp(0))))
    assert d is not None and d.flags == 0
    d, _ = decode(linktype, frame(g.ipv6("2001:db8::1", "2001:db8::2", g.icmpv6(129))))
    assert d is not None and (d.proto, d.flags) == (58, 129)
    esp = g.ipv4("10.0.0.1", "198.51.100.66", b"\x00\x00\x10\x01" + b"x" * 20, proto=50)
    d, _ = decode(linktype, frame(esp))
    assert d is not None and (d.proto, d.dst, d.sport, d.dport, payload(d)) == (50, ip("198.51.100.66"), 0, 0, b"")
    # PPTP's enhanced GRE (version 1, PPP inside) is no tunnel the decoder opens: the outer packet
    pptp = g.ipv4("10.0.0.1", "198.51.100.66", b"\x30\x01\x88\x0b\x00\x10\x00\x01" + b"x" * 20, proto=47)
    d, decoder = decode(linktype, frame(pptp))
    assert d is not None and (d.proto, d.dst, d.sport, d.dport, payload(d)) == (47, ip("198.51.100.66"), 0, 0, b"")
    assert decoder.counters == {"tunnel_unsupported": 1}


# --- truncation and buffer discipline -----------------------------------------------------------------

TRUNCATION_SAMPLES = [
    (1, g.ether(V4_TCP)),
    (1, g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 53, g.dns_query("a.example")), options=b"\x01" * 4),
                vlans=[(0x88A8, 1), (0x8100, 2)])),
    (1, g.ether(g.pppoe(V6_TCP), ethertype=0x8864)),
    (1, g.ether(g.ipv6("2001:db8::1", "2001:db8::2", g.udp(1, 2, b"payload"),
                       ext=[g.hop_by_hop(), g.routing(), g.fragment(0, True), g.auth_header()]))),
    (276, g.sll2(V4_UDP)),
    (9, g.ppp(g.ipv4("10.0.0.1", "10.0.0.2", g.icmp()))),
    (0, g.null(V6_UDP)),
]


@pytest.mark.parametrize("linktype,frame", TRUNCATION_SAMPLES)
def test_truncated_at_every_byte(linktype, frame):
    full = Decoder(linktype).decode(frame, 0, len(frame))
    assert full is not None
    records = 0
    for cut in range(len(frame) + 1):
        decoder = Decoder(linktype)
        # the frame prefix followed by the rest of the real frame: nothing after `cut` may be used
        d = decoder.decode(b"JUNK" + frame + JUNK, 4, cut)
        alone = Decoder(linktype).decode(frame[:cut], 0, cut)
        if d is None:
            assert alone is None
            assert sum(decoder.counters.values()) == 1
            continue
        records += 1
        assert alone is not None
        assert d[:7] == full[:7] == alone[:7]  # same addresses, ports and flags
        assert payload(d) == payload(alone)
        assert full.buf[full.poff:full.pend].startswith(payload(d))
        assert d.pend <= 4 + cut
    assert records >= 1


# --- unknown link types --------------------------------------------------------------------------------

def test_unknown_linktype_offset_inferred_and_locked():
    header = b"\x99" * 10  # a made-up 10-byte link header (LINKTYPE_USER0 = 147)
    decoder = Decoder(147)
    frames = [header + V4_TCP, header + V4_UDP, header + V6_UDP, header + V4_TCP]
    results = [decoder.decode(f, 0, len(f)) for f in frames]
    assert results[0] is None  # one packet is not enough to lock
    assert decoder.counters == {"offset_unknown": 1, "linktype_offset_locked": 1}
    assert results[1] is not None and results[1].dport == 53
    check_v6_udp(results[2])
    check_v4_tcp(results[3])


def test_unknown_linktype_garbage_never_locks():
    decoder = Decoder(147)
    frames = g.random_frames(300, seed=5)
    assert all(decoder.decode(f, 0, len(f)) is None for f in frames)
    assert decoder.counters == {"offset_unknown": 300}


# --- conformance corpus: every frame against dpkt as an independent decoder ----------------------------

def corpus_cases():
    with open(os.path.join(CORPUS, "manifest.json")) as fh:
        return [case["pcap"] for case in json.load(fh)]


@pytest.mark.parametrize("name", corpus_cases())
def test_conformance_corpus_against_dpkt(name):
    reader = pcapy.open_offline(os.path.join(CORPUS, name))
    decoder = Decoder(reader.datalink())
    compared = 0
    while True:
        header, frame = reader.next()
        if header is None:
            break
        d = decoder.decode(frame, 0, len(frame))
        if reader.datalink() != 1:
            continue
        eth = dpkt.ethernet.Ethernet(frame)
        pkt = eth.data
        if not isinstance(pkt, (dpkt.ip.IP, dpkt.ip6.IP6)):
            assert d is None
            continue
        if isinstance(pkt, dpkt.ip.IP) and pkt.offset:
            assert d is None
            continue
        if d is None:
            continue  # malformed on purpose (dpkt is lenient); the fuzz and unit tests cover these
        assert (d.src, d.dst) == (pkt.src, pkt.dst)
        l4 = pkt.data
        if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            assert (d.sport, d.dport) == (l4.sport, l4.dport)
            assert bytes(l4.data).startswith(payload(d))
            compared += 1
    if name == "fragments.pcap":
        assert decoder.counters.get("fragment", 0) >= 1
    assert compared or name in {"icmp.pcap", "dlt_raw.pcap", "truncated.pcap", "fragments.pcap"}
