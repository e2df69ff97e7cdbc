"""Sensor operations: -T preflight, --self-test, metrics exposition, trail reload rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from core.config import load_config
from core.ops.metrics import FIELDS, MetricsServer, SharedCounters, render
from core.ops.reload import TrailReloader, acceptable
from tests.kit.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENSOR = os.path.join(ROOT, "sensor.py")
TRAILS = os.path.join(ROOT, "tests", "data", "conformance", "trails.csv")


def run_sensor(tmp_path, *args, **env):
    full = dict(os.environ, MALTRAIL_LOG_DIR=str(tmp_path / "log"), MALTRAIL_DISABLE_TRAIL_UPDATES="true",
                MALTRAIL_MONITOR_INTERFACE="lo")
    full.update(env)
    return subprocess.run([sys.executable, SENSOR, *args], env=full, capture_output=True, text=True, timeout=60)


@pytest.fixture
def trails(tmp_path):
    path = tmp_path / "trails.csv"
    shutil.copy(TRAILS, path)
    return str(path)


def test_preflight_passes_and_prints_effective_configuration(tmp_path, trails):
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=trails, MALTRAIL_DISABLE_CHECK_SUDO="true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "preflight: passed" in proc.stdout
    assert "  MONITOR_INTERFACE lo" in proc.stdout
    assert "  USERS <set>" in proc.stdout  # secrets masked
    assert "[warn] tunnels" not in proc.stdout  # the shipped filter admits every tunnel


def test_preflight_warns_when_the_filter_drops_tunnels(tmp_path, trails):
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=trails, MALTRAIL_DISABLE_CHECK_SUDO="true",
                      MALTRAIL_CAPTURE_FILTER="udp or icmp")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[warn] tunnels: the capture filter drops GRE, ERSPAN, IP-in-IP, MPLS mirrors" in proc.stdout


@pytest.mark.parametrize("env,needle", [
    ({"MALTRAIL_MONITOR_INTERFACE": "nosuchif9"}, "[FAIL] interface"),
    ({"MALTRAIL_CAPTURE_FILTER": "tcp port nosuchservice"}, "[FAIL] capture filter"),
    ({"MALTRAIL_TRAILS_FILE": os.path.dirname(TRAILS)}, "[FAIL] trails"),  # a folder, not a trails file
])
def test_preflight_failures(tmp_path, trails, env, needle):
    full = {"MALTRAIL_TRAILS_FILE": trails, "MALTRAIL_DISABLE_CHECK_SUDO": "true", **env}
    proc = run_sensor(tmp_path, "-T", **full)
    assert proc.returncode == 1
    assert needle in proc.stdout
    assert "Traceback" not in proc.stderr


def test_preflight_missing_trails_file_is_a_warning(tmp_path):
    """The sensor builds a missing trails file at its first start (core/update/firstrun.py)."""
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=str(tmp_path / "none" / "trails.csv"),
                      MALTRAIL_DISABLE_CHECK_SUDO="true")
    assert proc.returncode == 0, proc.stdout
    assert f"[warn] trails: {tmp_path}/none/trails.csv does not exist yet" in proc.stdout
    assert "python3 -m core.update" in proc.stdout
    assert not (tmp_path / "none").exists()  # -T builds nothing
def test_preflight_fails_on_a_misspelt_key_and_names_the_right_one(tmp_path, trails):
    conf = tmp_path / "maltrail.conf"
    with open(os.path.join(ROOT, "maltrail.conf"), encoding="utf-8") as handle:
        conf.write_text(handle.read() + "\nUSE_HEURISTIC true\n")
    proc = run_sensor(tmp_path, "-T", "-c", str(conf), MALTRAIL_TRAILS_FILE=trails, MALTRAIL_DISABLE_CHECK_SUDO="true")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] configuration" in proc.stdout and "unknown keys: USE_HEURISTIC" in proc.stdout
    assert "did you mean USE_HEURISTICS?" in proc.stdout
    assert "did you mean USE_HEURISTICS?" in proc.stderr  # the start-up warning, also outside -T
    assert "preflight: 1 check(s) failed" in proc.stdout


def test_preflight_refuses_empty_trails(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=str(empty), MALTRAIL_DISABLE_CHECK_SUDO="true")
    assert proc.returncode == 1 and "[FAIL] trails" in proc.stdout
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=str(empty), MALTRAIL_DISABLE_CHECK_SUDO="true",
                      MALTRAIL_ALLOW_EMPTY_TRAILS="true")
    assert proc.returncode == 0, proc.stdout


def test_preflight_unwritable_log_dir(tmp_path, trails):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_sensor(tmp_path, "-T", MALTRAIL_TRAILS_FILE=trails, MALTRAIL_DISABLE_CHECK_SUDO="true",
                      MALTRAIL_LOG_DIR=str(blocker / "sub"))
    assert proc.returncode == 1 and "[FAIL] log directory" in proc.stdout


def test_self_test_reports_all_detections(tmp_path):
    proc = run_sensor(tmp_path, "--self-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-test: 4/4 detections; tunnels opened: vxlan 1" in proc.stdout


def test_metrics_render_and_promtool(tmp_path):
    counters = SharedCounters(2)
    counters.publish(0, heartbeat=time.time(), packets=10, dropped=1, trail_count=20, trail_loaded=time.time() - 5)
    counters.publish(1, heartbeat=time.time() - 60, packets=3)
    text = render(counters.rows(), started=time.time())
    assert "maltrail_up 0" in text  # worker 1 is silent
    assert 'maltrail_worker_alive{worker="1"} 0' in text
    assert 'maltrail_packets_total{worker="0"} 10' in text
    assert 'maltrail_capture_dropped_total{worker="0"} 1' in text
    counters.publish(0, decap_vxlan=5, tunnel_malformed=2)
    text = render(counters.rows(), started=time.time())
    assert 'maltrail_tunnel_decapsulated_total{worker="0",kind="vxlan"} 5' in text
    assert 'maltrail_tunnel_skipped_total{worker="0",reason="malformed"} 2' in text
    assert set(counters.row(0)) == set(FIELDS)
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_metrics_server_serves_http():
    import urllib.error
    import urllib.request

    server = MetricsServer(f"127.0.0.1:{free_port()}", lambda: "maltrail_up 1\n")
    port = server.httpd.server_address[1]
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
            assert response.read() == b"maltrail_up 1\n"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)  # noqa: S310
    finally:
        server.close()


def test_reload_rules():
    config = load_config(os.path.join(ROOT, "maltrail.conf"), env={})
    assert acceptable(100, 60, config)[0]
    assert not acceptable(100, 40, config)[0]
    assert not acceptable(100, 0, config)[0]
    assert acceptable(0, 0, config.replace(ALLOW_EMPTY_TRAILS=True))[0]


def test_reloader_swaps_and_refuses(tmp_path):
    from core.trails.store import TrailStore

    path = tmp_path / "trails.csv"
    path.write_text("".join(f"evil{i}.com,malware (x),(static)\n" for i in range(10)))
    config = load_config(os.path.join(ROOT, "maltrail.conf"), env={}).replace(TRAILS_FILE=str(path))
    reloader = TrailReloader(config, TrailStore.open(str(path)), TrailStore.open)
    path.write_text("".join(f"evil{i}.com,malware (x),(static)\n" for i in range(12)))
    swapped, message = reloader.reload()
    assert swapped and reloader.generation == 2 and len(reloader.store) == 12, message
    path.write_text("evil0.com,malware (x),(static)\n")
    swapped, message = reloader.reload()
    assert not swapped and "refused" in message and len(reloader.store) == 12
    assert reloader.rejected == 1


def test_update_arguments_for_the_reload_child_and_the_printed_command(tmp_path):
    """One rule for the update's arguments: the reload's child and the command printed for the
    operator both name a non-default configuration (a path with a space, quoted where printed),
    neither names the default one, and the update's own CLI accepts them."""
    import shlex

    from core.config import DEFAULT_CONFIG_FILE, ROOT_DIR, load_config
    from core.update.firstrun import update_args, update_command

    folder = tmp_path / "my conf"
    folder.mkdir()
    conf = folder / "maltrail.conf"
    conf.write_text(f"TRAILS_FILE {tmp_path / 'trails.csv'}\n")
    config = load_config(str(conf))
    assert update_args(config) == ["-m", "core.update", "-c", str(conf)]
    assert update_args(config, offline=True)[-1] == "--offline"
    assert update_command(config) == f"cd {shlex.quote(ROOT_DIR)} && sudo python3 -m core.update -c '{conf}'"
    assert update_args(load_config(DEFAULT_CONFIG_FILE)) == ["-m", "core.update"]
    proc = subprocess.run([sys.executable, *update_args(config), "--list-feeds"], cwd=ROOT_DIR,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "abuseipdb" in proc.stdout, proc.stderr
