"""TAXII 2.1 collection -> STIX objects -> trails, asking only for what was added since the last fetch.

Where it sits: INTEL_SOURCES `taxii <collection URL> [user=..] [password=..|env:VAR] [limit=..] [max_size=..]`
-> runner (run.py) -> **taxii.fetch** -> StixCollection (stix.py) -> trails.

One refresh: GET `<collection>/objects/?added_after=<last>&limit=<n>&match[type]=indicator,...`
(only the object types the mapping reads: indicators, their relationships, malware, intrusion
sets, threat actors) with the TAXII 2.1 media type, then the envelope's `next` while `more` is
true (bounded by MAX_PAGES and by the source's size cap, all pages together: FEED_MAX_SIZE or
`max_size=`; an empty page ends it; servers may hand out the same `next` token for every page of
one listing). The objects are kept between updates (the collection's state file: indicators with
their trail keys, names, relationships, and `added_after` from `X-TAXII-Date-Added-Last`), so a
refresh that brings nothing new still yields the whole collection's trails. A refresh that fails
part way saves nothing: the next one asks again from the same point.
"""

from __future__ import annotations

from typing import Any

from core.update.feeds import FeedContext, FeedError, FeedSkipped, Trails
from core.update.intel.mapping import IntelStats
from core.update.intel.pattern import available
from core.update.intel.source import IntelSource, StateFiles, basic_auth, load_json
from core.update.intel.stix import INSTALL_HINT, StixCollection

MEDIA_TYPE = "application/taxii+json;version=2.1"
MAX_PAGES = 10000
DEFAULT_LIMIT = 1000
MATCH_TYPES = "indicator,relationship,malware,intrusion-set,threat-actor"  # what the mapping reads


def _headers(source: IntelSource) -> dict[str, str]:
    return {"Accept": MEDIA_TYPE, **basic_auth(source)}


def _envelope(text: str) -> tuple[list[Any], bool, str | None]:
    data = load_json(text, "TAXII envelope")
    if not isinstance(data, dict):
        raise FeedError("TAXII envelope: not an object")
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        raise FeedError("TAXII envelope: objects is not a list")
    more = data.get("more") is True
    token = data.get("next")
    return objects, more, token if isinstance(token, str) and token else None


def fetch(source: IntelSource, ctx: FeedContext, states: StateFiles, stats: IntelStats, now: float) -> Trails:
    if not available():
        raise FeedSkipped(INSTALL_HINT)
    state = states.load(source.cache_name)
    collection = StixCollection(state)
    objects_url = source.url.rstrip("/") + "/objects/"
    headers = _headers(source)
    limit = source.option("limit", str(DEFAULT_LIMIT)) or str(DEFAULT_LIMIT)
    params: dict[str, str] = {"limit": limit if limit.isdigit() else str(DEFAULT_LIMIT), "match[type]": MATCH_TYPES}
    added_after = state.get("added_after") if isinstance(state.get("added_after"), str) else None
    if added_after:
        params["added_after"] = added_after
    last_added = added_after
    for _page in range(MAX_PAGES):
        text, response_headers = ctx.retrieve_with_headers(objects_url, headers=headers, params=params)
        objects, more, token = _envelope(text)
        for obj in objects:
            collection.add(obj, stats)
        header = response_headers.get("X-TAXII-Date-Added-Last") or response_headers.get("X-TAXII-Date-Added-First")
        if header and len(header) <= 40 and (last_added is None or header > last_added):
            last_added = header
        if not more or token is None or not objects:  # an empty page that claims more ends it too
            break
        params["next"] = token
    trails = collection.trails(source.reference, stats, now)
    saved = collection.state()
    if last_added:
        saved["added_after"] = last_added
    states.save(source.cache_name, saved)
    if not trails:
        raise FeedError("no indicator in the collection maps to a trail")
    return trails
