"""Scan heuristics: TCP port scans (SYN and NULL/FIN/XMAS stealth), UDP scans, infection scans.

Where it sits: the engine's `tcp` and `udp` hooks call `ScanHeuristics` for the packets detect.py
hands over (TCP with flags SYN, NULL, FIN or XMAS; UDP that is not DNS). State is a set of
`WindowTable`s keyed by packed addresses, sliding over SCAN_WINDOW seconds of packet time.

- port_scanning: more than PORT_SCANNING_THRESHOLD distinct TCP dst ports per (src, dst) →
  `IP` event, trail = src, info `potential port scanning`. Bare ACK never counts (an ACK sweep
  is what ordinary established traffic looks like).
- udp_scanning: more than UDP_SCANNING_THRESHOLD distinct UDP dst ports per (src, dst) →
  `potential udp scanning`. Replies from a service port (< 1024) to an ephemeral port (>= 1024)
  are not counted: a busy QUIC/NTP server answering many client sockets is not a scanner.
- infection: more than INFECTION_SCANNING_THRESHOLD distinct dst addresses per (src, port) for
  SYNs to the worm ports → `PORT` event, trail = port, info `potential infection`. Only sources
  in the monitored network count: a private/local address, or the most common /16 (IPv6: /32)
  prefix among scanning sources (the original's "local prefix").
Whitelisted sources never alert (checked only when a threshold is crossed, so it costs nothing
per packet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.addr import ip_text, is_local
from core.events.event import Event, TrailType
from core.heuristics.state import WindowTable

REFERENCE = "(heuristic)"
INFECTION_PORTS = frozenset((135, 139, 445, 1433, 3389, 6379, 6892, 6893, 6901))
SCAN_FLAGS = frozenset((0x02, 0x00, 0x01, 0x29))  # SYN, NULL, FIN, XMAS (FIN|PSH|URG)
SYN = 0x02
SCAN_TRACK_PER_KEY = 1024
SCAN_MAX_KEYS = 50000
PREFIX_MAX_KEYS = 4096


class ScanHeuristics:
    """Port, UDP and infection scan counting over a sliding window."""

    def __init__(self, config: Any, whitelist: Any, emit: Callable[[Event], None],
                 enabled: Callable[[str], bool]) -> None:
        window = int(config.get("SCAN_WINDOW", 30))
        self.whitelist = whitelist
        self.emit = emit
        self.use_port = enabled("port_scanning")
        self.use_udp = enabled("udp_scanning")
        self.use_infection = enabled("infection")
        self.ports = WindowTable("port_scanning", window, config.get("PORT_SCANNING_THRESHOLD", 10),
                                 SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS)
        self.udp_ports = WindowTable("udp_scanning", window, config.get("UDP_SCANNING_THRESHOLD", 10),
                                     SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS)
        self.infection = WindowTable("infection", window, config.get("INFECTION_SCANNING_THRESHOLD", 32),
                                     SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS)
        # prefix of infection-port SYN sources -> count (the original's inferred local prefix)
        self.prefixes: dict[bytes, int] = {}
        self.prefixes_refused = 0

    def tables(self) -> list[WindowTable]:
        return [self.ports, self.udp_ports, self.infection]

    def tcp(self, sec: int, usec: int, d: Any) -> None:
        flags = d.flags
        if flags not in SCAN_FLAGS:
            return
        src = d.src
        dport = d.dport
        if self.use_port and self.ports.observe(src + d.dst, dport, sec):
            self._alert(sec, usec, d, "TCP", TrailType.IP, None, "potential port scanning")
        if flags == SYN and dport in INFECTION_PORTS and self.use_infection:
            prefix = src[:2] if len(src) == 4 else src[:4]
            prefixes = self.prefixes
            if prefix in prefixes:
                prefixes[prefix] += 1
            elif len(prefixes) < PREFIX_MAX_KEYS:
                prefixes[prefix] = 1
            else:
                self.prefixes_refused += 1
            if self.infection.observe(src + dport.to_bytes(2, "big"), d.dst, sec) and self._local_source(src):
                self._alert(sec, usec, d, "TCP", TrailType.PORT, str(dport), "potential infection")

    def udp(self, sec: int, usec: int, d: Any) -> None:
        if not self.use_udp:
            return
        dport = d.dport
        if d.sport < 1024 <= dport:
            return
        if self.udp_ports.observe(d.src + d.dst, dport, sec):
            self._alert(sec, usec, d, "UDP", TrailType.IP, None, "potential udp scanning")

    def _local_source(self, src: bytes) -> bool:
        if is_local(src):
            return True
        prefix = src[:2] if len(src) == 4 else src[:4]
        if not self.prefixes:
            return False
        return max(self.prefixes.items(), key=lambda pair: pair[1])[0] == prefix

    def _alert(self, sec: int, usec: int, d: Any, proto: str, kind: str, trail: str | None, info: str) -> None:
        if self.whitelist is not None and self.whitelist.ip(d.src):
            return
        src = ip_text(d.src)
        self.emit(Event(sec, usec, src, d.sport, ip_text(d.dst), d.dport, proto, kind, trail or src, info,
                        REFERENCE))

    def expire(self, sec: int) -> None:
        for table in self.tables():
            table.expire(sec)
