"""Observables store: `LOG_DIR/meta.sqlite`, one row per domain or IP address ever seen in an event.

Where it sits: after the day files. The server's UDP intake (core/server/intake.py) passes the
lines it accepted to its observables writer process (core/server/obswriter.py), which hands them
to `ObservableStore.observe_lines`, a batch at a time; a standalone sensor
writing its own day files does the same through `ObservableSink` (wired by core/assemble.py). The HTTP API answers
`GET /meta?observable=X` from the file with `lookup()` (core/server/meta.py). Key
`USE_CONDENSED_STORAGE` (default on) switches it.

The file is in the original's schema, so a file the original wrote opens here and the other way:
    observables(observable PRIMARY KEY, flags, first_seen, last_seen, count) WITHOUT ROWID
    meta_info(key TEXT PRIMARY KEY, value)  (created when missing; this module writes nothing there)
IP addresses are 4- or 16-byte BLOBs, domains TEXT. `flags`: bit 0 = a domain (seen in a DNS-type
event), bit 1 = local address, bit 2 = remote address. Times are Unix seconds.

Writes are batched: observations aggregate in memory and are flushed in one transaction every
`flush_every` seconds or as soon as `max_pending` distinct keys wait (the memory bound). The
database is in WAL mode with `synchronous=NORMAL`: a committed flush survives kill -9 of the
process. When the table passes `max_rows`, the lowest-scoring rows are deleted down to 90% of it;
the score rewards the count (capped at 1000), the span between first and last sight (days) and
recency (days since last sight count against it). Broadcast, multicast and unspecified addresses
are not stored. A failing flush (disk full, locked beyond the busy timeout) is counted in
`errors` and its batch kept for the next try, never raised into the caller.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from core.addr import ip_packed, ip_text, is_local
from core.detect.domains import VALID_DNS_NAME
from core.events.event import Event, TrailType, parse_line
from core.events.sinks import Sink

META_FILE = "meta.sqlite"
FLAG_DOMAIN, FLAG_LOCAL, FLAG_REMOTE = 1, 2, 4
MAX_ROWS = 2_000_000
MAX_PENDING = 200_000
FLUSH_EVERY = 60.0
BUSY_TIMEOUT = 5.0
ADDRESS_CACHE = 65536
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS observables (observable PRIMARY KEY, flags INTEGER, first_seen INTEGER, "
    "last_seen INTEGER, count INTEGER) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta_info (key TEXT PRIMARY KEY, value)",
)
UPSERT = ("INSERT INTO observables (observable, flags, first_seen, last_seen, count) VALUES (?, ?, ?, ?, ?) "
          "ON CONFLICT(observable) DO UPDATE SET flags = flags | excluded.flags, "
          "first_seen = MIN(first_seen, excluded.first_seen), last_seen = MAX(last_seen, excluded.last_seen), "
          "count = count + excluded.count")
PRUNE = ("DELETE FROM observables WHERE observable IN (SELECT observable FROM observables ORDER BY "
         "MIN(count, 1000) + (last_seen - first_seen) / 86400.0 - (? - last_seen) / 86400.0 ASC LIMIT ?)")


def meta_path(log_dir: str) -> str:
    return os.path.join(log_dir, META_FILE)


def address_key(text: str) -> bytes | None:
    """The stored form of an address worth keeping (packed), or None."""
    packed = ip_packed(text)
    if packed is None:
        return None
    if len(packed) == 4:
        if packed[0] >= 224 or packed == b"\x00\x00\x00\x00" or packed[3] == 255:
            return None  # multicast, reserved, unspecified, (directed) broadcast
    elif packed[0] == 0xFF or packed == bytes(16):
        return None
    return packed


def domain_of_trail(trail: str) -> str | None:
    """The full name of a DNS-type event's trail (`(sub).evil.com`, `x.onion(.to)` → the name)."""
    name = trail.replace("(", "").replace(")", "").strip().lower().rstrip(".")
    if not name or " " in name or "/" in name or len(name) > 253:
        return None
    return name


