"""Event throttle: bounds repeated detections without ever losing a count.

Where it sits: the last stateful stage of the event pipeline, after condensing. Modes
(EVENT_THROTTLE_MODE):
- `summarize` (default): per (src_ip, trail) the first EVENT_THROTTLE_BURST events of a window of
  EVENT_THROTTLE_WINDOW seconds (packet time, starting at the key's first event) pass; the rest
  are counted, and when the window ends ONE summary event goes on: the last suppressed event with
  ` (+N throttled)` appended to its info, so the total is always recoverable from the log.
- `legacy`: the original's rule: within a bucket of EVENT_THROTTLE_WINDOW seconds a repeated
  (src_ip, trail) or (dst_ip, trail) is dropped silently.
- `off`: no throttling.
EVENT_THROTTLE_MAX_KEYS bounds the table. At the cap the OLDEST window is closed early (its summary
goes on now) to make room, so a flood of fresh keys can never erase an earlier count; `early`
counts those closes.
"""

from __future__ import annotations

from core.config import Config
from core.events.event import Event

Item = tuple[Event, "bytes | None"]


def summary_info(info: str, count: int) -> str:
    return f"{info} (+{count} throttled)"


class Throttle:
    """`summarize` mode; push/tick/flush stage."""

    def __init__(self, window: int = 60, burst: int = 3, max_keys: int = 50000) -> None:
        self.window = max(1, int(window))
        self.burst = max(1, int(burst))
        self.max_keys = max(1, int(max_keys))
        # key -> [window_start, passed, suppressed, last suppressed event, its packet]; dict order = age
        self.keys: dict[tuple[str, str], list] = {}
        self.suppressed = 0
        self.summaries = 0
        self.early = 0

    def push(self, event: Event, packet: bytes | None) -> list[Item]:
        key = (event.src_ip, event.trail)
        entry = self.keys.get(key)
        out: list[Item] = []
        if entry is not None and event.sec - entry[0] >= self.window:
            out.extend(self._close(key))
            entry = None
        if entry is None:
            if len(self.keys) >= self.max_keys:
                out.extend(self._close(next(iter(self.keys))))
                self.early += 1
            self.keys[key] = [event.sec, 1, 0, None, None]
            out.append((event, packet))
            return out
        if entry[1] < self.burst:
            entry[1] += 1
            out.append((event, packet))
            return out
        entry[2] += 1
        entry[3], entry[4] = event, packet
        self.suppressed += 1
        return out

    def _close(self, key: tuple[str, str]) -> list[Item]:
        _, _, count, last, packet = self.keys.pop(key)
        if not count:
            return []
        self.summaries += 1
        return [(last._replace(info=summary_info(last.info, count)), packet)]

    def tick(self, sec: int) -> list[Item]:
        out: list[Item] = []
        while self.keys:
            key, entry = next(iter(self.keys.items()))
            if sec - entry[0] < self.window:
                break
            out.extend(self._close(key))
        return out

    def flush(self) -> list[Item]:
        out: list[Item] = []
        for key in list(self.keys):
            out.extend(self._close(key))
        return out


class LegacyThrottle:
    """`legacy` mode: silent de-duplication of (address, trail) inside fixed buckets."""

    def __init__(self, window: int = 60, max_keys: int = 50000) -> None:
        self.window = max(1, int(window))
        self.max_keys = max(1, int(max_keys))
        self.bucket = -1
        self.seen: set[tuple[str, str]] = set()
        self.suppressed = 0
        self.overflow = 0

    def push(self, event: Event, packet: bytes | None) -> list[Item]:
        bucket = event.sec // self.window
        if bucket != self.bucket:
            self.bucket = bucket
            self.seen.clear()
        keys = ((event.src_ip, event.trail), (event.dst_ip, event.trail))
        if keys[0] in self.seen or keys[1] in self.seen:
            self.suppressed += 1
            return []
        if len(self.seen) + 2 > self.max_keys:
            self.overflow += 1  # table full: let it through rather than lose it
            return [(event, packet)]
        self.seen.update(keys)
        return [(event, packet)]

    def tick(self, sec: int) -> list[Item]:
        return []

    def flush(self) -> list[Item]:
        return []


def build_throttle(config: Config) -> Throttle | LegacyThrottle | None:
    mode = config.EVENT_THROTTLE_MODE
    window = config.EVENT_THROTTLE_WINDOW
    max_keys = config.EVENT_THROTTLE_MAX_KEYS
    if mode == "off":
        return None
    if mode == "legacy":
        return LegacyThrottle(window, max_keys)
    return Throttle(window, config.EVENT_THROTTLE_BURST, max_keys)
