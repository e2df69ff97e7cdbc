"""ClickHouse as the event store: the EVENT_STORE setting, the HTTP client, the schema and the
batched writer the intake feeds.

Where it sits: `parse_event_store` reads EVENT_STORE for app.py (`files`, a ClickHouse URL, or
both: `files,http://...`). The intake process (intake.py) hands every accepted line with its
day to `ClickHouseWriter.add`; a thread of that process turns the lines into rows and inserts
them in batches over ClickHouse's HTTP interface; when ClickHouse is slow or down the batches go
to the spool (spool.py) and are replayed in order when it answers again. The HTTP API reads
through `ClickHouse.query` (threats.py). Standard library only (urllib): a server with
`EVENT_STORE files` never needs more, and this module is imported only when ClickHouse is on.

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
import hashlib
import ipaddress
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from core.config import ConfigError
from core.events.event import parse_line
from core.server.auth import masks_reference
from core.server.spool import Spool

BATCH_ROWS = 50_000          # a batch is sent once this many lines wait ...
FLUSH_INTERVAL = 1.0         # ... or this many seconds after the previous one
INSERT_TIMEOUT = 10.0        # an insert slower than this goes to the spool
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
SPOOL_FOLDER = "clickhouse-spool"    # under LOG_DIR
MAX_KEY_CACHE = 65536
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
# ...): sending the same batch again can never work, so the writer sets it aside (Spool.reject)
# instead of holding every later batch behind it.
BAD_DATA_CODES = frozenset((6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131))
CODE_RE = re.compile(r"Code: (\d+)")


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
    if not database.replace("_", "").isalnum():
        raise ConfigError("EVENT_STORE", text, "the database name may hold letters, digits and _ only")
    if cluster is not None and not cluster.replace("_", "").replace("-", "").isalnum():
        raise ConfigError("CLICKHOUSE_CLUSTER", cluster, "letters, digits, - and _ only")
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


def _escape(value: bytes) -> bytes:
    """A TabSeparated field."""
    if b"\\" in value or b"\t" in value or b"\n" in value:
        value = value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
    return value


class RowEncoder:
    """Accepted log lines -> TabSeparated rows of the events table (COLUMNS order)."""

    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {}

    def key(self, address: bytes) -> bytes:
        value = self.keys.get(address)
        if value is None:
            if len(self.keys) >= MAX_KEY_CACHE:
                self.keys.clear()
            value = self.keys[address] = address_key(address.decode("utf-8", "replace")).encode()
        return value

    def encode(self, day: str, lines: list[bytes]) -> bytes:
        out = []
        day_field = day.encode()
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            end = line.find(b'"', 1)
            rest = line[end + 2:]
            fields: list[bytes] | None = None
            if b'"' not in rest:
                fields = rest.split(b" ")
                if len(fields) != 10:
                    fields = None
            if fields is None:
                parsed = parse_line(line.decode("utf-8", "replace"))
                fields = [f.encode("utf-8") for f in parsed[1:]] if parsed is not None else [b""] * 10
            hour = str(int(line[12:14])).encode() if line[12:14].isdigit() else b"0"   # 18.16 reads 01 as 0
            reference = fields[9].decode("utf-8", "replace")
            eid = int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")
            out.append(b"\t".join([
                day_field, hour, _escape(line[1:end]), *(_escape(f) for f in fields),
                b"1" if masks_reference(reference) else b"0",
                self.key(fields[1]), self.key(fields[3]), _escape(line), str(eid).encode()]))
        out.append(b"")
        return b"\n".join(out)


# -- the writer ----------------------------------------------------------------------------------

class ClickHouseWriter:
    """Lines in (from the intake loop, cheap), batches out (a thread of the intake process).

    `start()` in the process that will run it (the thread does not survive a fork); `close()`
    sends what is queued (or spools it) and returns; a writer never started closes at once."""

    def __init__(self, target: Target, spool_dir: str) -> None:
        self.client = ClickHouse(target)
        self.spool_dir = spool_dir
        self.spool: Spool | None = None
        self.encoder = RowEncoder()
        self.cond = threading.Condition()
        self.queue: list[tuple[str, list[bytes]]] = []
        self.queued = 0
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.ready = False                  # the schema is known to exist
        self.retry_at = 0.0                 # ClickHouse failed: spool until then
        self.backoff = RETRY_FIRST
        self.counters = {"store_inserted": 0, "store_batches": 0, "store_spooled": 0, "store_replayed": 0,
                         "store_failures": 0, "store_rejected_batches": 0}

    # called by the intake
    def start(self) -> None:
        self.spool = Spool(self.spool_dir)
        self.thread = threading.Thread(target=self._run, name="clickhouse-writer", daemon=True)
        self.thread.start()

    def add(self, day: str, lines: list[bytes]) -> None:
        with self.cond:
            self.queue.append((day, lines))
            self.queued += len(lines)
            if self.queued >= BATCH_ROWS:
                self.cond.notify()

    def close(self) -> None:
        if self.thread is None:
            return
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()
        self.thread = None

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out["store_spool_batches"] = len(self.spool) if self.spool is not None else 0
        return out

    # the thread
    def _run(self) -> None:
        while True:
            with self.cond:
                if not self.stopping and self.queued < BATCH_ROWS:
                    self.cond.wait(FLUSH_INTERVAL)
                items, self.queue, self.queued = self.queue, [], 0
                stopping = self.stopping
            if items:
                rows = b"".join(self.encoder.encode(day, lines) for day, lines in items)
                self._deliver(rows, sum(len(lines) for _, lines in items))
            if not stopping:
                self._replay()
            if stopping:       # what is spooled waits for the next start: a stop never waits on it
                with self.cond:
                    if not self.queue:
                        return

    def _insert(self, rows: bytes) -> bool | None:
        """True: stored; False: not now (ClickHouse down, slow or busy: retry later); None: the
        batch itself was refused (never retried)."""
        try:
            if not self.ready:
                self.client.ensure_schema()
                self.ready = True
            self.client.insert(rows)
        except StoreError as ex:
            if ex.code in BAD_DATA_CODES:
                self.counters["store_rejected_batches"] += 1
                print(f"maltrail: intake: a batch was refused and set aside: {ex}", file=sys.stderr, flush=True)
                return None
            self.counters["store_failures"] += 1
            if self.backoff == RETRY_FIRST:      # the first failure of a run of them
                print(f"maltrail: intake: {ex}; spooling to {self.spool_dir} until it answers", file=sys.stderr,
                      flush=True)
            self.retry_at = time.monotonic() + self.backoff
            self.backoff = min(RETRY_MAX, self.backoff * 2)
            return False
        if self.backoff != RETRY_FIRST:
            print("maltrail: intake: ClickHouse answers again; replaying the spool", file=sys.stderr, flush=True)
        self.backoff = RETRY_FIRST
        self.counters["store_batches"] += 1
        return True

    def _deliver(self, rows: bytes, count: int) -> None:
        assert self.spool is not None
        if len(self.spool) == 0 and time.monotonic() >= self.retry_at:
            done = self._insert(rows)
            if done:
                self.counters["store_inserted"] += count
                return
            if done is None:
                self.spool.push(rows, rejected=True)
                return
        self.spool.push(rows)             # OSError here ends the intake loudly: the disk refused
        self.counters["store_spooled"] += count

    def _replay(self) -> None:
        """Spooled batches, oldest first, while ClickHouse accepts them."""
        assert self.spool is not None
        while time.monotonic() >= self.retry_at:
            oldest = self.spool.oldest()
            if oldest is None:
                return
            name, rows = oldest
            done = self._insert(rows)
            if done is None:
                self.spool.reject(name)
                continue
            if not done:
                return
            self.spool.drop(name)
            count = rows.count(b"\n")
            self.counters["store_replayed"] += count
            self.counters["store_inserted"] += count


def spool_dir(log_dir: str) -> str:
    return os.path.join(log_dir, SPOOL_FOLDER)
