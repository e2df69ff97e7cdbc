"""Bounded sliding-window counters shared by the heuristics (scan, web scan, DNS).

Where it sits: inside the heuristic engine; every table keyed by network input is one of these.
A `WindowTable` maps a key (packed bytes or a short string) to the distinct items seen for it
(dst ports, dst addresses, path segments, ...) with the packet second each was last seen. An
item counts while it is younger than `window` seconds, so the window slides: a slow scan spread
over the whole window is caught, unlike a tumbling window cut at fixed boundaries.

Most keys of a busy network are seen with one item only (a client fetching from one server, a
SYN to one port), so a key's first observation is stored without a dict: the int
`sec << 16 | item` in a `packed` table (items are ports), else the pair `(item, sec)`. A second,
different item turns it into the dict (`promote`); every reader goes through `_as_dict`/`_last`.

Bounds and the rule at the cap (so an attacker cannot flush his own evidence):
- at most `per_key` items per key: beyond that the oldest inserted item is dropped (the key has
  already crossed any threshold below the cap, so nothing is lost);
- at most `max_keys` keys: a new key at the cap first triggers a sweep (at most once per packet
  second) that drops expired keys and keys holding a single observation that never alerted;
  keys with evidence (several items, or an alert) are never evicted for a newcomer. If the table
  is still full the new key is refused and `refused` counts it.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import Any, Generic, Literal, TypeVar

V = TypeVar("V")


class Missing(enum.Enum):
    """`MISSING`: what `BoundedCache.get` returns for an absent key (an enum member, so that
    `is MISSING` narrows the type)."""

    MISSING = 0


MISSING = Missing.MISSING


class WindowTable:
    """key -> {item: last_sec}; alerted keys hold off for one window (`alerted`: key -> until).

    The hot path is `table.get(key)` then `items[item] = sec` and a length test: callers on the
    packet path inline it (see scan.py) and call `add` for a new key and `crossed` once the key
    holds more than `threshold` items. `observe` is the same thing as one call.
    """

    __slots__ = ("name", "window", "threshold", "per_key", "max_keys", "packed", "table", "alerted", "refused",
                 "evicted", "trimmed", "alerts", "_last_sweep")

    def __init__(self, name: str, window: int, threshold: int, per_key: int = 1024,
                 max_keys: int = 50000, packed: bool = False) -> None:
        self.name = name
        self.window = max(1, int(window))
        self.threshold = int(threshold)
        self.per_key = max(int(per_key), self.threshold + 2)
        self.max_keys = max(1, int(max_keys))
        # packed: items are ints < 65536 (ports) and a key's first observation is stored as the
        # int `sec << 16 | item` (no dict, nothing for the garbage collector) until a second
        # item; other tables store it as the pair (item, sec)
        self.packed = packed
        self.table: dict[Hashable, Any] = {}
        self.alerted: dict[Hashable, int] = {}
        self.refused = 0
        self.evicted = 0
        self.trimmed = 0
        self.alerts = 0
        self._last_sweep = -1

    def observe(self, key: Hashable, item: Hashable, sec: int) -> bool:
        """Record `item` for `key` at `sec`; True exactly when the key crosses the threshold
        (more than `threshold` distinct items inside the window) and has not alerted within
        the last window."""
        items = self.table.get(key)
        if items is None:
            return self.add(key, item, sec)
        if items.__class__ is not dict:
            return self.promote(key, items, item, sec)
        items[item] = sec
        if len(items) > self.threshold:
            return self.crossed(key, items, sec)
        return False

    def add(self, key: Hashable, item: Hashable, sec: int) -> bool:
        """A key not in the table yet (refused, and counted, when the table stays full)."""
        if len(self.table) >= self.max_keys and not self._make_room(sec):
            self.refused += 1
            return False
        self.table[key] = sec << 16 | item if self.packed and isinstance(item, int) else (item, sec)
        return self.threshold < 1

    def promote(self, key: Hashable, single: int | tuple[Hashable, int], item: Hashable, sec: int) -> bool:
        """A key with one observation seen again: same item → new time; another item → a real dict."""
        first: Hashable
        if isinstance(single, int):
            first, first_sec = single & 0xFFFF, single >> 16
            if first == item:
                self.table[key] = sec << 16 | first
                return False
        else:
            first, first_sec = single
            if first == item:
                self.table[key] = (first, sec)
                return False
        items = self.table[key] = {first: first_sec, item: sec}
        if len(items) > self.threshold:
            return self.crossed(key, items, sec)
        return False

    def crossed(self, key: Hashable, items: dict[Hashable, int], sec: int) -> bool:
        """The slow path once `items` (just updated at `sec`) holds more than `threshold` items."""
        if len(items) > self.per_key:
            del items[next(iter(items))]
            self.trimmed += 1
        if sec < self.alerted.get(key, 0):
            return False
        oldest = sec - self.window
        stale = [old for old, seen in items.items() if seen <= oldest]
        for old in stale:
            del items[old]
        if len(items) > self.threshold:
            self.alerted[key] = sec + self.window
            self.alerts += 1
            return True
        return False

    def count(self, key: Hashable, sec: int) -> int:
        """Distinct items of `key` inside the window ending at `sec` (tests, debugging)."""
        items = _as_dict(self.table.get(key))
        if items is None:
            return 0
        return sum(1 for seen in items.values() if seen > sec - self.window)

    def items(self, key: Hashable) -> list[Hashable]:
        return list(_as_dict(self.table.get(key)) or ())

    def _make_room(self, sec: int) -> bool:
        if sec == self._last_sweep:
            return False
        self._last_sweep = sec
        oldest = sec - self.window
        alerted = self.alerted
        doomed = [key for key, items in self.table.items()
                  if items.__class__ is int or ((items.__class__ is tuple or len(items) <= 1) and key not in alerted)
                  or _last(items) <= oldest]
        for key in doomed:
            del self.table[key]
            alerted.pop(key, None)
        self.evicted += len(doomed)
        return len(self.table) < self.max_keys

    def expire(self, sec: int) -> None:
        """Drop keys with no activity inside the window and ended hold-offs (called from tick)."""
        oldest = sec - self.window
        alerted = self.alerted
        for key in [key for key, until in alerted.items() if until <= sec]:
            del alerted[key]
        # _last(items) <= oldest, inlined (this walks every key each tick): a packed single
        # observation sec << 16 | item is stale below `packed_limit`
        packed_limit = (oldest + 1) << 16
        doomed = [key for key, items in self.table.items()
                  if (items < packed_limit if items.__class__ is int else items[1] <= oldest if items.__class__ is tuple
                      else max(items.values()) <= oldest) and key not in alerted]
        for key in doomed:
            del self.table[key]

    def __len__(self) -> int:
        return len(self.table)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.table), "max_keys": self.max_keys, "refused": self.refused,
                "evicted": self.evicted, "trimmed": self.trimmed, "alerts": self.alerts}


class BoundedCache(Generic[V]):
    """A small memo (key -> value) that is cleared when full; `resets` counts the clears.

    Used for pure functions of the input (UA verdicts, DGA label scores): clearing only costs
    recomputation, never a missed detection.
    """

    __slots__ = ("name", "limit", "data", "resets")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.data: dict[Hashable, V] = {}
        self.resets = 0

    def get(self, key: Hashable) -> V | Literal[Missing.MISSING]:
        return self.data.get(key, MISSING)

    def put(self, key: Hashable, value: V) -> None:
        if len(self.data) >= self.limit:
            self.data.clear()
            self.resets += 1
        self.data[key] = value

    def __len__(self) -> int:
        return len(self.data)

    def stats(self) -> dict[str, int]:
        return {"keys": len(self.data), "max_keys": self.limit, "resets": self.resets}


def _as_dict(items: Any) -> dict[Hashable, int] | None:
    """A key's items as {item: sec}, whatever form its observations are stored in."""
    if items.__class__ is int:
        return {items & 0xFFFF: items >> 16}
    if items.__class__ is tuple:
        return {items[0]: items[1]}
    return items


def _last(items: Any) -> int:
    """The last second a key was seen: its single observation's or its newest item's."""
    if items.__class__ is int:
        return items >> 16
    if items.__class__ is tuple:
        return items[1]
    return max(items.values())

