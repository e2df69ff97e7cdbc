"""Event filters: whitelist, IGNORE_EVENTS_REGEX and ignore tuples (the first pipeline stage).

Where it sits: `EventPipeline.emit` calls each filter's `allow(event) -> bool` before condensing,
throttling and the sinks. `build_event_stages(config, whitelist)` builds the filters and the
stateful stages (condense, throttle) in their fixed order.

- whitelist: drop an event whose src or dst address is whitelisted, unless its type is DNS (a
  DNS event's addresses are the client and its resolver; the name decides).
- IGNORE_EVENTS_REGEX: searched case-insensitively in the text of the event tuple.
- ignore tuples `src_ip;src_port;dst_ip;dst_port` with `*` wildcards (any field may also be a
  CIDR), from data/ignore_events.txt plus the USER_IGNORELIST file.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable

from core.config import ROOT_DIR, Config, ConfigError
from core.events.event import Event, TrailType
from core.events.pipeline import Stage
from core.trails.whitelist import Whitelist

BUNDLED_IGNORELIST = os.path.join(ROOT_DIR, "data", "ignore_events.txt")
Filter = Callable[[Event], bool]


class WhitelistFilter:
    def __init__(self, whitelist: Whitelist) -> None:
        self.whitelist = whitelist
        self.dropped = 0

    def __call__(self, event: Event) -> bool:
        if event.type == TrailType.DNS:
            return True
        ip_text = self.whitelist.ip_text
        src = event.src_ip.split(",", 1)[0] if event.src_ip else ""
        if (src and ip_text(src)) or (event.dst_ip and ip_text(event.dst_ip)):
            self.dropped += 1
            return False
        return True

    allow = __call__


class RegexFilter:
    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern, re.IGNORECASE)
        self.dropped = 0

    def __call__(self, event: Event) -> bool:
        if self.regex.search(repr(tuple(event))):
            self.dropped += 1
            return False
        return True

    allow = __call__


class _Field:
    """One field of an ignore tuple: `*`, an exact value, or (addresses) a CIDR."""

    def __init__(self, text: str) -> None:
        self.any = text in ("", "*")
        self.text = text
        self.network = None
        if "/" in text:
            try:
                self.network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.network = None

    def match(self, value: object) -> bool:
        if self.any:
            return True
        text = "" if value is None else str(value)
        if text == self.text:
            return True
        if self.network is not None and text:
            try:
                return ipaddress.ip_address(text.split(",", 1)[0]) in self.network
            except ValueError:
                return False
        return False


class IgnoreTupleFilter:
    def __init__(self, rules: list[tuple[_Field, _Field, _Field, _Field]]) -> None:
        self.rules = rules
        self.dropped = 0

    @staticmethod
    def parse(lines: list[str], where: str) -> list[tuple[_Field, _Field, _Field, _Field]]:
        rules = []
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = [part.strip() for part in text.split(";")]
            if len(parts) != 4:
                raise ConfigError("USER_IGNORELIST", f"{where}:{number}: {text}",
                                  "expected src_ip;src_port;dst_ip;dst_port (use * for any)")
            rules.append((_Field(parts[0]), _Field(parts[1]), _Field(parts[2]), _Field(parts[3])))
        return rules

    def __call__(self, event: Event) -> bool:
        for src_ip, src_port, dst_ip, dst_port in self.rules:
            if (src_ip.match(event.src_ip) and src_port.match(event.src_port) and dst_ip.match(event.dst_ip)
                    and dst_port.match(event.dst_port)):
                self.dropped += 1
                return False
        return True

    allow = __call__


def load_ignore_rules(config: Config | None, bundled: str | None = BUNDLED_IGNORELIST) -> list[tuple[_Field, _Field, _Field, _Field]]:
    rules = []
    paths = [bundled] if bundled and os.path.exists(bundled) else []
    user = config.USER_IGNORELIST if config is not None else None
    if user:
        path = os.path.expanduser(user)
        paths.append(path if os.path.isabs(path) else os.path.join(ROOT_DIR, path))
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                rules.extend(IgnoreTupleFilter.parse(handle.read().splitlines(), path))
        except OSError as ex:
            raise ConfigError("USER_IGNORELIST", path, ex.strerror or str(ex)) from None
    return rules


def build_filters(config: Config, whitelist: Whitelist | None) -> list[Filter]:
    filters: list[Filter] = []
    if whitelist is not None and len(whitelist):
        filters.append(WhitelistFilter(whitelist))
    pattern = config.IGNORE_EVENTS_REGEX
    if pattern:
        filters.append(RegexFilter(pattern))
    rules = load_ignore_rules(config)
    if rules:
        filters.append(IgnoreTupleFilter(rules))
    return filters


def build_event_stages(config: Config, whitelist: Whitelist | None) -> tuple[list[Filter], list[Stage]]:
    """(filters, stages) for EventPipeline: whitelist/ignore filters, then condense, then throttle."""
    from core.events.condense import Condenser
    from core.events.throttle import build_throttle

    stages: list[Stage] = [Condenser()]
    throttle = build_throttle(config)
    if throttle is not None:
        stages.append(throttle)
    return build_filters(config, whitelist), stages
