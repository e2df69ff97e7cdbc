"""Host-affine kernel fanout: which capture worker gets a packet.

Where it sits: between the NIC and the capture workers (core/capture/workers.py). Every worker
opens its own AF_PACKET capture handle per interface; the handles of one interface form a
PACKET_FANOUT group of type PACKET_FANOUT_CBPF, and the kernel runs the classic-BPF program built
here on each packet to pick the socket (return value modulo the number of sockets). No packet is
copied between processes and no Python runs per packet for routing.

Routing rule ("the host that originates the flow"), identical in `route_hash` (Python, for tests
and the offline retention benchmark) and in `program()` (kernel):
- TCP without ACK (SYN, NULL, FIN, XMAS probes) → source address.
- TCP SYN+ACK → destination. Other TCP with ACK → destination when the source port is a service
  port (below 1024 or a common proxy/HTTP port), else source. So requests and their responses
  land on the client's worker.
- UDP from port 53 (DNS responses) → destination; other UDP → source.
- ICMP, other protocols, non-first fragments → source.
- Tunnels (the encapsulations core/decode/tunnel.py opens, two levels deep): the rule above is
  applied to the carried packet, so one inner host stays on one worker whichever tunnel endpoints
  carry it: IP-in-IP and IPv6-in-IP, GRE (checksum/key/sequence words skipped) carrying IP,
  Ethernet or MPLS, ERSPAN I/II/III, VXLAN and GENEVE on the configured UDP ports (GENEVE options
  skipped by length), MPLS stacks of up to MAX_MPLS_LABELS labels (IP, or an Ethernet pseudowire
  with or without control word); a carried Ethernet frame may hold one VLAN tag. The code that
  follows one level (`_follow`) is emitted twice (cBPF has no loops): a tunnel inside a tunnel
  (VXLAN inside GRE, GENEVE inside GRE with MPLS) routes on its carried packet, a third level on
  the second; anything the program cannot follow routes on the last packet it could, the outer
  one when no tunnel is followed. Offsets are kept in scratch memory (`program()` lists them).
The chosen address (IPv6: the XOR of its four 32-bit words) is mixed (x *= 0x9E3779B1;
x ^= x >> 16) and the kernel takes it modulo the group size. Every heuristic keys its state by a source, a
(source, destination) pair or a client, and all packets of such a key are routed the same way,
so N workers raise exactly the alerts one worker raises.

The program reads relative to the network header (SKF_NET_OFF), so it works for every link type
(Ethernet, cooked "any", VLAN with tag offload) and for received and sent packets alike.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from core.decode import tunnel

SOL_PACKET = 263
PACKET_FANOUT = 18
PACKET_FANOUT_DATA = 22
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_LB = 1
PACKET_FANOUT_CPU = 2
PACKET_FANOUT_ROLLOVER = 3
PACKET_FANOUT_RND = 4
PACKET_FANOUT_CBPF = 6
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
KERNEL_MODES = {"lb": PACKET_FANOUT_LB, "cpu": PACKET_FANOUT_CPU, "rollover": PACKET_FANOUT_ROLLOVER,
                "rnd": PACKET_FANOUT_RND}

SERVICE_PORTS = (1080, 3128, 8000, 8080, 8118, 8443)

# classic BPF opcodes (linux/filter.h)
LD, LDX, ST, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM = 0x00, 0x20, 0x40, 0x60
ADD, MUL, AND, LSH, RSH, XOR = 0x00, 0x20, 0x50, 0x60, 0x70, 0xA0
GOLDEN = 0x9E3779B1
JA, JEQ, JGE, JSET = 0x00, 0x10, 0x30, 0x40
K, X = 0x00, 0x08
RET_A = 0x10
TAX, TXA = 0x00, 0x80
SKF_AD_PROTOCOL = (-0x1000 + 0) & 0xFFFFFFFF
NET = -0x100000  # SKF_NET_OFF: loads relative to the network header


def _net(offset: int) -> int:
    return (NET + offset) & 0xFFFFFFFF

Jump = int | str  # a jump offset, or the name of a label further on


class _Assembler:
    """Tiny cBPF assembler with forward labels (jump offsets are 8-bit, the program is short)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, Jump, Jump, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0, jt: Jump = 0, jf: Jump = 0) -> None:
        self.code.append((code, jt, jf, k & 0xFFFFFFFF))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> list[tuple[int, int, int, int]]:
        out = []
        for index, (code, jt, jf, k) in enumerate(self.code):
            def target(value: Jump, index: int = index) -> int:
                if isinstance(value, str):
                    delta = self.labels[value] - index - 1
                    if not 0 <= delta < 256:
                        raise ValueError(f"jump to {value} out of range")
                    return delta
                return value
            if code & 0x07 == JMP and code != JMP | JA:
                out.append((code, target(jt), target(jf), k))
            elif code == JMP | JA:
                out.append((code, 0, 0, target(jt) if isinstance(jt, str) else k))
            else:
                out.append((code, 0, 0, k))
        return out


