"""`GET /meta?observable=X`: what the observables store knows of one IP address or domain.

Where it sits: a route of api.py. The store is `LOG_DIR/meta.sqlite`, written by the UDP intake
(core/events/observables.py); this module only reads it (read-only connection per request).

Answer: `{observable, kind, scope, first_seen, last_seen, count}` (times in Unix seconds, `kind`
`ip` or `domain`, `scope` `local`/`remote` for addresses), plus for addresses `category` (the info
of the address's trail, e.g. `asyncrat (malware)`, or null), `reputation` (how many sources list
it: the trail's reference and its `(+...)` extras; 0 when unlisted) and `country` (the RIR table,
core/update/geo.py; null when unknown). `{}` when the observable was never seen or the store is
off. A malformed `observable` is 400. A user whose network scope (USERS netmasks) does not
contain the address gets 403; such a user gets 403 for every domain too, since a name cannot be
placed in a network.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from core.addr import ip_text
from core.config import Config
from core.events.observables import lookup, meta_path, parse_observable
from core.server.auth import Session
from core.server.lookup import Lookup
from core.server.messages import HttpError, Request, Response, json_response, text
from core.update.geo import GeoTable


def reputation(reference: str) -> int:
    """How many sources list a trail: its reference plus the `(+a,b)` extras."""
    _, plus, extra = reference.partition("(+")
    return 1 + (len([part for part in extra.rstrip(")").split(",") if part.strip()]) if plus else 0)


class Meta:
    def __init__(self, config: Config, trails: Lookup, geo: GeoTable) -> None:
        self.config = config
        self.path = meta_path(config.LOG_DIR)
        self.trails = trails
        self.geo = geo
        self.errors = 0

    def meta(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        parsed = parse_observable(request.params.get("observable", "")[:300])
        if parsed is None:
            raise HttpError(400, "observable must be an IP address or a domain name")
        kind, key = parsed
        scope = session.scope
        if scope.restricted and (isinstance(key, str) or not scope.allows_ip(ip_text(key))):
            return text(403, "Forbidden\n")
        if not self.config.USE_CONDENSED_STORAGE:
            return json_response({})
        try:
            row: dict[str, Any] | None = lookup(self.path, key)
        except sqlite3.Error:
            self.errors += 1
            row = None
        if row is None:
            return json_response({})
        if isinstance(key, bytes):
            store = self.trails._store()
            trail = store.ip(key) if store is not None else None
            row["category"] = trail.info if trail is not None else None
            row["reputation"] = reputation(trail.reference) if trail is not None else 0
            row["country"] = self.geo.lookup(row["observable"])
        return json_response(row)
