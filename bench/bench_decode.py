"""Decode benchmark: ns/packet of core.decode.Decoder for common frame kinds.

Where it sits: bench/ (measurement only). Frames are built with tests/kit/pcapgen.py and packed into one
batch buffer the way pcapy-ng next_batch delivers them, then decoded in a tight loop.

    .venv/bin/python bench/bench_decode.py [--packets N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.decode import Decoder  # noqa: E402
from tests.kit import pcapgen as g  # noqa: E402
from tests.kit import tunnelgen  # noqa: E402


def kinds() -> list[tuple[str, int, bytes]]:
    http = g.http_request("GET", "/index.html", {"User-Agent": "bench"})
    v4tcp = g.ipv4("10.0.0.1", "93.184.216.34", g.tcp(40000, 80, g.PSH | g.ACK, http))
    v4syn = g.ipv4("10.0.0.1", "93.184.216.34", g.tcp(40000, 443, g.SYN))
    v4udp = g.ipv4("10.0.0.1", "8.8.8.8", g.udp(53000, 53, g.dns_query("www.example.com")))
    v6tcp = g.ipv6("2001:db8::1", "2001:db8::2", g.tcp(40000, 443, g.SYN))
    return [
        ("eth/ipv4/tcp (http)", 1, g.ether(v4tcp)),
        ("eth/ipv4/tcp syn", 1, g.ether(v4syn)),
        ("eth/ipv4/udp (dns)", 1, g.ether(v4udp)),
        ("eth/ipv4/icmp", 1, g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.icmp()))),
        ("eth/ipv4+options/tcp", 1, g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.tcp(), options=b"\x01" * 8))),
        ("eth/vlan/ipv4/tcp", 1, g.ether(v4syn, vlans=[(0x8100, 10)])),
        ("eth/qinq/ipv4/tcp", 1, g.ether(v4syn, vlans=[(0x88a8, 1), (0x8100, 2)])),
        ("eth/pppoe/ipv4/udp", 1, g.ether(g.pppoe(v4udp), ethertype=0x8864)),
        ("eth/ipv6/tcp", 1, g.ether(v6tcp)),
        ("eth/ipv6+hbh+dst/udp", 1, g.ether(g.ipv6("2001:db8::1", "2001:db8::2", g.udp(1, 53, b"x" * 30),
                                                     ext=[g.hop_by_hop(), g.dest_opts()]))),
        ("sll/ipv4/tcp", 113, g.sll(v4syn)),
        ("sll2/ipv4/tcp", 276, g.sll2(v4syn)),
        ("raw/ipv4/udp", 101, v4udp),
        ("null/ipv4/tcp", 0, g.null(v4syn)),
        ("eth/arp (not ip)", 1, g.ether(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, ethertype=0x0806)),
        ("eth/ipv4 later fragment", 1, g.ether(g.ipv4("10.0.0.1", "10.0.0.2", b"x" * 40, proto=17,
                                                      frag_offset=1480))),
    ] + [(f"{kind} > eth/ipv4/tcp syn", 1, tunnelgen.wrap(kind, g.ether(v4syn), 1))
         for kind in ("vxlan", "geneve", "gre_ip", "erspan2", "erspan3", "ip_in_ip", "mpls_ip", "mpls_pw_cw",
                      "vlan_gre_vxlan")]


def run(frame: bytes, linktype: int, packets: int, repeat: int) -> float:
    buf = frame * packets
    step = len(frame)
    offsets = range(0, len(buf), step)
    best = float("inf")
    for _ in range(repeat):
        decoder = Decoder(linktype)
        decode = decoder.decode
        t0 = time.perf_counter_ns()
        for off in offsets:
            decode(buf, off, step)
        best = min(best, (time.perf_counter_ns() - t0) / packets)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    # the loop itself (range iteration + a no-op call) for reference
    buf = b"\x00" * args.packets
    t0 = time.perf_counter_ns()
    def noop(b, o, n):
        return None
    for off in range(args.packets):
        noop(buf, off, 1)
    loop_ns = (time.perf_counter_ns() - t0) / args.packets
    print(f"{'frame kind':28s} {'ns/packet':>10s}")
    print(f"{'(empty loop + call)':28s} {loop_ns:10.0f}")
    for name, linktype, frame in kinds():
        print(f"{name:28s} {run(frame, linktype, args.packets, args.repeat):10.0f}")


if __name__ == "__main__":
    main()
