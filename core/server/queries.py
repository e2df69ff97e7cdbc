"""Query endpoints over the day files: /counts, /hunt and /geo.

Where it sits: called by api.py's route table with the request and the caller's session; reads
the day files through storage.py and searches and counts each line as the session sees it
(auth.visible_line: out-of-scope lines dropped, custom-trail info masked), never the stored line.
Results are cached per (file, size, scope) so repeated client polls cost a stat() per day.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.config import Config
from core.events.event import parse_line
from core.server.auth import Session, in_scope, visible_line
from core.server.messages import HttpError, Request, Response, json_response
from core.server.ranges import date_span, parse_date, parse_day_or_epoch
from core.server.storage import Storage, count_lines, estimate_lines, iter_lines, line_addresses
from core.update.geo import GeoTable, event_country, geo_path

EXACT_COUNT_LIMIT = 256 << 20
HUNT_MAX_SAMPLES = 200
HUNT_MAX_LINE = 500
HUNT_MAX_DAYS = 365
CACHE_ENTRIES = 1024


class _Cache:
    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self.data: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self.lock:
            value = self.data.get(key)
            if value is not None:
                self.data.move_to_end(key)
            return value

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)


class Queries:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        self.counts_cache = _Cache()
        self.geo_cache = _Cache(256)
        self.geo_table = GeoTable(geo_path(config))

    # -- /counts ---------------------------------------------------------------------------------

    def _span(self, request: Request, max_days: int = 366) -> list[datetime.date]:
        present = self.storage.days_present()
        return request_span(request, parse_date(present[0]) if present else None, max_days)

    def counts(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        result: dict[str, int] = {}
        scope = session.scope
        for day in self._span(request):
            segments = self.storage.segments([day])
            if not segments:
                continue
            seg = segments[0]
            key = (seg.path, seg.size, scope.key)
            value = self.counts_cache.get(key)
            if value is None:
                if scope.restricted:
                    value = sum(1 for line in iter_lines(segments) if in_scope(line, session))
                elif seg.size <= EXACT_COUNT_LIMIT:
                    value = count_lines(seg.path, seg.size)
                else:
                    value = estimate_lines(seg.path, seg.size)
                self.counts_cache.put(key, value)
            if value:
                result[day.isoformat()] = value
        return json_response(result)

    # -- /hunt -----------------------------------------------------------------------------------

    def hunt(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        spec = HuntQuery.from_request(request)
        days = sorted(self._span(request, HUNT_MAX_DAYS), reverse=True)
        lines = ((day, iter_lines(self.storage.segments([day]))) for day in days)
        return json_response(run_hunt(spec, lines, session, len(days), self.config.HUNT_TIME_BUDGET))

    # -- /geo ------------------------------------------------------------------------------------

    def geo(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        value = request.params.get("date") or datetime.date.today().isoformat()
        day = parse_date(value[:32])
        if day is None:
            raise HttpError(400, "date must be YYYY-MM-DD")
        if not wants_counts(request):
            return json_response(geo_answer(self.config, self.geo_table, {}, 0, 0))
        scope = session.scope
        segments = self.storage.segments([day])
        counts: dict[str, int] = {}
        mapped = unmapped = 0
        if segments:
            seg = segments[0]
            table = self.geo_table
            key = (seg.path, scope.key, table.version())
            state = self.geo_cache.get(key)
            # incremental: continue from where the last scan of this day stopped
            if state is None or state[0] > seg.size:
                state = (0, {}, 0, 0)
            offset, counts, mapped, unmapped = state[0], dict(state[1]), state[2], state[3]
            if offset < seg.size:
                with open(seg.path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(seg.size - offset)
                cut = data.rfind(b"\n")
                for line in data[: cut + 1].splitlines(keepends=True) if cut >= 0 else []:
                    seen = visible_line(line, session)
                    parsed = parse_line(seen.decode("utf-8", "replace")) if seen is not None else None
                    if parsed is None:
                        continue
                    address = event_country(parsed.type, parsed.trail, parsed.src_ip, parsed.dst_ip)
                    cc = table.lookup(address) if address else None
                    if cc:
                        counts[cc] = counts.get(cc, 0) + 1
                        mapped += 1
                    else:
                        unmapped += 1
                offset += cut + 1 if cut >= 0 else 0
                self.geo_cache.put(key, (offset, dict(counts), mapped, unmapped))
        return json_response(geo_answer(self.config, table if segments else self.geo_table, counts, mapped, unmapped))


def request_span(request: Request, first_stored: datetime.date | None, max_days: int = 366) -> list[datetime.date]:
    """The days of `from`/`to` (YYYY-MM-DD or epoch seconds; one of them alone is that day); with
    neither, from the first stored day (at most max_days back) to today."""
    first = request.params.get("from", "")[:32]
    last = request.params.get("to", "")[:32]
    today = datetime.date.today()
    if not first and not last:
        start = max(first_stored or today, today - datetime.timedelta(days=max_days - 1))
        return date_span(min(start, today), today) or [today]
    a = parse_day_or_epoch(first) if first else None
    b = parse_day_or_epoch(last) if last else None
    if (first and a is None) or (last and b is None):
        raise HttpError(400, "from/to must be YYYY-MM-DD or epoch seconds")
    a = a or b or today
    b = b or a
    if b < a:
        a, b = b, a
    span = date_span(a, b)
    if span is None:
        raise HttpError(400, f"at most {max_days} days")
    return span


def wants_counts(request: Request) -> bool:
    """/geo with `counts=0` answers only whether there is a country table and HOME (no day scan):
    the web client counts the events of its own view."""
    return request.params.get("counts") != "0"


def geo_answer(config: Config, table: GeoTable, counts: dict[str, int], mapped: int, unmapped: int) -> dict[str, Any]:
    """The /geo answer: counts per country, how many events were (not) mapped, HOME_LAT/HOME_LON."""
    home = None
    if config.HOME_LAT is not None and config.HOME_LON is not None:
        home = {"lat": config.HOME_LAT, "lon": config.HOME_LON}
    return {"counts": counts, "mapped": mapped, "unmapped": unmapped, "home": home, "table": table.available()}


@dataclass(frozen=True)
class HuntQuery:
    """A /hunt `q`: an address or CIDR (matches a line's source or destination address), or text
    (a case-insensitive ASCII substring of the line as the session sees it)."""

    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None

    @classmethod
    def from_request(cls, request: Request) -> HuntQuery:
        query = request.params.get("q", "").strip()
        if len(query) < 3 or len(query) > 256:
            raise HttpError(400, "q must be 3 to 256 characters")
        network = None
        if re.fullmatch(r"[0-9a-fA-F:.]+(/\d{1,3})?", query) and any(c in query for c in ".:"):
            try:
                network = ipaddress.ip_network(query, strict=False)
            except ValueError:
                network = None
        return cls(query, network)


def run_hunt(spec: HuntQuery, days: Iterable[tuple[datetime.date, Iterable[bytes]]], session: Session,
             selected: int, budget: float) -> dict[str, Any]:
    """The /hunt answer over stored lines, newest day first (from day files, or the ClickHouse
    store's lines of each day, threats.py): per-day counts of the lines that match as the
    session sees them, up to HUNT_MAX_SAMPLES samples, within `budget` seconds."""
    network = spec.network
    if network is not None:
        prefix = _network_prefix(network).encode()
    else:
        pattern = re.compile(re.escape(spec.text.encode("utf-8", "replace")), re.IGNORECASE)
    deadline = time.monotonic() + budget
    counts: dict[str, int] = {}
    samples: list[dict[str, str]] = []
    scanned = 0
    partial = capped = False
    filtered = session.mask_custom or session.scope.restricted    # else every line is seen as stored
    for day, lines in days:
        label = day.isoformat()
        for line in lines:
            scanned += 1
            if scanned & 1023 == 0 and time.monotonic() > deadline:
                partial = True
                break
            # cheap tests on the stored line first: addresses are never masked, and a line
            # that masking leaves alone matches exactly when the stored one does
            matched = True
            if network is not None:
                if prefix not in line:
                    continue
                addrs = line_addresses(line)
                if addrs is None or not (_in(addrs[0], network) or _in(addrs[1], network)):
                    continue
            elif not pattern.search(line):
                if not (session.mask_custom and b"(custom)" in line):
                    continue
                matched = False
            seen = visible_line(line, session) if filtered else line
            if seen is None:
                continue
            if network is None and (seen is not line or not matched) and not pattern.search(seen):
                continue
            counts[label] = counts.get(label, 0) + 1
            if len(samples) < HUNT_MAX_SAMPLES:
                shown = seen.rstrip(b"\r\n").decode("utf-8", "replace")
                samples.append({"date": label, "line": shown[:HUNT_MAX_LINE]})
            else:
                capped = True
        if partial:
            break
    return {"counts": counts, "samples": samples, "truncated": capped or partial, "scanned": scanned,
            "selected": selected, "partial": partial, "capped_samples": capped}


def _in(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(text) in network
    except ValueError:
        return False


def _network_prefix(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A substring every address of the network contains in text form (a cheap prefilter)."""
    if network.version == 4:
        octets = str(network.network_address).split(".")
        keep = network.prefixlen // 8
        if keep == 4:
            return str(network.network_address)
        return ".".join(octets[:keep]) + "." if keep else "."
    return ":" if network.prefixlen < 128 else str(network.network_address)
