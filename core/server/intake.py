"""UDP event intake: sensors' datagrams -> the server's daily log files.

Where it sits: the first stage of the server. Remote sensors' UdpSink (core/events/sinks.py)
sends one datagram per event; this loop checks each one and appends its line to its day file
(`LOG_DIR/YYYY-MM-DD.log`, core/events/dayfile.py), the same files the HTTP API (api.py) reads,
and hands it to the other stores (`LineStore`): those EVENT_STORE names (ClickHouse, chwriter.py)
and, with USE_CONDENSED_STORAGE, the observables writer (obswriter.py). Each store takes a
flush's lines without waiting and does its work in a process of its own.

Datagram forms (both the original's):
- `<epoch_sec> <log line>`: the day file is the server-local date of epoch_sec;
- a naive `<log line>` starting with the quoted local time: the day file is that date.
With UDP_KEY set, only signed datagrams (`MTS1 …`, core/events/signing.py) are accepted; the
senders' high-water marks (`LOG_DIR/udp_senders.state`) are saved before each batch is written,
so a restart never admits a datagram twice.
Every line must pass `check_line` (core/events/event.py, the grammar the sensors write with); one
trailing LF or CRLF is tolerated, anything else is dropped and counted by reason (`dropped_*`),
with at most one sample a minute on stderr. Day files are written only for dates inside
UDP_DAY_WINDOW days of the server's clock, and at most UDP_NEW_DAYS_PER_MINUTE new day files are
created a minute.

A write that fails (a full disk) leaves no partial line (`append_lines`); what was not written is
held in a bounded spool (SPOOL_BYTES) and written, in order, once a write succeeds again (tried
every RETRY_EVERY seconds); what does not fit is counted as `disk_lost`.

Speed: one receive loop on a non-blocking socket with a large SO_RCVBUF (64 MB asked for; the
kernel caps it at net.core.rmem_max unless the process may use SO_RCVBUFFORCE, which Python's
socket module does not name, so it is used by number; app.py logs the effective size at start,
see docs/operations-server.md). It drains everything queued (up to BATCH datagrams, taken
RECV_CHUNK at a time: one recvmmsg per chunk with core/accel/_recv.c, a loop of recv in its
pure-Python twin `receive_py`), then writes one buffer per day file with a single write(). A datagram carrying the epoch of the
previous accepted one (nearly all: sensors stamp the current second) takes a fast path: one
split, the line check and an append. So the cost per event is its share of a receive call
(mostly the kernel's), the check and a few byte operations (the observables store's per-line work runs in its writer
process); docs/performance.md has the figures. While traffic flows the loop sleeps 2 ms
between drains rather than waiting on the socket, so senders never pay for wake-ups. On stop it
drains the socket once more and flushes, so nothing already received is lost.
"""

from __future__ import annotations

import collections
import errno
import functools
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from core.accel import load as load_accel
from core.events.dayfile import DayWindow, LocalDays, append_lines, day_path
from core.events.event import LINE_PROBLEMS, check_line
from core.events.signing import Verifier

BATCH = 20000                # datagrams per drain (a chunk more at most)
RECV_CHUNK = 64              # datagrams per receive call (one recvmmsg with core/accel/_recv)
POLL_PAUSE = 0.002
RCVBUF = 64 << 20
MIN_EPOCH, MAX_EPOCH = 946684800, 4102444800      # 2000-01-01 .. 2100-01-01
MAX_OPEN_DAYS = 4
SPOOL_BYTES = 32 << 20       # events held while the disk is full
RETRY_EVERY = 1.0            # seconds between write attempts while events are spooled
SAMPLE_EVERY = 60.0          # seconds between samples of dropped datagrams on stderr
DROP_REASONS = LINE_PROBLEMS + ("bad_epoch", "outside_window")
# SO_RCVBUFFORCE (root, or CAP_NET_ADMIN: the buffer asked for, past net.core.rmem_max): Python's
# socket module does not name it; 33 on Linux
_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux") else None)


def _say(message: str) -> None:
    print(f"maltrail: intake: {message}", file=sys.stderr, flush=True)


