"""Login events to remote collectors: CEF to SYSLOG_SERVER and JSON to LOGSTASH_SERVER.

Where it sits: called by auth.Auth after every login attempt, beside the sshd-style line it
writes to the local syslog. The same endpoints (comma-separated `host:port`, `[v6]:port`) and
escaping rules as the sensor's remote sinks (core/events/remote.py), one UDP datagram per
attempt and endpoint. The username is sanitised first (no control characters, at most 64
characters), so a hostile login name cannot forge a second record in any collector.

CEF (facility auth; severity 1 for success, 2 for failure):
    <PRI>Mon dd HH:MM:SS <hostname> CEF:0|Maltrail|server|<version>|auth|<message>|<sev>|src=.. spt=.. suser=.. outcome=success|failure
JSON, keys in this order: timestamp (ISO 8601 with offset), sensor (the server's SENSOR_NAME),
type ("auth"), outcome, user, src_ip, src_port, message.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time

from core.config import VERSION, Config, parse_endpoints
from core.events.remote import cef_header, cef_value

MAX_USERNAME = 64


class UdpTargets:
    """Endpoints of one key; send() never raises (failures are counted)."""

    def __init__(self, key: str, endpoints: str) -> None:
        self.targets = []
        for host, port in parse_endpoints(key, endpoints):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.targets.append((family, (host, port)))

    def send(self, data: bytes) -> tuple[int, int]:
        sent = failed = 0
        for family, address in self.targets:
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.sendto(data, address)
                sent += 1
            except OSError:
                failed += 1
        return sent, failed


class AuthForwarder:
    """Formats and sends one record per login attempt to the configured collectors."""

    def __init__(self, syslog: str | None, logstash: str | None, name: str | None = None,
                 hostname: str | None = None) -> None:
        self.syslog = UdpTargets("SYSLOG_SERVER", syslog) if syslog else None
        self.logstash = UdpTargets("LOGSTASH_SERVER", logstash) if logstash else None
        self.hostname = (hostname or socket.gethostname()).replace(" ", "_") or "-"
        self.name = name or self.hostname
        self.lock = threading.Lock()
        self.counters = {"sent": 0, "failed": 0}

    @classmethod
    def from_config(cls, config: Config) -> AuthForwarder | None:
        syslog, logstash = config.SYSLOG_SERVER, config.LOGSTASH_SERVER
        if not syslog and not logstash:
            return None
        return cls(syslog, logstash, config.SENSOR_NAME)

    def cef(self, ok: bool, user: str, address: str, port: int, message: str, sec: float) -> str:
        pri = 4 * 8 + (6 if ok else 4)          # LOG_AUTH | info / warning
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(sec))
        extension = " ".join(f"{key}={cef_value(value)}" for key, value in (
            ("src", address), ("spt", port), ("suser", user), ("outcome", "success" if ok else "failure")))
        return (f"<{pri}>{stamp} {self.hostname} CEF:0|Maltrail|server|{cef_header(VERSION)}|auth|"
                f"{cef_header(message)}|{1 if ok else 2}|{extension}")

    def json(self, ok: bool, user: str, address: str, port: int, message: str, sec: float) -> str:
        stamp = datetime.datetime.fromtimestamp(sec).astimezone().isoformat()
        return json.dumps({"timestamp": stamp, "sensor": self.name, "type": "auth",
                           "outcome": "success" if ok else "failure", "user": user, "src_ip": address,
                           "src_port": port, "message": message}, ensure_ascii=False)

    def __call__(self, ok: bool, user: str, address: str, port: int, message: str) -> None:
        """`user`, `address` and `message` are already sanitised by the caller (auth.clean)."""
        sec = time.time()
        sent = failed = 0
        if self.syslog is not None:
            s, f = self.syslog.send(self.cef(ok, user, address, port, message, sec).encode("utf-8", "replace"))
            sent, failed = sent + s, failed + f
        if self.logstash is not None:
            s, f = self.logstash.send(self.json(ok, user, address, port, message, sec).encode("utf-8", "replace"))
            sent, failed = sent + s, failed + f
        with self.lock:
            self.counters["sent"] += sent
            self.counters["failed"] += failed
