"""The image and docker/docker-compose.yml under a real Docker daemon, as a user runs them.

Starts `dockerd` (when none answers) with no bridge, NAT or forwarding, its state under
~/.cache/maltrail-ng/docker, and stops it afterwards: every packet stays on loopback. When the
Dockerfile's base image cannot be pulled it is built here from a debootstrap minbase of the same
Debian release (cached under ~/.cache), with this machine's CA bundle added to that local base only
(package downloads may pass a TLS proxy). The compose file is the shipped one with only its
networking changed (server on the host network on free loopback ports, builds on the host
network). Needs root, docker.io, docker-compose and debootstrap (`./setup.sh test` installs them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import dpkt
import pytest
import yaml

from tests.kit.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER_DIR = os.path.join(ROOT, "docker")
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "maltrail-ng", "docker")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
TRAIL = "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com"  # trails/static/malware/wannacry.txt
UID = 10001

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (starts dockerd)"),
    pytest.mark.skipif(shutil.which("dockerd") is None or shutil.which("docker-compose") is None,
                       reason="needs docker.io and docker-compose (./setup.sh test installs them)"),
]


def docker_client() -> str:
    """Debian's client (matches the daemon of docker.io); another `docker` negotiates the API version."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker") or "docker"


class Docker:
    """A daemon to talk to: the running one, or one started here (stopped by `close`)."""

    def __init__(self) -> None:
        self.client = docker_client()
        # docker-compose builds through the `docker` first on PATH: the same client as ours.
        self.env = dict(os.environ, PATH=os.path.dirname(self.client) + os.pathsep + os.environ.get("PATH", ""))
        self.proc: subprocess.Popen[bytes] | None = None
        self.run_dir: str | None = None
        if self.answers():
            return
        self.run_dir = tempfile.mkdtemp(prefix="mtd-")
        sock = os.path.join(self.run_dir, "docker.sock")
        self.env["DOCKER_HOST"] = f"unix://{sock}"
        os.makedirs(CACHE, exist_ok=True)
        log = open(os.path.join(self.run_dir, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
             "--data-root", os.path.join(CACHE, "data-root"), "--exec-root", os.path.join(self.run_dir, "exec"),
             "--pidfile", os.path.join(self.run_dir, "dockerd.pid"), "-H", self.env["DOCKER_HOST"]],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.answers():
                return
            time.sleep(0.5)
        reason = self.log_tail()
        self.close()
        pytest.skip(f"dockerd cannot start here: {reason}")

    def answers(self) -> bool:
        try:
            return self.run("version", "-f", "{{.Server.Version}}", check=False, timeout=15).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def log_tail(self) -> str:
        try:
            lines = open(os.path.join(self.run_dir or "", "dockerd.log"), encoding="utf-8", errors="replace").read()
        except OSError:
            return "no log"
        return (lines.strip().splitlines() or ["no output"])[-1][-300:]

    def run(self, *args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.client, *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()[-2000:]}")
        return proc

    def inspect(self, kind: str, name: str) -> dict:
        return json.loads(self.run(kind, "inspect", name).stdout)[0]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # Our own data root under ~/.cache: keep the current build cache, drop older dangling images.
            self.run("image", "prune", "-f", "--filter", "until=24h", check=False, timeout=300)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.run_dir:
            # dockerd leaves its bind mount of the host's network namespace behind (exec/netns/default)
            for line in open("/proc/self/mounts", encoding="utf-8").read().splitlines():
                target = line.split()[1]
                if target.startswith(self.run_dir + os.sep):
                    subprocess.run(["umount", target], check=False, timeout=30)
            shutil.rmtree(self.run_dir, ignore_errors=True)


def base_image_name() -> str:
    text = open(os.path.join(DOCKER_DIR, "Dockerfile"), encoding="utf-8").read()
    names = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert names and len(set(names)) == 1, names
    return names[0]


def minbase_tarball(suite: str) -> str:
    """A debootstrap minbase of `suite` as a tar file, built once and kept under ~/.cache."""
    path = os.path.join(CACHE, f"{suite}-minbase.tar")
    if os.path.exists(path):
        return path
    if shutil.which("debootstrap") is None:
        pytest.skip("the base image cannot be pulled and debootstrap is missing (./setup.sh test installs it)")
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="minbase-") as rootfs:
        proc = subprocess.run(["debootstrap", "--variant=minbase", suite, rootfs, DEBIAN_MIRROR],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in os.scandir(os.path.join(rootfs, folder)):
                if entry.is_file():
                    os.unlink(entry.path)
        subprocess.run(["tar", "--numeric-owner", "-C", rootfs, "-cf", path + ".part", "."], check=True, timeout=600)
    os.replace(path + ".part", path)
    return path


def ensure_base_image(docker: Docker) -> None:
    """The Dockerfile's FROM image: present, pulled, or built locally from a minbase + this machine's CAs."""
    name = base_image_name()
    if docker.run("image", "inspect", name, check=False).returncode == 0:
        return
    if docker.run("pull", name, check=False, timeout=300).returncode == 0:
        return
    repository, _, tag = name.partition(":")
    assert repository == "debian", f"no local recipe for {name}"
    suite = tag.split("-")[0]
    minbase = f"maltrail-test/minbase:{suite}"
    docker.run("import", minbase_tarball(suite), minbase, timeout=600)
    cafile = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(cafile, os.path.join(context, "host-ca-bundle.crt"))
        with open(os.path.join(context, "Dockerfile"), "w", encoding="utf-8") as handle:
            handle.write(f"FROM {minbase}\n"
                         "COPY host-ca-bundle.crt /usr/local/share/ca-certificates/host-ca-bundle.crt\n"
                         "COPY host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt\n"
                         'CMD ["bash"]\n')
        docker.run("build", "-q", "-t", name, context, timeout=600)


def derived_compose(folder: str, http_port: int, udp_port: int) -> str:
    """The shipped compose file with only its networking changed: the server on the host network
    (no published ports) listening on free loopback ports, the sensor sending there, builds on the
    host network (no bridge here), with the machine's proxy settings if it has any."""
    with open(os.path.join(DOCKER_DIR, "docker-compose.yml"), encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    server, sensor = compose["services"]["server"], compose["services"]["sensor"]
    del server["ports"]
    server["network_mode"] = "host"
    server["build"]["network"] = "host"
    proxies = {key: value for key, value in os.environ.items() if key.lower() in ("http_proxy", "https_proxy", "no_proxy")}
    if proxies:
        server["build"]["args"] = proxies
    server["environment"].update(MALTRAIL_HTTP_ADDRESS="127.0.0.1", MALTRAIL_HTTP_PORT=str(http_port),
                                 MALTRAIL_UDP_ADDRESS="127.0.0.1", MALTRAIL_UDP_PORT=str(udp_port))
    sensor["environment"]["MALTRAIL_LOG_SERVER"] = f"127.0.0.1:{udp_port}"
    path = os.path.join(folder, "docker-compose.yml")
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(compose, handle, sort_keys=False)
    return path


class Compose:
    def __init__(self, docker: Docker, path: str, project: str) -> None:
        self.docker, self.path, self.project = docker, path, project

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker-compose", "-p", self.project, "-f", self.path, "--project-directory", DOCKER_DIR,
                               *args], env=self.docker.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}: {proc.stderr[-3000:]}"
        return proc

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service).stdout.strip()

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {kind: self.docker.run(*command, "--filter", label).stdout.split()
                for kind, command in (("containers", ("ps", "-aq")), ("volumes", ("volume", "ls", "-q")),
                                      ("networks", ("network", "ls", "-q")))}


