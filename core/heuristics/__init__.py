"""Heuristics: detection of threats no trail names (scans, DNS anomalies, web attacks).

Where it sits: detect.py calls the hooks below on a `Heuristics` object for the packets each hook
is about; the engine keeps bounded per-host state and emits `Event`s through the event pipeline
it was built with. `Heuristics` itself is the disabled engine (USE_HEURISTICS false): every hook
does nothing, so detect.py never branches on configuration.

Hooks are `Callable` attributes (types below); all take packet time `sec, usec` and the `Decoded`
packet `d` (core/decode), DNS hooks a `DnsMessage`, HTTP hooks an `HttpRequest`/`HttpResponse`
(core/protocols):
- `tcp(sec, usec, d)`: TCP packets whose flags are SYN only, NULL, FIN only or XMAS (port and
  infection scan counting; ACK traffic never reaches it).
- `udp(sec, usec, d)`: UDP packets that are not DNS (UDP scan counting).
- `dns_query(sec, usec, d, msg) -> bool`: every DNS query; True means "only the name's own exact
  trail for this name" (the DNS exhaustion rule).
- `dns_response(sec, usec, d, msg)`: every DNS response (NXDOMAIN floods, DGA, sinkhole/parked).
- `domain(name) -> (trail, info) | None`: called at step 5 of the domain check order (long domain).
- `http_request(sec, usec, d, request)` / `http_response(sec, usec, d, response)`.
Methods: `syn_shortcut()` / `udp_shortcut()`: the port-scan / UDP-scan table for clean SYNs /
datagrams counted before the hooks run (the compiled batch walker, core/accel/_decode.c), or None;
`exhaustion_shortcut()`: the DNS-exhaustion window for queries the compiled DNS path handles
without calling `dns_query` (core/accel/_dns.c), or None; `request_shortcut()`: the same for the
request heads the compiled HTTP path handles without calling `http_request` (core/accel/_http.c); `tick(sec)`: packet time advanced, expire windows; `swap_store(store)`: the trails were
reloaded, later lookups use the new store; `stats()`: per-table size and cap counters (metrics).
`frame` is set by detect.Detector to a callable returning the raw frame of the packet being
handled; engines pass it with their events so plugins see the packet that raised them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from core.decode.packet import Decoded
from core.protocols.dns import DnsMessage
from core.protocols.http import HttpRequest, HttpResponse
from core.trails.store import TrailStore

PacketHook = Callable[[int, int, Decoded], None]
DnsQueryHook = Callable[[int, int, Decoded, DnsMessage], bool]
DnsResponseHook = Callable[[int, int, Decoded, DnsMessage], None]
DomainHook = Callable[[str], tuple[str, str] | None]
HttpRequestHook = Callable[[int, int, Decoded, HttpRequest], None]
HttpResponseHook = Callable[[int, int, Decoded, HttpResponse], None]
# A port window as core/accel/_decode.c counts in it (SYNs, datagrams): (table, threshold, key cap,
# destination ports always handed to the hooks, packet second of the next expiry)
PortCountShortcut = tuple[dict[Hashable, Any], int, int, frozenset[int], int]
# The DNS-exhaustion window as core/accel/_dns.c query_seen steps it: (table, threshold, key cap,
# window seconds)
ExhaustionShortcut = tuple[dict[str, list[Any]], int, int, int]
# What core/accel/_http.c request_seen reads of the HTTP request heuristics (HttpHeuristics.request_shortcut)
RequestShortcut = tuple[Any, ...]


def _no_packet(sec: int, usec: int, d: Decoded) -> None:
    return None


def _no_skip(sec: int, usec: int, d: Decoded, msg: DnsMessage) -> bool:
    return False


def _no_dns(sec: int, usec: int, d: Decoded, msg: DnsMessage) -> None:
    return None


def _no_domain(name: str) -> tuple[str, str] | None:
    return None


def _no_request(sec: int, usec: int, d: Decoded, request: HttpRequest) -> None:
    return None


def _no_response(sec: int, usec: int, d: Decoded, response: HttpResponse) -> None:
    return None


def _no_frame() -> bytes | None:
    return None


class Heuristics:
    """The disabled heuristic engine: every hook is a no-op. Engines bind the hooks to their own
    functions (plain attributes, so detect.py makes one call per hook and nothing more)."""

    enabled = False

    def __init__(self) -> None:
        self.tcp: PacketHook = _no_packet
        self.udp: PacketHook = _no_packet
        self.dns_query: DnsQueryHook = _no_skip
        self.dns_response: DnsResponseHook = _no_dns
        self.domain: DomainHook = _no_domain
        self.http_request: HttpRequestHook = _no_request
        self.http_response: HttpResponseHook = _no_response
        self.frame: Callable[[], bytes | None] = _no_frame

    def syn_shortcut(self) -> PortCountShortcut | None:
        """What the compiled batch walker needs to count clean SYNs' ports itself (see
        core/heuristics/scan.py); None: no port-scan counting, every SYN is handled here."""
        return None

    def udp_shortcut(self) -> PortCountShortcut | None:
        """The same for clean UDP datagrams and the UDP-scan window; None: not counted in C."""
        return None

    def request_shortcut(self) -> RequestShortcut | None:
        """What the compiled HTTP request path (core/accel/_http.c request_seen) needs to prove
        that `http_request` reports nothing and to apply its one change (the web-scan window);
        None: `http_request` does nothing. An engine binding `http_request` must answer it."""
        return None

    def exhaustion_shortcut(self) -> ExhaustionShortcut | None:
        """What the compiled DNS query path (core/accel/_dns.c query_seen) needs to step a query
        through the DNS-exhaustion window as `dns_query` would; None: `dns_query` never floods
        and keeps no state (no window to step)."""
        return None

    def tick(self, sec: int) -> None:
        return None

    def swap_store(self, store: TrailStore) -> None:
        return None

    def stats(self) -> dict[str, dict[str, int]]:
        return {}
