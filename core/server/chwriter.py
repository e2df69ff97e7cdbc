"""The ClickHouse writer: the intake's feed (journal appends), the writer process that sends the
journal in batches, and the rows it sends.

Where it sits: app.py gives the intake (intake.py) a `StoreFeed` when EVENT_STORE names
ClickHouse. The receive loop hands it every flush of accepted lines with their day; it appends
them to the journal (journal.py), one write per day per flush, and never waits on ClickHouse. The
writer process the feed starts (`run_writer`, niced so the intake keeps the CPU it needs) reads
the journal in order, turns lines into rows of the events table (`RowEncoder`, the schema in
clickhouse.py) and inserts them in batches over the HTTP interface, recording after each
accepted batch how far ClickHouse has them. When ClickHouse is slow or down the journal grows and
is sent in order when it answers again, also after a restart (docs/event-store.md).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from typing import Any

from core.events.event import parse_line, split_fields
from core.server.auth import masks_reference
from core.server.clickhouse import BAD_DATA_CODES, INSERT_TIMEOUT, ClickHouse, StoreError, Target, address_key
from core.server.intake import stop_writer
from core.server.journal import READ_CHUNK, JournalReader, JournalWriter

BATCH_ROWS = 50_000          # a batch is sent once this many lines wait, ...
BATCH_BYTES = READ_CHUNK // 2     # ... or this many bytes (one journal read holds at most READ_CHUNK) ...
FLUSH_INTERVAL = 1.0         # ... or this many seconds after the previous one
WRITER_GRACE = 10.0          # at stop: seconds the writer keeps sending what waits
WRITER_NICE = 5              # the writer process yields the CPU to the intake
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
SPOOL_FOLDER = "clickhouse-spool"    # under LOG_DIR: the journal
MAX_KEY_CACHE = 65536


# -- rows ----------------------------------------------------------------------------------------

def _escape(value: bytes) -> bytes:
    """A TabSeparated field."""
    if b"\\" in value or b"\t" in value or b"\n" in value or b"\r" in value:
        value = (value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
                 .replace(b"\r", b"\\r"))
    return value


HOURS = {b"%02d" % hour: b"%d" % hour for hour in range(100)}   # the hour column from HH (18.16 reads 01 as 0)


class RowEncoder:
    """Accepted log lines -> TabSeparated rows of the events table (COLUMNS order). This is the
    writer's CPU per event (about as much as the intake's), so the common case is kept to a few
    C-level calls a line: fields split on spaces, or by the grammar's own pattern when a field
    is quoted (event.py `split_fields`); address keys and the custom flag cached per value."""

    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {}
        self.custom: dict[bytes, bytes] = {}

    def key(self, address: bytes) -> bytes:
        value = self.keys.get(address)
        if value is None:
            if len(self.keys) >= MAX_KEY_CACHE:
                self.keys.clear()
            value = self.keys[address] = address_key(address.decode("utf-8", "replace")).encode()
        return value

    def flag(self, reference: bytes) -> bytes:
        """The custom column: 1 when the reference marks a custom trail (auth.py's rule)."""
        value = self.custom.get(reference)
        if value is None:
            if len(self.custom) >= MAX_KEY_CACHE:
                self.custom.clear()
            value = self.custom[reference] = b"1" if masks_reference(reference.decode("utf-8", "replace")) else b"0"
        return value

    def encode(self, day: str, lines: list[bytes]) -> bytes:
        """Rows of `lines` (each with its newline) stored under `day`. Fields split on spaces
        when the line has no quoted field, else by the grammar (ASCII lines); any other line goes
        through the csv reader (the event.py `parse_line` rule)."""
        out = []
        day_field = day.encode()
        keys, custom, hours = self.keys, self.custom, HOURS
        blake2b = hashlib.blake2b
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            end = line.find(b'"', 1)
            rest = line[end + 2:]
            fields: list[bytes] | None
            if b'"' not in rest:
                fields = rest.split(b" ")
                if len(fields) != 10:
                    fields = None
            else:
                fields = split_fields(rest) if rest.isascii() else None
            if fields is None:
                fields = self._split_other(line.decode("utf-8", "replace"))
            src, dst, reference = fields[1], fields[3], fields[9]
            row = (day_field, hours.get(line[12:14], b"0"), line[1:end], *fields,
                   custom.get(reference) or self.flag(reference), keys.get(src) or self.key(src),
                   keys.get(dst) or self.key(dst), line,
                   b"%d" % int.from_bytes(blake2b(line, digest_size=8).digest(), "big"))
            if b"\\" in line or b"\t" in line or b"\r" in line or b"\n" in line:
                row = tuple(_escape(value) for value in row)
            out.append(b"\t".join(row))
        out.append(b"")
        return b"\n".join(out)

    @staticmethod
    def _split_other(line: str) -> list[bytes]:
        """Fields 1..10 as `parse_line` reads them (all empty for a line without 11 columns)."""
        parsed = parse_line(line)
        return [field.encode("utf-8") for field in parsed[1:]] if parsed is not None else [b""] * 10


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
        self.journal_errors = 0

    def start(self) -> None:
        self.journal = JournalWriter(self.folder)
        self.process = multiprocessing.get_context("fork").Process(
            target=run_writer, args=(self.target, self.folder, self.stop, self.counters),
            name="maltrail-clickhouse", daemon=True)
        self.process.start()

    def add(self, day: str, lines: list[bytes]) -> None:
        """Journal the lines (a disk that refuses is counted and reported, never fatal: the day
        files, if kept, may still have them)."""
        assert self.journal is not None, "start() first"
        try:
            self.journal.append(day, b"".join(lines))
        except OSError as ex:
            if not self.journal_errors:
                print(f"maltrail: intake: cannot journal events for ClickHouse in {self.folder}: {ex}",
                      file=sys.stderr, flush=True)
            self.journal_errors += len(lines)
            return
        self.appended += len(lines)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        stop_writer(self.process, self.stop, WRITER_GRACE + INSERT_TIMEOUT + 5)
        self.process = None

    def stats(self) -> dict[str, int]:
        out = {"store_journaled": self.appended, "store_journal_errors": self.journal_errors}
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
    parent = os.getppid()
    deadline = None
    while True:
        if os.getppid() != parent:     # the intake died without telling: its next start runs a new writer
            stop.set()
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
        size = sum(len(chunk) for _, chunk in records)
        if lines < BATCH_ROWS and size < BATCH_BYTES and now - self.last_batch < FLUSH_INTERVAL:
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
