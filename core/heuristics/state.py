"""Bounded sliding-window counters shared by the heuristics (scan, web scan, DNS).

Where it sits: inside the heuristic engine; every table keyed by network input is one of these.
A `WindowTable` maps a key (packed bytes or a short string) to the distinct items seen for it
(dst ports, dst addresses, path segments, ...) with the packet second each was last seen. An
item counts while it is younger than `window` seconds, so the window slides: a slow scan spread
over the whole window is caught, unlike a tumbling window cut at fixed boundaries.

Bounds and the rule at the cap (so an attacker cannot flush his own evidence):
- at most `per_key` items per key: beyond that the oldest inserted item is dropped (the key has
  already crossed any threshold below the cap, so nothing is lost);
- at most `max_keys` keys: a new key at the cap first triggers a sweep (at most once per packet
  second) that drops expired keys and keys holding a single observation that never alerted;
  keys with evidence (several items, or an alert) are never evicted for a newcomer. If the table
  is still full the new key is refused and `refused` counts it.
"""

from __future__ import annotations

from collections.abc import Hashable


class WindowTable:
    """key -> {item: last_sec} with a per-key alert hold-off of one window."""

    __slots__ = ("name", "window", "threshold", "per_key", "max_keys", "table", "refused", "evicted",
                 "trimmed", "alerts", "_last_sweep")

    def __init__(self, name: str, window: int, threshold: int, per_key: int = 1024,
                 max_keys: int = 50000) -> None:
        self.name = name
        self.window = max(1, int(window))
        self.threshold = int(threshold)
        self.per_key = max(int(per_key), self.threshold + 2)
        self.max_keys = max(1, int(max_keys))
        # value: [items {item: last_sec}, last_sec, alert_until]
        self.table: dict[Hashable, list] = {}
        self.refused = 0
        self.evicted = 0
        self.trimmed = 0
        self.alerts = 0
        self._last_sweep = -1

    def observe(self, key: Hashable, item: Hashable, sec: int) -> bool:
        """Record `item` for `key` at `sec`; True exactly when the key crosses the threshold
        (more than `threshold` distinct items inside the window) and has not alerted within
        the last window."""
        entry = self.table.get(key)
        if entry is None:
            if len(self.table) >= self.max_keys and not self._make_room(sec):
                self.refused += 1
                return False
            self.table[key] = [{item: sec}, sec, 0]
            return self.threshold < 1
        items = entry[0]
        if item not in items and len(items) >= self.per_key:
            del items[next(iter(items))]
            self.trimmed += 1
        items[item] = sec
        entry[1] = sec
        if len(items) <= self.threshold or sec < entry[2]:
            return False
        oldest = sec - self.window
        stale = [old for old, seen in items.items() if seen <= oldest]
        for old in stale:
            del items[old]
        if len(items) > self.threshold:
            entry[2] = sec + self.window
            self.alerts += 1
            return True
        return False

    def count(self, key: Hashable, sec: int) -> int:
        """Distinct items of `key` inside the window ending at `sec` (tests, debugging)."""
        entry = self.table.get(key)
        if entry is None:
            return 0
        return sum(1 for seen in entry[0].values() if seen > sec - self.window)

    def items(self, key: Hashable) -> list[Hashable]:
        entry = self.table.get(key)
        return list(entry[0]) if entry else []

    def _make_room(self, sec: int) -> bool:
        if sec == self._last_sweep:
            return False
        self._last_sweep = sec
        oldest = sec - self.window
        doomed = [key for key, (items, last, alert_until) in self.table.items()
                  if last <= oldest or (len(items) <= 1 and alert_until == 0)]
        for key in doomed:
            del self.table[key]
        self.evicted += len(doomed)
        return len(self.table) < self.max_keys

    def expire(self, sec: int) -> None:
        """Drop keys with no activity inside the window (called from tick)."""
        oldest = sec - self.window
        doomed = [key for key, entry in self.table.items() if entry[1] <= oldest and entry[2] <= sec]
        for key in doomed:
            del self.table[key]

    def __len__(self) -> int:
        return len(self.table)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.table), "max_keys": self.max_keys, "refused": self.refused,
                "evicted": self.evicted, "trimmed": self.trimmed, "alerts": self.alerts}


class BoundedCache:
    """A small memo (key -> value) that is cleared when full; `resets` counts the clears.

    Used for pure functions of the input (UA verdicts, DGA label scores): clearing only costs
    recomputation, never a missed detection.
    """

    __slots__ = ("name", "limit", "data", "resets")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.data: dict[Hashable, object] = {}
        self.resets = 0

    def get(self, key: Hashable) -> object:
        return self.data.get(key, _MISSING)

    def put(self, key: Hashable, value: object) -> None:
        if len(self.data) >= self.limit:
            self.data.clear()
            self.resets += 1
        self.data[key] = value

    def __len__(self) -> int:
        return len(self.data)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.data), "max_keys": self.limit, "resets": self.resets}


_MISSING = object()
MISSING = _MISSING
