"""Plugins: loading rules, isolation of failing plugins, shipped peek/strings, sensor -p end to end."""

import glob
import os
import subprocess
import sys

import pytest

from core.events.event import Event
from core.events.plugins import PluginError, load_plugins, plugin_names
from tests.kit import pcapgen as g

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "conformance")
EVENT = Event(1_700_000_000, 0, "10.0.0.66", 50000, "66.66.66.66", 443, "TCP", "IP", "66.66.66.66", "malware", "(static)")


def make_dir(tmp_path, **files):
    folder = tmp_path / "plugs"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return str(folder)


def test_load_by_name_and_call(tmp_path):
    folder = make_dir(tmp_path, rec="SEEN = []\ndef plugin(event_tuple, packet):\n    SEEN.append((event_tuple, packet))\n")
    runner = load_plugins(["rec"], folder)
    runner.call(EVENT, b"frame")
    assert runner.plugins[0][1].__globals__["SEEN"] == [(tuple(EVENT), b"frame")]


def test_loading_errors_are_clear(tmp_path):
    folder = make_dir(tmp_path, noplugin="x = 1\n", badargs="def plugin(a):\n    pass\n", broken="def (\n")
    for name, message in (("absent", "not found"), ("noplugin", "no function"), ("badargs", "must take"),
                          ("broken", "import failed")):
        with pytest.raises(PluginError, match=message):
            load_plugins([name], folder)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "p.py").write_text("def plugin(e, p):\n    pass\n")
    with pytest.raises(PluginError, match="__init__"):
        load_plugins([str(lonely / "p.py")], folder)


def test_failing_plugin_is_reported_once_and_others_still_run(tmp_path, capsys):
    folder = make_dir(tmp_path, bad="def plugin(e, p):\n    raise RuntimeError('boom')\n",
                      good="N = [0]\ndef plugin(e, p):\n    N[0] += 1\n")
    runner = load_plugins("bad,good", folder)
    for _ in range(5):
        runner.call(EVENT, None)
    assert runner.errors["bad"] == 5 and runner.plugins[1][1].__globals__["N"][0] == 5
    assert capsys.readouterr().err.count("plugin bad failed") == 1


def test_plugin_names_merge_cli_and_config():
    assert plugin_names("peek, strings", "strings;x") == ["peek", "strings", "x"]


def test_shipped_plugins_print_packets(capsys):
    runner = load_plugins(["peek", "strings"])
    runner.call(EVENT, b"\x00\x01GET /secret HTTP/1.1\r\n\x02ab")
    err = capsys.readouterr().err
    assert "10.0.0.66:50000 -> 66.66.66.66:443:" in err
    assert "..GET /secret HTTP/1.1...ab" in err and "\nGET /secret HTTP/1.1\n" in err
    assert runner.errors == {"peek": 0, "strings": 0}


def test_sensor_p_feeds_flow_packets_to_plugins_without_extra_lines(tmp_path):
    frames = [(1_700_000_000.0, g.ether(g.ipv4("10.0.0.66", "66.66.66.66", g.tcp(50000, 443, flags=g.SYN)))),
              (1_700_000_000.5, g.ether(g.ipv4("10.0.0.66", "66.66.66.66",
                                               g.tcp(50000, 443, flags=0x18, payload=b"MARKER-PAYLOAD-1234"))))]
    pcap = g.write_pcap(str(tmp_path / "flow.pcap"), frames)
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(CORPUS, "trails.csv"), MALTRAIL_LOG_DIR=str(tmp_path),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-p", "strings", "-r", pcap],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "MARKER-PAYLOAD-1234" in result.stderr
    lines = [line for path in glob.glob(str(tmp_path / "*.log")) for line in open(path)]
    assert len(lines) == 1 and "66.66.66.66" in lines[0]


def test_sensor_refuses_unknown_plugin(tmp_path):
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(CORPUS, "trails.csv"), MALTRAIL_LOG_DIR=str(tmp_path),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-p", "nope",
                             "-r", os.path.join(CORPUS, "icmp.pcap")], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and "plugin 'nope'" in result.stderr and "Traceback" not in result.stderr


def test_heuristic_events_reach_plugins_with_their_packet(tmp_path):
    """A heuristic detection (here a suspicious User-Agent) hands plugins the packet that raised it."""
    request = g.http_request("GET", "/", [("Host", "www.example.org"), ("User-Agent", "sqlmap/1.7 HEURMARK")])
    frames = [(1_700_000_000.0, g.ether(g.ipv4("10.0.0.66", "93.184.216.34", g.tcp(50000, 80, flags=0x18,
                                                                                    payload=request))))]
    pcap = g.write_pcap(str(tmp_path / "ua.pcap"), frames)
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(CORPUS, "trails.csv"), MALTRAIL_LOG_DIR=str(tmp_path),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_USE_HEURISTICS="true")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-p", "strings", "-r", pcap],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "user agent (suspicious)" in "".join(open(p).read() for p in glob.glob(str(tmp_path / "*.log")))
    assert "HEURMARK" in result.stderr  # the strings plugin printed the packet's printable runs
