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

from core.addr import ip_text, is_local
from core.config import Config
from core.decode.packet import Decoded
from core.events.event import Event, TrailType
from core.heuristics import PacketHook, PortCountShortcut
from core.heuristics.state import WindowTable
from core.trails.whitelist import Whitelist

REFERENCE = "(heuristic)"
INFECTION_PORTS = frozenset((135, 139, 445, 1433, 3389, 6379, 6892, 6893, 6901))
# SYN, NULL, FIN, XMAS (FIN|PSH|URG), never ACK: also what detect.py hands the scan hook and what
# its compiled pre-dispatch never skips as bulk
SCAN_FLAGS = frozenset((0x02, 0x00, 0x01, 0x29))
SYN = 0x02
SCAN_TRACK_PER_KEY = 1024
SCAN_MAX_KEYS = 50000
PREFIX_MAX_KEYS = 4096


class ScanHeuristics:
    """Port, UDP and infection scan counting over a sliding window."""

    def __init__(self, config: Config, whitelist: Whitelist | None, emit: Callable[[Event], None],
                 enabled: Callable[[str], bool]) -> None:
        window = config.SCAN_WINDOW
        self.whitelist = whitelist
        self.emit = emit
        self.use_port = enabled("port_scanning")
        self.use_udp = enabled("udp_scanning")
        self.use_infection = enabled("infection")
        self.ports = WindowTable("port_scanning", window, config.PORT_SCANNING_THRESHOLD,
                                 SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS, packed=True)
        self.udp_ports = WindowTable("udp_scanning", window, config.UDP_SCANNING_THRESHOLD,
                                     SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS, packed=True)
        self.infection = WindowTable("infection", window, config.INFECTION_SCANNING_THRESHOLD,
                                     SCAN_TRACK_PER_KEY, SCAN_MAX_KEYS)
        # prefix of infection-port SYN sources -> count (the original's inferred local prefix)
        self.prefixes: dict[bytes, int] = {}
        self.prefixes_refused = 0
        self.tcp = self._tcp_hook()
        self.udp = self._udp_hook()

    def tables(self) -> list[WindowTable]:
        return [self.ports, self.udp_ports, self.infection]

    # The hooks are closures over their tables: the hot path (every SYN, every non-DNS UDP
    # datagram) is one tuple unpack, one key and one counter call (a dict lookup and a store).

    def _port_counter(self, ports: WindowTable, proto: str, info: str) -> Callable[[int, int, Decoded, bytes, int], None]:
        """Count one destination port for a (src, dst) key of `ports`; alert when it crosses the
        threshold. A first port is stored as one integer (sec << 16 | port), promoted to a dict
        on the second; the table's slow paths run only for a new key or one above the threshold."""
        table = ports.table
        threshold = ports.threshold
        alert = self._alert

        def count(sec: int, usec: int, d: Decoded, key: bytes, dport: int) -> None:
            items = table.get(key)
            if items is None:
                if len(table) < ports.max_keys and threshold > 0:
                    table[key] = sec << 16 | dport
                elif ports.add(key, dport, sec):
                    alert(sec, usec, d, proto, TrailType.IP, None, info)
            elif items.__class__ is int:
                if items & 0xFFFF == dport:
                    table[key] = sec << 16 | dport
                elif ports.promote(key, items, dport, sec):
                    alert(sec, usec, d, proto, TrailType.IP, None, info)
            else:
                items[dport] = sec
                if len(items) > threshold and ports.crossed(key, items, sec):
                    alert(sec, usec, d, proto, TrailType.IP, None, info)

        return count

    def syn_shortcut(self, next_tick: int) -> PortCountShortcut | None:
        """The cases of `count` below that cannot alert (a new key; a key whose single observation
        is this port; a count that stays within the threshold), done by core/accel/_decode.c for
        clean SYNs without payload before this hook would see them: the table, its threshold and key cap
        (read per batch: tests shrink the cap), the ports whose SYNs must still come here (the
        infection ports, when that heuristic is on) and the packet second `next_tick` of the
        engine's next expiry, from which on packets must be counted here, after it, in order.
        None when port scans are not counted."""
        if not self.use_port:
            return None
        return _shortcut(self.ports, INFECTION_PORTS if self.use_infection else frozenset(), next_tick)

    def udp_shortcut(self, next_tick: int) -> PortCountShortcut | None:
        """`syn_shortcut` for the UDP-scan window: what core/accel/_decode.c needs to count clean
        datagrams' ports itself (replies from a service port to an ephemeral one count nothing,
        as in the hook below). None when UDP scans are not counted."""
        if not self.use_udp:
            return None
        return _shortcut(self.udp_ports, frozenset(), next_tick)

    def _tcp_hook(self) -> PacketHook:
        count = self._port_counter(self.ports, "TCP", "potential port scanning")
        use_port = self.use_port
        use_infection = self.use_infection
        infection = self._infection

        def tcp(sec: int, usec: int, d: Decoded) -> None:
            _, _, src, dst, _, dport, flags, _, _, _ = d
            if flags not in SCAN_FLAGS:
                return
            if use_port:
                count(sec, usec, d, src + dst, dport)
            if flags == SYN and dport in INFECTION_PORTS and use_infection:
                infection(sec, usec, d, src, dport)

        return tcp

    def _infection(self, sec: int, usec: int, d: Decoded, src: bytes, dport: int) -> None:
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

    def _udp_hook(self) -> PacketHook:
        count = self._port_counter(self.udp_ports, "UDP", "potential udp scanning")

        def udp(sec: int, usec: int, d: Decoded) -> None:
            _, _, src, dst, sport, dport, _, _, _, _ = d
            if sport < 1024 <= dport:
                return
            count(sec, usec, d, src + dst, dport)

        def off(sec: int, usec: int, d: Decoded) -> None:
            return None

        return udp if self.use_udp else off

    def _local_source(self, src: bytes) -> bool:
        if is_local(src):
            return True
        prefix = src[:2] if len(src) == 4 else src[:4]
        if not self.prefixes:
            return False
        return max(self.prefixes.items(), key=lambda pair: pair[1])[0] == prefix

    def _alert(self, sec: int, usec: int, d: Decoded, proto: str, kind: str, trail: str | None, info: str) -> None:
        if self.whitelist is not None and self.whitelist.ip(d.src):
            return
        src = ip_text(d.src)
        self.emit(Event(sec, usec, src, d.sport, ip_text(d.dst), d.dport, proto, kind, trail or src, info,
                        REFERENCE))

    def expire(self, sec: int) -> None:
        for table in self.tables():
            table.expire(sec)


def _shortcut(ports: WindowTable, handback: frozenset[int], next_tick: int) -> PortCountShortcut:
    """A port window as core/accel/_decode.c (portcount.h) reads it: its table, threshold and key
    cap (read per batch: tests shrink the cap), the destination ports it must hand back, and the
    packet second of the engine's next expiry."""
    return ports.table, ports.threshold, ports.max_keys, handback, next_tick
