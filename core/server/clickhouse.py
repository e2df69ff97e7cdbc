"""ClickHouse as the event store: the EVENT_STORE setting, values into SQL, the HTTP client, the
schema and the address keys scopes are checked against.

Where it sits: `parse_event_store` reads EVENT_STORE for app.py (`files`, a ClickHouse URL, or
both: `files,http://...`). The intake feeds ClickHouse through chwriter.py (journal, writer
process, rows); the HTTP API reads through `ClickHouse.execute`/`stream` (threats.py). Standard
library only (urllib): a server with `EVENT_STORE files` never needs more, and this module is
imported only when ClickHouse is on.

Schema (created when missing; tested with ClickHouse 18.16 and written in SQL current versions
accept, docs/event-store.md): one row per event with the log line's fields, the whole line as
stored, the day and hour it belongs to, `custom` (the masking rule of auth.py decided at intake),
the scope keys of both addresses (`address_key`) and `eid`, a 64-bit hash of the line. The table
is a ReplacingMergeTree partitioned by day and ordered by (day, type, trail, eid): a day + trail
query reads one narrow slice, retention drops whole day partitions (`prune`, from the server's
housekeeping with LOG_RETENTION_DAYS: the TTL clause is not in 18.16), and an event written twice
(two servers receiving the same datagram, or a batch replayed after a lost answer) is one row
after merges; queries count distinct `eid`, so it is counted once before merges too. With
CLICKHOUSE_CLUSTER the rows live in `events_local` on every node behind a Distributed table
`events` sharded by eid (so both copies of an event land on the same shard).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from core.config import ConfigError

INSERT_TIMEOUT = 10.0        # an insert slower than this is tried again (in order) later
NO_ADDRESS = "00"            # the scope key of a field that is not an address

COLUMNS = ("day", "hour", "time", "sensor", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "type",
           "trail", "info", "reference", "custom", "src_key", "dst_key", "line", "eid")
TABLE_COLUMNS = """(
    day Date,
    hour UInt8,
    time String,
    sensor String,
    src_ip String,
    src_port String,
    dst_ip String,
    dst_port String,
    proto String,
    type String,
    trail String,
    info String,
    reference String,
    custom UInt8,
    src_key String,
    dst_key String,
    line String,
    eid UInt64
)"""
ENGINE = "ReplacingMergeTree() PARTITION BY toYYYYMMDD(day) ORDER BY (day, type, trail, eid)"


# ClickHouse error codes that say the data of an INSERT cannot be read (CANNOT_PARSE_*, TOO_LARGE_*,
# ...): sending the same batch again can never work, so the writer sets it aside (JournalReader.reject)
# instead of holding every later batch behind it.
BAD_DATA_CODES = frozenset((6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131))
CODE_RE = re.compile(r"Code: (\d+)")
IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")   # database and cluster names go into SQL as is


class StoreError(Exception):
    """ClickHouse did not answer, or refused a statement (the message says which; `code` is
    ClickHouse's error code when it answered)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where ClickHouse is: base URL (no credentials), database, credentials, cluster."""

    url: str
    database: str
    user: str
    password: str
    cluster: str | None = None

    @property
    def table(self) -> str:
        return f"{self.database}.events"

    @property
    def local_table(self) -> str:
        return f"{self.database}.events_local" if self.cluster else self.table


@dataclass(frozen=True)
class EventStore:
    """EVENT_STORE: day files on or off, and the ClickHouse target if any."""

    files: bool
    clickhouse: Target | None


def parse_event_store(text: str, cluster: str | None = None) -> EventStore:
    """`files`, a ClickHouse URL (`http(s)://user:pass@host:8123/db`; `clickhouse://` means
    http), or both separated by commas. ConfigError for anything else."""
    files = False
    target: Target | None = None
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.lower() == "files":
            files = True
            continue
        if target is not None:
            raise ConfigError("EVENT_STORE", text, "at most one ClickHouse URL")
        target = parse_target(item, cluster)
    if not files and target is None:
        raise ConfigError("EVENT_STORE", text, "expected files, a ClickHouse URL, or both")
    return EventStore(files, target)


def parse_target(text: str, cluster: str | None = None) -> Target:
    parts = urllib.parse.urlsplit(text)
    scheme = {"clickhouse": "http", "http": "http", "https": "https"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ConfigError("EVENT_STORE", text, "expected http(s)://[user:password@]host:port/database")
    database = parts.path.strip("/") or "maltrail"
    if not IDENTIFIER_RE.fullmatch(database):
        raise ConfigError("EVENT_STORE", text, "the database name: ASCII letters, digits and _, not a digit first")
    if cluster is not None and not IDENTIFIER_RE.fullmatch(cluster):
        raise ConfigError("CLICKHOUSE_CLUSTER", cluster, "ASCII letters, digits and _, not a digit first")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port or (8443 if scheme == "https" else 8123)
    return Target(f"{scheme}://{host}:{port}/", database, urllib.parse.unquote(parts.username or "default"),
                  urllib.parse.unquote(parts.password or ""), cluster)


# -- parameters ----------------------------------------------------------------------------------

SqlValue = int | str | bytes | datetime.date


def literal(value: SqlValue) -> str:
    """A value as SQL text that can only ever be that value: whole numbers as digits, text as
    `unhex('…')` of its bytes (hex digits cannot end a literal or start a clause), dates as
    toDate of such text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, datetime.date):
        return f"toDate(unhex('{value.isoformat().encode().hex()}'))"
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return f"unhex('{raw.hex()}')"


def bind(template: str, **params: SqlValue) -> str:
    """The statement with every `{name}` replaced by `literal(value)`: the one way values get
    into SQL."""
    return template.format(**{name: literal(value) for name, value in params.items()})


# -- the client ----------------------------------------------------------------------------------

class ClickHouse:
    """Statements over ClickHouse's HTTP interface (POST; credentials in a Basic header)."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        token = base64.b64encode(f"{target.user}:{target.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def execute(self, sql: str, body: bytes | None = None, timeout: float | None = None) -> bytes:
        """Run one statement; with `body` the statement goes in the URL and the body is its data
        (INSERT ... FORMAT TabSeparated). StoreError when ClickHouse is unreachable or refuses."""
        params = {}                   # statements name their tables in full (database.table)
        if body is None:
            data = sql.encode("utf-8")
        else:
            params["query"] = sql
            data = body
        url = self.target.url + "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=data, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as ex:
            detail = ex.read()[:500].decode("utf-8", "replace").strip()
            code = CODE_RE.search(detail)
            raise StoreError(f"ClickHouse refused: {detail}", int(code.group(1)) if code else None) from None
        except (OSError, ValueError) as ex:       # URLError, timeouts, resets
            raise StoreError(f"ClickHouse unreachable at {self.target.url}: {ex}") from None

    def stream(self, sql: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The answer of a SELECT in chunks as it arrives (for answers too large to hold)."""
        request = urllib.request.Request(self.target.url, data=sql.encode("utf-8"), headers=self.headers,
                                         method="POST")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as ex:
            raise StoreError("ClickHouse refused: " + ex.read()[:500].decode("utf-8", "replace").strip()) from None
        except (OSError, ValueError) as ex:
            raise StoreError(f"ClickHouse unreachable at {self.target.url}: {ex}") from None
        with response:
            while True:
                data = response.read(chunk)
                if not data:
                    return
                yield data

    def ensure_schema(self) -> None:
        """The database and tables, when missing (IF NOT EXISTS: safe from several servers)."""
        t = self.target
        self.execute(f"CREATE DATABASE IF NOT EXISTS {t.database}")
        self.execute(f"CREATE TABLE IF NOT EXISTS {t.local_table} {TABLE_COLUMNS} ENGINE = {ENGINE}")
        if t.cluster:
            self.execute(f"CREATE TABLE IF NOT EXISTS {t.table} AS {t.local_table} "
                         f"ENGINE = Distributed({t.cluster}, {t.database}, events_local, eid)")

    def insert(self, rows: bytes, timeout: float = INSERT_TIMEOUT) -> None:
        columns = ", ".join(COLUMNS)
        self.execute(f"INSERT INTO {self.target.table} ({columns}) FORMAT TabSeparated", rows, timeout)

    def prune(self, keep_days: int, today: datetime.date | None = None) -> list[str]:
        """Drop the day partitions dated `keep_days` days or more before today (LOG_RETENTION_DAYS,
        the same rule as the day files); the days dropped. 0 keeps everything."""
        if keep_days <= 0:
            return []
        oldest = (today or datetime.date.today()) - datetime.timedelta(days=keep_days - 1)
        t = self.target
        answer = self.execute(bind("SELECT DISTINCT partition FROM system.parts WHERE active AND database = {db} "
                                   "AND table = {table} FORMAT TabSeparated", db=t.database,
                                   table=t.local_table.split(".", 1)[1]))
        dropped = []
        for part in sorted(answer.decode().split()):
            if part.isdigit() and len(part) == 8 and part < oldest.strftime("%Y%m%d"):
                self.execute(f"ALTER TABLE {t.local_table} DROP PARTITION {int(part)}")
                dropped.append(f"{part[:4]}-{part[4:6]}-{part[6:]}")
        return dropped


# -- rows ----------------------------------------------------------------------------------------

def address_key(text: str) -> str:
    """The scope key of an address: `01` + the 16 bytes (IPv4 as IPv4-mapped IPv6) in hex, so an
    address is in a network exactly when its key is between the network's first and last keys
    (threats.py `scope_condition`); `00` when the text is not an address (below every network:
    never in any scope; not '', which 18.16 compares wrongly).
    Address texts are read as auth.py's Scope reads them (brackets stripped, IPv4-mapped IPv6 is
    IPv4)."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return NO_ADDRESS
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return network_key(address)


def network_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    packed = address.packed
    if len(packed) == 4:
        packed = b"\x00" * 10 + b"\xff\xff" + packed
    return "01" + packed.hex()