def _ports_test(a: _Assembler, base: int, service: str, other: str) -> None:
    """A = source port at X + base; jump to `service` for a service port, else to `other`."""
    a.op(LD | H | IND, _net(base))
    a.op(JMP | JGE | K, 1024, jt=0, jf=service)
    for i, port in enumerate(SERVICE_PORTS):
        last = i == len(SERVICE_PORTS) - 1
        a.op(JMP | JEQ | K, port, jt=service, jf=other if last else 0)


def _tunnel_ports(tunnels: dict[int, tunnel.UdpTunnel] | None) -> tuple[list[int], list[int]]:
    tunnels = tunnel.udp_tunnels() if tunnels is None else tunnels
    return (sorted(p for p, parser in tunnels.items() if parser is tunnel.vxlan),
            sorted(p for p, parser in tunnels.items() if parser is tunnel.geneve))


def _jump_table(a: _Assembler, cases: list[tuple[int, str]], default: str) -> None:
    """A compared with each value in turn; the last miss jumps to `default`."""
    if not cases:
        a.op(JMP | JA, jt=default)
        return
    for i, (value, target) in enumerate(cases):
        a.op(JMP | JEQ | K, value, jt=target, jf=default if i == len(cases) - 1 else 0)


def _follow(a: _Assembler, p: str, vxlan_ports: list[int], geneve_ports: list[int], found: str,
            fail: str) -> None:
    """One tunnel level (labels prefixed `p`). Entry `{p}ip`: X = offset of an IP header; entry
    `{p}mpls`: A = offset of an MPLS label stack. Jumps to `found` with A = offset of the carried IP
    header, or to `fail` when the packet is no tunnel followed here."""
    a.label(f"{p}ip")
    a.op(LD | B | IND, _net(0))
    a.op(ALU | RSH | K, 4)
    _jump_table(a, [(4, f"{p}v4"), (6, f"{p}v6")], f"{p}fail")
    a.label(f"{p}v4")
    a.op(LD | H | IND, _net(6))
    a.op(JMP | JSET | K, 0x1FFF, jt=f"{p}fail", jf=0)      # non-first fragment: no tunnel header
    a.op(LD | B | IND, _net(0))
    a.op(ALU | AND | K, 0x0F)
    a.op(ALU | LSH | K, 2)
    a.op(ALU | ADD | X)
    a.op(ST, 1)                                               # M[1] = its payload offset
    a.op(LD | B | IND, _net(9))
    a.op(JMP | JA, jt=f"{p}proto")
    a.label(f"{p}v6")
    a.op(MISC | TXA)
    a.op(ALU | ADD | K, 40)
    a.op(ST, 1)
    a.op(LD | B | IND, _net(6))
    a.label(f"{p}proto")
    _jump_table(a, [(4, f"{p}at_l4"), (41, f"{p}at_l4"), (47, f"{p}gre"), (17, f"{p}udp")], f"{p}fail")
    a.label(f"{p}at_l4")                                      # IP-in-IP, IPv6-in-IP
    a.op(LD | MEM, 1)
    a.op(JMP | JA, jt=found)
    a.label(f"{p}udp")
    a.op(LDX | MEM, 1)
    a.op(LD | H | IND, _net(2))
    _jump_table(a, [(port, f"{p}vxlan") for port in vxlan_ports] + [(port, f"{p}geneve") for port in geneve_ports],
                f"{p}fail")
    a.label(f"{p}vxlan")
    a.op(LD | MEM, 1)
    a.op(ALU | ADD | K, 16)
    a.op(JMP | JA, jt=f"{p}ether")
    a.label(f"{p}geneve")                                     # options skipped by their length
    a.op(LD | B | IND, _net(8))
    a.op(ALU | AND | K, 0x3F)
    a.op(ALU | LSH | K, 2)
    a.op(ALU | ADD | K, 16)
    a.op(ALU | ADD | X)
    a.op(ST, 3)
    a.op(LD | H | IND, _net(10))
    a.op(JMP | JA, jt=f"{p}by_type")
    a.label(f"{p}gre")                                        # RFC 2784/2890, version 0
    a.op(LDX | MEM, 1)
    a.op(LD | B | IND, _net(0))
    a.op(JMP | JSET | K, tunnel.GRE_MUST_BE_ZERO, jt=f"{p}fail", jf=0)
    a.op(LD | B | IND, _net(1))
    a.op(JMP | JSET | K, 0x07, jt=f"{p}fail", jf=0)
    a.op(LD | MEM, 1)
    a.op(ALU | ADD | K, 4)
    a.op(ST, 3)
    for bit in (tunnel.GRE_C, tunnel.GRE_K, tunnel.GRE_S):    # one optional word per flag
        a.op(LD | B | IND, _net(0))
        a.op(JMP | JSET | K, bit, jt=0, jf=3)
        a.op(LD | MEM, 3)
        a.op(ALU | ADD | K, 4)
        a.op(ST, 3)
    a.op(LD | H | IND, _net(2))
    a.op(JMP | JEQ | K, tunnel.ETH_ERSPAN_1_2, jt=f"{p}erspan12", jf=0)
    a.op(JMP | JEQ | K, tunnel.ETH_ERSPAN_3, jt=f"{p}erspan3", jf=f"{p}by_type")
    a.label(f"{p}erspan12")                                   # type II has a sequence number
    a.op(LD | B | IND, _net(0))
    a.op(JMP | JSET | K, tunnel.GRE_S, jt=0, jf=3)
    a.op(LD | MEM, 3)
    a.op(ALU | ADD | K, 8)
    a.op(JMP | JA, jt=f"{p}ether")
    a.op(LD | MEM, 3)
    a.op(JMP | JA, jt=f"{p}ether")
    a.label(f"{p}erspan3")                                    # 12 bytes, + 8 with the O bit
    a.op(LDX | MEM, 3)
    a.op(LD | B | IND, _net(11))
    a.op(ALU | AND | K, 1)
    a.op(ALU | LSH | K, 3)
    a.op(ALU | ADD | K, 12)
    a.op(ALU | ADD | X)
    a.op(ST, 4)
    a.op(LD | B | IND, _net(10))
    a.op(ALU | RSH | K, 2)
    a.op(ALU | AND | K, 0x1F)
    a.op(JMP | JEQ | K, 0, jt=0, jf=2)                        # frame type 0: Ethernet
    a.op(LD | MEM, 4)
    a.op(JMP | JA, jt=f"{p}ether")
    a.op(JMP | JEQ | K, 2, jt=0, jf=f"{p}fail")               # frame type 2: IP
    a.op(LD | MEM, 4)
    a.op(JMP | JA, jt=found)
    a.label(f"{p}by_type")                                    # A = EtherType, M[3] = what follows
    _jump_table(a, [(0x0800, f"{p}bt_ip"), (0x86DD, f"{p}bt_ip"), (tunnel.ETH_TEB, f"{p}bt_eth"),
                    (0x8847, f"{p}bt_mpls"), (0x8848, f"{p}bt_mpls")], f"{p}fail")
    a.label(f"{p}bt_mpls")
    a.op(LD | MEM, 3)
    a.label(f"{p}mpls")                                       # A = label stack offset
    a.op(MISC | TAX)
    for _ in range(tunnel.MAX_MPLS_LABELS):
        a.op(LD | B | IND, _net(2))
        a.op(JMP | JSET | K, 1, jt=f"{p}bos", jf=0)
        a.op(MISC | TXA)
        a.op(ALU | ADD | K, 4)
        a.op(MISC | TAX)
    a.op(JMP | JA, jt=f"{p}fail")
    a.label(f"{p}bos")
    a.op(MISC | TXA)
    a.op(ALU | ADD | K, 4)
    a.op(ST, 3)
    a.op(MISC | TAX)
    a.op(LD | B | IND, _net(0))
    a.op(ALU | RSH | K, 4)
    _jump_table(a, [(4, f"{p}bt_ip"), (6, f"{p}bt_ip"), (0, f"{p}pw_cw")], f"{p}bt_eth")
    a.label(f"{p}pw_cw")                                      # control word when Ethernet follows it
    a.op(LD | H | IND, _net(16))
    _jump_table(a, [(value, f"{p}pw_cw_yes") for value in (0x0800, 0x86DD, 0x8100, 0x88A8)], f"{p}bt_eth")
    a.label(f"{p}bt_ip")
    a.op(LD | MEM, 3)
    a.op(JMP | JA, jt=found)
    a.label(f"{p}bt_eth")
    a.op(LD | MEM, 3)
    a.op(JMP | JA, jt=f"{p}ether")
    a.label(f"{p}pw_cw_yes")
    a.op(LD | MEM, 3)
    a.op(ALU | ADD | K, 4)
    a.label(f"{p}ether")                                      # A = Ethernet header offset, one VLAN tag
    a.op(ST, 3)
    a.op(MISC | TAX)
    a.op(LD | H | IND, _net(12))
    _jump_table(a, [(0x0800, f"{p}e_ip"), (0x86DD, f"{p}e_ip"), (0x8100, f"{p}e_vlan"), (0x88A8, f"{p}e_vlan")],
                f"{p}fail")
    a.label(f"{p}e_vlan")
    a.op(LD | H | IND, _net(16))
    a.op(JMP | JEQ | K, 0x0800, jt=1, jf=0)
    a.op(JMP | JEQ | K, 0x86DD, jt=0, jf=f"{p}fail")
    a.op(LD | MEM, 3)
    a.op(ALU | ADD | K, 18)
    a.op(JMP | JA, jt=found)
    a.label(f"{p}e_ip")
    a.op(LD | MEM, 3)
    a.op(ALU | ADD | K, 14)
    a.op(JMP | JA, jt=found)
    a.label(f"{p}fail")
    a.op(JMP | JA, jt=fail)


