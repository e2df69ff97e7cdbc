"""Heuristic retention under multi-worker routing, measured offline and deterministically.

Where it sits: beside core/capture/workers.py, for the benchmark (bench/bench_live.py) and the
tests. It replays packets through one sensor (core/assemble.py), then splits the same packets over
N sensors exactly as the kernel fanout program would (core/capture/fanout.py, checked against
the kernel in tests/test_live.py and against a cBPF interpreter in tests/test_workers.py), and
reports the share of the single-worker heuristic alerts that the N workers still raise.
Tunnelled packets route on the decoded (carried) packet, which is what the kernel program does for
up to two tunnel levels (core/capture/fanout.py; a third level routes on the second there).
`kernel_hash_split` gives the comparison point: the kernel's plain flow hash (per 5-tuple), which
is what the original's fanout used.
"""

from __future__ import annotations

import glob
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pcapy

from core.capture.fanout import fold
from core.config import Config
from core.decode.packet import Decoder

Packet = tuple[int, int, int, bytes]  # linktype, sec, usec, frame
AlertKey = tuple[str, str, str, str]


def read_pcaps(paths: Iterable[str]) -> Iterator[Packet]:
    for path in paths:
        reader = pcapy.open_offline(path)
        linktype = reader.datalink()
        while True:
            header, frame = reader.next()
            if header is None:
                break
            sec, usec = header.getts()
            yield linktype, sec, usec, bytes(frame)


def corpus_pcaps(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.pcap")))


def host_route(d: Any) -> int:
    """route_hash() computed from a decoded packet (same rule, same result)."""
    if d.family == 4:
        src, dst = int.from_bytes(d.src, "big"), int.from_bytes(d.dst, "big")
    else:
        s, t = struct.unpack(">4I", d.src), struct.unpack(">4I", d.dst)
        src, dst = s[0] ^ s[1] ^ s[2] ^ s[3], t[0] ^ t[1] ^ t[2] ^ t[3]
    from core.capture.fanout import SERVICE_PORTS

    if d.proto == 6:
        if not d.flags & 0x10:
            return fold(src)
        if d.flags & 0x02:
            return fold(dst)
        return fold(dst if d.sport < 1024 or d.sport in SERVICE_PORTS else src)
    if d.proto == 17:
        return fold(dst if d.sport == 53 else src)
    return fold(src)


def kernel_hash_route(d: Any) -> int:
    """A per-flow hash (the kernel's PACKET_FANOUT_HASH behaviour: one flow, one socket)."""
    a, b = (d.src, d.sport), (d.dst, d.dport)
    key = b"".join(x[0] + x[1].to_bytes(2, "big") for x in sorted((a, b))) + bytes([d.proto])
    return zlib.crc32(key)


def split(packets: list[Packet], workers: int, route: Callable[[Any], int]) -> list[list[Packet]]:
    lanes: list[list[Packet]] = [[] for _ in range(workers)]
    decoders: dict[int, Decoder] = {}
    for packet in packets:
        linktype, _sec, _usec, frame = packet
        decoder = decoders.setdefault(linktype, Decoder(linktype))
        d = decoder.decode(frame, 0, len(frame))
        lanes[route(d) % workers if d is not None else 0].append(packet)
    return lanes


def heuristic_alerts(config: Config, store: Any, packets: list[Packet]) -> set[AlertKey]:
    """(src, type, trail, info) of every heuristic event one sensor (core/assemble.py) raises over `packets`."""
    from core.assemble import build_sensor
    from core.events.sinks import MemorySink

    sink = MemorySink()
    sensor = build_sensor(config, store, sinks=[sink], plugins=())
    for linktype, sec, usec, frame in packets:
        sensor.process(linktype, sec, usec, frame)
    sensor.close()
    return {(e.src_ip.split(",")[0], e.type, e.trail, e.info.split(" (+")[0])
            for e in sink.events if e.reference == "(heuristic)"}


def retention(config: Config, store: Any, packets: list[Packet], workers: int,
              route: Callable[[Any], int] = host_route) -> tuple[int, int]:
    """(single-worker heuristic alerts, how many of them N workers still raise)."""
    config = config.replace(EVENT_THROTTLE_MODE="off", USE_HEURISTICS=True)
    single = heuristic_alerts(config, store, packets)
    multi: set[AlertKey] = set()
    for lane in split(packets, workers, route):
        multi |= heuristic_alerts(config, store, lane)
    return len(single), len(single & multi)


def generated_scans(seed: int = 7, sources: int = 24) -> list[Packet]:
    """Ethernet frames: port, stealth, UDP, infection and web scans from many sources, with the
    targets' answers (SYN+ACK, RST, HTTP 404), interleaved in time like real traffic."""
    import dpkt

    rng = random.Random(seed)
    out: list[tuple[float, bytes]] = []

    def frame(src: bytes, dst: bytes, l4: Any, proto: int) -> bytes:
        ip = dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, data=l4)
        ip.len = len(bytes(ip))
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))

    def tcp(src: bytes, dst: bytes, sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
        return frame(src, dst, dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=rng.randrange(1 << 32),
                                            win=1024, data=payload), 6)

    def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes = b"x") -> bytes:
        return frame(src, dst, dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload), 17)

    base = 1_700_000_000.0
    for n in range(sources):
        scanner = bytes([10, 1 + n % 3, n // 3, 5 + n])
        target = bytes([10, 9, n % 5, 20 + n % 7])
        start = base + rng.random() * 20
        kind = n % 5
        for i in range(14):
            t = start + i * rng.random() * 0.5
            sport = rng.randrange(33000, 60000)
            if kind == 0:      # SYN scan, targets answer SYN+ACK / RST+ACK
                out.append((t, tcp(scanner, target, sport, 20 + i * 7, 0x02)))
                out.append((t + 0.001, tcp(target, scanner, 20 + i * 7, sport, 0x12 if i % 3 else 0x14)))
            elif kind == 1:    # FIN / NULL / XMAS probes, RST answers
                out.append((t, tcp(scanner, target, sport, 100 + i, (0x01, 0x00, 0x29)[i % 3])))
                out.append((t + 0.001, tcp(target, scanner, 100 + i, sport, 0x14)))
            elif kind == 2:    # UDP scan
                out.append((t, udp(scanner, target, sport, 1000 + i * 3)))
            elif kind == 3:    # infection scan: port 445 over many hosts (needs 33 targets)
                for j in range(3):
                    victim = bytes([10, 8, i, j + 1])
                    out.append((t + j * 0.01, tcp(scanner, victim, sport + j, 445, 0x02)))
            else:              # web scan: distinct first path segments, 404 answers
                request = f"GET /dir{i}/x.php HTTP/1.1\r\nHost: 10.9.0.1\r\n\r\n".encode()
                out.append((t, tcp(scanner, target, sport, 80, 0x18, request)))
                out.append((t + 0.002, tcp(target, scanner, 80, sport, 0x18,
                                           b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")))
        # ordinary traffic of the same hosts (ACKed flows)
        for _ in range(5):
            t = start + rng.random() * 5
            out.append((t, tcp(scanner, bytes([10, 200, 0, 1]), rng.randrange(33000, 60000), 443, 0x10)))
    out.sort(key=lambda item: item[0])
    return [(1, int(t), int((t % 1) * 1e6), f) for t, f in out]
