"""Queries served from ClickHouse: the threat summary of a day or range, one threat's raw events,
what the store is, and (when EVENT_STORE keeps no day files) /events and /counts.

Where it sits: app.py adds these routes to the API's table when EVENT_STORE names ClickHouse;
the statements go through clickhouse.py (`bind`: every value, the scope's included, is a literal
that can only be that value). The browser asks `/store` once: with ClickHouse it loads
`/threats` (a few hundred kB for any day or range) instead of the raw day, and a threat's own
lines (`/threat`) when its drawer opens.

Scope rule, as everywhere (auth.py): a session sees an event when its source or destination is
in the session's networks, and custom-trail info as `-` when it masks custom trails. The
networks become key ranges over the stored address keys (`scope_condition`, the same reading of
an address as Scope's), the masking uses the `custom` column decided at intake by auth.py's
`masks_reference`; `/threat` lines also pass `visible_line` itself.

Without day files (EVENT_STORE names ClickHouse alone) /events serves a day or range from ClickHouse
(whole lines, oldest first, no byte ranges), /counts the events per day, and /hunt and /geo answer
by the day-file routes' own rules (queries.py) over the stored lines; /live and the lists read day
files only, so keep `files` on for them (docs/event-store.md).

Every count is of distinct events (`eid`): an event two servers stored, or a batch replayed after
a lost answer, counts once.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import re
import sys
from collections.abc import Iterable, Iterator

from core.config import Config
from core.events.severity import Severity
from core.server.api import Route
from core.server.auth import Scope, Session, visible_line
from core.server.clickhouse import ClickHouse, SqlValue, StoreError, bind, network_key
from core.server.messages import HttpError, Request, Response, json_response
from core.server.queries import HUNT_MAX_DAYS, HuntQuery, geo_answer, request_span, run_hunt, wants_counts
from core.server.ranges import parse_date, parse_date_param
from core.update.geo import GeoTable, event_country, geo_path

MAX_THREATS = 20_000          # threats per summary, most events first
TOP_SOURCES = 20              # sources listed per threat (the count is exact)
MAX_THREAT_EVENTS = 100_000   # lines of one threat per request
MAX_FIELD = 4096
STORE_HORIZON = 366           # /counts with neither from nor to: this many days back
MAPPED_FIRST = network_key(ipaddress.IPv4Address("0.0.0.0"))
MAPPED_LAST = network_key(ipaddress.IPv4Address("255.255.255.255"))
TSV_ESCAPE = re.compile(rb"\\(.)")
TSV_CHARS = {b"t": b"\t", b"n": b"\n", b"0": b"\x00", b"r": b"\r", b"b": b"\b", b"f": b"\f"}


def scope_condition(scope: Scope, params: dict[str, SqlValue]) -> str:
    """SQL over src_key/dst_key true exactly when auth.py's Scope allows the source or the
    destination address; the range bounds are added to `params`."""
    if not scope.restricted:
        return "1"
    terms = []
    for network in scope.networks:
        lo, hi = f"s{len(params)}", f"s{len(params) + 1}"
        params[lo], params[hi] = network_key(network.network_address), network_key(network.broadcast_address)
        for column in ("src_key", "dst_key"):
            term = f"({column} >= {{{lo}}} AND {column} <= {{{hi}}}"
            if network.version == 6:      # an IPv4-mapped address is IPv4 to the scope rule
                term += f" AND NOT ({column} >= {{mapped_first}} AND {column} <= {{mapped_last}})"
            terms.append(term + ")")
    params["mapped_first"], params["mapped_last"] = MAPPED_FIRST, MAPPED_LAST
    return "(" + " OR ".join(terms) + ")"


def unescape_tsv(field: bytes) -> bytes:
    return TSV_ESCAPE.sub(lambda m: TSV_CHARS.get(m.group(1), m.group(1)), field) if b"\\" in field else field


class Threats:
    def __init__(self, config: Config, client: ClickHouse, files: bool) -> None:
        self.config = config
        self.client = client
        self.files = files                # EVENT_STORE keeps the day files as well
        self.severity = Severity(config.REMOTE_SEVERITY_REGEX)
        self.geo_table = GeoTable(geo_path(config))

    def routes(self) -> dict[str, Route]:
        routes = {"/store": Route(self.store, True), "/threats": Route(self.threats, True),
                  "/threat": Route(self.threat, True)}
        if not self.files:
            routes.update({"/events": Route(self.events, True), "/counts": Route(self.counts, True),
                           "/hunt": Route(self.hunt, True), "/geo": Route(self.geo, True)})
        return routes

    def _days(self, request: Request) -> tuple[datetime.date, datetime.date]:
        value = request.params.get("date") or datetime.date.today().isoformat()
        days = parse_date_param(value[:32])
        if days is None:
            raise HttpError(400, "date must be YYYY-MM-DD or YYYY-MM-DD_YYYY-MM-DD (at most 366 days)")
        return days[0], days[-1]

    def _run(self, sql: str) -> bytes:
        try:
            return self.client.execute(sql)
        except StoreError as ex:
            print(f"maltrail: event store: {ex}", file=sys.stderr, flush=True)
            raise HttpError(503, f"event store: {ex}") from None

    def _lines_sql(self, where: str, params: dict[str, SqlValue], limit: str = "") -> str:
        """The statement reading the stored line of every event matching `where` (its `{name}`
        placeholders bound from params) once, oldest first: the copies of an event (one per
        server that received it) share its eid. `limit`: e.g. " LIMIT {cap}"."""
        return bind(f"SELECT any(line) FROM {self.client.target.table} WHERE {where}"
                    f" GROUP BY eid ORDER BY min(time), any(line){limit} FORMAT TabSeparated", **params)

    def _where(self, session: Session, params: dict[str, SqlValue]) -> str:
        params["mask"] = 1 if session.mask_custom else 0
        return "day >= {first} AND day <= {last} AND " + scope_condition(session.scope, params)

    def store(self, request: Request, session: Session | None) -> Response:
        return json_response({"kind": "clickhouse", "files": self.files, "cluster": bool(self.client.target.cluster)})

    def threats(self, request: Request, session: Session | None) -> Response:
        """Per threat (type, trail, info as the session sees it, reference): distinct events,
        first and last seen, distinct sources with the most frequent ones, severity, and events
        per hour of the range (`[hour index from the first midnight, count]`)."""
        assert session is not None
        first, last = self._days(request)
        params: dict[str, SqlValue] = {"first": first, "last": last, "limit": MAX_THREATS + 1}
        where = self._where(session, params)
        table = self.client.target.table
        shown = "if({mask} AND custom = 1, '-', info)"
        key = f"cityHash64(type, trail, {shown}, reference)"
        idx = "toUInt32((day - {first}) * 24 + hour)"
        # Three grouped reads, each cheap on a large day: per threat (rows, not distinct events),
        # per threat and hour (numeric keys), and the copies to take off: events stored more than
        # once (two servers, a batch sent again) are few, found through one set of their eids
        # (GLOBAL: on a cluster the set is built once and sent to every shard).
        totals = bind(
            f"SELECT {key}, type, trail, {shown} AS shown, reference, count() AS n, min(time), max(time),"
            f" uniqExact(src_ip), topK({TOP_SOURCES})(src_ip) FROM {table} WHERE " + where +
            " GROUP BY type, trail, shown, reference ORDER BY n DESC, trail LIMIT {limit} FORMAT JSONCompact",
            **params)
        hourly = bind(f"SELECT k, groupArray((i, n)) FROM (SELECT {key} AS k, {idx} AS i, count() AS n FROM {table}"
                      " WHERE " + where + " GROUP BY k, i) GROUP BY k FORMAT JSONCompact", **params)
        copies = bind(
            f"SELECT k, i, sum(c - 1) FROM (SELECT {key} AS k, {idx} AS i, eid, count() AS c FROM {table}"
            " WHERE " + where + f" AND eid GLOBAL IN (SELECT eid FROM {table} WHERE " + where +
            " GROUP BY eid HAVING count() > 1) GROUP BY k, i, eid) GROUP BY k, i FORMAT JSONCompact", **params)
        rows = json.loads(self._run(totals))["data"]
        hours: dict[int, dict[int, int]] = {}
        for k, pairs in json.loads(self._run(hourly))["data"]:
            hours[int(k)] = {int(i): int(n) for i, n in pairs}
        extra: dict[int, int] = {}
        for k, i, n in json.loads(self._run(copies))["data"]:
            k, i, n = int(k), int(i), int(n)
            hours[k][i] -= n
            extra[k] = extra.get(k, 0) + n
        out = []
        for k, kind, trail, info, reference, count, seen_first, seen_last, sources, top in rows[:MAX_THREATS]:
            k = int(k)
            out.append({"type": kind, "trail": trail, "info": info, "reference": reference,
                        "severity": self.severity(info, reference), "count": int(count) - extra.get(k, 0),
                        "first": seen_first, "last": seen_last, "source_count": int(sources), "sources": top,
                        "hours": sorted([h, n] for h, n in hours.get(k, {}).items())})
        out.sort(key=lambda t: (-t["count"], t["trail"]))
        return json_response({"from": first.isoformat(), "to": last.isoformat(), "threats": out,
                              "truncated": len(rows) > MAX_THREATS})

    def threat(self, request: Request, session: Session | None) -> Response:
        """The stored lines of one threat (as `/threats` names it), oldest first, as the session
        sees them: the same text /events serves."""
        assert session is not None
        first, last = self._days(request)
        fields: dict[str, SqlValue] = {}
        for name in ("type", "trail", "info", "reference"):
            value = request.params.get(name)
            if value is None or len(value) > MAX_FIELD:
                raise HttpError(400, f"{name} is required (at most {MAX_FIELD} characters)")
            fields[name] = value
        params: dict[str, SqlValue] = {"first": first, "last": last, "cap": MAX_THREAT_EVENTS, **fields}
        where = self._where(session, params)
        sql = self._lines_sql(where + " AND type = {type} AND trail = {trail} AND reference = {reference}"
                              " AND if({mask} AND custom = 1, '-', info) = {info}", params, " LIMIT {cap}")
        return Response(200, b"".join(visible_rows([self._run(sql)], session)), "text/plain; charset=utf-8")

    def events(self, request: Request, session: Session | None) -> Response:
        """/events without day files: every line of the day or range the session sees, oldest first."""
        assert session is not None
        first, last = self._days(request)
        params: dict[str, SqlValue] = {"first": first, "last": last}
        where = self._where(session, params)
        sql = self._lines_sql(where, params)
        try:
            chunks = self.client.stream(sql)
            head = next(chunks, b"")
        except StoreError as ex:
            raise HttpError(503, f"event store: {ex}") from None

        def body() -> Iterator[bytes]:
            out: list[bytes] = []
            size = 0
            for line in visible_rows(itertools.chain([head], chunks), session):
                out.append(line)
                size += len(line)
                if size >= 1 << 20:
                    yield b"".join(out)
                    out, size = [], 0
            yield b"".join(out)
        return Response(200, body(), "text/plain; charset=utf-8")

    def day_lines(self, day: datetime.date) -> Iterator[bytes]:
        """Every stored line of a day, once, oldest first: what /fail2ban and /blacklist read
        (lists.py `day_lines`) when there are no day files. Unscoped: the lists apply each
        caller's view themselves. ClickHouse unreachable: 503, as the other routes answer."""
        sql = self._lines_sql("day = {day}", {"day": day})
        try:
            yield from stored_rows(self.client.stream(sql))
        except StoreError as ex:
            print(f"maltrail: event store: {ex}", file=sys.stderr, flush=True)
            raise HttpError(503, f"event store: {ex}") from None

    def counts(self, request: Request, session: Session | None) -> Response:
        """/counts without day files: distinct events per day the session sees (`from`/`to` as
        the files' /counts; the last 366 days by default)."""
        assert session is not None
        days = request_span(request, datetime.date.today() - datetime.timedelta(days=STORE_HORIZON - 1))
        first, last = days[0], days[-1]
        params: dict[str, SqlValue] = {"first": first, "last": last}
        where = self._where(session, params)
        sql = bind(f"SELECT toString(day), uniqExact(eid) FROM {self.client.target.table} WHERE " + where +
                   " GROUP BY day ORDER BY day FORMAT TabSeparated", **params)
        result = {}
        for row in self._run(sql).decode().splitlines():
            day, _, value = row.partition("\t")
            result[day] = int(value)
        return json_response(result)


    def hunt(self, request: Request, session: Session | None) -> Response:
        """/hunt without day files: the files' rule (queries.py run_hunt) over each day's stored
        lines, newest day first, read from ClickHouse through a prefilter that keeps every line
        the rule can match: an address range over the address keys, or the text as an ASCII
        case-insensitive substring of the stored line (the rule's own matching) or masked
        custom-trail info."""
        assert session is not None
        spec = HuntQuery.from_request(request)
        days = sorted(request_span(request, datetime.date.today() - datetime.timedelta(days=HUNT_MAX_DAYS - 1),
                                   HUNT_MAX_DAYS), reverse=True)
        params: dict[str, SqlValue] = {"mask": 1 if session.mask_custom else 0}
        scope = scope_condition(session.scope, params)
        if spec.network is not None:
            params["lo"] = network_key(spec.network.network_address)
            params["hi"] = network_key(spec.network.broadcast_address)
            match = "((src_key >= {lo} AND src_key <= {hi}) OR (dst_key >= {lo} AND dst_key <= {hi}))"
        else:
            params["q"] = spec.text
            match = "(positionCaseInsensitive(line, {q}) > 0 OR ({mask} AND custom = 1))"

        def lines_of(day: datetime.date) -> Iterator[bytes]:
            sql = self._lines_sql(f"day = {{day}} AND {scope} AND {match}", {**params, "day": day})
            yield from stored_rows(self.client.stream(sql))
        try:
            answer = run_hunt(spec, ((day, lines_of(day)) for day in days), session, len(days),
                              self.config.HUNT_TIME_BUDGET)
        except StoreError as ex:
            print(f"maltrail: event store: {ex}", file=sys.stderr, flush=True)
            raise HttpError(503, f"event store: {ex}") from None
        return json_response(answer)

    def geo(self, request: Request, session: Session | None) -> Response:
        """/geo without day files: events per country of one day as the session sees them (the
        address rule of core/update/geo.py, over each distinct type, trail, source, destination)."""
        assert session is not None
        day = parse_date((request.params.get("date") or datetime.date.today().isoformat())[:32])
        if day is None:
            raise HttpError(400, "date must be YYYY-MM-DD")
        if not wants_counts(request):
            return json_response(geo_answer(self.config, self.geo_table, {}, 0, 0))
        params: dict[str, SqlValue] = {"first": day, "last": day}
        where = self._where(session, params)
        sql = bind(f"SELECT type, trail, src_ip, dst_ip, uniqExact(eid) FROM {self.client.target.table} WHERE "
                   + where + " GROUP BY type, trail, src_ip, dst_ip FORMAT JSONCompact", **params)
        counts: dict[str, int] = {}
        mapped = unmapped = 0
        for kind, trail, src, dst, n in json.loads(self._run(sql))["data"]:
            address = event_country(kind, trail, src, dst)
            country = self.geo_table.lookup(address) if address else None
            if country:
                counts[country] = counts.get(country, 0) + int(n)
                mapped += int(n)
            else:
                unmapped += int(n)
        return json_response(geo_answer(self.config, self.geo_table, counts, mapped, unmapped))


def stored_rows(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """TabSeparated rows of stored lines, across chunk edges -> each line (with its newline)."""
    tail = b""
    for chunk in chunks:
        data = tail + chunk
        rows = data.split(b"\n")
        tail = rows.pop()
        for raw in rows:
            if raw:
                yield unescape_tsv(raw) + b"\n"
    if tail:
        yield unescape_tsv(tail) + b"\n"


def visible_rows(chunks: Iterable[bytes], session: Session) -> Iterator[bytes]:
    """Stored rows (`stored_rows`) as the session may see them (auth.visible_line)."""
    for line in stored_rows(chunks):
        seen = visible_line(line, session)
        if seen is not None:
            yield seen
