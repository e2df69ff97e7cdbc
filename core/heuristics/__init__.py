"""Heuristics: detection of threats no trail names (scans, DNS anomalies, web attacks).

Where it sits: detect.py calls the hooks below on a `Heuristics` object for the packets each hook
is about; the engine keeps bounded per-host state and emits `Event`s through the event pipeline
it was built with. `Heuristics` itself is the disabled engine (USE_HEURISTICS false): every hook
does nothing, so detect.py never branches on configuration.

Hooks (all take packet time `sec, usec` and the `Decoded` packet `d`, see core/decode):
- `tcp(sec, usec, d)`: TCP packets whose flags are SYN only, NULL, FIN only or XMAS (port and
  infection scan counting; ACK traffic never reaches it).
- `udp(sec, usec, d)`: UDP packets that are not DNS (UDP scan counting).
- `dns_query(sec, usec, d, msg) -> bool`: every DNS query; True means "only the name's own exact
  trail for this name" (the DNS exhaustion rule).
- `dns_response(sec, usec, d, msg)`: every DNS response (NXDOMAIN floods, DGA, sinkhole/parked).
- `domain(name) -> (trail, info) | None`: called at step 5 of the domain check order (long domain).
- `http_request(sec, usec, d, request)` / `http_response(sec, usec, d, response)`.
- `tick(sec)`: packet time advanced; expire windows.
- `swap_store(store)`: the trails were reloaded; later lookups use the new store.
- `stats()`: per-table size and cap counters (metrics).
`frame` is set by detect.Detector to a callable returning the raw frame of the packet being
handled; engines pass it with their events so plugins see the packet that raised them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Heuristics:
    """The disabled heuristic engine: every hook is a no-op. Real engines subclass it."""

    enabled = False
    frame: Callable[[], bytes | None] = staticmethod(lambda: None)

    def tcp(self, sec: int, usec: int, d: Any) -> None:
        return None

    def udp(self, sec: int, usec: int, d: Any) -> None:
        return None

    def dns_query(self, sec: int, usec: int, d: Any, msg: Any) -> bool:
        return False

    def dns_response(self, sec: int, usec: int, d: Any, msg: Any) -> None:
        return None

    def domain(self, name: str) -> tuple[str, str] | None:
        return None

    def http_request(self, sec: int, usec: int, d: Any, request: Any) -> None:
        return None

    def http_response(self, sec: int, usec: int, d: Any, response: Any) -> None:
        return None

    def tick(self, sec: int) -> None:
        return None

    def swap_store(self, store: Any) -> None:
        return None

    def stats(self) -> dict[str, dict[str, int]]:
        return {}
