"""ClickHouse as the event store: the EVENT_STORE setting, the HTTP client, the schema and the
batched writer the intake feeds.

Where it sits: `parse_event_store` reads EVENT_STORE for app.py (`files`, a ClickHouse URL, or
both: `files,http://...`). The intake process (intake.py) hands every accepted line with its
day to `StoreFeed.add`, which appends it to the journal (journal.py) on disk; a writer process of
its own reads the journal in order, turns the lines into rows and inserts them in batches over
ClickHouse's HTTP interface, recording how far ClickHouse has accepted. When ClickHouse is slow or
down the journal grows and is sent in order when it answers again, also after a restart. The HTTP
API reads
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
import csv
import datetime
import hashlib
import ipaddress
import multiprocessing
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from core.config import ConfigError
from core.events.event import parse_line
from core.server.auth import masks_reference
from core.server.journal import JournalReader, JournalWriter

BATCH_ROWS = 50_000          # a batch is sent once this many lines wait ...
FLUSH_INTERVAL = 1.0         # ... or this many seconds after the previous one
INSERT_TIMEOUT = 10.0        # an insert slower than this is tried again (in order) later
WRITER_GRACE = 10.0          # at stop: seconds the writer keeps sending what waits
WRITER_NICE = 5              # the writer process yields the CPU to the intake
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
SPOOL_FOLDER = "clickhouse-spool"    # under LOG_DIR: the journal
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
# ...): sending the same batch again can never work, so the writer sets it aside (JournalReader.reject)
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
    if b"\\" in value or b"\t" in value or b"\n" in value or b"\r" in value:
        value = (value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
                 .replace(b"\r", b"\\r"))
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
        """Rows of `lines` (each with its newline) stored under `day`. Fields split on spaces
        when the line has no quoted field; the others go through one csv reader together (the
        event.py `parse_line` rule, as a batch)."""
        entries: list[tuple[bytes, int, list[bytes] | None]] = []
        quoted: list[str] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            end = line.find(b'"', 1)
            rest = line[end + 2:]
            if b'"' not in rest:
                fields = rest.split(b" ")
                if len(fields) == 10:
                    entries.append((line, end, fields))
                    continue
            entries.append((line, end, None))
            quoted.append(line.decode("utf-8", "replace"))
        split = iter(self._split_quoted(quoted))
        out = []
        day_field = day.encode()
        for line, end, given in entries:
            fields = next(split) if given is None else given
            hour = str(int(line[12:14])).encode() if line[12:14].isdigit() else b"0"   # 18.16 reads 01 as 0
            custom = b"1" if masks_reference(fields[9].decode("utf-8", "replace")) else b"0"
            eid = str(int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")).encode()
            row = [day_field, hour, line[1:end], *fields, custom, self.key(fields[1]), self.key(fields[3]), line, eid]
            if b"\\" in line or b"\t" in line or b"\r" in line or b"\n" in line:
                row = [_escape(value) for value in row]
            out.append(b"\t".join(row))
        out.append(b"")
        return b"\n".join(out)

    @staticmethod
    def _split_quoted(lines: list[str]) -> list[list[bytes]]:
        """Fields 1..10 of lines with quoted fields (all empty for a line without 11 columns)."""
        try:
            rows = list(csv.reader(lines, delimiter=" ", quotechar='"'))
        except csv.Error:                  # one bad line: each on its own
            rows = []
            for line in lines:
                parsed = parse_line(line)
                rows.append(list(parsed) if parsed is not None else [])
        return [[f.encode("utf-8") for f in row[1:]] if len(row) == 11 else [b""] * 10 for row in rows]


# -- the writer ----------------------------------------------------------------------------------

COUNTERS = ("store_inserted", "store_batches", "store_failures", "store_rejected_batches", "store_replayed")


class StoreFeed:
    """The intake's side (intake.py LineStore): accepted lines go to the journal (journal.py),
    one write per day per flush; a writer process of its own (`run_writer`) sends them on.

    `start()` in the intake process (it forks the writer there); `close()` asks the writer to send
    what it can within WRITER_GRACE seconds and stop (the rest waits in the journal for the next
    start); a feed never started closes at once (the server's parent process after forking)."""

    def __init__(self, target: Target, folder: str) -> None:
        self.target = target
        self.folder = folder
        self.journal: JournalWriter | None = None
        self.process: BaseProcess | None = None
        self.stop = multiprocessing.get_context("fork").Event()
        self.counters = multiprocessing.get_context("fork").RawArray("q", len(COUNTERS))
        self.appended = 0

    def start(self) -> None:
        self.journal = JournalWriter(self.folder)
        self.process = multiprocessing.get_context("fork").Process(
            target=run_writer, args=(self.target, self.folder, self.stop, self.counters),
            name="maltrail-clickhouse", daemon=True)
        self.process.start()

    def add(self, day: str, lines: list[bytes]) -> None:
        assert self.journal is not None, "start() first"
        self.journal.append(day, b"".join(lines))   # OSError ends the intake loudly: the disk refused
        self.appended += len(lines)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        if self.process is not None:
            self.stop.set()
            self.process.join(WRITER_GRACE + INSERT_TIMEOUT + 5)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5)
            self.process = None

    def stats(self) -> dict[str, int]:
        out = {"store_journaled": self.appended}
        out.update(zip(COUNTERS, self.counters, strict=True))
        out["store_pending"] = int(JournalReader(self.folder).pending()) if self.journal is not None else 0
        return out


