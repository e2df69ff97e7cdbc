"""The one server harness of the test suite: a real server.py subprocess on 127.0.0.1 with its own
config, log directory and html root (a small generated one, or the repository's html/ for the
browser tests, tests/web/harness.py), plus small HTTP/UDP clients (no mocks)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from core.events.dayfile import day_of, day_path
from tests.kit.ports import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/kit/ -> the root
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


WORK_SOLVER = """
import hashlib, sys
nonce, bits = sys.argv[1].encode(), int(sys.argv[2])
for counter in range(1 << 32):
    work = b"%08x" % counter
    if int.from_bytes(hashlib.sha256(nonce + work).digest()[:4], "big") >> (32 - bits) == 0:
        print(work.decode())
        break
"""


def solve_work(nonce: str, bits: int) -> str:
    """The 8 hex digits `work` with sha256(nonce + work) starting with `bits` zero bits (the login's
    proof of work, core/server/auth.py), found by counting as the browser does; in a child process,
    so that attacker threads in the test's own process do not slow it down."""
    work = subprocess.run([sys.executable, "-c", WORK_SOLVER, nonce, str(bits)], capture_output=True,
                          text=True, check=True, timeout=600).stdout.strip()
    assert len(work) == 8, work
    return work


RUNTIME = ("server.py", "sensor.py", "core", "data", "html", "plugins", "trails", "maltrail.conf")


def tree_copy(without: tuple[str, ...] = ()) -> str:
    """A temporary copy of the project's runtime files (`RUNTIME`) minus the relative paths in
    `without`: a real server.py on an install that lacks those files. The caller removes it."""
    folder = tempfile.mkdtemp(prefix="mt-tree-")
    for name in RUNTIME:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(folder, name), ignore=shutil.ignore_patterns("__pycache__"))
        elif os.path.exists(source):
            shutil.copy2(source, os.path.join(folder, name))
    for path in without:
        os.remove(os.path.join(folder, path))
    return folder


def listening(port: int) -> bool:
    """A TCP socket of this machine listens on `port` (/proc/net/tcp and tcp6, state 0A)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for row in handle:
                    fields = row.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            continue
    return False


def event_line(sec: float, src: str = "10.0.0.1", dst: str = "1.2.3.4", trail: str = "1.2.3.4",
               info: str = "known attacker", reference: str = "example.org", kind: str = "IP",
               sensor: str = "s1", dport: int = 80) -> str:
    t = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec))
    quoted = f'"{info}"' if " " in info else info
    return f'"{t}.000000" {sensor} {src} 1234 {dst} {dport} TCP {kind} {trail} {quoted} {reference}'


class Server:
    """server.py in a subprocess. `extra` lines are appended to the generated config."""

    def __init__(self, tmp: str, users: list[str] | None = None, extra: str = "", udp: bool = True,
                 html: dict[str, str] | None = None, tls: bool = False,
                 preexec: Callable[[], None] | None = None, *, log_dir: str | None = None,
                 html_root: str | None = None, root: str | None = None) -> None:
        """`tmp` holds the config and the server's output; `log_dir` (default `tmp/logs`); the html
        root is `html_root` as it is, or a small one generated in `tmp/html` (plus `html` files);
        `root`: the project tree whose server.py runs (default this one; see `tree_copy`)."""
        self.root = root or ROOT
        self.tmp = tmp
        self.tls = tls                    # speak HTTPS to it (USE_SSL in `extra`)
        self.preexec = preexec
        self.log_dir = log_dir or os.path.join(tmp, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.html = html_root or os.path.join(tmp, "html")
        if html_root is None:
            os.makedirs(os.path.join(self.html, "js"), exist_ok=True)
            files = {"index.html": "<!DOCTYPE html><title>Maltrail <!VERSION!></title><p>tz <!TZOFFSET!></p>\n",
                     "js/main.js": "var IP_ALIASES = {};\nconsole.log('x');\n", "robots.txt": "User-agent: *\n",
                     "secret.conf": "do not serve\n"}
            files.update(html or {})
            for name, content in files.items():
                with open(os.path.join(self.html, name), "w") as handle:
                    handle.write(content)
            with open(os.path.join(tmp, "outside.txt"), "w") as handle:
                handle.write("outside the html root\n")
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM) if udp else None
        users = [f"admin:{sha('changeme!')}:0:"] if users is None else users
        lines = ["HTTP_ADDRESS 127.0.0.1", f"HTTP_PORT {self.port}", f"LOG_DIR {self.log_dir}"]
        if "TRAILS_FILE" not in extra:
            lines.append(f"TRAILS_FILE {os.path.join(tmp, 'trails.csv')}")
        if udp:
            lines += ["UDP_ADDRESS 127.0.0.1", f"UDP_PORT {self.udp_port}"]
        if users:
            lines.append("USERS")
            lines += ["    " + u for u in users]
        self.config = os.path.join(tmp, "server.conf")
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n" + extra + "\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = ""

    def start(self) -> Server:
        self.errfile = open(os.path.join(self.tmp, "server.err"), "wb")
        self.proc = subprocess.Popen([PYTHON, os.path.join(self.root, "server.py"), "-c", self.config,
                                      "--html-root", self.html], cwd=self.root, stdout=self.errfile,
                                     stderr=subprocess.STDOUT, preexec_fn=self.preexec)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.read_err())
            try:   # connect only once something listens: a connect to a free port in the ephemeral
                # range can meet itself (TCP self-connect) and read its own request back
                if listening(self.port) and self.get("/ping")[0] == 200 and \
                        (not self.udp_port or "UDP intake" in self.read_err()):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start: " + self.read_err())

    def read_err(self) -> str:
        with open(os.path.join(self.tmp, "server.err"), "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def stop(self) -> str:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errfile.close()
        self.stderr = self.read_err()
        return self.stderr

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
                cookie: str | None = None, source: str = "127.0.0.1", timeout: float = 10):
        conn: http.client.HTTPConnection
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               source_address=(source, 0), context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0))
        hdrs = dict(headers or {})
        if cookie:
            hdrs["Cookie"] = f"maltrail_sessid={cookie}"
        if isinstance(body, str):
            body = body.encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data
        finally:
            conn.close()

    def get(self, path: str, **kw):
        status, _headers, data = self.request("GET", path, **kw)
        return status, data

    def login(self, user: str = "admin", password: str = "changeme!", source: str = "127.0.0.1",
              challenge: bool = True) -> str | None:
        if challenge:
            nonce = self.challenge(source)
            body = f"username={user}&nonce={nonce}&hash={sha(sha(password) + nonce)}"
        else:
            import urllib.parse

            body = urllib.parse.urlencode({"username": user, "password": password})
        status, headers, _ = self.request("POST", "/login", body, source=source)
        if status != 200:
            return None
        cookie = headers.get("set-cookie", "")
        return cookie.split("maltrail_sessid=", 1)[1].split(";", 1)[0] if "maltrail_sessid=" in cookie else None

    def challenge(self, source: str = "127.0.0.1") -> str:
        """A server-issued login challenge (GET /challenge)."""
        status, data = self.get("/challenge", source=source)
        assert status == 200, status
        return json.loads(data)["nonce"]

    def send_udp(self, payloads: list[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data in payloads:
                sock.sendto(data, ("127.0.0.1", self.udp_port))

    def day_file(self, sec: float | None = None) -> str:
        return day_path(self.log_dir, day_of(time.time() if sec is None else sec))

    def write_events(self, lines: list[str], sec: float | None = None) -> None:
        with open(self.day_file(sec), "a") as handle:
            handle.write("".join(line + "\n" for line in lines))


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1
