"""Remote outputs: CEF over syslog/UDP (SYSLOG_SERVER) and Logstash JSON over UDP (LOGSTASH_SERVER).

Where it sits: sinks of the event pipeline, beside the daily log file and LOG_SERVER; built by
`build_remote_sinks(config)`. Each key takes several endpoints (`host:port`, `[v6]:port`, comma
separated). Severity comes from REMOTE_SEVERITY_REGEX, whose named groups `high`, `medium`, `low`
are searched in the event's info (first matching group wins in that order); no match or no
regex = medium.

CEF line (one datagram per endpoint):
    <PRI>Mon dd HH:MM:SS <hostname> CEF:0|Maltrail|sensor|<version>|<signature>|<info>|<sev>|src=.. spt=.. dst=.. dpt=.. proto=.. type=.. trail=.. ref=..
<sev> is 0 (low), 1 (medium) or 2 (high) as in the original; <signature> is the trail file's
modification date (YYYYMMDD), re-read at most every 5 minutes. Header fields escape `\\` and `|`;
extension values escape `\\`, `=` and line breaks (CEF rules). The `<PRI>` (facility user, severity
from the event) makes the datagram a valid RFC 3164 message for any syslog daemon.

Logstash JSON (one object a datagram), keys in this order: timestamp (ISO 8601 with offset),
sensor, severity (low/medium/high), src_ip, src_port, dst_ip, dst_port, proto, type, trail,
info, reference.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time

from core.config import VERSION, Config, parse_endpoints
from core.events.event import Event
from core.events.sinks import Sink

SEVERITIES = ("low", "medium", "high")
CEF_SEVERITY = {"low": 0, "medium": 1, "high": 2}
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 2}  # notice, warning, critical
SIGNATURE_REFRESH = 300
DEFAULT_SEVERITY_REGEX = (
    r"(?P<high>(remote )?custom\)|malwaredomainlist|iot-malware|malware(?! (distribution|site))|adversary|ransomware)"
    r"|(?P<medium>potential malware site|malware distribution|c2 cert)"
    r"|(?P<low>mass scanner|reputation|attacker|spammer|compromised|crawler|scanning)"
)


class Severity:
    """info -> low/medium/high from REMOTE_SEVERITY_REGEX named groups."""

    def __init__(self, pattern: str | None) -> None:
        self.regex = re.compile(pattern, re.IGNORECASE) if pattern else None

    def __call__(self, info: str) -> str:
        if self.regex is None or not info:
            return "medium"
        best = None
        for match in self.regex.finditer(info):
            for level in ("high", "medium", "low"):
                if match.groupdict().get(level):
                    if best is None or SEVERITIES.index(level) > SEVERITIES.index(best):
                        best = level
        return best or "medium"


def cef_header(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def cef_value(value: object) -> str:
    text = "" if value is None else str(value)
    return (text.replace("\\", "\\\\").replace("=", "\\=").replace("\r\n", "\\n")
            .replace("\n", "\\n").replace("\r", "\\r"))


class _UdpTargets(Sink):
    key = "SYSLOG_SERVER"

    def __init__(self, endpoints: str) -> None:
        super().__init__()
        self.targets = []
        for host, port in parse_endpoints(self.key, endpoints):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.targets.append((family, (host, port)))
        self._sockets: dict[int, socket.socket] = {}

    def _send(self, data: bytes) -> None:
        for family, address in self.targets:
            try:
                sock = self._sockets.get(family)
                if sock is None:
                    sock = self._sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                sock.sendto(data, address)
                self.written += 1
            except OSError as ex:
                old = self._sockets.pop(family, None)
                if old is not None:
                    old.close()
                self._failed(ex)

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


class CefSyslogSink(_UdpTargets):
    name = "SYSLOG_SERVER"
    key = "SYSLOG_SERVER"

    def __init__(self, endpoints: str, severity: Severity, trails_file: str | None = None,
                 hostname: str | None = None) -> None:
        super().__init__(endpoints)
        self.severity = severity
        self.trails_file = trails_file
        self.hostname = (hostname or socket.gethostname()).replace(" ", "_") or "-"
        self._signature = "-"
        self._signature_at = -SIGNATURE_REFRESH * 2.0

    def signature(self) -> str:
        now = time.monotonic()
        if now - self._signature_at >= SIGNATURE_REFRESH:
            self._signature_at = now
            try:
                mtime = os.path.getmtime(self.trails_file) if self.trails_file else None
            except OSError:
                mtime = None
            self._signature = time.strftime("%Y%m%d", time.localtime(mtime)) if mtime else "-"
        return self._signature

    def format(self, event: Event) -> str:
        level = self.severity(event.info)
        pri = 8 + SYSLOG_SEVERITY[level]  # facility user (1)
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(event.sec))
        extension = " ".join(f"{key}={cef_value(value)}" for key, value in (
            ("src", event.src_ip), ("spt", event.src_port), ("dst", event.dst_ip), ("dpt", event.dst_port),
            ("proto", event.proto), ("type", event.type), ("trail", event.trail), ("ref", event.reference)))
        return (f"<{pri}>{stamp} {self.hostname} CEF:0|Maltrail|sensor|{cef_header(VERSION)}|"
                f"{cef_header(self.signature())}|{cef_header(event.info)}|{CEF_SEVERITY[level]}|{extension}")

    def write(self, event: Event, line: str) -> None:
        self._send(self.format(event).encode("utf-8", "replace"))


class LogstashSink(_UdpTargets):
    name = "LOGSTASH_SERVER"
    key = "LOGSTASH_SERVER"

    def __init__(self, endpoints: str, severity: Severity, sensor_name: str) -> None:
        super().__init__(endpoints)
        self.severity = severity
        self.sensor_name = sensor_name

    def format(self, event: Event) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(event.sec)) + f".{event.usec:06d}"
        stamp += time.strftime("%z", time.localtime(event.sec))
        record = {
            "timestamp": stamp, "sensor": self.sensor_name, "severity": self.severity(event.info),
            "src_ip": event.src_ip, "src_port": event.src_port, "dst_ip": event.dst_ip,
            "dst_port": event.dst_port, "proto": event.proto, "type": event.type, "trail": event.trail,
            "info": event.info, "reference": event.reference,
        }
        return json.dumps(record, ensure_ascii=False)

    def write(self, event: Event, line: str) -> None:
        self._send(self.format(event).encode("utf-8", "replace"))


def build_remote_sinks(config: Config) -> list[Sink]:
    """CEF and Logstash sinks for the endpoints configured (none when the keys are unset)."""
    severity = Severity(config.REMOTE_SEVERITY_REGEX)
    sinks: list[Sink] = []
    if config.SYSLOG_SERVER:
        sinks.append(CefSyslogSink(config.SYSLOG_SERVER, severity, config.TRAILS_FILE,
                                   config.SENSOR_NAME))
    if config.LOGSTASH_SERVER:
        sinks.append(LogstashSink(config.LOGSTASH_SERVER, severity, config.SENSOR_NAME))
    return sinks