def program(tunnels: dict[int, tunnel.UdpTunnel] | None = None) -> list[tuple[int, int, int, int]]:
    """The fanout program as (code, jt, jf, k) instructions; `tunnels` maps UDP destination ports
    to their tunnel parser (core/decode/tunnel.py udp_tunnels(), its defaults when None).

    Scratch memory: M[1] payload offset of the IP header being followed, M[2] offset of the IP
    header routed on, M[3]/M[4] offsets inside tunnel headers, M[5] IPv4 protocol, M[6] IPv6
    address fold, M[7] the first carried IP header (routed on when no second tunnel follows)."""
    vxlan_ports, geneve_ports = _tunnel_ports(tunnels)
    a = _Assembler()
    a.op(LD | W | ABS, SKF_AD_PROTOCOL)
    _jump_table(a, [(0x0800, "outer"), (0x86DD, "outer"), (0x8847, "outer_mpls"), (0x8848, "outer_mpls")], "not_ip")
    a.label("not_ip")
    a.op(RET | K, 0)
    a.label("outer_mpls")
    a.op(LD | IMM, 0)
    a.op(JMP | JA, jt="t1_mpls")
    a.label("outer")
    a.op(LDX | IMM, 0)
    _follow(a, "t1_", vxlan_ports, geneve_ports, found="carried", fail="plain")   # the first tunnel
    a.label("carried")
    a.op(ST, 7)
    a.op(MISC | TAX)
    _follow(a, "t2_", vxlan_ports, geneve_ports, found="inner", fail="first")     # a tunnel inside it
    a.label("first")
    a.op(LD | MEM, 7)
    a.label("inner")                                          # A = carried IP header: route on it
    a.op(ST, 2)
    a.op(MISC | TAX)
    a.op(LD | B | IND, _net(0))
    a.op(ALU | RSH | K, 4)
    _jump_table(a, [(4, "r4"), (6, "r6")], "plain")
    a.label("plain")                                          # no tunnel followed: the outer packet
    a.op(LD | W | ABS, SKF_AD_PROTOCOL)
    a.op(JMP | JEQ | K, 0x0800, jt=1, jf=0)
    a.op(JMP | JEQ | K, 0x86DD, jt=0, jf="zero")
    a.op(LD | IMM, 0)
    a.op(ST, 2)
    a.op(MISC | TAX)
    a.op(LD | B | IND, _net(0))
    a.op(ALU | RSH | K, 4)
    _jump_table(a, [(4, "r4"), (6, "r6")], "zero")
    # -- the routing rule on the IPv4 header at X = M[2] --
    a.label("r4")
    a.op(LD | H | IND, _net(6))
    a.op(JMP | JSET | K, 0x1FFF, jt="src4", jf=0)          # non-first fragment
    a.op(LD | B | IND, _net(9))
    a.op(ST, 5)
    a.op(LD | B | IND, _net(0))
    a.op(ALU | AND | K, 0x0F)
    a.op(ALU | LSH | K, 2)
    a.op(ALU | ADD | X)
    a.op(MISC | TAX)                                         # X = L4 header
    a.op(LD | MEM, 5)
    a.op(JMP | JEQ | K, 6, jt="tcp4", jf=0)
    a.op(JMP | JEQ | K, 17, jt="udp4", jf="src4")
    a.label("tcp4")
    a.op(LD | B | IND, _net(13))
    a.op(JMP | JSET | K, 0x10, jt=0, jf="src4")            # no ACK: a probe, its source owns it
    a.op(JMP | JSET | K, 0x02, jt="dst4", jf=0)            # SYN+ACK: the client is the destination
    _ports_test(a, 0, "dst4", "src4")
    a.label("udp4")
    a.op(LD | H | IND, _net(0))
    a.op(JMP | JEQ | K, 53, jt="dst4", jf="src4")
    a.label("src4")
    a.op(LDX | MEM, 2)
    a.op(LD | W | IND, _net(12))
    a.op(JMP | JA, jt="fold")
    a.label("dst4")
    a.op(LDX | MEM, 2)
    a.op(LD | W | IND, _net(16))
    a.op(JMP | JA, jt="fold")
    # -- the routing rule on the IPv6 header at X = M[2] (fixed header; extension headers: source) --
    a.label("r6")
    a.op(LD | B | IND, _net(6))
    a.op(JMP | JEQ | K, 6, jt="tcp6", jf=0)
    a.op(JMP | JEQ | K, 17, jt="udp6", jf="src6")
    a.label("tcp6")
    a.op(LD | B | IND, _net(40 + 13))
    a.op(JMP | JSET | K, 0x10, jt=0, jf="src6")
    a.op(JMP | JSET | K, 0x02, jt="dst6", jf=0)
    _ports_test(a, 40, "dst6", "src6")
    a.label("udp6")
    a.op(LD | H | IND, _net(40))
    a.op(JMP | JEQ | K, 53, jt="dst6", jf="src6")
    for name, base in (("src6", 8), ("dst6", 24)):
        a.label(name)
        a.op(LDX | MEM, 2)
        a.op(LD | W | IND, _net(base))
        for word in (4, 8, 12):
            a.op(ST, 6)
            a.op(LDX | MEM, 2)
            a.op(LD | W | IND, _net(base + word))
            a.op(LDX | MEM, 6)
            a.op(ALU | XOR | X)
        a.op(JMP | JA, jt="fold")
    a.label("zero")
    a.op(RET | K, 0)
    a.label("fold")
    a.op(ALU | MUL | K, GOLDEN)
    a.op(ST, 0)
    a.op(ALU | RSH | K, 16)
    a.op(MISC | TAX)
    a.op(LD | MEM, 0)
    a.op(ALU | XOR | X)
    a.op(RET | RET_A)
    return a.assemble()


