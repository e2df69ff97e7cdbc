"""Deployment files: systemd units (systemd-analyze verify) and the Docker files (structure)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

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


def test_compose_file_structure():
    with open(os.path.join(ROOT, "docker", "docker-compose.yml"), encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    services = compose["services"]
    assert set(services) == {"server", "sensor"}
    server, sensor = services["server"], services["sensor"]
    assert server["build"]["dockerfile"] == "docker/Dockerfile"
    assert os.path.isfile(os.path.join(ROOT, "docker", server["build"]["context"], server["build"]["dockerfile"]))
    assert {"8338:8338/tcp", "8337:8337/udp"} <= set(server["ports"])
    assert "/opt/maltrail/docker/healthcheck.py" in server["healthcheck"]["test"]
    assert sensor["network_mode"] == "host"
    assert set(sensor["cap_add"]) == {"NET_RAW", "NET_ADMIN"}
    assert sensor["cap_drop"] == ["ALL"]
    assert not sensor.get("privileged", False)
    assert "-T" in sensor["healthcheck"]["test"]
    assert sensor["depends_on"] == ["server"]
    for service in (server, sensor):
        targets = {volume.split(":")[1] for volume in service["volumes"]}
        assert {"/var/log/maltrail", "/var/lib/maltrail", "/opt/maltrail/maltrail.conf"} <= targets
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(ROOT, "docker", source)), source
            else:
                assert source in compose["volumes"], source
    for key, value in sensor["environment"].items():
        assert key.startswith("MALTRAIL_") and isinstance(value, str)


def test_dockerfile_structure():
    text = open(os.path.join(ROOT, "docker", "Dockerfile"), encoding="utf-8").read()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "FROM"
    assert "USER" in instructions and "HEALTHCHECK" in instructions
    assert re.search(r"^EXPOSE 8338/tcp 8337/udp$", text, re.M)
    assert re.search(r'^VOLUME \["/var/log/maltrail", "/var/lib/maltrail"\]$', text, re.M)
    assert re.search(r"^USER maltrail$", text, re.M)
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert copied == "." or os.path.exists(os.path.join(ROOT, copied)), copied


def test_healthcheck_script_against_a_real_ping_endpoint():
    import http.server
    import socket
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
    script = os.path.join(ROOT, "docker", "healthcheck.py")
    try:
        ok = subprocess.run([sys.executable, script], env=dict(os.environ, MALTRAIL_HTTP_PORT=str(port)), timeout=30)
        assert ok.returncode == 0
    finally:
        httpd.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = subprocess.run([sys.executable, script], env=dict(os.environ, MALTRAIL_HTTP_PORT=str(closed)), timeout=30)
    assert down.returncode == 1
