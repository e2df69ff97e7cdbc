"""The quick start as typed (core/ops/deps.py, core/update/firstrun.py): fresh copies of the tree, real processes.

- A fresh copy with a .venv holding exactly the required packages (pcapy-ng, dpkt, requests; no
  cryptography): `-T` passes with a line saying QUIC Initial SNI is skipped, a replay detects
  (everything but QUIC SNI), and a first start without a trails file builds the bundled set and
  detects a bundled static trail.
- "The system python3 without the packages" is a bare virtual environment of the test's own base
  interpreter (no site packages at all, whatever the distribution's python3 has installed): in the
  tree with .venv it re-runs under .venv (sensor, `-T`, the update, server.py; exit codes and
  signals carried); in a tree without .venv it exits 2 with the install message and no traceback;
  server.py answers /ping either way.

The venv is built offline from wheels that `./setup.sh test` puts in .venv/wheels (pip wheel of
requirements.txt); without them these tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from core.ops.deps import OPTIONAL, REQUIRED
from tests.kit.pcapgen import LINKTYPE_ETHERNET, dns_query, ether, ipv4, udp, write_pcap
from tests.kit.server import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = os.path.join(ROOT, ".venv", "wheels")
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)  # the interpreter the wheels were built for
CONFORMANCE = os.path.join(ROOT, "tests", "data", "conformance")
STATIC_TRAIL = "iuqerfsodp9ifjaposdfjhgosurijfaewrwergwea.com"  # trails/static/malware/wannacry.txt
SKIP = shutil.ignore_patterns(".venv", ".git", "*cache*", "tests", "bench", "artifacts", "node_modules", "*.so",
                              "*.idx*")


def copy_tree(dest: str) -> str:
    """A fresh copy of the repository (no .venv, no compiled accelerators, no trails)."""
    shutil.copytree(ROOT, dest, ignore=SKIP)
    return dest


def bare_venv(dest: str) -> str:
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", dest], check=True, timeout=60)
    return os.path.join(dest, "bin", "python")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("quickstart")


@pytest.fixture(scope="module")
def bare(base):
    """The interpreter without the packages: a bare venv of the base interpreter (no site packages)."""
    return bare_venv(str(base / "bare"))


@pytest.fixture(scope="module")
def without_venv(base):
    return copy_tree(str(base / "without-venv"))


@pytest.fixture(scope="module")
def with_venv(base):
    """A fresh copy whose .venv holds exactly the required packages, installed from the wheel cache."""
    if not os.path.isfile(os.path.join(WHEELS, ".requirements.txt")):
        pytest.skip(f"no wheels in {WHEELS}: `sudo ./setup.sh test` prepares them (pip wheel -r requirements.txt)")
    tree = copy_tree(str(base / "with-venv"))
    venv_python = bare_venv(os.path.join(tree, ".venv"))
    subprocess.run([sys.executable, "-m", "pip", "--python", venv_python, "install", "-q", "--no-index",
                    "--find-links", WHEELS, *(package.name for package in REQUIRED)],
                   check=True, timeout=120, capture_output=True)
    return tree


def env_for(tmp_path, **extra):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MALTRAIL_", "_MALTRAIL_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(MALTRAIL_LOG_DIR=str(tmp_path / "log"), MALTRAIL_TRAILS_FILE=str(tmp_path / "trails" / "trails.csv"),
               MALTRAIL_MONITOR_INTERFACE="lo", MALTRAIL_DISABLE_CHECK_SUDO="true")
    env.update(extra)
    return env


def run(python, tree, args, env, cwd=None):
    command = [python, *args] if args[0] == "-m" else [python, os.path.join(tree, args[0]), *args[1:]]
    return subprocess.run(command, env=env, cwd=cwd or tree, capture_output=True, text=True, timeout=60)


def events(tmp_path) -> str:
    folder = tmp_path / "log"
    return "".join(path.read_text() for path in folder.glob("*.log")) if folder.is_dir() else ""


# --- a venv with exactly the required packages -------------------------------------------------------

def test_preflight_in_a_venv_without_the_optional_package(with_venv, tmp_path):
    tree = with_venv
    python = os.path.join(tree, ".venv", "bin", "python")
    for package in OPTIONAL:  # the premise: only the required packages are there
        assert subprocess.run([python, "-c", f"import {package.module}"], capture_output=True).returncode == 1
    proc = run(python, tree, ["sensor.py", "-T"], env_for(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[warn] optional packages: cryptography not installed: skipped: QUIC Initial SNI" in proc.stdout
    assert f"{tree}/.venv/bin/pip install cryptography" in proc.stdout
    assert "[warn] trails:" in proc.stdout and "does not exist yet" in proc.stdout
    assert "preflight: passed" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_replay_detects_everything_but_quic_sni(with_venv, tmp_path):
    tree = with_venv
    os.makedirs(tmp_path / "trails")
    shutil.copy(os.path.join(CONFORMANCE, "trails.csv"), tmp_path / "trails" / "trails.csv")
    pcaps = [os.path.join(CONFORMANCE, name) for name in ("dns_queries.pcap", "quic_sni.pcap", "http_trails.pcap")]
    proc = run(os.path.join(tree, ".venv", "bin", "python"), tree, ["sensor.py", "-r", *pcaps], env_for(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("cryptography not installed") == 1  # the one warning
    logged = events(tmp_path)
    assert "evil-test-domain.com" in logged and "quic-evil.example" not in logged
    assert "Traceback" not in proc.stderr


def test_first_start_builds_the_bundled_trails_then_detects(with_venv, tmp_path):
    tree = with_venv
    pcap = str(tmp_path / "wannacry.pcap")
    frame = ether(ipv4("10.0.0.5", "10.0.0.53", udp(40000, 53, dns_query(f"www.{STATIC_TRAIL}"))))
    write_pcap(pcap, [(1_700_000_000.0, frame)], linktype=LINKTYPE_ETHERNET)
    trails = tmp_path / "trails" / "trails.csv"
    assert not trails.exists()
    proc = run(os.path.join(tree, ".venv", "bin", "python"), tree, ["sensor.py", "--offline", "-r", pcap],
               env_for(tmp_path))  # not a terminal: progress lines all the same
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    built = [line for line in lines if "trails built in" in line]
    assert built and "from the bundled static and custom lists only (--offline)" in built[0]
    rows = int(built[0].split("] trails: ")[1].split()[0].replace(",", ""))
    assert rows > 1000 and rows == len(trails.read_text().splitlines())
    assert lines.index(built[0]) < next(i for i, line in enumerate(lines) if "replayed" in line)
    assert STATIC_TRAIL in events(tmp_path) and "wannacry" in events(tmp_path)


def test_first_start_that_builds_nothing_names_the_command(with_venv, tmp_path):
    """An empty source tree (no bundled lists): the sensor refuses with the exact command."""
    tree = copy_tree(str(tmp_path / "tree"))
    shutil.rmtree(os.path.join(tree, "trails", "static"))
    os.makedirs(os.path.join(tree, "trails", "static"))
    shutil.copy(os.path.join(ROOT, "trails", "static", "__init__.py"), os.path.join(tree, "trails", "static"))
    shutil.rmtree(os.path.join(tree, "trails", "custom"))
    shutil.copytree(os.path.join(ROOT, "trails", "custom"), os.path.join(tree, "trails", "custom"),
                    ignore=shutil.ignore_patterns("*.txt", "__pycache__"))
    os.symlink(os.path.join(with_venv, ".venv"), os.path.join(tree, ".venv"))
    pcap = os.path.join(CONFORMANCE, "dns_queries.pcap")
    proc = run(os.path.join(tree, ".venv", "bin", "python"), tree, ["sensor.py", "--offline", "-r", pcap],
               env_for(tmp_path))
    assert proc.returncode == 1
    assert f"run it by hand to see why: cd {tree} && sudo python3 -m core.update" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the system python3 without the packages -------------------------------------------------------

def test_system_python_reruns_under_the_venv(with_venv, bare, tmp_path):
    tree = with_venv
    proc = run(bare, tree, ["sensor.py", "-T"], env_for(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "running under" in line]
    assert notes == [f"[i] {bare} has no pcapy-ng, dpkt, requests: running under {tree}/.venv/bin/python instead"]
    assert "preflight: passed" in proc.stdout
    # the exit status is the re-run program's
    proc = run(bare, tree, ["sensor.py", "-T"], env_for(tmp_path, MALTRAIL_MONITOR_INTERFACE="nosuchif9"))
    assert proc.returncode == 1 and "[FAIL] interface" in proc.stdout
    proc = run(bare, tree, ["sensor.py", "-c", str(tmp_path / "missing.conf")], env_for(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("running under") == 1
    # python3 -m core.update, from the repository root
    proc = run(bare, tree, ["-m", "core.update", "--offline"], env_for(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running under" in proc.stderr and "published" in proc.stdout


@pytest.mark.parametrize("args,names", [
    (["sensor.py", "-T"], "pcapy-ng, dpkt, requests"),
    (["sensor.py", "--offline", "-r", "x.pcap"], "pcapy-ng, dpkt, requests"),
    (["-m", "core.update", "--offline"], "requests"),
])
def test_system_python_without_a_venv_says_how_to_install(without_venv, bare, tmp_path, args, names):
    tree = without_venv
    proc = run(bare, tree, args, env_for(tmp_path))
    assert proc.returncode == 2
    assert f"missing Python packages: {names} (not installed for {bare} (and there is no {tree}/.venv))" \
        in proc.stderr
    for needle in ("sudo ./setup.sh run", "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
                   "sudo pip3 install", "PEP 668"):
        assert needle in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_venv_without_the_packages_is_tried_once(bare, tmp_path):
    tree = copy_tree(str(tmp_path / "tree"))
    bare_venv(os.path.join(tree, ".venv"))
    proc = run(bare, tree, ["sensor.py", "-T"], env_for(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("running under") == 1
    assert f"(not installed for {bare} nor {tree}/.venv/bin/python)" in proc.stderr
    assert "Traceback" not in proc.stderr


def ping(port: int, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("which", ["with .venv", "without .venv"])
def test_server_answers_ping_as_typed(request, bare, tmp_path, which):
    tree = request.getfixturevalue("with_venv" if which == "with .venv" else "without_venv")
    port = free_port()
    conf = tmp_path / "server.conf"
    # without .venv, the trail refresh (it needs requests) is switched on: said once, the server runs
    refresh = "" if which == "with .venv" else f"USE_SERVER_UPDATE_TRAILS true\nTRAILS_FILE {tmp_path}/trails.csv\n"
    conf.write_text(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {port}\nUDP_ADDRESS 127.0.0.1\nUDP_PORT {free_port()}\n"
                    f"LOG_DIR {tmp_path / 'log'}\nUSERS\n{refresh}")
    stderr = tmp_path / "stderr"
    with open(stderr, "w") as handle:
        proc = subprocess.Popen([bare, os.path.join(tree, "server.py"), "-c", str(conf)], env=env_for(tmp_path),
                                cwd=tree, stdout=subprocess.DEVNULL, stderr=handle)
    try:
        deadline = time.monotonic() + 20
        assert ping(port, deadline) == b"pong"
        with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:  # the same process, maybe a new program
            program = handle.read().split(b"\0")[0].decode()
        while "UDP intake on" not in stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # both parts up before the stop
    finally:
        proc.send_signal(signal.SIGTERM)  # reaches the re-run server: exec kept the process
        proc.wait(30)
    err = stderr.read_text()
    assert proc.returncode == 0, err
    if which == "with .venv":
        assert program == f"{tree}/.venv/bin/python" and err.count("running under") == 1
    else:
        assert program == bare and "running under" not in err
        assert "maltrail: no trail updates in this run: USE_SERVER_UPDATE_TRAILS: missing Python packages: " \
               "requests" in err
    assert "Traceback" not in err


def test_requirements_name_the_same_packages():
    """requirements.txt and core/ops/deps.py list the same packages; the optional ones say so."""
    lines = [line for line in open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8")
             if line.strip() and not line.startswith("#")]
    names = {line.split()[0].split(">")[0].split("<")[0].split("=")[0]: line for line in lines}
    assert set(names) == {package.name for package in REQUIRED + OPTIONAL}
    for package in OPTIONAL:
        assert "optional" in names[package.name]


def test_first_start_names_the_source_honestly():
    from core.config import load_config
    from core.update.feedrun import FeedStatus
    from core.update.firstrun import source

    config = load_config(None, env={})
    feeds = [FeedStatus("a", "ok"), FeedStatus("b", "failed"), FeedStatus("c", "stale"),
             FeedStatus("d", "disabled"), FeedStatus("e", "skipped")]
    assert source(config, feeds, False, "") == "2 of 3 feeds plus the bundled static and custom lists"
    down = [FeedStatus("a", "failed"), FeedStatus("b", "failed")]
    assert source(config, down, False, "") == \
        "the bundled static and custom lists only (none of the 2 feeds answered: no network?)"
    assert source(config, [], False, "") == "the bundled static and custom lists only (USE_FEED_UPDATES is off)"
    assert source(config, feeds, True, "--offline") == "the bundled static and custom lists only (--offline)"


def test_feed_progress_lines_without_a_terminal():
    from core.update.feedrun import Progress

    lines: list[str] = []
    bar = Progress(25, False, lines.append)
    for index in range(25):
        bar.step(f"feed{index}")
    bar.close()
    assert lines[0] == "feeds: 2/25 done" and lines[-1] == "feeds: 25/25 done" and len(lines) == 13