def fold(value: int) -> int:
    """Multiplicative mix, then the high half onto the low one: the kernel takes `% workers`, and
    structured address plans must still spread evenly."""
    value = (value * GOLDEN) & 0xFFFFFFFF
    return value ^ (value >> 16)


class _OutOfPacket(Exception):
    """A load past the packet's end: the kernel program then returns 0 (socket 0)."""


def _u8(net: bytes, at: int) -> int:
    if at + 1 > len(net):
        raise _OutOfPacket
    return net[at]


def _u16(net: bytes, at: int) -> int:
    if at + 2 > len(net):
        raise _OutOfPacket
    return (net[at] << 8) | net[at + 1]


def _u32(net: bytes, at: int) -> int:
    if at + 4 > len(net):
        raise _OutOfPacket
    return int.from_bytes(net[at:at + 4], "big")


def _after_ethernet(net: bytes, pos: int) -> int | None:
    ethertype = _u16(net, pos + 12)
    if ethertype in (0x0800, 0x86DD):
        return pos + 14
    if ethertype in (0x8100, 0x88A8):
        return pos + 18 if _u16(net, pos + 16) in (0x0800, 0x86DD) else None
    return None


def _after_mpls(net: bytes, pos: int) -> int | None:
    for _ in range(tunnel.MAX_MPLS_LABELS):
        if _u8(net, pos + 2) & 1:
            break
        pos += 4
    else:
        return None
    pos += 4
    nibble = _u8(net, pos) >> 4
    if nibble in (4, 6):
        return pos
    if nibble == 0 and _u16(net, pos + 16) in (0x0800, 0x86DD, 0x8100, 0x88A8):
        return _after_ethernet(net, pos + 4)
    return _after_ethernet(net, pos)


