"""core/assemble.py: what build_sensor wires for a configuration, its one error type, and the
sinks sensor.py gets (real log files, a real UDP socket on 127.0.0.1, the console fallback)."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys

import pytest

from core.assemble import AssemblyError, build_sensor, configured_sinks
from core.config import load_config
from core.events.condense import Condenser
from core.events.filters import WhitelistFilter
from core.events.observables import ObservableSink
from core.events.remote import CefSyslogSink
from core.events.sinks import ConsoleSink, LogFileSink, MemorySink, UdpSink
from core.events.throttle import Throttle
from core.heuristics import Heuristics
from core.heuristics.engine import HeuristicEngine
from core.trails.store import TrailStore
from tests.kit import pcapgen as g

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "conformance")
T0 = 1_700_000_000
LISTED = g.ether(g.ipv4("10.0.0.66", "66.66.66.66", g.tcp(40000, 443)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return TrailStore.from_rows([("66.66.66.66", "malware (test)", "(static)")], str(tmp_path_factory.mktemp("s")))


def conf(tmp_path, **overrides):
    return load_config(overrides={"LOG_DIR": str(tmp_path), **overrides})


def test_production_stages_in_order(store, tmp_path):
    sensor = build_sensor(conf(tmp_path, USE_HEURISTICS="true"), store, sinks=[MemorySink()])
    assert isinstance(sensor.events.filters[0], WhitelistFilter)
    assert [type(stage) for stage in sensor.events.stages] == [Condenser, Throttle]
    assert isinstance(sensor.heuristics, HeuristicEngine)
    assert sensor.detector.heuristics is sensor.heuristics and sensor.detector.events is sensor.events
    assert sensor.detector.whitelist is sensor.whitelist and not sensor.detector.plugins_wanted


def test_configuration_switches_stages_and_heuristics(store, tmp_path):
    sensor = build_sensor(conf(tmp_path, USE_HEURISTICS="false", EVENT_THROTTLE_MODE="off"), store, sinks=[])
    assert [type(stage) for stage in sensor.events.stages] == [Condenser]
    assert type(sensor.heuristics) is Heuristics


def test_plugins_from_the_key_or_the_argument(store, tmp_path):
    config = conf(tmp_path, PLUGINS="strings")
    assert build_sensor(config, store, sinks=[]).detector.plugins_wanted
    sensor = build_sensor(config, store, sinks=[], plugins=())
    assert sensor.events.plugins is None and not sensor.detector.plugins_wanted
    assert build_sensor(conf(tmp_path), store, sinks=[], plugins=["peek"]).events.plugins is not None


@pytest.mark.parametrize("overrides, plugins, message", [
    ({"USER_WHITELIST": "/nonexistent/wl.txt"}, None, "USER_WHITELIST /nonexistent/wl.txt"),
    ({"USER_IGNORELIST": "/nonexistent/ignore.txt"}, None, "/nonexistent/ignore.txt"),
    ({}, ["no-such-plugin"], "no-such-plugin"),
    ({"USE_HEURISTICS": "true", "DISABLED_HEURISTICS": "port_scaning"}, None, "port_scaning"),
])
def test_build_failures_are_one_assembly_error(store, tmp_path, overrides, plugins, message):
    with pytest.raises(AssemblyError, match=message):
        build_sensor(conf(tmp_path, **overrides), store, sinks=[], plugins=plugins)


def test_configured_sinks(tmp_path):
    assert [type(s) for s in configured_sinks(conf(tmp_path))] == [LogFileSink, ObservableSink]
    assert [type(s) for s in configured_sinks(conf(tmp_path), console=True)] == [LogFileSink, ObservableSink,
                                                                                ConsoleSink]
    assert [type(s) for s in configured_sinks(conf(tmp_path, USE_CONDENSED_STORAGE="false"))] == [LogFileSink]
    alone = conf(tmp_path, DISABLE_LOCAL_LOG_STORAGE="true")
    assert [type(s) for s in configured_sinks(alone)] == [ConsoleSink]  # events must go somewhere
    remote = conf(tmp_path, DISABLE_LOCAL_LOG_STORAGE="true", LOG_SERVER="127.0.0.1:9", SYSLOG_SERVER="127.0.0.1:9")
    assert [type(s) for s in configured_sinks(remote)] == [UdpSink, CefSyslogSink]


def test_default_sinks_write_the_day_file_and_the_log_server(store, tmp_path):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        config = conf(tmp_path, LOG_SERVER=f"127.0.0.1:{receiver.getsockname()[1]}", SENSOR_NAME="s1")
        sensor = build_sensor(config, store)
        sensor.process(1, T0, 0, LISTED)
        sensor.close()
        datagram = receiver.recv(65535).decode()
    finally:
        receiver.close()
    lines = [line for path in glob.glob(str(tmp_path / "*.log")) for line in open(path, encoding="utf-8")]
    assert len(lines) == 1 and " s1 10.0.0.66 40000 66.66.66.66 443 TCP IP 66.66.66.66 " in lines[0]
    assert datagram == f"{T0} {lines[0].rstrip()}"


def test_sensor_cli_falls_back_to_the_console(tmp_path):
    pcap = g.write_pcap(str(tmp_path / "one.pcap"), [(T0, LISTED)])
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(CORPUS, "trails.csv"), MALTRAIL_LOG_DIR=str(tmp_path),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_DISABLE_LOCAL_LOG_STORAGE="true")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-q", "-r", pcap],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "66.66.66.66" in result.stderr and not glob.glob(str(tmp_path / "*.log"))
