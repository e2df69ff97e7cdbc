"""Live capture through a veth pair into a network namespace the tests create themselves.

The real `sensor.py` captures on the host end; corpus captures are replayed into the namespace end
with tcpreplay and real DNS/TCP traffic is sent from inside the namespace. The live sensor must
detect what the offline replay of the same captures detects, with 1 and 2 capture workers.
Needs root (namespaces, raw capture); skipped otherwise.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from core.capture.live import CaptureError, CaptureSettings, LiveSource
from tests.kit.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "conformance")
MANIFEST = json.load(open(os.path.join(CORPUS, "manifest.json"), encoding="utf-8"))
SENSOR = os.path.join(ROOT, "sensor.py")
HOST_IP, NS_IP, TRAIL_IP = "10.199.{n}.1", "10.199.{n}.2", "10.199.{n}.77"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace, live capture)"),
    pytest.mark.skipif(shutil.which("ip") is None or shutil.which("tcpreplay") is None,
                       reason="needs iproute2 and tcpreplay"),
]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=60)


class Veth:
    """host end `mlh<n>` (sensor side) <-> namespace end `mln<n>` in namespace `mlns<n>`."""

    def __init__(self) -> None:
        self.n = os.getpid() % 200 + 20
        self.ns, self.host, self.peer = f"mlns{self.n}", f"mlh{self.n}", f"mln{self.n}"
        self.host_ip, self.ns_ip, self.trail_ip = (x.format(n=self.n) for x in (HOST_IP, NS_IP, TRAIL_IP))
        self.down()
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.host, "type", "veth", "peer", "name", self.peer)
        sh("ip", "link", "set", self.peer, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host)
        sh("ip", "link", "set", self.host, "up")
        self.ns_run("ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.peer)
        self.ns_run("ip", "link", "set", self.peer, "up")
        self.ns_run("ip", "link", "set", "lo", "up")
        mac = open(f"/sys/class/net/{self.host}/address").read().strip()
        # The trail address answers no ARP: pin it to the host end so the SYN really goes out.
        self.ns_run("ip", "neigh", "add", self.trail_ip, "lladdr", mac, "dev", self.peer)
        time.sleep(0.5)

    def ns_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    def replay(self, pcaps: list[str], pps: int | None = None) -> None:
        speed = ["--pps", str(pps)] if pps else ["--topspeed"]
        self.ns_run("tcpreplay", "-q", "-i", self.peer, *speed, *pcaps)

    def down(self) -> None:
        sh("ip", "link", "del", f"mlh{self.n}", check=False)
        sh("ip", "netns", "del", f"mlns{self.n}", check=False)


@pytest.fixture(scope="module")
def veth():
    pair = Veth()
    yield pair
    pair.down()


class LiveSensor:
    """The real sensor.py capturing on the veth host end."""

    def __init__(self, tmp_path, veth: Veth, workers: int = 1, extra: dict[str, str] | None = None) -> None:
        self.log_dir = tmp_path / f"log{workers}"
        self.trails = tmp_path / "trails.csv"
        if not self.trails.exists():
            shutil.copy(os.path.join(CORPUS, "trails.csv"), self.trails)
            with open(self.trails, "a") as handle:
                handle.write(f"{veth.trail_ip},malware (live test),(static)\nlive-test-evil.com,malware (live test),(static)\n")
        self.stats_port = free_port()
        self.env = dict(os.environ, MALTRAIL_LOG_DIR=str(self.log_dir), MALTRAIL_TRAILS_FILE=str(self.trails),
                        MALTRAIL_MONITOR_INTERFACE=veth.host, MALTRAIL_DISABLE_TRAIL_UPDATES="true",
                        MALTRAIL_CAPTURE_BUFFER_SIZE="8MB", MALTRAIL_SENSOR_NAME="live",
                        MALTRAIL_CAPTURE_WORKERS=str(workers), MALTRAIL_USE_HEURISTICS="true",
                        MALTRAIL_STATS_ADDRESS=f"127.0.0.1:{self.stats_port}", **(extra or {}))
        self.proc = subprocess.Popen([sys.executable, SENSOR], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.wait_ready()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.stats_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.read().decode()

    def wait_ready(self) -> None:
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sensor exited: {self.proc.communicate()}")
            try:
                if "maltrail_up 1" in self.metrics():
                    time.sleep(0.3)
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("sensor did not come up")

    def stop(self) -> tuple[int, str, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, err, time.monotonic() - started

    def lines(self) -> list[str]:
        out: list[str] = []
        for path in sorted(glob.glob(str(self.log_dir / "*.log"))):
            if not path.endswith("error.log"):
                out.extend(open(path, encoding="utf-8").read().splitlines())
        return out


def event_key(line: str) -> tuple[str, ...]:
    """(src, dst, proto, type, trail, info) of an event line: what must match, time aside."""
    import csv

    fields = next(csv.reader([line], delimiter=" "))
    return fields[2], fields[4], fields[6], fields[7], fields[8], fields[9]


def ethernet_cases() -> list[dict]:
    return [case for case in MANIFEST if case["linktype"] == 1]


def offline_keys(tmp_path, pcap: str) -> set[tuple[str, ...]]:
    log_dir = tmp_path / ("off-" + os.path.basename(pcap))
    env = dict(os.environ, MALTRAIL_LOG_DIR=str(log_dir), MALTRAIL_TRAILS_FILE=str(tmp_path / "trails.csv"),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_USE_HEURISTICS="true",
               MALTRAIL_EVENT_THROTTLE_MODE="off")
    proc = subprocess.run([sys.executable, SENSOR, "--offline", "-r", pcap], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    keys = set()
    for path in glob.glob(str(log_dir / "*.log")):
        keys.update(event_key(line) for line in open(path, encoding="utf-8").read().splitlines())
    return keys


@pytest.mark.parametrize("workers", [1, 2])
def test_live_detects_what_offline_detects(tmp_path, veth, workers):
    # One live run sees every case; with the throttle on, a key seen in an earlier case would be
    # suppressed in a later one, so both sides run without it.
    sensor = LiveSensor(tmp_path, veth, workers, {"MALTRAIL_EVENT_THROTTLE_MODE": "off"})
    cases = ethernet_cases()
    try:
        for case in cases:
            veth.replay([os.path.join(CORPUS, case["pcap"])])
            time.sleep(0.05)
        time.sleep(1.0)
        metrics = sensor.metrics()
    finally:
        status, err, took = sensor.stop()
    assert status == 0, err
    assert "Traceback" not in err
    live = {event_key(line) for line in sensor.lines()}
    missing = {}
    for case in cases:
        offline = offline_keys(tmp_path, os.path.join(CORPUS, case["pcap"]))
        lost = offline - live
        if lost:
            missing[case["name"]] = sorted(lost)
        for expected in case["expect"] + case["expect_rust_only"]:
            assert any(expected in line for line in sensor.lines()), (case["name"], expected)
    assert missing == {}, json.dumps(missing, indent=1)
    assert 'maltrail_capture_dropped_total{worker="0"} 0' in metrics


def test_real_dns_and_tcp_traffic_from_namespace(tmp_path, veth):
    sensor = LiveSensor(tmp_path, veth, 2)
    try:
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 + b"".join(bytes([len(p)]) + p.encode() for p in "www.live-test-evil.com".split("."))
                 + b"\x00\x00\x01\x00\x01")
        script = ("import socket,sys\n"
                  "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                  f"u.sendto(bytes.fromhex('{query.hex()}'),('{veth.host_ip}',53))\n"
                  "t=socket.socket();t.settimeout(0.5)\n"
                  "try:\n"
                  f"    t.connect(('{veth.trail_ip}',8080))\n"
                  "except OSError:\n"
                  "    pass\n")
        veth.ns_run(sys.executable, "-c", script)
        time.sleep(1.0)
    finally:
        status, err, _took = sensor.stop()
    assert status == 0, err
    lines = sensor.lines()
    assert any("(www).live-test-evil.com" in line and veth.ns_ip in line for line in lines), lines
    assert any(f" {veth.trail_ip} 8080 TCP IP {veth.trail_ip} " in line for line in lines), lines


def test_metrics_pass_promtool_and_sigterm_is_fast(tmp_path, veth):
    sensor = LiveSensor(tmp_path, veth, 2)
    try:
        veth.replay([os.path.join(CORPUS, "ip_trails.pcap")])
        time.sleep(0.8)
        text = sensor.metrics()
    finally:
        status, err, took = sensor.stop()
    assert status == 0, err
    assert took < 2.5, f"SIGTERM took {took:.2f} s"
    assert "maltrail_up 1" in text
    packets = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("maltrail_packets_total"))
    assert packets >= 3
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_dead_worker_makes_sensor_exit_non_zero(tmp_path, veth):
    sensor = LiveSensor(tmp_path, veth, 2)
    children = sh("pgrep", "-P", str(sensor.proc.pid)).stdout.split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    _out, err = sensor.proc.communicate(timeout=10)
    assert sensor.proc.returncode != 0
    assert "died" in err


def test_sighup_reloads_and_refuses_a_collapsed_set(tmp_path, veth):
    sensor = LiveSensor(tmp_path, veth, 1)
    try:
        with open(sensor.trails, "a") as handle:
            handle.write("reload-added.com,malware (reload),(static)\n")
        sensor.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        text = sensor.metrics()
        assert 'maltrail_trail_generation{worker="0"} 2' in text
        with open(sensor.trails, "w") as handle:
            handle.write("only-one.com,malware (reload),(static)\n")
        sensor.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        text = sensor.metrics()
        assert 'maltrail_trail_generation{worker="0"} 2' in text
        assert 'maltrail_trail_reload_rejected_total{worker="0"} 1' in text
    finally:
        status, err, _took = sensor.stop()
    assert status == 0
    assert "refused" in err


def test_unknown_interface_lists_available(tmp_path):
    with pytest.raises(CaptureError) as info:
        LiveSource(CaptureSettings(interfaces=["nosuchif0"]))
    assert "nosuchif0" in str(info.value) and "lo" in str(info.value)


def test_bad_filter_rejected_at_start(tmp_path):
    with pytest.raises(CaptureError) as info:
        LiveSource(CaptureSettings(interfaces=["lo"], bpf="tcp port nosuchservice"))
    assert "CAPTURE_FILTER" in str(info.value)


def test_sensor_cli_bad_interface_one_line(tmp_path):
    trails = tmp_path / "t.csv"
    trails.write_text("evil.com,malware (x),(static)\n")
    env = dict(os.environ, MALTRAIL_LOG_DIR=str(tmp_path), MALTRAIL_TRAILS_FILE=str(trails),
               MALTRAIL_MONITOR_INTERFACE="nosuchif0", MALTRAIL_DISABLE_TRAIL_UPDATES="true")
    proc = subprocess.run([sys.executable, SENSOR, "-q"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "nosuchif0" in proc.stderr and "available" in proc.stderr


def _sensor_on(tmp_path, interface: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    trails = tmp_path / "t.csv"
    trails.write_text("evil.com,malware (x),(static)\n")
    env = dict(os.environ, MALTRAIL_LOG_DIR=str(tmp_path), MALTRAIL_TRAILS_FILE=str(trails),
               MALTRAIL_MONITOR_INTERFACE=interface, MALTRAIL_DISABLE_TRAIL_UPDATES="true",
               MALTRAIL_CAPTURE_FILTER="udp or tcp")
    return subprocess.run([*prefix, sys.executable, SENSOR], env=env, capture_output=True, text=True, timeout=30)


def test_unknown_interface_is_reported_before_any_capturing_line(tmp_path):
    proc = _sensor_on(tmp_path, "nosuchif0")
    assert proc.returncode == 1
    assert "unknown interface nosuchif0" in proc.stderr
    assert "capturing on" not in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_root_without_capture_capability_is_told_what_is_missing(tmp_path):
    """uid 0 with CAP_NET_RAW/CAP_NET_ADMIN dropped (a container or a hardened unit): the message names
    the missing capability, never the capture filter, and the sensor exits non-zero."""
    drop = ("setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin", "--")
    proc = _sensor_on(tmp_path, "lo", *drop)
    assert proc.returncode == 1, proc.stderr
    assert "CAP_NET_RAW" in proc.stderr and "CAPTURE_FILTER" not in proc.stderr, proc.stderr
    assert "capturing on" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("workers", [2, 4])
def test_live_tunnelled_scans_keep_every_alert(tmp_path, veth, workers):
    """Scans mirrored through VXLAN, GRE and ERSPAN II between one pair of tunnel endpoints: the
    kernel program spreads them over the workers by inner host (the endpoints alone would put
    everything on one worker) and the workers raise every event one offline replay raises."""
    from bench import retention
    from tests.kit import pcapgen, tunnelgen

    packets = retention.generated_scans(sources=24)
    kinds = ("vxlan", "gre_ip", "erspan2")
    frames = [(sec + usec / 1e6, tunnelgen.wrap(kinds[n % 3], frame, linktype))
              for n, (linktype, sec, usec, frame) in enumerate(packets)]
    pcap = pcapgen.write_pcap(str(tmp_path / "tunnelled.pcap"), frames)
    sensor = LiveSensor(tmp_path, veth, workers, {"MALTRAIL_EVENT_THROTTLE_MODE": "off"})
    try:
        veth.replay([pcap], pps=2000)
        time.sleep(1.5)
        metrics = sensor.metrics()
    finally:
        status, err, _took = sensor.stop()
    assert status == 0, err
    live = {event_key(line) for line in sensor.lines()}
    offline = offline_keys(tmp_path, pcap)
    assert offline and offline <= live, sorted(offline - live)
    assert not any(tunnelgen.OUTER_A in key or tunnelgen.OUTER_B in key for key in live)
    busy = [line for line in metrics.splitlines() if line.startswith("maltrail_packets_total{") and not line.endswith(" 0")]
    assert len(busy) >= 2, metrics
    assert 'maltrail_tunnel_decapsulated_total{worker="0",kind="vxlan"}' in metrics
