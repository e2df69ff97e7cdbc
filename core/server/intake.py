"""UDP event intake: sensors' datagrams -> the server's daily log files.

Where it sits: the first stage of the server. Remote sensors' UdpSink (core/events/sinks.py)
sends one datagram per event; this loop validates each one and appends its line to its day file
(`LOG_DIR/YYYY-MM-DD.log`, core/events/dayfile.py), the same files the HTTP API (api.py) reads,
and hands it to the other stores EVENT_STORE names (`LineStore`: ClickHouse, chwriter.py).

Datagram forms (both the original's):
- `<epoch_sec> <log line>`: the day file is the server-local date of epoch_sec;
- a naive `<log line>` starting with the quoted local time: the day file is that date.
With UDP_KEY set, only signed datagrams (`MTS1 …`, core/events/signing.py) are accepted.
Embedded CR/LF become spaces so a datagram can never inject a second line; lines that do not
start with a quoted timestamp, or hold NUL bytes, are counted as malformed and dropped.

Speed: one receive loop on a non-blocking socket with a large SO_RCVBUF (64 MB asked for; the
kernel caps it at net.core.rmem_max unless the process may use SO_RCVBUFFORCE; app.py logs the
effective size at start, see docs/operations-server.md). It drains everything
queued (up to BATCH datagrams), then writes one buffer per day file with a single write(), so
the cost per event is a recv plus a few byte operations. While traffic flows the loop sleeps
2 ms between drains rather than waiting on the socket, so senders never pay for wake-ups. On stop it drains the socket once more
and flushes, so nothing already received is lost.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from core.events.dayfile import LocalDays, day_path
from core.events.signing import Verifier

BATCH = 20000
POLL_PAUSE = 0.002
RCVBUF = 64 << 20
LINE_RE = re.compile(rb'"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?" \S')
MIN_EPOCH, MAX_EPOCH = 946684800, 4102444800      # 2000-01-01 .. 2100-01-01
MAX_OPEN_DAYS = 4


class LineStore(Protocol):
    """Another store of accepted lines beside the day files (chwriter.py's StoreFeed): `start`
    in the intake process, `add` from the receive loop (must be cheap), `close` at the end."""

    def start(self) -> None: ...

    def add(self, day: str, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


class DayFiles:
    """Append-only day files with cached descriptors (a few days open at once)."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.fds: dict[str, int] = {}
        self.errors = 0

    def append(self, day: str, data: bytes) -> bool:
        fd = self.fds.get(day)
        try:
            if fd is None:
                if len(self.fds) >= MAX_OPEN_DAYS:
                    old_day = next(iter(self.fds))
                    os.close(self.fds.pop(old_day))
                fd = os.open(day_path(self.log_dir, day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self.fds[day] = fd
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            return True
        except OSError as ex:
            self.errors += 1
            if fd is not None:
                self.fds.pop(day, None)
                try:
                    os.close(fd)
                except OSError:
                    pass
            print(f"maltrail: intake: cannot write {day}.log: {ex}", file=sys.stderr)
            return False

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


class Intake:
    """The receive loop. Counters say what happened to every datagram."""

    def __init__(self, address: str, port: int, log_dir: str, verifier: Verifier | None = None,
                 rcvbuf: int = RCVBUF, stores: Sequence[LineStore] = (), day_files: bool = True) -> None:
        self.log_dir = log_dir
        self.stores = list(stores)      # EVENT_STORE: more stores, and whether the day files are one
        self.day_files = day_files
        self.verifier = verifier
        infos = socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, option, rcvbuf)
                break
            except OSError:
                continue
        self.requested_rcvbuf = rcvbuf
        # the effective size (Linux reports twice what it grants: the bookkeeping overhead)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.bind(sockaddr)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.files = DayFiles(log_dir)
        self.counters = {"received": 0, "written": 0, "malformed": 0, "signed_without_key": 0,
                         "write_errors": 0}
        self.days = LocalDays()
        self._last_head, self._last_day = b"", ""

    def parse(self, data: bytes) -> tuple[str, bytes] | None:
        """(day, line with newline) for an acceptable datagram, else None (counted)."""
        if self.verifier is not None:
            plain = self.verifier.verify(data)
            if plain is None:
                return None
            data = plain
        elif data.startswith(b"MTS1 "):
            self.counters["signed_without_key"] += 1
            return None
        if b"\n" in data or b"\r" in data:
            data = data.rstrip(b"\r\n").replace(b"\r", b" ").replace(b"\n", b" ")
        if b"\x00" in data:
            self.counters["malformed"] += 1
            return None
        if data[:1] == b'"':
            if not LINE_RE.match(data):
                self.counters["malformed"] += 1
                return None
            day = data[1:11].decode("ascii")
            line = data
        else:
            head, _, line = data.partition(b" ")
            if not LINE_RE.match(line):
                self.counters["malformed"] += 1
                return None
            if head == self._last_head:
                day = self._last_day
            else:
                if not head.isdigit() or len(head) > 11 or not MIN_EPOCH <= int(head) < MAX_EPOCH:
                    self.counters["malformed"] += 1
                    return None
                day = self.days.day(int(head))
                self._last_head, self._last_day = head, day
        return day, line + b"\n"

    def _drain(self, pending: dict[str, list[bytes]]) -> int:
        recv = self.sock.recv
        parse = self.parse
        count = 0
        while count < BATCH:
            try:
                data = recv(65535)
            except BlockingIOError:
                break
            except OSError as ex:
                if ex.errno in (errno.EINTR, errno.ECONNREFUSED):
                    continue
                raise
            count += 1
            item = parse(data)
            if item is not None:
                day, line = item
                bucket = pending.get(day)
                if bucket is None:
                    bucket = pending[day] = []
                bucket.append(line)
        self.counters["received"] += count
        return count

    def _flush(self, pending: dict[str, list[bytes]]) -> None:
        for day, lines in pending.items():
            for store in self.stores:
                store.add(day, lines)
            if not self.day_files:
                self.counters["written"] += len(lines)
            elif self.files.append(day, b"".join(lines)):
                self.counters["written"] += len(lines)
            else:
                self.counters["write_errors"] += len(lines)
        pending.clear()

    def run(self, stopped: Callable[[], bool], report: Callable[[str], None] | None = None,
            report_every: float = 3600.0) -> None:
        """Receive until `stopped()` is true, then drain what is queued and flush."""
        pending: dict[str, list[bytes]] = {}
        next_report = time.monotonic() + report_every
        for store in self.stores:
            store.start()
        try:
            while not stopped():
                count = self._drain(pending)
                if pending:
                    self._flush(pending)
                if count == 0:
                    # idle: block until a datagram arrives
                    try:
                        select.select([self.sock], [], [], 0.25)
                    except (InterruptedError, OSError, ValueError):
                        pass
                elif count < BATCH:
                    # busy: let a batch accumulate in the socket buffer instead of being woken
                    # by every datagram (the sender then never pays for waking us up)
                    time.sleep(POLL_PAUSE)
                if report and time.monotonic() >= next_report:
                    next_report = time.monotonic() + report_every
                    report(self.summary())
            while self._drain(pending):
                self._flush(pending)
            self._flush(pending)
        finally:
            self.close()

    def close(self) -> None:
        """The socket, the cached day-file descriptors and the other stores (which send what they
        hold; also what a parent does after forking: its stores were never started)."""
        for store in self.stores:
            store.close()
        self.files.close()
        self.sock.close()

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        for store in self.stores:
            out.update(store.stats())
        if self.verifier is not None:
            out.update({f"signed_{k}": v for k, v in self.verifier.counters.items()})
        return out

    def summary(self) -> str:
        return "intake: " + " ".join(f"{k}={v}" for k, v in self.stats().items())


def run_in_thread(intake: Intake) -> tuple[threading.Thread, threading.Event]:
    """Tests/bench helper: run the loop in a thread; set the event to stop (drains first)."""
    stop = threading.Event()
    thread = threading.Thread(target=intake.run, args=(stop.is_set,), daemon=True)
    thread.start()
    return thread, stop