def _by_type(net: bytes, ethertype: int, start: int) -> int | None:
    if ethertype in (0x0800, 0x86DD):
        return start
    if ethertype == tunnel.ETH_TEB:
        return _after_ethernet(net, start)
    if ethertype in tunnel.ETH_MPLS:
        return _after_mpls(net, start)
    return None


def _after_gre(net: bytes, l4: int) -> int | None:
    if _u8(net, l4) & tunnel.GRE_MUST_BE_ZERO or _u8(net, l4 + 1) & 0x07:
        return None
    start = l4 + 4
    for bit in (tunnel.GRE_C, tunnel.GRE_K, tunnel.GRE_S):
        if _u8(net, l4) & bit:
            start += 4
    ethertype = _u16(net, l4 + 2)
    if ethertype == tunnel.ETH_ERSPAN_1_2:
        return _after_ethernet(net, start + 8 if _u8(net, l4) & tunnel.GRE_S else start)
    if ethertype == tunnel.ETH_ERSPAN_3:
        inner = start + 12 + ((_u8(net, start + 11) & 1) << 3)
        frame_type = (_u8(net, start + 10) >> 2) & 0x1F
        if frame_type == 0:
            return _after_ethernet(net, inner)
        return inner if frame_type == 2 else None
    return _by_type(net, ethertype, start)


