"""CEF over syslog (received by a real rsyslogd on loopback) and Logstash JSON over UDP."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from core.config import load_config
from core.events.event import Event
from core.events.remote import (
    CefSyslogSink,
    LogstashSink,
    build_remote_sinks,
)
from core.events.severity import Severity
from tests.kit.ports import free_port

EVENT = Event(1_700_000_000, 123, "10.0.0.66", 50000, "66.66.66.66", 443, "TCP", "IP", "66.66.66.66",
              "malware (test)", "(static)")
NASTY = EVENT._replace(trail="a=b|c\\d", info="pipe|in info", reference="x\ny")


@pytest.fixture()
def rsyslogd(tmp_path):
    binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not os.path.exists(binary):
        pytest.skip("rsyslog not installed (setup.sh TEST_APT)")
    port = free_port(socket.SOCK_DGRAM)
    out = tmp_path / "received.log"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{port}")\n'
        'template(name="raw" type="string" string="%hostname%|%syslogseverity%|%syslogtag%%msg%\\n")\n'
        f'action(type="omfile" file="{out}" template="raw")\n')
    proc = subprocess.Popen([binary, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.8)
    if proc.poll() is not None:
        pytest.fail("rsyslogd did not start: " + proc.stdout.read().decode(errors="replace"))
    yield port, out
    proc.terminate()
    proc.wait(timeout=10)


def wait_lines(path, count, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.1)
    return path.read_text().splitlines() if path.exists() else []


def test_cef_lines_are_received_and_parsed_by_rsyslog(rsyslogd):
    port, out = rsyslogd
    sink = CefSyslogSink(f"127.0.0.1:{port}", Severity(None), hostname="sensor-a")
    sink.write(EVENT, "")
    sink.write(NASTY, "")
    sink.close()
    lines = wait_lines(out, 2)
    assert len(lines) == 2, lines
    host, severity, msg = lines[0].split("|", 2)
    assert host == "sensor-a" and severity == "2"  # high -> syslog critical
    fields = msg.strip().split("|")
    assert fields[:3] == ["CEF:0", "Maltrail", "sensor"] and fields[5] == "malware (test)"
    assert fields[6] == "8"  # high on CEF's 0-10 scale: a SIEM files it as High, not Low
    assert re.fullmatch(r"\d{4}-\d\d-\d\d|-", fields[4])  # the original's signature id form
    assert "src=10.0.0.66 spt=50000 dst=66.66.66.66 dpt=443" in fields[7] and "trail=66.66.66.66" in fields[7]
    assert "cs1Label=type cs1=" in fields[7] and " type=" not in fields[7]  # `type` is reserved in CEF
    nasty = lines[1].split("|", 2)[2]
    assert "pipe\\|in info" in nasty and "trail=a\\=b|c\\\\d" in nasty and "ref=x\\ny" in nasty


def test_cef_to_several_endpoints():
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sock in receivers:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
    endpoints = ",".join(f"127.0.0.1:{sock.getsockname()[1]}" for sock in receivers)
    config = load_config(overrides={"SYSLOG_SERVER": endpoints, "LOGSTASH_SERVER": endpoints})
    sinks = build_remote_sinks(config)
    assert [type(s) for s in sinks] == [CefSyslogSink, LogstashSink]
    for sink in sinks:
        sink.write(EVENT, "")
        sink.close()
    for sock in receivers:
        first, second = sock.recv(4096).decode(), sock.recv(4096).decode()
        assert "CEF:0|Maltrail|sensor|" in first
        record = json.loads(second)
        assert list(record) == ["timestamp", "sensor", "severity", "src_ip", "src_port", "dst_ip", "dst_port", "proto",
                                "type", "trail", "info", "reference", "time"]
        assert record["timestamp"] == EVENT.sec  # epoch seconds, as the original sends
        assert record["trail"] == "66.66.66.66" and record["dst_port"] == 443
        sock.close()


def test_logstash_json_escapes_and_severity_levels():
    # the levels themselves: tests/test_severity.py over the shared cases file
    severity = Severity(None)
    sink = LogstashSink("127.0.0.1:9", severity, "s1")
    record = json.loads(sink.format(NASTY))
    assert record["reference"] == "x\ny" and record["time"].startswith("2023-11-1")
    assert isinstance(record["timestamp"], int)
    assert record["severity"] == severity(NASTY.info, NASTY.reference)
    custom = json.loads(LogstashSink("127.0.0.1:9", Severity("(?P<low>.)"), "s1").format(NASTY))
    assert custom["severity"] == "low"


def test_unreachable_endpoint_is_counted_not_raised():
    sink = LogstashSink("[::1]:9", Severity(None), "s1")
    for _ in range(3):
        sink.write(EVENT, "")
    sink.close()
    assert sink.written + sink.errors == 3
