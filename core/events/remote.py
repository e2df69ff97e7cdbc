"""Remote outputs: CEF over syslog/UDP (SYSLOG_SERVER) and Logstash JSON over UDP (LOGSTASH_SERVER).

Where it sits: sinks of the event pipeline, beside the daily log file and LOG_SERVER; built by
`build_remote_sinks(config)`. Each key takes several endpoints (`host:port`, `[v6]:port`, comma
separated). Severity is the one rule of core/events/severity.py (REMOTE_SEVERITY_REGEX or the
default table data/severity.json, searched in the event's info and reference).

CEF line (one datagram per endpoint):
    <PRI>Mon dd HH:MM:SS <hostname> CEF:0|Maltrail|sensor|<version>|<signature>|<info>|<sev>|src=.. spt=.. dst=.. dpt=.. proto=.. cs1Label=type cs1=.. trail=.. ref=..
<sev> is the event's severity on CEF's 0-10 scale (CEF_SEVERITY: low 3, medium 5, high 8; the
original sent 0/1/2, which every SIEM reads as Low); <signature> is the trail file's modification
date in the original's form (YYYY-MM-DD), re-read at most every 5 minutes. The event type travels
in the custom string extension cs1 (labelled `type`): `type` is a reserved integer key of the
ArcSight dictionary. Header fields escape `\\` and `|`;
extension values escape `\\`, `=` and line breaks (CEF rules). The `<PRI>` (facility user, severity
from the event) makes the datagram a valid RFC 3164 message for any syslog daemon.

Logstash JSON (one object a datagram), keys in this order: timestamp (epoch seconds, as the
original sends it), sensor, severity (low/medium/high), src_ip, src_port, dst_ip, dst_port, proto,
type, trail, info, reference, then time (the same instant in ISO 8601 with microseconds and offset).
"""

from __future__ import annotations

import json
import os
import socket
import time

from core.config import VERSION, Config, parse_endpoints
from core.events.event import Event
from core.events.severity import Severity
from core.events.sinks import Sink

CEF_SEVERITY = {"low": 3, "medium": 5, "high": 8}  # CEF 0-10: 0-3 low, 4-6 medium, 7-8 high
SYSLOG_SEVERITY = {"low": 5, "medium": 4, "high": 2}  # notice, warning, critical
SIGNATURE_REFRESH = 300


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
            self._signature = time.strftime("%Y-%m-%d", time.localtime(mtime)) if mtime else "-"
        return self._signature

    def format(self, event: Event) -> str:
        level = self.severity(event.info, event.reference)
        pri = 8 + SYSLOG_SEVERITY[level]  # facility user (1)
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(event.sec))
        extension = " ".join(f"{key}={cef_value(value)}" for key, value in (
            ("src", event.src_ip), ("spt", event.src_port), ("dst", event.dst_ip), ("dpt", event.dst_port),
            ("proto", event.proto), ("cs1Label", "type"), ("cs1", event.type), ("trail", event.trail),
            ("ref", event.reference)))
        return (f"<{pri}>{stamp} {self.hostname} CEF:0|Maltrail|sensor|{cef_header(VERSION)}|"
                f"{cef_header(self.signature())}|{cef_header(event.info)}|{CEF_SEVERITY[level]}|{extension}")

    def write(self, event: Event, line: str) -> None:
        self._send(self.format(event).encode("utf-8", "replace"))


def logstash_json(sec: int, usec: int, sensor: str, severity: str, fields: tuple[object, ...]) -> str:
    """The Logstash JSON object (LOGSTASH_SERVER, and the alert webhook's `%(json)s`): the keys of the
    module docstring, in that order. `fields` are the event's src_ip, src_port, dst_ip, dst_port,
    proto, type, trail, info and reference."""
    local = time.localtime(sec)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{usec:06d}" + time.strftime("%z", local)
    record: dict[str, object] = {"timestamp": sec, "sensor": sensor, "severity": severity}
    record.update(zip(("src_ip", "src_port", "dst_ip", "dst_port", "proto", "type", "trail", "info", "reference"),
                      fields, strict=True))
    record["time"] = stamp
    return json.dumps(record, ensure_ascii=False)


class LogstashSink(_UdpTargets):
    name = "LOGSTASH_SERVER"
    key = "LOGSTASH_SERVER"

    def __init__(self, endpoints: str, severity: Severity, sensor_name: str) -> None:
        super().__init__(endpoints)
        self.severity = severity
        self.sensor_name = sensor_name

    def format(self, event: Event) -> str:
        return logstash_json(event.sec, event.usec, self.sensor_name, self.severity(event.info, event.reference),
                             (event.src_ip, event.src_port, event.dst_ip, event.dst_port, event.proto, event.type,
                              event.trail, event.info, event.reference))

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