def _follow_one(net: bytes, base: int, vxlan_ports: list[int], geneve_ports: list[int]) -> int | None:
    """`_follow()` in Python: the carried IP header of a tunnel whose outer IP header is at `base`."""
    version = _u8(net, base) >> 4
    if version == 4:
        if _u16(net, base + 6) & 0x1FFF:
            return None
        l4 = base + ((_u8(net, base) & 0x0F) << 2)
        proto = _u8(net, base + 9)
    elif version == 6:
        l4, proto = base + 40, _u8(net, base + 6)
    else:
        return None
    if proto in (4, 41):
        return l4
    if proto == 47:
        return _after_gre(net, l4)
    if proto == 17:
        dport = _u16(net, l4 + 2)
        if dport in vxlan_ports:
            return _after_ethernet(net, l4 + 16)
        if dport in geneve_ports:
            start = l4 + 16 + ((_u8(net, l4 + 8) & 0x3F) << 2)
            return _by_type(net, _u16(net, l4 + 10), start)
    return None


def carried_ip(net: bytes, ethertype: int, tunnels: dict[int, tunnel.UdpTunnel] | None = None) -> int | None:
    """Offset of the IP header `program()` routes on for a packet whose network header starts at
    net[0]: the packet carried by a tunnel, or by a tunnel inside it (two levels), or None when the
    packet is no tunnel the program follows."""
    vxlan_ports, geneve_ports = _tunnel_ports(tunnels)
    if ethertype in tunnel.ETH_MPLS:
        first = _after_mpls(net, 0)
    elif ethertype in (0x0800, 0x86DD):
        first = _follow_one(net, 0, vxlan_ports, geneve_ports)
    else:
        return None
    if first is None:
        return None
    second = _follow_one(net, first, vxlan_ports, geneve_ports)
    return first if second is None else second


