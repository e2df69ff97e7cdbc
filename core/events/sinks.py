"""Sinks: where formatted events go (daily log files, UDP to the server, the console).

Where it sits: the last stage of the event pipeline. Each sink has `write(event, line)` and
`close()`; `line` is the exact log line (`format_line`). Write failures are counted on the sink
(`errors`: failed writes; `lost`: events it gave up on) and reported to stderr, never raised
into the packet loop. The log file sink never leaves a partial line on a full disk
(`append_lines`) and holds up to SPOOL_LINES events until a write succeeds again.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TextIO

from core.config import parse_endpoints
from core.events.dayfile import append_lines, day_of, day_path
from core.events.event import Event
from core.events.signing import Signer

SPOOL_LINES = 100_000      # events a log file sink holds while its disk is full
RETRY_EVERY = 1.0          # seconds between write attempts while events are held


class Sink:
    """Base sink: subclasses override `write`. `errors` counts failed writes."""

    name = "sink"

    def __init__(self) -> None:
        self.errors = 0
        self.written = 0
        self.lost = 0
        self._reported = False

    def write(self, event: Event, line: str) -> None:
        raise NotImplementedError

    def pending(self) -> int:
        """Events held, not written yet (a spool)."""
        return 0

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def _failed(self, error: Exception) -> None:
        self.errors += 1
        if not self._reported:
            self._reported = True
            print(f"maltrail: {self.name}: write failed: {error}", file=sys.stderr)


class LogFileSink(Sink):
    """The day file of the event's time (core/events/dayfile.py); O_APPEND, whole lines only.
    While writes fail (a full disk) events are held in order, up to `spool_lines`, and written
    once a write succeeds (tried at most every RETRY_EVERY seconds); beyond that they are lost."""

    name = "log file"

    def __init__(self, log_dir: str, spool_lines: int = SPOOL_LINES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.spool_lines = spool_lines
        self.clock = clock
        self.spool: collections.deque[tuple[str, bytes]] = collections.deque()
        self._next_retry = 0.0
        self._day: str | None = None
        self._fd = -1

    def _open(self, day: str) -> int:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(day_path(self.log_dir, day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._day = day
        return self._fd

    def _append(self, day: str, data: bytes) -> bool:
        try:
            fd = self._fd if day == self._day else self._open(day)
        except OSError as ex:
            self._day = None
            self._failed(ex)
            return False
        done, error = append_lines(fd, data)
        if error is not None:
            self._failed(error)
            return False
        self.written += 1
        return True

    def write(self, event: Event, line: str) -> None:
        day = day_of(event.sec)
        data = (line + "\n").encode("utf-8", "replace")
        if self.spool:
            self._hold(day, data)
            self._retry()
        elif not self._append(day, data):
            self._hold(day, data)

    def _hold(self, day: str, data: bytes) -> None:
        if len(self.spool) >= self.spool_lines:
            self.lost += 1
            return
        if not self.spool:
            self._next_retry = self.clock() + RETRY_EVERY
        self.spool.append((day, data))

    def _retry(self, force: bool = False) -> None:
        if not force and self.clock() < self._next_retry:
            return
        self._next_retry = self.clock() + RETRY_EVERY
        held = len(self.spool)
        while self.spool:
            day, data = self.spool[0]
            if not self._append(day, data):
                return
            self.spool.popleft()
        print(f"maltrail: {self.name}: writing again; {held:,} held events written, {self.lost:,} lost",
              file=sys.stderr)
        self._reported = False

    def pending(self) -> int:
        return len(self.spool)

    def _failed(self, error: Exception) -> None:
        self.errors += 1
        if not self._reported:
            self._reported = True
            print(f"maltrail: {self.name}: write failed: {error}; holding up to {self.spool_lines:,} events "
                  "until a write succeeds", file=sys.stderr)

    def flush(self) -> None:
        if self.spool:
            self._retry(force=True)

    def close(self) -> None:
        if self.spool:
            self._retry(force=True)
            self.lost += len(self.spool)
            self.spool.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._day = None


class UdpSink(Sink):
    """`LOG_SERVER`: one datagram per event, `<epoch_sec> <line>` (optionally signed, see core/events/signing)."""

    name = "LOG_SERVER"

    def __init__(self, endpoints: str, signer: Signer | None = None) -> None:
        super().__init__()
        self.targets = []
        for host, port in parse_endpoints("LOG_SERVER", endpoints):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.targets.append((family, (host, port)))
        self.signer = signer
        self._sockets: dict[int, socket.socket] = {}

    def _socket(self, family: int) -> socket.socket:
        sock = self._sockets.get(family)
        if sock is None:
            sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
        return sock

    def write(self, event: Event, line: str) -> None:
        data = f"{event.sec} {line}".encode("utf-8", "replace")
        if self.signer is not None:
            data = self.signer.sign(data)
        for family, address in self.targets:
            try:
                self._socket(family).sendto(data, address)
                self.written += 1
            except OSError as ex:
                self._sockets.pop(family, None)
                self._failed(ex)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


class ConsoleSink(Sink):
    """`--console`: the log line to stderr."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr

    def write(self, event: Event, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.written += 1
        except (OSError, ValueError) as ex:
            self._failed(ex)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


class MemorySink(Sink):
    """Keeps events and lines in lists: for tests and the detection self-test."""

    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.lines: list[str] = []

    def write(self, event: Event, line: str) -> None:
        self.events.append(event)
        self.lines.append(line)
        self.written += 1
