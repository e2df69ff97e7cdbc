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
MUL, AND, LSH, RSH, XOR = 0x20, 0x50, 0x60, 0x70, 0xA0
GOLDEN = 0x9E3779B1
JA, JEQ, JGE, JSET = 0x00, 0x10, 0x30, 0x40
K, X = 0x00, 0x08
RET_A = 0x10
TAX = 0x00
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


def _ports_test(a: _Assembler, base: int, indirect: bool, service: str, other: str) -> None:
    """A = source port; jump to `service` for a service port, else to `other`."""
    a.op(LD | H | (IND if indirect else ABS), _net(base))
    a.op(JMP | JGE | K, 1024, jt=0, jf=service)
    for i, port in enumerate(SERVICE_PORTS):
        last = i == len(SERVICE_PORTS) - 1
        a.op(JMP | JEQ | K, port, jt=service, jf=other if last else 0)


def program() -> list[tuple[int, int, int, int]]:
    """The fanout program as (code, jt, jf, k) instructions."""
    a = _Assembler()
    a.op(LD | W | ABS, SKF_AD_PROTOCOL)
    a.op(JMP | JEQ | K, 0x0800, jt="v4", jf=0)
    a.op(JMP | JEQ | K, 0x86DD, jt="v6", jf="zero")
    # IPv4
    a.label("v4")
    a.op(LD | H | ABS, _net(6))
    a.op(JMP | JSET | K, 0x1FFF, jt="src4", jf=0)          # non-first fragment
    a.op(LD | B | ABS, _net(0))
    a.op(ALU | AND | K, 0x0F)
    a.op(ALU | LSH | K, 2)
    a.op(MISC | TAX)                                         # X = IPv4 header length
    a.op(LD | B | ABS, _net(9))
    a.op(JMP | JEQ | K, 6, jt="tcp4", jf=0)
    a.op(JMP | JEQ | K, 17, jt="udp4", jf="src4")
    a.label("tcp4")
    a.op(LD | B | IND, _net(13))
    a.op(JMP | JSET | K, 0x10, jt=0, jf="src4")            # no ACK: a probe, its source owns it
    a.op(JMP | JSET | K, 0x02, jt="dst4", jf=0)            # SYN+ACK: the client is the destination
    _ports_test(a, 0, True, "dst4", "src4")
    a.label("udp4")
    a.op(LD | H | IND, _net(0))
    a.op(JMP | JEQ | K, 53, jt="dst4", jf="src4")
    a.label("src4")
    a.op(LD | W | ABS, _net(12))
    a.op(JMP | JA, jt="fold")
    a.label("dst4")
    a.op(LD | W | ABS, _net(16))
    a.op(JMP | JA, jt="fold")
    # IPv6 (fixed header; extension headers route by source)
    a.label("v6")
    a.op(LD | B | ABS, _net(6))
    a.op(JMP | JEQ | K, 6, jt="tcp6", jf=0)
    a.op(JMP | JEQ | K, 17, jt="udp6", jf="src6")
    a.label("tcp6")
    a.op(LD | B | ABS, _net(40 + 13))
    a.op(JMP | JSET | K, 0x10, jt=0, jf="src6")
    a.op(JMP | JSET | K, 0x02, jt="dst6", jf=0)
    _ports_test(a, 40, False, "dst6", "src6")
    a.label("udp6")
    a.op(LD | H | ABS, _net(40))
    a.op(JMP | JEQ | K, 53, jt="dst6", jf="src6")
    for name, base in (("src6", 8), ("dst6", 24)):
        a.label(name)
        a.op(LD | W | ABS, _net(base))
        for word in (4, 8, 12):
            a.op(MISC | TAX)
            a.op(LD | W | ABS, _net(base + word))
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


def route_hash(ip: bytes) -> int:
    """The program's result for a packet whose IP header starts at ip[0] (0 for non-IP)."""
    if len(ip) < 20:
        return 0
    version = ip[0] >> 4
    if version == 4:
        src, dst = (int.from_bytes(ip[12:16], "big"), int.from_bytes(ip[16:20], "big"))
        if int.from_bytes(ip[6:8], "big") & 0x1FFF:
            return fold(src)
        ihl = (ip[0] & 0x0F) * 4
        proto, l4 = ip[9], ip[ihl:]
    elif version == 6 and len(ip) >= 40:
        words = struct.unpack(">8I", ip[8:40])
        src, dst = words[0] ^ words[1] ^ words[2] ^ words[3], words[4] ^ words[5] ^ words[6] ^ words[7]
        proto, l4 = ip[6], ip[40:]
    else:
        return 0
    if proto == 6 and len(l4) >= 14:
        flags = l4[13]
        if not flags & 0x10:
            return fold(src)
        if flags & 0x02:
            return fold(dst)
        sport = int.from_bytes(l4[0:2], "big")
        return fold(dst if sport < 1024 or sport in SERVICE_PORTS else src)
    if proto == 17 and len(l4) >= 2:
        return fold(dst if int.from_bytes(l4[0:2], "big") == 53 else src)
    return fold(src)


def encode(instructions: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("=HBBI", *ins) for ins in instructions)


def join_cbpf(fd: int, group_id: int, defrag: bool = False) -> None:
    """Join the AF_PACKET socket `fd` to fanout group `group_id` routed by `program()`."""
    sock = socket.socket(fileno=fd)
    try:
        mode = PACKET_FANOUT_CBPF | (PACKET_FANOUT_FLAG_DEFRAG if defrag else 0)
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, (group_id & 0xFFFF) | (mode << 16))
        code = program()
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
                a = mem[k] if mode == MEM else load(k if mode == ABS else (x + k) & 0xFFFFFFFF, size)
            elif cls == ST:
                mem[k] = a
            elif cls == MISC:
                x = a
            elif cls == ALU:
                operand = x if code & X else k
                op = code & 0xF0
                if op == AND:
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