def wait_healthy(docker: Docker, container: str, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = docker.inspect("container", container)["State"]
        health = state.get("Health", {})
        if health.get("Status") == "healthy":
            return state
        assert state["Status"] in ("running", "created"), (state, container_logs(docker, container)[-3000:])
        if time.monotonic() > deadline:
            raise AssertionError(f"{container} not healthy: {health}; logs: {container_logs(docker, container)[-3000:]}")
        time.sleep(2)


def container_logs(docker: Docker, container: str) -> str:
    proc = docker.run("logs", container)
    return proc.stdout + proc.stderr


def wait_log(docker: Docker, container: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (logs := container_logs(docker, container)):
        assert time.monotonic() < deadline, f"{text!r} not in the logs of {container}: {logs[-3000:]}"
        time.sleep(1)


def dns_query(name: str) -> None:
    """One DNS query for `name` to 127.0.0.1:53, sent from the host (nothing needs to answer)."""
    query = bytes(dpkt.dns.DNS(id=os.getpid() & 0xFFFF, qd=[dpkt.dns.DNS.Q(name=name, type=1, cls=1)]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(query, ("127.0.0.1", 53))


def events_today(http_port: int) -> str:
    """The server's /events for today, logged in with the shipped default account."""
    base = f"http://127.0.0.1:{http_port}"
    body = urllib.parse.urlencode({"username": "admin", "password": "changeme!"}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/login", data=body), timeout=10) as reply:
        cookies = [value.split(";", 1)[0] for value in reply.headers.get_all("Set-Cookie") or []]
    cookie = next(value for value in cookies if value.startswith("maltrail_sessid="))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    request = urllib.request.Request(f"{base}/events?date={day}", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read().decode("utf-8", "replace")


def wait_events(http_port: int, trail: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while trail not in (text := events_today(http_port)):
        assert time.monotonic() < deadline, f"no event for {trail} on /events: {text[-2000:]!r}"
        time.sleep(1)
    return text


def owner_and_mode(docker: Docker, volume: str) -> tuple[int, int, int]:
    st = os.stat(docker.inspect("volume", volume)["Mountpoint"])
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


@pytest.fixture(scope="module")
def docker():
    daemon = Docker()
    try:
        ensure_base_image(daemon)
        yield daemon
    finally:
        daemon.close()


def test_compose_stack_detects_stores_once_restarts_and_cleans_up(docker, tmp_path):
    http_port, udp_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    compose = Compose(docker, derived_compose(str(tmp_path), http_port, udp_port), f"mltest{os.getpid()}")
    try:
        compose.run("up", "-d", "--build", timeout=1200)
        server, sensor = compose.container("server"), compose.container("sensor")
        assert server and sensor
        wait_healthy(docker, server)
        state = wait_healthy(docker, sensor)
        wait_log(docker, sensor, "capturing on")
        assert docker.inspect("container", sensor)["RestartCount"] == 0 and state["Running"]
        assert docker.inspect("container", server)["RestartCount"] == 0

        dns_query(f"www.{TRAIL}")
        text = wait_events(http_port, TRAIL)
        time.sleep(3)  # a second copy (a double write, a second capture of the packet) would be here by now
        text = events_today(http_port)
        assert text.count(TRAIL) == 1, text

        project = compose.project
        logs, state_volume = f"{project}_maltrail-logs", f"{project}_maltrail-state"
        assert owner_and_mode(docker, logs) == (UID, UID, 0o750)
        assert owner_and_mode(docker, state_volume) == (UID, UID, 0o750)
        logs_dir = docker.inspect("volume", logs)["Mountpoint"]
        day_files = [name for name in os.listdir(logs_dir) if name.endswith(".log")]
        assert len(day_files) == 1 and os.stat(os.path.join(logs_dir, day_files[0])).st_uid == UID
        state_dir = docker.inspect("volume", state_volume)["Mountpoint"]
        assert os.path.getsize(os.path.join(state_dir, "trails.csv")) > 0
        assert not [name for name in os.listdir(state_dir) if name.endswith(".log")]  # the sensor stores no events

        assert docker.inspect("container", sensor)["RestartCount"] == 0  # still the first run, after all that
        compose.run("restart", timeout=300)
        deadline = time.monotonic() + 60
        while True:
            try:
                text = events_today(http_port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come back after the restart"
                time.sleep(1)
        assert text.count(TRAIL) == 1, text
    finally:
        compose.run("down", "-v", "--remove-orphans", timeout=300)
    assert compose.leftovers() == {"containers": [], "volumes": [], "networks": []}


def test_sensor_alone_stores_its_events_locally(docker):
    """A sensor-only deployment from the same image: no server, events in its own log volume."""
    name = f"mltest-sensor{os.getpid()}"
    volumes = [f"{name}-logs", f"{name}-state"]
    if docker.run("image", "inspect", "maltrail-ng:latest", check=False).returncode != 0:
        docker.run("build", "--network", "host", "-f", os.path.join(DOCKER_DIR, "Dockerfile"), "-t", "maltrail-ng:latest",
                   ROOT, timeout=1200)
    try:
        refused = docker.run("run", "--rm", "--network", "host", "maltrail-ng:latest", "sensor", check=False)
        assert refused.returncode == 1 and "cap_add NET_RAW and NET_ADMIN" in refused.stderr, refused.stderr
        # Bundled trails only: the feeds' first-start attempt is the compose test's (it takes a minute here).
        docker.run("run", "-d", "--name", name, "--network", "host", "--cap-drop", "ALL", "--cap-add", "NET_RAW",
                   "--cap-add", "NET_ADMIN", "-v", f"{volumes[0]}:/var/log/maltrail", "-v", f"{volumes[1]}:/var/lib/maltrail",
                   "-e", "MALTRAIL_USE_FEED_UPDATES=false", "maltrail-ng:latest", "sensor")
        wait_healthy(docker, name)  # by the image's own HEALTHCHECK, which sees that this container is a sensor
        wait_log(docker, name, "capturing on")
        dns_query(f"mail.{TRAIL}")
        logs_dir = docker.inspect("volume", volumes[0])["Mountpoint"]
        deadline = time.monotonic() + 30
        while True:
            lines = [line for entry in os.scandir(logs_dir) if entry.name.endswith(".log")
                     for line in open(entry.path, encoding="utf-8") if TRAIL in line]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(lines) == 1, lines
        assert owner_and_mode(docker, volumes[0]) == (UID, UID, 0o750)
        assert docker.inspect("container", name)["RestartCount"] == 0
    finally:
        docker.run("rm", "-f", "-v", name, check=False)
        docker.run("volume", "rm", *volumes, check=False)
