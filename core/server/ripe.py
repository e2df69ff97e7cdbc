"""`GET /ripe?address=A[&kind=asn|geo]`: an address's ASN and holder (or country) from RIPEstat,
asked by the server so the browser never talks to a third party (no JSONP).

Where it sits: a route of api.py. Opt-in: with DISABLE_RIPE_LOOKUPS (the default) every request
answers 204. `kind=asn` (default) asks RIPEstat's network-info then as-overview data calls and
answers `{asn, holder}`; `kind=geo` asks maxmind-geo-lite and answers `{cc}`. Each upstream call
has a 5 s timeout. Answers are cached 7 days, misses (unknown address, upstream error or
timeout) 10 minutes, in a bounded table (`MAX_ENTRIES`, oldest dropped), so a page of addresses
costs RIPEstat one call each per week. 204 when unavailable; 400 for a malformed, private,
reserved or otherwise non-global address and an unknown `kind`. `RIPESTAT_URL` is the base URL
(tests point it at a local server).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any

from core.config import Config
from core.server.auth import Session
from core.server.messages import HttpError, Request, Response, json_response, text

TIMEOUT = 5.0
HIT_TTL = 7 * 86400.0
MISS_TTL = 600.0
MAX_ENTRIES = 50_000
MAX_BODY = 1 << 20


def ripe_enabled(config: Config) -> bool:
    """Whether /ripe asks RIPEstat: the one rule, also told to the web client (static.py)."""
    return not config.DISABLE_RIPE_LOOKUPS and config.RIPESTAT_URL.startswith(("https://", "http://"))


class Ripe:
    def __init__(self, config: Config) -> None:
        self.base = config.RIPESTAT_URL.rstrip("/")
        self.enabled = ripe_enabled(config)
        self.lock = threading.Lock()
        self.cache: OrderedDict[tuple[str, str], tuple[float, dict[str, Any] | None]] = OrderedDict()
        self.counters = {"upstream": 0, "hits": 0, "failures": 0}

    def _call(self, name: str, resource: str) -> dict[str, Any] | None:
        """`data` of one RIPEstat data call, or None (counted) on any failure."""
        url = f"{self.base}/data/{name}/data.json?" + urllib.parse.urlencode({"resource": resource})
        self.counters["upstream"] += 1
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                body = json.loads(response.read(MAX_BODY))
            data = body.get("data") if isinstance(body, dict) else None
            return data if isinstance(data, dict) else None
        except (OSError, ValueError, urllib.error.URLError):
            self.counters["failures"] += 1
            return None

    def _lookup(self, kind: str, address: str) -> dict[str, Any] | None:
        if kind == "geo":
            data = self._call("maxmind-geo-lite", address)
            for located in (data or {}).get("located_resources") or []:
                for location in located.get("locations") or []:
                    cc = location.get("country")
                    if isinstance(cc, str) and len(cc) == 2 and cc.isalpha():
                        return {"cc": cc.upper()}
            return None
        data = self._call("network-info", address)
        asns = (data or {}).get("asns") or []
        if not asns or not str(asns[0]).isdigit():
            return None
        asn = int(asns[0])
        overview = self._call("as-overview", f"AS{asn}") or {}
        holder = overview.get("holder")
        return {"asn": asn, "holder": holder if isinstance(holder, str) else None}

    def ripe(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        kind = request.params.get("kind", "asn")
        if kind not in ("asn", "geo"):
            raise HttpError(400, "kind must be asn or geo")
        try:
            address = ipaddress.ip_address(request.params.get("address", "").strip()[:64].strip("[]"))
        except ValueError:
            raise HttpError(400, "address must be an IPv4 or IPv6 address") from None
        if not address.is_global:
            raise HttpError(400, "private, reserved or bogon address")
        if not self.enabled:
            return text(204, "")
        key = (kind, str(address))
        now = time.monotonic()
        with self.lock:
            cached = self.cache.get(key)
            if cached is not None and cached[0] > now:
                self.counters["hits"] += 1
                return json_response(cached[1]) if cached[1] is not None else text(204, "")
        answer = self._lookup(kind, str(address))
        with self.lock:
            self.cache[key] = (now + (HIT_TTL if answer is not None else MISS_TTL), answer)
            self.cache.move_to_end(key)
            while len(self.cache) > MAX_ENTRIES:
                self.cache.popitem(last=False)
        return json_response(answer) if answer is not None else text(204, "")