def run_writer(target: Target, folder: str, stop: Any, counters: Any) -> None:
    """The writer process: journal -> ClickHouse in batches, in order, until `stop` is set (then
    what can be sent within WRITER_GRACE seconds)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the intake tells it when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        os.nice(WRITER_NICE)      # the receive loop first: the journal absorbs what the writer defers
    except OSError:
        pass
    writer = Writer(ClickHouse(target), JournalReader(folder), counters)
    deadline = None
    while True:
        if stop.is_set() and deadline is None:
            deadline = time.monotonic() + WRITER_GRACE
        sent = writer.step()
        if deadline is not None and (not sent or time.monotonic() > deadline):
            return
        if not sent:
            stop.wait(FLUSH_INTERVAL)


class Writer:
    """One step at a time: read a batch from the journal, insert it, commit the position."""

    def __init__(self, client: ClickHouse, journal: JournalReader, counters: Any) -> None:
        self.client = client
        self.journal = journal
        self.counters = counters
        self.encoder = RowEncoder()
        self.ready = False                  # the schema is known to exist
        self.retry_at = 0.0                 # ClickHouse failed: nothing sent until then
        self.backoff = RETRY_FIRST
        self.last_batch = 0.0

    def count(self, name: str, value: int = 1) -> None:
        self.counters[COUNTERS.index(name)] += value

    def step(self) -> bool:
        """Send one batch if one is due; True when something was sent (more may be waiting)."""
        now = time.monotonic()
        if now < self.retry_at:
            return False
        records, position = self.journal.read(BATCH_ROWS)
        if not records:
            if position != (self.journal.number, self.journal.offset):
                self.journal.commit(position)         # skipped a torn record
            return False
        lines = sum(chunk.count(b"\n") for _, chunk in records)
        if lines < BATCH_ROWS and now - self.last_batch < FLUSH_INTERVAL:
            return False
        rows = b"".join(self.encoder.encode(day, chunk.splitlines(keepends=True)) for day, chunk in records)
        done = self._insert(rows)
        if done is None:
            self.journal.reject(rows, position)
            return True
        if not done:
            return False
        self.journal.commit(position)
        self.last_batch = time.monotonic()
        self.count("store_inserted", lines)
        return True

    def _insert(self, rows: bytes) -> bool | None:
        """True: stored; False: not now (ClickHouse down, slow or busy: retried later, in order);
        None: the batch itself was refused (never retried)."""
        try:
            if not self.ready:
                self.client.ensure_schema()
                self.ready = True
            self.client.insert(rows)
        except StoreError as ex:
            if ex.code in BAD_DATA_CODES:
                self.count("store_rejected_batches")
                print(f"maltrail: ClickHouse writer: a batch was refused and set aside: {ex}", file=sys.stderr,
                      flush=True)
                return None
            self.count("store_failures")
            if self.backoff == RETRY_FIRST:      # the first failure of a run of them
                print(f"maltrail: ClickHouse writer: {ex}; events wait in {self.journal.folder} until it answers",
                      file=sys.stderr, flush=True)
            self.retry_at = time.monotonic() + self.backoff
            self.backoff = min(RETRY_MAX, self.backoff * 2)
            return False
        if self.backoff != RETRY_FIRST:
            print("maltrail: ClickHouse writer: ClickHouse answers again; sending what waited", file=sys.stderr,
                  flush=True)
            self.count("store_replayed")
        self.backoff = RETRY_FIRST
        self.count("store_batches")
        return True


def spool_dir(log_dir: str) -> str:
    return os.path.join(log_dir, SPOOL_FOLDER)
