"""Sinks: where formatted events go (daily log files, UDP to the server, the console).

Where it sits: the last stage of the event pipeline. Each sink has `write(event, line)` and
`close()`; `line` is the exact log line (`format_line`). Write failures are counted on the sink
(`errors`) and reported once to stderr, never raised into the packet loop.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TextIO

from core.config import parse_endpoints
from core.events.dayfile import day_of, day_path
from core.events.event import Event
from core.events.signing import Signer


class Sink:
    """Base sink: subclasses override `write`. `errors` counts failed writes."""

    name = "sink"

    def __init__(self) -> None:
        self.errors = 0
        self.written = 0
        self._reported = False

    def write(self, event: Event, line: str) -> None:
        raise NotImplementedError

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
    """The day file of the event's time (core/events/dayfile.py); O_APPEND, one whole line per write()."""

    name = "log file"

    def __init__(self, log_dir: str) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._day: str | None = None
        self._fd = -1

    def _open(self, day: str) -> int:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(day_path(self.log_dir, day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._day = day
        return self._fd

    def write(self, event: Event, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        try:
            day = day_of(event.sec)
            fd = self._fd if day == self._day else self._open(day)
            os.write(fd, data)
            self.written += 1
        except OSError as ex:
            self._day = None
            self._failed(ex)

    def close(self) -> None:
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
