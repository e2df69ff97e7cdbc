"""Alert webhook: tails today's day file and POSTs events at or above ALERT_SEVERITY.

Where it sits: two threads of the server process beside the HTTP API. The tailer reads the day
file that the UDP intake (remote sensors) and local sensors append to, so every sensor's events
can alert; it starts at the end of the file on its first pass and follows the day change,
rotation (a new inode) and truncation (the size shrinks). The sender posts the queued alerts, so
a webhook receiver that is down or slow never holds up the tailer (and the intake, a separate
process, never waits for either). A POST that fails by connection error, timeout, 429 or 5xx is
tried again after 1 s and 2 s (core/ops/retry.py, the feed client's mechanism) before it counts
as `failed`. The queue is bounded; alerts that do not fit are counted as
`dropped`.

Severity: the one rule of core/events/severity.py (REMOTE_SEVERITY_REGEX, else the default table
data/severity.json, searched in the event's info and reference), as for the CEF/JSON sinks and
the web client.
ALERT_THROTTLE seconds suppress repeats per (src_ip, trail); the throttle table holds at most
10,000 keys (oldest evicted). Body: ALERT_FORMAT, a `%(field)s` template over the line's fields
(time, sensor, src_ip, src_port, dst_ip, dst_port, proto, type, trail, info, reference) plus
`%(severity)s` and `%(json)s` (the Logstash-style JSON object). A template that starts with `{`
is a JSON body: the fields are substituted JSON-escaped, so hostile values cannot break it, and it
is sent as application/json. No template (or one that does not apply) sends the JSON object.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

from core.config import Config
from core.events.dayfile import day_of, day_path
from core.events.event import ParsedLine, parse_line
from core.events.remote import logstash_json
from core.events.severity import Severity
from core.ops.retry import Retryable, with_retries

LEVELS = {"low": 0, "medium": 1, "high": 2}
MAX_THROTTLE_KEYS = 10000
MAX_QUEUE = 1000
POLL = 2.0
SEND_TIMEOUT = 5.0
SEND_ATTEMPTS = 3     # a failed POST is tried again after 1 s and 2 s (connection errors, 429, 5xx)
SEND_BACKOFF = 1.0
READ_LIMIT = 16 << 20
FAILURE_REPORT_EVERY = 60.0

Sender = Callable[[str, bytes, str], None]


def as_json(parsed: ParsedLine, severity: str) -> str:
    """The Logstash JSON object of core/events/remote.py (one builder: same keys, order and types)."""
    try:
        stamp = datetime.datetime.strptime(parsed.time, "%Y-%m-%d %H:%M:%S.%f")  # server-local time
        sec, usec = int(time.mktime(stamp.timetuple())), stamp.microsecond
    except (ValueError, OverflowError):
        sec, usec = 0, 0
    ports = [int(port) if port.isdigit() else None for port in (parsed.src_port, parsed.dst_port)]
    return logstash_json(sec, usec, parsed.sensor, severity,
                         (parsed.src_ip, ports[0], parsed.dst_ip, ports[1], parsed.proto, parsed.type,
                          parsed.trail, parsed.info, parsed.reference))


def post(url: str, body: bytes, content_type: str) -> None:
    """One POST. Connection failures, timeouts, 429 and 5xx answers raise `Retryable`."""
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:  # noqa: S310 - operator's URL
            response.read(1024)
    except urllib.error.HTTPError as ex:
        if ex.code == 429 or ex.code >= 500:
            raise Retryable(ex) from None
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError) as ex:
        raise Retryable(ex) from None


class Alerts:
    """The tailer (`run`) and the sender (`send_loop`); counters say what happened to every line."""

    def __init__(self, config: Config, stopping: threading.Event, sender: Sender = post,
                 poll: float = POLL, queue_size: int = MAX_QUEUE, attempts: int = SEND_ATTEMPTS,
                 backoff: float = SEND_BACKOFF) -> None:
        if not config.ALERT_WEBHOOK_URL:
            raise ValueError("alerts need ALERT_WEBHOOK_URL")
        self.url = config.ALERT_WEBHOOK_URL
        self.log_dir: str = config.LOG_DIR
        self.minimum = LEVELS[config.ALERT_SEVERITY]
        self.template: str | None = config.ALERT_FORMAT
        self.throttle = config.ALERT_THROTTLE
        self.severity = Severity(config.REMOTE_SEVERITY_REGEX)
        self.stopping = stopping
        self.sender = sender
        self.poll = poll
        self.attempts, self.backoff = attempts, backoff
        self.queue: queue.Queue[tuple[bytes, str]] = queue.Queue(queue_size)
        self.seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.lock = threading.Lock()
        self.counters = {"lines": 0, "malformed": 0, "below": 0, "throttled": 0, "queued": 0,
                         "dropped": 0, "sent": 0, "failed": 0}
        self._last_failure_report = -FAILURE_REPORT_EVERY
        self._unreported_failures = 0

    def _count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] += n

    # -- formatting ------------------------------------------------------------------------------

    def body(self, parsed: ParsedLine, severity: str) -> tuple[bytes, str]:
        doc = as_json(parsed, severity)
        template = self.template
        if not template:
            return doc.encode("utf-8"), "application/json"
        fields: dict[str, str] = dict(parsed._asdict(), severity=severity)
        is_json = template.lstrip().startswith("{")
        if is_json:
            fields = {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in fields.items()}
        fields["json"] = doc
        try:
            text = template % fields
        except (KeyError, ValueError, TypeError):
            return doc.encode("utf-8"), "application/json"
        return text.encode("utf-8"), "application/json" if is_json else "text/plain; charset=utf-8"

    # -- per line --------------------------------------------------------------------------------

    def handle(self, line: str, now: float) -> None:
        """One log line: severity, throttle, then onto the send queue (never blocks)."""
        self._count("lines")
        parsed = parse_line(line)
        if parsed is None:
            self._count("malformed")
            return
        severity = self.severity(parsed.info, parsed.reference)
        if LEVELS[severity] < self.minimum:
            self._count("below")
            return
        if self.throttle > 0:
            key = (parsed.src_ip, parsed.trail)
            last = self.seen.get(key)
            if last is not None and now - last < self.throttle:
                self._count("throttled")
                return
            self.seen[key] = now
            self.seen.move_to_end(key)
            while len(self.seen) > MAX_THROTTLE_KEYS:
                self.seen.popitem(last=False)
        try:
            self.queue.put_nowait(self.body(parsed, severity))
            self._count("queued")
        except queue.Full:
            self._count("dropped")

    # -- sender ----------------------------------------------------------------------------------

    def send_loop(self) -> None:
        while True:
            try:
                body, ctype = self.queue.get(timeout=0.5)
            except queue.Empty:
                if self.stopping.is_set():
                    return
                continue
            if self.stopping.is_set():
                return
            try:
                with_retries(functools.partial(self.sender, self.url, body, ctype), self.attempts,
                             self.backoff, self.stopping.wait)
                self._count("sent")
            except Retryable as ex:  # every attempt failed
                self._count("failed")
                self._report_failure(ex.cause)
            except Exception as ex:  # noqa: BLE001 - isolation point: one webhook call
                self._count("failed")
                self._report_failure(ex)

    def _report_failure(self, ex: Exception) -> None:
        """One stderr line per minute at most, with the number of failures since the last one."""
        self._unreported_failures += 1
        now = time.monotonic()
        if now - self._last_failure_report >= FAILURE_REPORT_EVERY:
            print(f"maltrail: alert webhook failed ({self._unreported_failures} since last report): {ex}",
                  file=sys.stderr, flush=True)
            self._last_failure_report = now
            self._unreported_failures = 0

    # -- tailer ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Tail today's file until `stopping`; starts the sender; prints a summary at the end."""
        sender = threading.Thread(target=self.send_loop, name="alert-sender", daemon=True)
        sender.start()
        path = None
        inode = -1
        pos = -1          # -1: first pass, start at the end
        tail = b""
        first = True
        while not self.stopping.is_set():
            try:
                today = self.day_file(time.time())
                if today != path:
                    pos = -1 if path is None else 0
                    path, tail = today, b""
                pos, inode, tail = self._read(path, pos, inode, tail)
            except Exception as ex:  # noqa: BLE001 - isolation point: one polling pass
                print(f"maltrail: alerts: {ex}", file=sys.stderr, flush=True)
            if first:
                first = False
                minimum = next(k for k, v in LEVELS.items() if v == self.minimum)
                print(f"maltrail: alerts: following {path} from byte {max(pos, 0)} (severity >= {minimum}, "
                      f"throttle {self.throttle} s)", file=sys.stderr, flush=True)
            self.stopping.wait(self.poll)
        sender.join(SEND_TIMEOUT + 1)
        print("maltrail: " + self.summary(), file=sys.stderr, flush=True)

    def day_file(self, now: float) -> str:
        """The day file the tailer follows at time `now` (where events of that moment are written)."""
        return day_path(self.log_dir, day_of(now))

    def _read(self, path: str, pos: int, inode: int, tail: bytes) -> tuple[int, int, bytes]:
        try:
            stat = os.stat(path)
        except OSError:
            return (0 if pos < 0 else pos), inode, tail
        if pos < 0:
            pos, inode = stat.st_size, stat.st_ino
        if stat.st_ino != inode or stat.st_size < pos:
            pos, inode, tail = 0, stat.st_ino, b""
        if stat.st_size > pos:
            with open(path, "rb") as handle:
                handle.seek(pos)
                data = handle.read(min(stat.st_size - pos, READ_LIMIT))
            pos += len(data)
            data = tail + data
            cut = data.rfind(b"\n")
            tail = data[cut + 1:]
            if len(tail) > READ_LIMIT:
                tail = b""
            now = time.monotonic()
            for line in data[:cut].split(b"\n") if cut >= 0 else []:
                if line:
                    self.handle(line.decode("utf-8", "replace"), now)
        return pos, inode, tail

    def summary(self) -> str:
        with self.lock:
            return "alerts: " + " ".join(f"{k}={v}" for k, v in self.counters.items())
