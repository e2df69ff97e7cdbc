"""The heuristic engine: one object behind the hooks of `core.heuristics.Heuristics`.

Where it sits: core/assemble.py builds it with `build_heuristics(config, store, whitelist, events)`
and hands it to the Detector (core/detect/detector.py), which calls the hooks; events go out through `events.emit(event, None)`.
USE_HEURISTICS false gives the no-op `Heuristics`.

The registry below is the single explicit list of heuristics: each name can be switched off with
DISABLED_HEURISTICS (comma separated). Names kept from the original: port_scanning,
udp_scanning, infection, web_scanning, dns_exhaustion, long_domain; the others are ours.
Unknown names in DISABLED_HEURISTICS are rejected at startup (a typo must not silently leave a
heuristic on).
"""

from __future__ import annotations

from core.config import Config, ConfigError, split_list
from core.events import EventSink
from core.events.event import Event
from core.heuristics import ExhaustionShortcut, Heuristics, PortCountShortcut, RequestShortcut
from core.heuristics.dns import DnsHeuristics
from core.heuristics.http import HttpHeuristics
from core.heuristics.patterns import load_patterns
from core.heuristics.scan import ScanHeuristics
from core.trails.store import TrailStore
from core.trails.whitelist import Whitelist
from core.update.publish import list_path

REGISTRY: dict[str, str] = {
    "port_scanning": "TCP port scans (SYN, NULL, FIN, XMAS) per (src, dst) over SCAN_WINDOW",
    "udp_scanning": "UDP port scans per (src, dst) over SCAN_WINDOW",
    "infection": "worm-like SYN sweeps of one port across many hosts",
    "web_scanning": "many distinct first path segments per (src, dst) over SCAN_WINDOW",
    "dns_exhaustion": "random-subdomain floods against one base domain",
    "nxdomain": "excessive NXDOMAIN answers per name and per base domain",
    "dga": "DGA-like (high entropy / many consonants) NXDOMAIN names",
    "long_domain": "first label longer than 24 characters",
    "dns_sinkhole": "DNS answers pointing to sinkhole or parking addresses",
    "suspicious_request": "injection / traversal / RCE / scanner patterns in paths and bodies; path names",
    "user_agent": "scanner, exploit and malware User-Agents",
    "direct_download": "direct executable downloads from short file names",
    "http_response": "sinkhole responses, seized-domain pages, suspicious content types",
}
TICK_PERIOD = 10


class HeuristicEngine(Heuristics):
    """All heuristics, with bounded state; see the per-family modules for the rules."""

    enabled = True

    def __init__(self, config: Config, store: TrailStore, whitelist: Whitelist | None, events: EventSink) -> None:
        super().__init__()
        disabled = {name.lower() for name in split_list(config.DISABLED_HEURISTICS)}
        unknown = disabled - set(REGISTRY)
        if unknown:
            raise ConfigError("DISABLED_HEURISTICS", ", ".join(sorted(unknown)),
                              "unknown heuristic; known: " + ", ".join(REGISTRY))
        self.disabled = disabled
        self.events = events
        self.patterns = load_patterns(extra_ua_file=list_path(config.TRAILS_FILE, "ua"))

        def is_on(name: str) -> bool:
            return name not in disabled

        self.scan = ScanHeuristics(config, whitelist, self._emit, is_on)
        self.dns = DnsHeuristics(config, store, whitelist, self._emit, is_on)
        self.http = HttpHeuristics(config, whitelist, self.patterns, self._emit, is_on)
        # bind the hot hooks straight to the family methods: one call, no extra frame
        self.tcp = self.scan.tcp
        self.udp = self.scan.udp
        self.dns_query = self.dns.query
        self.dns_response = self.dns.response
        self.domain = self.dns.domain
        self.http_request = self.http.request
        self.http_response = self.http.response
        self.emitted = 0
        self._next_tick = -1

    def _emit(self, event: Event) -> None:
        self.emitted += 1
        self.events.emit(event, self.frame())

    def syn_shortcut(self) -> PortCountShortcut | None:
        return self.scan.syn_shortcut(self._next_tick)

    def udp_shortcut(self) -> PortCountShortcut | None:
        return self.scan.udp_shortcut(self._next_tick)

    def exhaustion_shortcut(self) -> ExhaustionShortcut | None:
        return self.dns.exhaustion_shortcut()

    def request_shortcut(self) -> RequestShortcut | None:
        return self.http.request_shortcut()

    def tick(self, sec: int) -> None:
        if sec < self._next_tick:
            return
        if self._next_tick >= 0:
            self.scan.expire(sec)
            self.http.web.expire(sec)
            self.dns.expire(sec)
        self._next_tick = sec + TICK_PERIOD

    def swap_store(self, store: TrailStore) -> None:
        self.dns.store = store

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-table size, cap and cap counters (for metrics and the bounded-state tests)."""
        out = {table.name: table.stats() for table in self.scan.tables()}
        out["web_scanning"] = self.http.web.stats()
        out["infection_prefixes"] = {"keys": len(self.scan.prefixes), "refused": self.scan.prefixes_refused}
        out["user_agent_cache"] = self.http.ua_cache.stats()
        out.update(self.dns.tables())
        return out


def build_heuristics(config: Config, store: TrailStore, whitelist: Whitelist | None,
                     events: EventSink) -> Heuristics:
    """The engine for this configuration (the no-op `Heuristics` when USE_HEURISTICS is off)."""
    if not config.USE_HEURISTICS:
        return Heuristics()
    return HeuristicEngine(config, store, whitelist, events)