class ObservableStore:
    """The writer: `observe*` aggregates, `tick` flushes when due, `close` flushes and closes.
    The connection is opened at the first flush (so a store built before a fork opens in the child)."""

    def __init__(self, path: str, *, max_rows: int = MAX_ROWS, max_pending: int = MAX_PENDING,
                 flush_every: float = FLUSH_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_pending = max_pending
        self.flush_every = flush_every
        self.clock = clock
        self.pending: dict[bytes | str, list[int]] = {}
        self.conn: sqlite3.Connection | None = None
        self.last_flush = clock()
        self.counters = {"observed": 0, "flushed": 0, "flushes": 0, "pruned": 0, "errors": 0}
        self.last_error = ""
        self._hours: dict[str, int] = {}
        self._addresses: dict[str | bytes, tuple[bytes | None, int]] = {}  # text -> (stored key, scope flag)

    # -- observing ----------------------------------------------------------------------------------

    def _add(self, key: bytes | str, flags: int, sec: int) -> None:
        entry = self.pending.get(key)
        if entry is None:
            self.pending[key] = [flags, sec, sec, 1]
        else:
            entry[0] |= flags
            if sec < entry[1]:
                entry[1] = sec
            if sec > entry[2]:
                entry[2] = sec
            entry[3] += 1

    def _address(self, text: str | bytes) -> tuple[bytes | None, int]:
        """(stored key or None, scope flag) of an address text, remembered (str or ASCII bytes)."""
        packed = address_key(text if isinstance(text, str) else text.decode("ascii", "replace"))
        known = (packed, FLAG_LOCAL if packed is not None and is_local(packed) else FLAG_REMOTE)
        if len(self._addresses) >= ADDRESS_CACHE:
            self._addresses.clear()
        self._addresses[text] = known
        return known

    def observe(self, sec: int, src_ip: str, dst_ip: str, type_: str, trail: str) -> None:
        """One event's observables: both addresses, and the name of a DNS-type event."""
        self.counters["observed"] += 1
        for text in (src_ip, dst_ip):
            known = self._addresses.get(text) or self._address(text)
            if known[0] is not None:
                self._add(known[0], known[1], sec)
        if type_ == TrailType.DNS:
            name = domain_of_trail(trail)
            if name:
                self._add(name, FLAG_DOMAIN, sec)
        if len(self.pending) >= self.max_pending:
            self.flush()

    def observe_event(self, event: Event) -> None:
        self.observe(event.sec, event.src_ip, event.dst_ip, event.type, event.trail)

    def observe_line(self, line: bytes | str) -> None:
        """A stored log line (the intake's); lines that do not parse are skipped. The common line
        (unquoted sensor and trail) is split directly; anything else goes through `parse_line`."""
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        fields = text[29:].split(" ", 9) if text[27:29] == '" ' else []
        if len(fields) >= 9 and fields[0][:1] != '"' and fields[7][:1] != '"':
            src, dst, type_, trail = fields[1], fields[3], fields[6], fields[7]
        else:
            parsed = parse_line(text)
            if parsed is None:
                return
            src, dst, type_, trail = parsed.src_ip, parsed.dst_ip, parsed.type, parsed.trail
        sec = self._epoch(text[1:20])
        if sec is not None:
            self.observe(sec, src, dst, type_, trail)

    def _epoch(self, t: str) -> int | None:
        """Unix time of a local `YYYY-MM-DD HH:MM:SS` (mktime once per hour of text, cached)."""
        hour = self._hours.get(t[:13])
        if hour is None:
            try:
                hour = int(time.mktime((int(t[0:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), 0, 0, 0, 0, -1)))
            except (ValueError, OverflowError):
                return None
            if len(self._hours) > 64:
                self._hours.clear()
            self._hours[t[:13]] = hour
        try:
            return hour + int(t[14:16]) * 60 + int(t[17:19])
        except ValueError:
            return None

    def observe_lines(self, lines: Iterable[bytes]) -> None:
        """The intake's accepted lines (they passed `check_line`). The common non-DNS line (the
        form `observe_line` splits directly) is taken here without decoding it, split once
        (`"date`, `time"`, sensor, src_ip, src_port, dst_ip, ...): its two addresses are all it
        adds; every other line goes through `observe_line`."""
        add, addresses, pending = self._add, self._addresses, self.pending
        last_time, sec, observed = b"", None, 0
        for line in lines:
            fields = line.split(b" ", 10)
            if (len(fields) < 11 or line[27:29] != b'" ' or fields[2][:1] == b'"' or fields[9][:1] == b'"'
                    or fields[8] == b"DNS"):
                self.observe_line(line)
                continue
            if line[1:20] != last_time:
                last_time = line[1:20]
                sec = self._epoch(last_time.decode("ascii", "replace"))
            if sec is None:
                continue
            observed += 1
            known = addresses.get(fields[3]) or self._address(fields[3])
            if known[0] is not None:
                add(known[0], known[1], sec)
            known = addresses.get(fields[5]) or self._address(fields[5])
            if known[0] is not None:
                add(known[0], known[1], sec)
            if len(pending) >= self.max_pending:
                self.flush()
        self.counters["observed"] += observed

    # -- writing ------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.conn is None:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                conn.execute(statement)
            self.conn = conn
        return self.conn

    def tick(self) -> None:
        """Flush when `flush_every` seconds passed since the last flush."""
        if self.pending and self.clock() - self.last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> bool:
        """Write the pending observations in one transaction; False (counted) when it failed."""
        self.last_flush = self.clock()
        if not self.pending:
            return True
        rows = [(key, flags, first, last, count) for key, (flags, first, last, count) in self.pending.items()]
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(UPSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.pending.clear()
            self.counters["flushed"] += len(rows)
            self.counters["flushes"] += 1
            self._prune(conn)
            return True
        except (sqlite3.Error, OSError) as ex:
            self.counters["errors"] += 1
            self.last_error = f"{type(ex).__name__}: {ex}"
            if len(self.pending) > self.max_pending * 2:  # the disk stays unwritable: stay bounded
                self.pending.clear()
            return False

    def _prune(self, conn: sqlite3.Connection) -> None:
        (rows,) = conn.execute("SELECT COUNT(*) FROM observables").fetchone()
        if rows <= self.max_rows:
            return
        excess = rows - int(self.max_rows * 0.9)
        conn.execute(PRUNE, (int(time.time()), excess))
        self.counters["pruned"] += excess

    def close(self) -> None:
        self.flush()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def parse_observable(text: str) -> tuple[str, bytes | str] | None:
    """("ip", packed) or ("domain", name) for a query parameter; None when malformed."""
    text = text.strip()
    if not text or len(text) > 253:
        return None
    packed = ip_packed(text)
    if packed is not None:
        return "ip", packed
    name = text.lower().rstrip(".")
    return ("domain", name) if VALID_DNS_NAME.match(name) else None


def lookup(path: str, key: bytes | str) -> dict[str, Any] | None:
    """The stored row of one observable ({} fields as the API gives them), None when unseen or
    when there is no store yet. Opens the file read-only."""
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
    try:
        row = conn.execute("SELECT flags, first_seen, last_seen, count FROM observables WHERE observable = ?",
                           (key,)).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    flags, first, last, count = row
    flags = int(flags or 0)
    kind = "ip" if isinstance(key, bytes) else "domain"
    scope = "local" if flags & FLAG_LOCAL else "remote" if flags & FLAG_REMOTE else None
    return {"observable": ip_text(key) if isinstance(key, bytes) else key, "kind": kind, "scope": scope,
            "first_seen": int(first), "last_seen": int(last), "count": int(count)}


class ObservableSink(Sink):
    """A sink for a standalone sensor: every event it writes to its day files is observed."""

    name = "observables"

    def __init__(self, store: ObservableStore) -> None:
        super().__init__()
        self.store = store

    def write(self, event: Event, line: str) -> None:
        self.store.observe_event(event)
        self.store.tick()
        self.written += 1

    def close(self) -> None:
        self.store.close()
