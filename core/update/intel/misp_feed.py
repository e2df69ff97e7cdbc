"""MISP feed (`manifest.json` + one `<uuid>.json` per event) -> trails; only changed events downloaded.

Where it sits: INTEL_SOURCES `misp-feed <feed URL> [user=..] [password=..|env:VAR] [name=..]` (the
format CIRCL and botvrij publish, and this server's /intel/misp, which takes HTTP Basic) -> runner (run.py) -> **misp_feed.fetch** -> trails.

The manifest maps event UUIDs to their `timestamp`; an event is downloaded when it is new or its
timestamp changed since the last fetch, and the trail keys of every event are kept in the
source's state file between updates. Events gone from the manifest are dropped. An event that
fails to download keeps its previous keys (and is asked again next time). Attributes load when
`to_ids` is set (mapping.py); the info comes from the attribute's tags, else the event's tags and
galaxy clusters (`<family> (malware)`, `<actor> (apt)`, `phishing`).
"""

from __future__ import annotations

from typing import Any

from core.update.feeds import FeedContext, FeedError, Trails
from core.update.intel.mapping import (
    IntelStats,
    info_for_tags,
    misp_attribute_keys,
    object_variant,
    tag_names,
)
from core.update.intel.source import IntelSource, StateFiles, basic_auth, load_json, read_body

MAX_ATTRIBUTES = 1_000_000  # per event


def _uuid(text: object) -> str | None:
    if not isinstance(text, str) or len(text) != 36:
        return None
    if any(c not in "0123456789abcdef-" for c in text.lower()):
        return None
    return text.lower()


def event_tags(event: dict[str, Any]) -> list[str]:
    """The event's tag names plus the tag names of its galaxy clusters."""
    tags = tag_names(event.get("Tag"))
    galaxies = event.get("Galaxy")
    if isinstance(galaxies, list):
        for galaxy in galaxies[:64]:
            clusters = galaxy.get("GalaxyCluster") if isinstance(galaxy, dict) else None
            for cluster in clusters[:64] if isinstance(clusters, list) else []:
                if isinstance(cluster, dict) and isinstance(cluster.get("tag_name"), str):
                    tags.append(cluster["tag_name"])
    return tags


def event_rows(event: Any, stats: IntelStats) -> dict[str, list[str]]:
    """{info: [trail keys]} of one MISP event dict (`{"Event": {...}}` or the event itself); grouped
    by info, as the state keeps them (one info string per event, not one per attribute)."""
    if isinstance(event, dict) and isinstance(event.get("Event"), dict):
        event = event["Event"]
    if not isinstance(event, dict):
        stats.skip("malformed event")
        return {}
    default = info_for_tags(event_tags(event))
    # (attribute, the ja4-type of its object): a `ja4-plus` object's fingerprint needs its sibling
    plain = event.get("Attribute")
    attributes: list[tuple[Any, str | None]] = [(attribute, None) for attribute in plain] if isinstance(plain, list) else []
    objects = event.get("Object")
    for obj in objects if isinstance(objects, list) else []:
        if isinstance(obj, dict) and isinstance(obj.get("Attribute"), list):
            variant = object_variant(obj)
            attributes.extend((attribute, variant) for attribute in obj["Attribute"])
    rows: dict[str, list[str]] = {}
    for attribute, variant in attributes[:MAX_ATTRIBUTES]:
        keys = misp_attribute_keys(attribute, stats, variant)
        if not keys:
            continue
        stats.loaded += 1
        info = info_for_tags(tag_names(attribute.get("Tag"))) or default or "malicious"
        rows.setdefault(info, []).extend(keys)
    return rows


def _timestamp(entry: Any) -> str:
    value = entry.get("timestamp") if isinstance(entry, dict) else None
    return str(value)[:20] if isinstance(value, str | int) else ""


def fetch(source: IntelSource, ctx: FeedContext, states: StateFiles, stats: IntelStats, now: float) -> Trails:
    base = source.url.rstrip("/")
    if base.endswith("/manifest.json"):
        base = base[: -len("/manifest.json")]
    headers = basic_auth(source)  # user= / password=: a feed behind HTTP Basic (another server's /intel/misp)
    manifest = load_json(read_body(ctx, f"{base}/manifest.json", "manifest", headers), "manifest")
    if not isinstance(manifest, dict):
        raise FeedError("manifest: not an object of events")
    known = states.load(source.cache_name).get("events")
    previous: dict[str, Any] = known if isinstance(known, dict) else {}
    events: dict[str, list[Any]] = {}
    downloaded = failed = 0
    for raw_uuid, entry in manifest.items():
        uuid = _uuid(raw_uuid)
        if uuid is None:
            stats.skip("malformed manifest entry")
            continue
        stamp = _timestamp(entry)
        old = previous.get(uuid)
        if isinstance(old, list) and len(old) == 2 and old[0] == stamp and stamp:
            events[uuid] = old
            continue
        try:
            body = read_body(ctx, f"{base}/{uuid}.json", "event", headers)
            rows = event_rows(load_json(body, "event"), stats)
            downloaded += 1
        except FeedError:
            failed += 1
            if isinstance(old, list) and len(old) == 2:
                events[uuid] = ["", old[1]]  # keep the keys; an empty stamp asks again next time
            continue
        events[uuid] = [stamp, rows]
    if failed and not downloaded and not events:
        raise FeedError(f"{failed} event downloads failed")
    if failed:
        stats.skip("event download failed", failed)
    states.save(source.cache_name, {"events": events})
    trails: Trails = {}
    pairs: dict[str, tuple[str, str]] = {}
    reference = source.reference
    for uuid, (_stamp, rows) in events.items():
        for info, keys in rows.items() if isinstance(rows, dict) else ():
            pair = pairs.setdefault(info, (info, reference))
            for key in keys:
                trails[key] = pair
                stats.ids[key] = uuid
    stats.keys = len(trails)
    if not trails:
        raise FeedError("no attribute in the feed maps to a trail")
    return trails