def _route_ip(net: bytes, base: int) -> int:
    version = _u8(net, base) >> 4
    if version == 4:
        if _u16(net, base + 6) & 0x1FFF:
            return fold(_u32(net, base + 12))
        proto = _u8(net, base + 9)
        l4 = base + ((_u8(net, base) & 0x0F) << 2)
        to_dst = False
        if proto == 6:
            flags = _u8(net, l4 + 13)
            if flags & 0x10:
                sport = 0 if flags & 0x02 else _u16(net, l4)
                to_dst = sport < 1024 or sport in SERVICE_PORTS
        elif proto == 17:
            to_dst = _u16(net, l4) == 53
        return fold(_u32(net, base + (16 if to_dst else 12)))
    proto = _u8(net, base + 6)
    to_dst = False
    if proto == 6:
        flags = _u8(net, base + 53)
        if flags & 0x10:
            sport = 0 if flags & 0x02 else _u16(net, base + 40)
            to_dst = sport < 1024 or sport in SERVICE_PORTS
    elif proto == 17:
        to_dst = _u16(net, base + 40) == 53
    at = base + (24 if to_dst else 8)
    return fold(_u32(net, at) ^ _u32(net, at + 4) ^ _u32(net, at + 8) ^ _u32(net, at + 12))


def route_hash(net: bytes, ethertype: int | None = None, tunnels: dict[int, tunnel.UdpTunnel] | None = None) -> int:
    """The program's result for a packet whose network header starts at net[0] (`ethertype`: the
    packet's protocol, from the IP version when None); 0 for non-IP packets and short reads."""
    if ethertype is None:
        ethertype = 0x86DD if net[:1] and net[0] >> 4 == 6 else 0x0800
    try:
        inner = carried_ip(net, ethertype, tunnels)
        if inner is not None and _u8(net, inner) >> 4 in (4, 6):
            return _route_ip(net, inner)
        if ethertype in (0x0800, 0x86DD) and _u8(net, 0) >> 4 in (4, 6):
            return _route_ip(net, 0)
        return 0
    except _OutOfPacket:
        return 0


