"""Condensing of noisy event classes (scans, scanners, attackers, reputation, user agents).

Where it sits: the first stateful stage of the event pipeline (after the filters, before the
throttle). Events whose info contains one of CONDENSE_KEYWORDS are buffered per (src_ip, trail)
and leave as ONE event when the key's first event is CONDENSE_PERIOD seconds old (packet time),
when a key holds MAX_CONDENSED_EVENTS, or at flush. The merged event keeps the first event's
time, type, trail, info and reference; src_port, dst_ip, dst_port and proto become sorted,
comma-joined lists of the distinct values. Nothing is ever dropped: at MAX_KEYS the oldest key is
released early (its merged event goes on) and `early` counts it.
"""

from __future__ import annotations

from core.events.event import Event

CONDENSE_KEYWORDS = ("attacker", "reputation", "scanner", "user agent", "tor exit", "port scanning",
                     "potential infection")
CONDENSE_PERIOD = 10
MAX_CONDENSED_EVENTS = 1000
MAX_KEYS = 10000

Item = tuple[Event, "bytes | None"]


def _sort_key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


def merge(events: list[Event]) -> Event:
    """One event standing for several with the same (src_ip, trail)."""
    first = events[0]
    if len(events) == 1:
        return first

    def joined(values: list[object]) -> str:
        distinct = {str(value) for value in values if value not in (None, "", 0, "-")}
        return ",".join(sorted(distinct, key=_sort_key))

    return first._replace(
        src_port=joined([e.src_port for e in events]),
        dst_ip=joined([e.dst_ip for e in events]),
        dst_port=joined([e.dst_port for e in events]),
        proto=joined([e.proto for e in events]),
    )


class Condenser:
    """push/tick/flush stage; see the module docstring."""

    def __init__(self, period: int = CONDENSE_PERIOD, max_events: int = MAX_CONDENSED_EVENTS,
                 max_keys: int = MAX_KEYS, keywords: tuple[str, ...] = CONDENSE_KEYWORDS) -> None:
        self.period = period
        self.max_events = max_events
        self.max_keys = max_keys
        self.keywords = keywords
        # (src_ip, trail) -> [first_sec, events, first packet]; dict order = age order
        self.buffers: dict[tuple[str, str], list] = {}
        self.condensed = 0
        self.early = 0

    def _noisy(self, info: str) -> bool:
        low = info.lower()
        return any(keyword in low for keyword in self.keywords)

    def push(self, event: Event, packet: bytes | None) -> list[Item]:
        if not event.info or not self._noisy(event.info):
            return [(event, packet)]
        key = (event.src_ip, event.trail)
        entry = self.buffers.get(key)
        out: list[Item] = []
        if entry is None:
            if len(self.buffers) >= self.max_keys:
                oldest = next(iter(self.buffers))
                out.append(self._release(oldest))
                self.early += 1
            entry = self.buffers[key] = [event.sec, [], packet]
        entry[1].append(event)
        self.condensed += 1
        if len(entry[1]) >= self.max_events:
            out.append(self._release(key))
        return out

    def _release(self, key: tuple[str, str]) -> Item:
        _, events, packet = self.buffers.pop(key)
        return merge(events), packet

    def tick(self, sec: int) -> list[Item]:
        out: list[Item] = []
        while self.buffers:
            key, entry = next(iter(self.buffers.items()))
            if sec - entry[0] < self.period:
                break
            out.append(self._release(key))
        return out

    def flush(self) -> list[Item]:
        return [self._release(key) for key in list(self.buffers)]
