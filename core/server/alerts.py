"""Alert webhook: tails today's day file and POSTs events at or above ALERT_SEVERITY.

Where it sits: a thread of the server process beside the HTTP API. It reads the day file the
intake (remote sensors) and local sensors append to, so every sensor's events can alert. Starts
at the end of the file on its first pass; follows the day change, rotation (inode) and
truncation. Severity comes from REMOTE_SEVERITY_REGEX named groups high/medium/low matched
against the line (default medium). ALERT_THROTTLE seconds suppress repeats per (src_ip, trail);
the throttle table holds at most 10,000 keys. Body: ALERT_FORMAT, a `%(field)s` template over
the line's fields plus `%(json)s` (the Logstash-style JSON) and `%(severity)s`; default: the JSON.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

from core.config import Config
from core.events.event import ParsedLine, parse_line

LEVELS = {"low": 0, "medium": 1, "high": 2}
MAX_THROTTLE_KEYS = 10000
POLL = 2.0


def severity_of(regex: re.Pattern[str] | None, line: str) -> str:
    if regex is not None:
        m = regex.search(line)
        if m:
            for name in ("high", "medium", "low"):
                if m.groupdict().get(name):
                    return name
    return "medium"


def as_json(parsed: ParsedLine, severity: str) -> str:
    return json.dumps({"timestamp": parsed.time, "sensor": parsed.sensor, "severity": severity,
                       "src_ip": parsed.src_ip, "src_port": parsed.src_port, "dst_ip": parsed.dst_ip,
                       "dst_port": parsed.dst_port, "proto": parsed.proto, "type": parsed.type,
                       "trail": parsed.trail, "info": parsed.info, "reference": parsed.reference})


def post(url: str, body: bytes, content_type: str) -> None:
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - operator's URL
        response.read(1024)


class Alerts:
    def __init__(self, config: Config, stopping: threading.Event,
                 sender: Callable[[str, bytes, str], None] = post) -> None:
        self.url: str = config.ALERT_WEBHOOK_URL
        self.log_dir: str = config.LOG_DIR
        self.minimum = LEVELS[config.get("ALERT_SEVERITY", "high")]
        self.template: str | None = config.ALERT_FORMAT
        self.throttle = int(config.get("ALERT_THROTTLE", 300))
        regex = config.REMOTE_SEVERITY_REGEX
        self.severity_regex = re.compile(regex) if regex else None
        self.stopping = stopping
        self.sender = sender
        self.seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.counters = {"sent": 0, "throttled": 0, "failed": 0, "below": 0}

    def body(self, parsed: ParsedLine, severity: str) -> tuple[bytes, str]:
        doc = as_json(parsed, severity)
        if not self.template:
            return doc.encode("utf-8"), "application/json"
        values = dict(parsed._asdict(), json=doc, severity=severity)
        try:
            text = self.template % values
        except (KeyError, ValueError, TypeError):
            text = doc
        return text.encode("utf-8"), "text/plain; charset=utf-8"

    def handle(self, line: str, now: float) -> None:
        parsed = parse_line(line)
        if parsed is None:
            return
        severity = severity_of(self.severity_regex, line)
        if LEVELS[severity] < self.minimum:
            self.counters["below"] += 1
            return
        key = (parsed.src_ip, parsed.trail)
        last = self.seen.get(key)
        if last is not None and now - last < self.throttle:
            self.counters["throttled"] += 1
            return
        self.seen[key] = now
        self.seen.move_to_end(key)
        while len(self.seen) > MAX_THROTTLE_KEYS:
            self.seen.popitem(last=False)
        body, ctype = self.body(parsed, severity)
        try:
            self.sender(self.url, body, ctype)
            self.counters["sent"] += 1
        except Exception as ex:  # noqa: BLE001 - isolation point: one webhook call
            self.counters["failed"] += 1
            print(f"maltrail: alert webhook failed: {ex}", file=sys.stderr)

    def run(self) -> None:
        path = None
        inode = -1
        pos = -1          # -1: first pass, start at the end
        tail = b""
        while not self.stopping.is_set():
            today = os.path.join(self.log_dir, datetime.date.today().isoformat() + ".log")
            if today != path:
                pos = -1 if path is None else 0
                path, tail = today, b""
            try:
                stat = os.stat(path)
            except OSError:
                stat = None
            if stat is not None:
                if pos < 0:
                    pos, inode = stat.st_size, stat.st_ino
                if stat.st_ino != inode or stat.st_size < pos:
                    pos, inode, tail = 0, stat.st_ino, b""
                if stat.st_size > pos:
                    with open(path, "rb") as handle:
                        handle.seek(pos)
                        data = handle.read(min(stat.st_size - pos, 16 << 20))
                    pos += len(data)
                    data = tail + data
                    cut = data.rfind(b"\n")
                    tail = data[cut + 1:]
                    now = time.monotonic()
                    for line in data[:cut].split(b"\n") if cut >= 0 else []:
                        self.handle(line.decode("utf-8", "replace"), now)
            elif pos < 0:
                pos = 0
            self.stopping.wait(POLL)