class LineStore(Protocol):
    """Another store of accepted lines beside the day files (chwriter.py's StoreFeed, obswriter.py's
    ObservablesFeed): `start` in the intake process, `add` from the receive loop (must be cheap
    and never wait), `close` at the end."""

    def start(self) -> None: ...

    def add(self, day: str, lines: list[bytes]) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


def stop_writer(process: BaseProcess | None, stop: Any, grace: float) -> None:
    """End a line store's writer process: set its `stop` event, give it `grace` seconds to finish
    what it holds, then terminate it (both feeds' `close`)."""
    if process is None:
        return
    stop.set()
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(5)


class DayFiles:
    """Append-only day files with cached descriptors (a few days open at once), a cap on new
    files a minute and a bounded spool for what a full disk refused."""

    def __init__(self, log_dir: str, new_days_per_minute: int = 10, spool_bytes: int = SPOOL_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log_dir = log_dir
        self.new_days_per_minute = new_days_per_minute
        self.spool_bytes = spool_bytes
        self.clock = clock
        self.fds: dict[str, int] = {}
        self.created: collections.deque[float] = collections.deque()
        self.spool: collections.deque[tuple[str, bytes]] = collections.deque()
        self.spooled_bytes = 0
        self.next_retry = 0.0
        self.failing = False
        self.counters = {"written": 0, "new_day_cap": 0, "write_errors": 0, "spooled": 0, "disk_lost": 0}

    def _fd(self, day: str) -> int | None:
        """The open descriptor of a day file; None when creating it would pass the per-minute cap."""
        fd = self.fds.get(day)
        if fd is not None:
            return fd
        path = day_path(self.log_dir, day)
        if not os.path.exists(path):
            now = self.clock()
            while self.created and self.created[0] <= now - 60:
                self.created.popleft()
            if len(self.created) >= self.new_days_per_minute:
                return None
            self.created.append(now)
        if len(self.fds) >= MAX_OPEN_DAYS:
            os.close(self.fds.pop(next(iter(self.fds))))
        fd = self.fds[day] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return fd

    def append(self, day: str, data: bytes) -> None:
        """Whole lines for one day file: written now, or spooled behind what is already waiting."""
        if self.spool:
            self._hold(day, data)
            self.retry()
            return
        rest = self._write(day, data)
        if rest:
            self._hold(day, rest)

    def _write(self, day: str, data: bytes) -> bytes:
        """Writes `data`; returns what a write error left unwritten (whole lines), else b''."""
        try:
            fd = self._fd(day)
        except OSError as ex:
            self._failed(day, ex)
            return data
        if fd is None:
            self.counters["new_day_cap"] += data.count(b"\n")
            return b""
        done, error = append_lines(fd, data)
        self.counters["written"] += data.count(b"\n", 0, done)
        if error is None:
            if self.failing:
                self.failing = False
                _say(f"writing again after write errors ({self.counters['spooled']} events spooled meanwhile, "
                     f"{self.counters['disk_lost']} lost)")
            return b""
        os.close(self.fds.pop(day))
        self._failed(day, error)
        return data[done:]

    def _failed(self, day: str, error: OSError) -> None:
        self.counters["write_errors"] += 1
        self.next_retry = self.clock() + RETRY_EVERY
        if not self.failing:
            self.failing = True
            _say(f"cannot write {day}.log: {error}; holding events (up to {self.spool_bytes >> 10:,} kB) "
                 "until a write succeeds")

    def _hold(self, day: str, data: bytes) -> None:
        """Spool whole lines, as many as fit; the rest are counted as lost."""
        room = self.spool_bytes - self.spooled_bytes
        if len(data) > room:
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1
            self.counters["disk_lost"] += data.count(b"\n", cut)
            data = data[:cut]
            if not data:
                return
        self.spool.append((day, data))
        self.spooled_bytes += len(data)
        self.counters["spooled"] += data.count(b"\n")

    def retry(self) -> None:
        """Write spooled events in order (at most every RETRY_EVERY seconds while failing)."""
        if not self.spool or self.clock() < self.next_retry:
            return
        while self.spool:
            day, data = self.spool[0]
            rest = self._write(day, data)
            self.spooled_bytes -= len(data) - len(rest)
            if rest:
                self.spool[0] = (day, rest)
                return
            self.spool.popleft()

    def pending(self) -> int:
        return sum(data.count(b"\n") for _, data in self.spool)

    def give_up(self) -> None:
        """At exit: what is still held is lost (counted and said)."""
        held = self.pending()
        if held:
            self.counters["disk_lost"] += held
            _say(f"{held} held events lost at shutdown: the disk is still full")
        self.spool.clear()
        self.spooled_bytes = 0

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def receive_py(sock: socket.socket, limit: int = RECV_CHUNK) -> list[bytes]:
    """Up to `limit` datagrams queued on the non-blocking `sock`, in order, each as recv(65535)
    returns it; [] when none is queued. The twin of core/accel/_recv.c `receive` (one recvmmsg):
    an error after some datagrams returns those, as recvmmsg does; an error before any is raised."""
    out: list[bytes] = []
    recv = sock.recv
    while len(out) < limit:
        try:
            out.append(recv(65535))
        except BlockingIOError:
            break
        except OSError:
            if out:
                break
            raise
    return out


class Intake:
    """The receive loop. Counters say what happened to every datagram."""

    def __init__(self, address: str, port: int, log_dir: str, verifier: Verifier | None = None,
                 rcvbuf: int = RCVBUF, day_window: int = 2, new_days_per_minute: int = 10,
                 spool_bytes: int = SPOOL_BYTES, stores: Sequence[LineStore] = (),
                 day_files: bool = True) -> None:
        self.log_dir = log_dir
        self.stores = list(stores)      # ClickHouse, observables: more stores (and whether the day files are one)
        self.day_files = day_files
        self.verifier = verifier
        infos = socket.getaddrinfo(address, port, socket.AF_UNSPEC, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for option in (_RCVBUFFORCE, socket.SO_RCVBUF):
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
        accel = load_accel("_recv")
        # the datagrams queued, a chunk per call: one recvmmsg in C, or a loop of recv
        self.receive: Callable[[], list[bytes]] = (
            functools.partial(accel.receive, self.sock.fileno(), bytearray(accel.SLOT * RECV_CHUNK))
            if accel is not None else functools.partial(receive_py, self.sock, RECV_CHUNK))
        self.files = DayFiles(log_dir, new_days_per_minute, spool_bytes)
        self.window = DayWindow(day_window)
        self.counters = {"received": 0, "signed_without_key": 0}
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.days = LocalDays()
        self._last_head, self._last_day = b" ", ""      # never a head (heads end at a space)
        self.reason = ""
        self._next_sample = 0.0
        self._want_sample = False       # a drop was seen while a sample is due: use recvfrom
        self._state_warned = False

    def parse(self, data: bytes) -> tuple[str, bytes] | None:
        """(day, line with newline) for an acceptable datagram, else None (counted; `reason` says why)."""
        if self.verifier is not None:
            plain = self.verifier.verify(data)
            if plain is None:
                self.reason = "signature"
                return None
            data = plain
        elif data.startswith(b"MTS1 "):
            self.counters["signed_without_key"] += 1
            self.reason = "signed_without_key"
            return None
        if data[-1:] == b"\n":
            data = data[:-2] if data[-2:] == b"\r\n" else data[:-1]
        if data[:1] == b'"':
            line, head, day = data, b"", ""
        else:
            head, _, line = data.partition(b" ")
            if head == self._last_head:
                day = self._last_day
            elif head.isdigit() and len(head) <= 11 and MIN_EPOCH <= int(head) < MAX_EPOCH:
                day = self.days.day(int(head))
            else:
                self._drop("bad_epoch")
                return None
        problem = check_line(line)
        if problem is not None:
            self._drop(problem)
            return None
        if not day:
            day = line[1:11].decode("ascii")
        if not self.window.allows(day):
            self._drop("outside_window")
            return None
        if head:
            # an epoch whose day the window allows: `_drain` takes the datagrams that follow with
            # the same epoch on its fast path
            self._last_head, self._last_day = head, day
        return day, line + b"\n"

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        self.reason = reason

    def _sample(self, data: bytes, peer: object) -> None:
        """One dropped datagram on stderr, at most every SAMPLE_EVERY seconds."""
        self._next_sample = time.monotonic() + SAMPLE_EVERY
        self._want_sample = False
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        print(f"maltrail: intake dropped a datagram from {where} ({self.reason}): {data[:160]!r}; further drops are counted "
             f"(one sample every {SAMPLE_EVERY:.0f} s)",
              file=sys.stderr, flush=True)

    def _drain(self, pending: dict[str, list[bytes]]) -> int:
        """Receive and parse up to BATCH datagrams. The sender's address costs a little per
        datagram, so it is asked for (recvfrom) only once a drop has shown that a sample is due;
        the next dropped datagram is then quoted with its sender.

        Fast path (unsigned intake): a datagram whose epoch is the one `parse` last accepted
        (its day already mapped and allowed by the window) only needs its line checked; anything
        else, including every line `check_line` refuses, goes through `parse`, which gives the
        same answer and names the reason."""
        self.window.refresh()
        self._last_head = b" "      # the window may have moved: the batch starts on the full path
        sampling = self._want_sample
        receive, recvfrom = self.receive, self.sock.recvfrom
        parse, check = self.parse, check_line
        fast = self.verifier is None
        last_head, bucket = b" ", list[bytes]()
        count = 0
        peer: object = None
        while count < BATCH:
            try:
                if sampling:
                    data, peer = recvfrom(65535)
                    chunk = [data]
                else:
                    chunk = receive()
                    if not chunk:
                        break
            except BlockingIOError:
                break
            except OSError as ex:
                if ex.errno in (errno.EINTR, errno.ECONNREFUSED):
                    continue
                raise
            count += len(chunk)
            for data in chunk:
                if fast:
                    head, _, line = data.partition(b" ")
                    if head == last_head and check(line) is None:
                        bucket.append(line + b"\n")
                        continue
                item = parse(data)
                if item is not None:
                    day, line = item
                    lines = pending.get(day)
                    if lines is None:
                        lines = pending[day] = []
                    lines.append(line)
                    if day == self._last_day:
                        last_head, bucket = self._last_head, lines
                elif sampling:
                    self._sample(data, peer)
                    sampling = False
                elif not self._want_sample and time.monotonic() >= self._next_sample:
                    self._want_sample = True
        self.counters["received"] += count
        return count

    def _flush(self, pending: dict[str, list[bytes]]) -> None:
        if self.verifier is not None and not self.verifier.save() and not self._state_warned:
            self._state_warned = True
            _say(f"cannot save the senders' high-water marks to {self.verifier.state_path}")
        for day, lines in pending.items():
            for store in self.stores:
                store.add(day, lines)
            if self.day_files:
                self.files.append(day, b"".join(lines))   # written now, or spooled until it can be
            else:  # EVENT_STORE without files: the stores above took them
                self.files.counters["written"] += len(lines)
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
                self.files.retry()
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
            self.files.next_retry = 0.0
            self.files.retry()
            self.files.give_up()
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
        """Every counter: received, written, dropped (total and per reason), disk, signatures, stores."""
        out = {"received": self.counters["received"], "written": self.files.counters["written"],
               "dropped": sum(self.dropped.values())}
        out.update((f"dropped_{reason}", n) for reason, n in self.dropped.items())
        out["signed_without_key"] = self.counters["signed_without_key"]
        out.update(self.files.counters)
        out["spool_pending"] = self.files.pending()
        for store in self.stores:
            out.update(store.stats())
        if self.verifier is not None:
            out.update({f"signed_{k}": v for k, v in self.verifier.counters.items()})
        return out

    def summary(self) -> str:
        """The counters line: zero drop reasons are left out, everything else always shown."""
        stats = self.stats()
        return "intake: " + " ".join(f"{k}={v}" for k, v in stats.items()
                                     if v or not k.startswith("dropped_"))


def run_in_thread(intake: Intake) -> tuple[threading.Thread, threading.Event]:
    """Tests/bench helper: run the loop in a thread; set the event to stop (drains first)."""
    stop = threading.Event()
    thread = threading.Thread(target=intake.run, args=(stop.is_set,), daemon=True)
    thread.start()
    return thread, stop
