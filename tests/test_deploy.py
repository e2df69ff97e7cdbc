"""Deployment files: systemd units (systemd-analyze verify) and the Docker files (structure)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.kit.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = ("maltrail-sensor.service", "maltrail-server.service")


def unit_copy(tmp_path, name: str) -> str:
    """The unit with /opt/maltrail pointed at this checkout (verify wants ExecStart to exist)."""
    text = open(os.path.join(ROOT, name), encoding="utf-8").read().replace("/opt/maltrail", ROOT)
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in open(os.path.join(ROOT, name), encoding="utf-8"):
        m = re.match(r"^(\w+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("name", UNITS)
def test_units_verify_cleanly(tmp_path, name):
    path = unit_copy(tmp_path, name)
    proc = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    complaints = [line for line in proc.stderr.splitlines() if name in line]
    assert complaints == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_verify_would_catch_a_broken_unit(tmp_path):
    path = unit_copy(tmp_path, UNITS[0])
    with open(path, "a") as handle:
        handle.write("[Service]\nNoSuchDirective=1\n")
    proc = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
    assert "NoSuchDirective" in proc.stderr


def test_sensor_unit_is_unprivileged_with_capture_capabilities():
    d = directives("maltrail-sensor.service")
    assert d["User"] == ["maltrail"]
    assert set(d["AmbientCapabilities"][0].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert set(d["CapabilityBoundingSet"][0].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
    assert any(cmd.endswith("sensor.py -T") for cmd in d["ExecStartPre"])
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert hardening in d


def test_server_unit_has_no_capabilities():
    d = directives("maltrail-server.service")
    assert d["User"] == ["maltrail"]
    assert d["CapabilityBoundingSet"] == [""]
    assert "AF_PACKET" not in d["RestrictAddressFamilies"][0]


def load_compose() -> dict:
    with open(os.path.join(ROOT, "docker", "docker-compose.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_compose_file_structure():
    compose = load_compose()
    services = compose["services"]
    assert set(services) == {"server", "sensor"}
    server, sensor = services["server"], services["sensor"]
    assert server["build"]["dockerfile"] == "docker/Dockerfile"
    assert os.path.isfile(os.path.join(ROOT, "docker", server["build"]["context"], server["build"]["dockerfile"]))
    assert {"8338:8338/tcp", "8337:8337/udp"} <= set(server["ports"])
    assert server["command"] == ["server"] and sensor["command"] == ["sensor"]
    assert server["cap_drop"] == ["ALL"] and "cap_add" not in server
    assert sensor["network_mode"] == "host"
    assert set(sensor["cap_add"]) == {"NET_RAW", "NET_ADMIN"}
    assert sensor["cap_drop"] == ["ALL"]
    assert not sensor.get("privileged", False) and "user" not in sensor  # the image's unprivileged user
    for name, service in services.items():
        assert service["healthcheck"]["test"] == ["CMD", "python", "/opt/maltrail/docker/healthcheck.py", name]
    assert sensor["depends_on"] == ["server"]
    for service in (server, sensor):
        targets = {volume.split(":")[1] for volume in service["volumes"]}
        assert {"/var/lib/maltrail", "/opt/maltrail/maltrail.conf"} <= targets
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(ROOT, "docker", source)), source
            else:
                assert source in compose["volumes"], source
        for key, value in service["environment"].items():
            assert key.startswith("MALTRAIL_") and isinstance(value, str)


def test_compose_stores_every_event_once():
    """Each event is written once: only one service stores events in a log folder, and a service that
    sends its events to a server stores none itself."""
    services = load_compose()["services"]
    storing = []
    for name, service in services.items():
        env = service.get("environment", {})
        local = env.get("MALTRAIL_DISABLE_LOCAL_LOG_STORAGE", "false").lower() not in ("true", "1", "yes", "on")
        if env.get("MALTRAIL_LOG_SERVER"):
            assert not local, f"{name} sends to LOG_SERVER and also stores locally"
        log_mounts = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == "/var/log/maltrail"]
        if log_mounts:
            storing.extend(log_mounts)
    assert storing == ["maltrail-logs"]  # the server's, and nobody else's


def test_dockerfile_structure():
    text = open(os.path.join(ROOT, "docker", "Dockerfile"), encoding="utf-8").read()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "FROM"
    assert "USER" in instructions and "HEALTHCHECK" in instructions
    assert re.search(r"^EXPOSE 8338/tcp 8337/udp$", text, re.M)
    assert re.search(r'^VOLUME \["/var/log/maltrail", "/var/lib/maltrail"\]$', text, re.M)
    assert re.search(r"^USER maltrail$", text, re.M)
    for copied in re.findall(r"^COPY (?!--from=)(\S+) ", text, re.M):
        assert copied == "." or os.path.exists(os.path.join(ROOT, copied)), copied


def test_dockerignore_keeps_local_state_out():
    patterns = open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8").read().split()
    for kept_out in (".git", ".venv", "**/__pycache__", "**/*.so", "tests", "bench", ".pytest_cache"):
        assert kept_out in patterns, kept_out


def test_healthcheck_reads_the_port_where_the_server_reads_it(tmp_path):
    """docker/healthcheck.py finds the server's port in the configuration file (as mounted in the
    container) or in MALTRAIL_HTTP_PORT, like server.py does; a closed port is unhealthy."""
    import http.server
    import sys
    import threading

    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"pong" if self.path == "/ping" else b"no"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return None

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Pong)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    closed = free_port()
    script = os.path.join(ROOT, "docker", "healthcheck.py")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALTRAIL_")}

    def check(*args: str, **variables: str) -> int:
        return subprocess.run([sys.executable, script, *args], env=dict(env, **variables), timeout=30).returncode

    conf, conf_closed = tmp_path / "port.conf", tmp_path / "closed.conf"
    conf.write_text(f"HTTP_PORT {port}\n")
    conf_closed.write_text(f"HTTP_PORT {closed}\n")
    try:
        assert check("server", "-c", str(conf)) == 0
        assert check("server", MALTRAIL_HTTP_PORT=str(port)) == 0
        assert check("server", "-c", str(conf_closed)) == 1
        assert check("server", "-c", str(conf), MALTRAIL_HTTP_PORT=str(closed)) == 1  # the variable wins, as in server.py
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert check("server", "-c", str(conf)) == 1  # nothing listens there any more
