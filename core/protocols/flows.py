"""Bounded per-flow state for the reassembling parsers (TLS ClientHellos and server flights,
QUIC Initials, HTTP request heads).

Where it sits: under core/protocols/tls.py, quic.py and heads.py. A table keeps at most `max_flows` entries
in least-recently-fed order; before a new flow is admitted, entries idle for more than `ttl`
seconds of packet time are expired and, at the cap, the oldest is evicted. Both are counted in
`counters` next to the parser's own outcome counters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class FlowTable:
    """Base class: the bounded table, its counters and the admission rule."""

    outcomes: tuple[str, ...] = ()

    def __init__(self, max_flows: int, max_bytes: int, ttl: float) -> None:
        self.max_flows = max_flows
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._flows: OrderedDict[Hashable, Any] = OrderedDict()
        self.tracked = self._flows  # read-only view for callers' cheap emptiness test
        self.counters: dict[str, int] = dict.fromkeys(("evicted", "expired") + self.outcomes, 0)

    def __len__(self) -> int:
        return len(self._flows)

    def __contains__(self, flow_key: object) -> bool:
        return flow_key in self._flows

    @property
    def active(self) -> bool:
        """True while any flow is being reassembled (lets callers skip the per-packet lookup)."""
        return bool(self._flows)

    def _last_seen(self, entry: Any) -> float:
        """Packet time an entry was last fed (entries are `(state, time)` unless overridden)."""
        return float(entry[1])

    def _make_room(self, now: float) -> None:
        """Expire idle flows, then evict the least recently fed one when at the cap."""
        flows = self._flows
        limit = now - self.ttl
        while flows:
            oldest_key = next(iter(flows))
            if self._last_seen(flows[oldest_key]) >= limit:
                break
            del flows[oldest_key]
            self.counters["expired"] += 1
        if len(flows) >= self.max_flows:
            flows.popitem(last=False)
            self.counters["evicted"] += 1