def encode(instructions: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("=HBBI", *ins) for ins in instructions)


def join_cbpf(fd: int, group_id: int, defrag: bool = False,
              tunnels: dict[int, tunnel.UdpTunnel] | None = None) -> None:
    """Join the AF_PACKET socket `fd` to fanout group `group_id` routed by `program(tunnels)`."""
    sock = socket.socket(fileno=fd)
    try:
        mode = PACKET_FANOUT_CBPF | (PACKET_FANOUT_FLAG_DEFRAG if defrag else 0)
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group_id & 0xFFFF) | (mode << 16))
        code = program(tunnels)
        filters = ctypes.create_string_buffer(encode(code))
        fprog = struct.pack("HL", len(code), ctypes.addressof(filters))  # struct sock_fprog
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT_DATA, fprog)
    finally:
        sock.detach()


def join_kernel_mode(fd: int, group_id: int, mode: str, defrag: bool = False) -> None:
    """Join with one of the kernel's own modes (lb, cpu, rollover, rnd): no host affinity."""
    sock = socket.socket(fileno=fd)
    try:
        value = KERNEL_MODES[mode] | (PACKET_FANOUT_FLAG_DEFRAG if defrag else 0)
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group_id & 0xFFFF) | (value << 16))
    finally:
        sock.detach()


def run_program(instructions: list[tuple[int, int, int, int]], ip: bytes, ethertype: int) -> int:
    """A small classic-BPF interpreter for the subset `program()` uses (tests compare it with
    `route_hash`, so the kernel program and the Python rule cannot drift apart)."""
    a = x = 0
    mem = [0] * 16
    pc = 0

    def load(offset: int, size: int) -> int:
        if offset >= 0x80000000:
            offset -= 1 << 32
        if offset == SKF_AD_PROTOCOL - (1 << 32):
            return ethertype
        offset -= NET
        if offset < 0 or offset + size > len(ip):
            raise IndexError("out of packet")  # the kernel returns 0 (socket 0) here
        return int.from_bytes(ip[offset:offset + size], "big")

    while True:
        code, jt, jf, k = instructions[pc]
        pc += 1
        cls = code & 0x07
        try:
            if cls == LD:
                size = {W: 4, H: 2, B: 1}[code & 0x18]
                mode = code & 0xE0
                if mode == IMM:
                    a = k
                else:
                    a = mem[k] if mode == MEM else load(k if mode == ABS else (x + k) & 0xFFFFFFFF, size)
            elif cls == LDX:
                x = mem[k] if code & 0xE0 == MEM else k
            elif cls == ST:
                mem[k] = a
            elif cls == MISC:
                if code & 0xF8 == TXA:
                    a = x
                else:
                    x = a
            elif cls == ALU:
                operand = x if code & X else k
                op = code & 0xF0
                if op == ADD:
                    a = (a + operand) & 0xFFFFFFFF
                elif op == AND:
                    a &= operand
                elif op == LSH:
                    a = (a << operand) & 0xFFFFFFFF
                elif op == RSH:
                    a >>= operand
                elif op == XOR:
                    a ^= operand
                elif op == MUL:
                    a = (a * operand) & 0xFFFFFFFF
                else:
                    raise ValueError(f"ALU op {op:#x} not in the subset")
            elif cls == JMP:
                op = code & 0xF0
                if op == JA:
                    pc += k
                else:
                    taken = {JEQ: a == k, JGE: a >= k, JSET: bool(a & k)}[op]
                    pc += jt if taken else jf
            elif cls == RET:
                return a if code & RET_A else k
        except IndexError:
            return 0
