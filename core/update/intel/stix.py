"""STIX 2.1 objects -> trails: the collection shared by `stix` bundles and `taxii` collections.

Where it sits: stix.py (a bundle by URL or file path) and taxii.py (a TAXII 2.1 collection) ->
**StixCollection** (indicators with their trail keys, the names of related malware and intrusion
sets, `indicates` relationships) -> trails `{key: (info, reference)}` -> the runner (run.py).

An indicator is loaded when its `pattern_type` is `stix`, it is not `revoked`, its `valid_until`
is not past, and its pattern maps to at least one trail (pattern.py); the reasons for the rest
are counted. Patterns are parsed once per indicator version: an indicator seen again with the
same `modified` keeps its keys (TAXII refreshes, re-downloaded bundles with a kept state).
"""

from __future__ import annotations

import datetime
from typing import Any

from core.update.feeds import FeedContext, FeedError, FeedSkipped, Trails, malware_info
from core.update.intel.mapping import IntelStats, actor_info, info_for, info_for_tags
from core.update.intel.pattern import NOT_INSTALLED, available, pattern_keys
from core.update.intel.source import IntelSource, StateFiles, load_json, read_body

INSTALL_HINT = f"{NOT_INSTALLED}: install requirements-intel.txt (pip install stix2-patterns)"
_ACTOR_TYPES = ("intrusion-set", "threat-actor")
_PATTERN_TYPES = ("snort", "suricata", "yara", "sigma", "pcre", "spl", "stix")


def timestamp(value: Any) -> float | None:
    """Seconds since the epoch of a STIX timestamp, None when absent or malformed."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


class StixCollection:
    """Indicators (id -> modified, keys, tag info, valid_until), names (SDO id -> info) and links
    (indicator id -> SDO ids), serialisable as a source's state."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.indicators: dict[str, list[Any]] = dict(state.get("indicators") or {})
        self.names: dict[str, str] = dict(state.get("names") or {})
        self.links: dict[str, list[str]] = dict(state.get("links") or {})

    def state(self) -> dict[str, Any]:
        return {"indicators": self.indicators, "names": self.names, "links": self.links}

    def add(self, obj: Any, stats: IntelStats) -> None:
        """One STIX object (anything else is counted as malformed)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or not isinstance(obj.get("id"), str):
            stats.skip("malformed object")
            return
        kind, oid = obj["type"], obj["id"][:128]
        if kind == "indicator":
            self._indicator(oid, obj, stats)
        elif kind == "relationship":
            source, target = obj.get("source_ref"), obj.get("target_ref")
            if obj.get("relationship_type") == "indicates" and isinstance(source, str) and isinstance(target, str):
                targets = self.links.setdefault(source[:128], [])
                if obj.get("revoked") is True:
                    if target in targets:
                        targets.remove(target)
                elif target not in targets and len(targets) < 16:
                    targets.append(target[:128])
        elif kind in ("malware", *_ACTOR_TYPES):
            name = obj.get("name")
            if obj.get("revoked") is True or not isinstance(name, str):
                self.names.pop(oid, None)
            else:
                self.names[oid] = malware_info(name[:128], "malware") if kind == "malware" else actor_info(name[:128])

    def _indicator(self, oid: str, obj: dict[str, Any], stats: IntelStats) -> None:
        if obj.get("revoked") is True:
            self.indicators.pop(oid, None)
            stats.skip("revoked")
            return
        pattern_type = obj.get("pattern_type", "stix")
        if pattern_type != "stix":
            stats.skip(f"pattern type {pattern_type if pattern_type in _PATTERN_TYPES else 'other'}")
            return
        modified = obj.get("modified") if isinstance(obj.get("modified"), str) else ""
        known = self.indicators.get(oid)
        if known is not None and known[0] == modified:
            return
        keys, reasons = pattern_keys(obj.get("pattern"))  # type: ignore[arg-type]
        for reason in reasons:
            stats.skip(reason)
        if not keys:
            self.indicators.pop(oid, None)
            return
        labels = [label for label in obj.get("labels") or [] if isinstance(label, str)][:64] \
            if isinstance(obj.get("labels"), list) else []
        until = timestamp(obj.get("valid_until"))
        self.indicators[oid] = [modified, keys[:1024], info_for_tags(labels), until]

    def trails(self, reference: str, stats: IntelStats, now: float) -> Trails:
        """The trails of every live indicator (expired ones counted and dropped from the state)."""
        trails: Trails = {}
        pairs: dict[str, tuple[str, str]] = {}
        for oid in list(self.indicators):
            _modified, keys, tag_info, until = self.indicators[oid]
            if until is not None and until < now:
                del self.indicators[oid]
                stats.skip("expired (valid_until)")
                continue
            names = [self.names[target] for target in self.links.get(oid, ()) if target in self.names]
            info = info_for(names, [])
            if not names and tag_info:
                info = tag_info
            pair = pairs.setdefault(info, (info, reference))
            stats.loaded += 1
            for key in keys:
                trails[key] = pair
                stats.ids[key] = oid
        stats.keys = len(trails)
        return trails


def bundle_objects(data: Any, what: str) -> list[Any]:
    """The `objects` of a STIX bundle; anything else is a FeedError."""
    if not isinstance(data, dict) or data.get("type") != "bundle":
        raise FeedError(f"{what}: not a STIX bundle")
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        raise FeedError(f"{what}: bundle objects is not a list")
    return objects


def fetch(source: IntelSource, ctx: FeedContext, states: StateFiles, stats: IntelStats, now: float) -> Trails:
    """A STIX 2.1 bundle by URL or file path. The parsed keys are kept per indicator version, so a
    re-downloaded bundle only parses what changed."""
    if not available():
        raise FeedSkipped(INSTALL_HINT)
    data = load_json(read_body(ctx, source.url, "bundle"), "bundle")
    objects = bundle_objects(data, "bundle")
    previous = StixCollection(states.load(source.cache_name))
    collection = StixCollection()
    for obj in objects:  # carry forward the keys of unchanged indicators, without parsing again
        if isinstance(obj, dict) and obj.get("type") == "indicator" and isinstance(obj.get("id"), str):
            known = previous.indicators.get(obj["id"])
            if known is not None and known[0] == obj.get("modified") and obj.get("revoked") is not True:
                collection.indicators[obj["id"]] = known
                continue
        collection.add(obj, stats)
    trails = collection.trails(source.reference, stats, now)
    if not trails:
        raise FeedError("no indicator in the bundle maps to a trail")
    states.save(source.cache_name, collection.state())
    return trails
