"""The observables writer: the intake's feed (a pipe) and the process that keeps LOG_DIR/meta.sqlite.

Where it sits: app.py gives the intake (intake.py) an `ObservablesFeed` among its line stores
when USE_CONDENSED_STORAGE is on. The receive loop hands it every flush of accepted lines; it
writes them to a pipe without ever waiting (what the pipe cannot take at once is held, up to
HOLD_BYTES, and offered again at the next flush; past that bound the lines are not observed and
are counted as `observables_dropped`, said once on stderr; the day files have them all the same).
The writer process the feed starts (`run_observer`, niced so the receive loop keeps the CPU it
needs) reads the pipe, cuts it into lines and gives them to the ObservableStore
(core/events/observables.py), whose guarantees are unchanged: batched upserts in one transaction
every FLUSH_EVERY seconds or at its pending-key bound, WAL, a committed flush survives kill -9,
bounded rows. So the store's per-line Python never delays the receive loop: it runs beside it,
on another CPU when there is one. At stop the feed writes what it holds, then tells the writer,
which reads the pipe to its end, flushes and exits; a writer whose intake died flushes and exits.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import multiprocessing
import os
import select
import signal
import sys
from multiprocessing.process import BaseProcess
from typing import Any

from core.events.observables import ObservableStore
from core.server.intake import stop_writer

PIPE_BYTES = 1 << 20         # the pipe's capacity asked for (F_SETPIPE_SZ; the kernel may cap it)
HOLD_BYTES = 128 << 20       # lines the intake holds while the pipe is full (~2 s at 300k/s), before dropping
READ_BYTES = 1 << 20         # the writer's read size
IDLE_WAIT = 1.0              # seconds the writer waits on an empty pipe before checking the clock
WRITER_NICE = 5              # the writer process yields the CPU to the receive loop
JOIN_TIMEOUT = 30.0          # at stop: the writer reads what is left and flushes
COUNTERS = ("observed", "flushed", "flushes", "pruned", "errors")


class ObservablesFeed:
    """The intake's side (intake.py LineStore): accepted lines into the writer's pipe.

    `start()` in the intake process (it forks the writer there); `close()` writes what is held,
    tells the writer to finish and waits for it; a feed never started closes at once (the
    server's parent process after forking)."""

    def __init__(self, path: str, hold_bytes: int = HOLD_BYTES) -> None:
        self.path = path
        self.hold_bytes = hold_bytes
        self.fd: int | None = None
        self.process: BaseProcess | None = None
        self.stop = multiprocessing.get_context("fork").Event()
        self.counters = multiprocessing.get_context("fork").RawArray("q", len(COUNTERS))
        self.held: collections.deque[bytes] = collections.deque()
        self.held_bytes = 0
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (OSError, AttributeError):
            pass                  # the default capacity: more is held on this side
        self.process = multiprocessing.get_context("fork").Process(
            target=run_observer, args=(self.path, read_fd, write_fd, self.stop, self.counters),
            name="maltrail-observables", daemon=True)
        self.process.start()
        os.close(read_fd)
        os.set_blocking(write_fd, False)
        self.fd = write_fd

    def add(self, day: str, lines: list[bytes]) -> None:
        """Offer the lines to the pipe now; what it cannot take is held (bounded) for the next call."""
        del day
        data = b"".join(lines)
        if self.held_bytes + len(data) > self.hold_bytes:
            if not self.dropped:
                print(f"maltrail: intake: the observables writer is behind by {self.held_bytes >> 20} MB: "
                      "lines are not observed until it catches up (counted as observables_dropped)",
                      file=sys.stderr, flush=True)
            self.dropped += len(lines)
        else:
            self.held.append(data)
            self.held_bytes += len(data)
            self.sent += len(lines)
        self._send()

    def _send(self) -> None:
        """Write held data until the pipe is full (a partial write keeps its rest first in line)."""
        assert self.fd is not None, "start() first"
        while self.held:
            data = self.held[0]
            try:
                done = os.write(self.fd, data)
            except BlockingIOError:
                return
            except OSError as ex:
                if ex.errno == errno.EINTR:
                    continue
                raise
            self.held_bytes -= done
            if done < len(data):
                self.held[0] = data[done:]
                return
            self.held.popleft()

    def close(self) -> None:
        if self.fd is not None:
            os.set_blocking(self.fd, True)
            try:
                self._send()          # the writer is reading: this waits only for it
            except OSError:
                pass                  # the writer is gone: nothing reads what is held
            os.close(self.fd)
            self.fd = None
        stop_writer(self.process, self.stop, JOIN_TIMEOUT)
        self.process = None

    def stats(self) -> dict[str, int]:
        out = {"observables_sent": self.sent, "observables_dropped": self.dropped}
        out.update((f"observables_{name}", int(value)) for name, value in zip(COUNTERS, self.counters, strict=True))
        return out


def run_observer(path: str, read_fd: int, write_fd: int, stop: Any, counters: Any) -> None:
    """The writer process: lines from the pipe into the store until `stop` is set and the pipe is
    empty (or the intake is gone), then a last flush."""
    os.close(write_fd)               # the intake's end
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the intake tells it when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        os.nice(WRITER_NICE)
    except OSError:
        pass
    os.set_blocking(read_fd, False)
    store = ObservableStore(path)
    parent = os.getppid()
    rest = b""
    try:
        while True:
            ending = stop.is_set() or os.getppid() != parent
            chunk = _read(read_fd)
            if chunk:
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                if cut:
                    lines = data[:cut - 1].split(b"\n")
                    store.observe_lines(lines)
                rest = data[cut:]
            elif chunk is None or ending:     # the pipe's end, or empty after the stop
                break
            else:
                select.select([read_fd], [], [], IDLE_WAIT)
            store.tick()
            counters[:] = [store.counters[name] for name in COUNTERS]
    finally:
        store.close()
        counters[:] = [store.counters[name] for name in COUNTERS]
        os.close(read_fd)


def _read(fd: int) -> bytes | None:
    """What the pipe holds (b'' when it is empty for now; None at its end: every writer closed)."""
    while True:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return b""
        except OSError as ex:
            if ex.errno == errno.EINTR:
                continue
            raise
        return data if data else None
