"""A MISP instance's REST API (`/attributes/restSearch`) -> trails.

Where it sits: INTEL_SOURCES `misp <instance URL> key=<key>|key=env:VAR [tags=a,!b] [last=30d]
[warninglist=1] [to_ids=1] [name=..]` -> runner (run.py) -> **misp.fetch** -> trails.

One POST of a JSON search (`returnFormat` json, `to_ids`, `tags` with `!` to exclude, `last`,
`enforceWarninglist`, `includeEventTags`), paged with `limit`/`page` until a short page (bounded
by MAX_PAGES). The answer `{"response": {"Attribute": [...]}}` maps attribute by attribute
(mapping.py), with the attribute's tags (event tags included) giving the info.
"""

from __future__ import annotations

from typing import Any

from core.update.feeds import FeedContext, FeedError, FeedSkipped, Trails
from core.update.intel.mapping import IntelStats, info_for_tags, ja4_variants, misp_attribute_keys, tag_names
from core.update.intel.source import IntelSource, StateFiles, load_json, secret

PAGE_SIZE = 50000
MAX_PAGES = 100


def search_body(source: IntelSource, page: int) -> dict[str, Any]:
    """The restSearch request for one page."""
    body: dict[str, Any] = {"returnFormat": "json", "includeEventTags": 1, "includeEventUuid": 1,
                            "to_ids": 0 if source.option("to_ids") in ("0", "false") else 1,
                            "enforceWarninglist": 0 if source.option("warninglist") in ("0", "false") else 1,
                            "limit": PAGE_SIZE, "page": page}
    tags = [tag for tag in (source.option("tags") or "").split(",") if tag]
    if tags:
        body["tags"] = tags
    if source.option("last"):
        body["last"] = source.option("last")
    return body


def attributes_of(data: Any) -> list[Any]:
    """The attribute list of a restSearch answer; anything else is a FeedError."""
    response = data.get("response") if isinstance(data, dict) else None
    if isinstance(response, list):  # older MISP: a list of {"Attribute": {...}}
        return [item.get("Attribute") for item in response if isinstance(item, dict)]
    if not isinstance(response, dict) or not isinstance(response.get("Attribute", []), list):
        raise FeedError("restSearch: not a MISP attribute answer")
    return list(response.get("Attribute", []))


def fetch(source: IntelSource, ctx: FeedContext, states: StateFiles, stats: IntelStats, now: float) -> Trails:
    key = secret(source.option("key"))
    if not key:
        raise FeedSkipped("no MISP key (key= or key=env:VAR)")
    url = source.url.rstrip("/") + "/attributes/restSearch"
    headers = {"Authorization": key, "Accept": "application/json", "Content-Type": "application/json"}
    trails: Trails = {}
    pairs: dict[str, tuple[str, str]] = {}
    reference = source.reference
    for page in range(1, MAX_PAGES + 1):
        text, _headers = ctx.retrieve_with_headers(url, headers=headers, json_body=search_body(source, page))
        attributes = attributes_of(load_json(text, "restSearch"))
        variants = ja4_variants(attributes)  # a ja4-plus object's ja4-type, when the answer holds it
        for attribute in attributes:
            owner = attribute.get("object_id") if isinstance(attribute, dict) else None
            keys = misp_attribute_keys(attribute, stats, variants.get(str(owner)))
            if not keys:
                continue
            stats.loaded += 1
            assert isinstance(attribute, dict)
            info = info_for_tags(tag_names(attribute.get("Tag"))) or "malicious"
            event = attribute.get("Event")
            event_uuid = event.get("uuid") if isinstance(event, dict) else attribute.get("event_uuid")
            for trail in keys:
                trails[trail] = pairs.setdefault(info, (info, reference))
                if isinstance(event_uuid, str):
                    stats.ids[trail] = event_uuid[:64]
        if len(attributes) < PAGE_SIZE:
            break
    stats.keys = len(trails)
    if not trails:
        raise FeedError("no attribute in the answer maps to a trail")
    return trails
