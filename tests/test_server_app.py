"""The API and ServerApp in process: route handlers called with parsed requests (sessions, scope,
masking, byte ranges, day parameters, static fallback), then the whole app on 127.0.0.1 with
ephemeral ports: HTTP over a real socket, the forked UDP intake, clean stop (threads, workers,
process, port), the exit status of a failed intake, and every start failure as a StartError.
The subprocess tests (test_server_api.py and friends) stay the integration layer."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest

from core.config import build_config
from core.events.dayfile import day_of, day_path
from core.server.app import ServerApp, StartError
from core.server.messages import HttpError, build_request, parse_head
from tests.kit.server import event_line

TODAY = datetime.date.today()
YESTERDAY = TODAY - datetime.timedelta(days=1)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def app_config(tmp: str, udp: bool = False, **values: str):
    """A config for 127.0.0.1; HTTP (and UDP) on ephemeral ports."""
    os.makedirs(os.path.join(tmp, "html"), exist_ok=True)
    with open(os.path.join(tmp, "html", "index.html"), "w") as handle:
        handle.write("<!DOCTYPE html><title>Maltrail <!VERSION!></title>\n")
    raw = {"HTTP_ADDRESS": "127.0.0.1", "HTTP_PORT": "8338", "LOG_DIR": os.path.join(tmp, "logs"),
           "TRAILS_FILE": os.path.join(tmp, "trails.csv"),
           "USERS": [f"admin:{sha('changeme!')}:0:", f"viewer:{sha('pw')}:1000:192.168.0.0/16"], **values}
    if udp:
        raw.update(UDP_ADDRESS="127.0.0.1", UDP_PORT="9")
    config = build_config(raw, env={})
    return config.replace(HTTP_PORT=0, UDP_PORT=0 if udp else None)


def make_app(tmp: str, reports: list[str] | None = None, **kw) -> ServerApp:
    out = reports if reports is not None else []
    return ServerApp(app_config(tmp, **kw), os.path.join(tmp, "html"), report=out.append)


def call(app: ServerApp, raw: bytes, address: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One request through the route table, as httpd would hand it over."""
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        response = app.api.handle(build_request(parse_head(head), body, address, 40000, False))
    except HttpError as ex:
        return ex.status, {}, ex.message.encode()
    data = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    headers = {k.lower(): v for k, v in response.headers}
    headers["content-type"] = response.content_type
    return response.status, headers, data


def get(app: ServerApp, target: str, sid: str | None = None, address: str = "127.0.0.1", **headers: str):
    lines = [f"GET {target} HTTP/1.1", "Host: x"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    if sid:
        lines.append(f"Cookie: maltrail_sessid={sid}")
    return call(app, "\r\n".join(lines).encode() + b"\r\n\r\n", address)


def login(app: ServerApp, user: str, password: str, address: str = "127.0.0.1") -> str:
    body = f"username={user}&password={password}".encode()
    status, headers, _ = call(app, b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
                              address)
    assert status == 200, status
    return headers["set-cookie"].split("=", 1)[1].split(";", 1)[0]


@pytest.fixture(scope="module")
def api_app(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("app"))
    app = make_app(tmp)
    os.makedirs(app.config.LOG_DIR)
    now = time.time()
    lines = [event_line(now, src="10.0.0.1", dst="1.2.3.4"),
             event_line(now, src="192.168.1.5", dst="8.8.8.8", trail="evil.com", kind="DNS", info="malware",
                        reference="(custom)"),
             event_line(now, src="203.0.113.9", dst="10.0.0.7", trail="203.0.113.9", info="mass scanner")]
    with open(day_path(app.config.LOG_DIR, TODAY), "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    with open(day_path(app.config.LOG_DIR, YESTERDAY), "w") as handle:
        handle.write(event_line(now - 86400, src="192.168.9.9") + "\n")
    return app


def test_routes_need_a_session_bound_to_the_address(api_app):
    assert get(api_app, "/ping")[::2] == (200, b"pong")
    for path in ("/events", "/live", "/counts", "/hunt?q=abc", "/geo", "/reference?trail=x"):
        assert get(api_app, path)[0] == 401, path
    sid = login(api_app, "admin", "changeme%21")
    assert get(api_app, "/events", sid)[0] == 200
    assert get(api_app, "/events", sid, address="127.0.0.2")[0] == 401
    status, headers, body = get(api_app, "/whoami", sid)
    assert (status, body, headers["x-maltrail-warning"]) == (200, b"admin", "default-password")


def test_events_full_day_ranges_and_day_parameters(api_app):
    sid = login(api_app, "admin", "changeme%21")
    with open(day_path(api_app.config.LOG_DIR, TODAY), "rb") as handle:
        full = handle.read()
    status, headers, body = get(api_app, "/events", sid)
    assert (status, body, headers["accept-ranges"]) == (200, full, "bytes")
    status, headers, body = get(api_app, "/events", sid, Range="bytes=3-9")
    assert (status, body, headers["content-range"]) == (206, full[3:10], f"bytes 3-9/{len(full)}")
    status, headers, body = get(api_app, "/events", sid, Range="bytes=0-1,-4")
    boundary = headers["content-type"].partition("multipart/byteranges; boundary=")[2]
    assert status == 206 and boundary and body == (
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/{len(full)}"
        f"\r\n\r\n").encode() + full[:2] + (
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes "
        f"{len(full) - 4}-{len(full) - 1}/{len(full)}\r\n\r\n").encode() + full[-4:] + f"\r\n--{boundary}--\r\n".encode()
    status, headers, _ = get(api_app, "/events", sid, Range=f"bytes={len(full)}-")
    assert (status, headers["content-range"]) == (416, f"bytes */{len(full)}")
    assert get(api_app, "/events", sid, Range="bytes=0-1", If_Range="x")[::2] == (200, full)
    status, _, body = get(api_app, f"/events?date={YESTERDAY}_{TODAY}", sid)
    assert status == 200 and body.count(b"\n") == 4 and body.endswith(full)
    assert get(api_app, "/events?date=2024-02-30", sid)[0] == 400
    assert get(api_app, "/events?date=2000-01-01_2024-01-01", sid)[0] == 400


def test_restricted_user_sees_its_networks_with_custom_info_masked(api_app):
    sid = login(api_app, "viewer", "pw")
    lines = get(api_app, "/events", sid)[2].decode().splitlines()
    assert len(lines) == 1 and "192.168.1.5" in lines[0] and lines[0].endswith(" - (custom)")
    assert get(api_app, "/events", sid, Range="bytes=0-3")[0] == 200          # no ranges over a filtered view
    counts = json.loads(get(api_app, f"/counts?from={YESTERDAY}&to={TODAY}", sid)[2])
    assert counts == {str(YESTERDAY): 1, str(TODAY): 1}
    hunt = json.loads(get(api_app, "/hunt?q=10.0.0.0/8", sid)[2])
    assert hunt["counts"] == {} and hunt["samples"] == []


def test_counts_and_hunt_for_admin(api_app):
    sid = login(api_app, "admin", "changeme%21")
    assert json.loads(get(api_app, f"/counts?from={YESTERDAY}&to={TODAY}", sid)[2]) == \
        {str(YESTERDAY): 1, str(TODAY): 3}
    assert get(api_app, "/counts?from=yesterday", sid)[0] == 400
    hunt = json.loads(get(api_app, "/hunt?q=EVIL.COM", sid)[2])
    assert hunt["counts"] == {str(TODAY): 1} and "evil.com" in hunt["samples"][0]["line"]


def test_static_fallback(api_app):
    status, headers, body = get(api_app, "/")
    assert status == 200 and b"<title>Maltrail 0.1.0</title>" in body
    status, _, body = get(api_app, "/%2e%2e/logs/" + TODAY.isoformat() + ".log")
    assert status == 404 and b"known attacker" not in body


# -- the whole app on sockets -----------------------------------------------------------------------

def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def serve(app: ServerApp) -> threading.Thread:
    thread = threading.Thread(target=app.serve_forever, name="test-serve")
    thread.start()
    return thread


def test_app_serves_http_and_stops_cleanly(tmp_path):
    reports: list[str] = []
    app = make_app(str(tmp_path), reports)
    app.start()
    thread = serve(app)
    try:
        assert app.port != 0 and http_get(app.port, "/ping") == (200, b"pong")
        assert any(r.startswith(f"server 0.1.0 listening on http://127.0.0.1:{app.port}/") for r in reports)
        assert any("default password" in r for r in reports)
        # a connection still sending its request head waits in the event loop, not in a worker,
        # and stop() closes it at once
        slow = socket.create_connection(("127.0.0.1", app.port))
        slow.sendall(b"GET /ping HTTP/1.1\r\n")
        deadline = time.monotonic() + 5
        while app.httpd.open_connections != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.httpd.open_connections == 1 and app.httpd.active == 0
    finally:
        started = time.monotonic()
        assert app.stop() == 0
    assert time.monotonic() - started < 5
    thread.join(5)
    slow.settimeout(2)
    try:
        assert slow.recv(100) == b""
    except ConnectionResetError:
        pass
    slow.close()
    assert not thread.is_alive() and app.httpd is not None and app.httpd.active == 0
    assert app.httpd.open_connections == 0 and all(not t.is_alive() for t in app.httpd.workers)
    assert any(r.startswith("http: requests=") for r in reports)
    assert {t.name for t in app.threads} == {"reaper"} and all(not t.is_alive() for t in app.threads)
    with socket.socket() as sock:              # nothing listens on the port any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", app.port))
        sock.listen(1)


def test_app_with_forked_udp_intake_drains_on_stop(tmp_path):
    reports: list[str] = []
    app = make_app(str(tmp_path), reports, udp=True)
    app.start()
    thread = serve(app)
    now = int(time.time())
    line = event_line(now, src="10.4.4.4")
    try:
        assert app.udp_port and any(r.startswith(f"UDP intake on 127.0.0.1:{app.udp_port} (unsigned")
                                    for r in reports)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(200):
                sock.sendto(f"{now} {line}".encode(), ("127.0.0.1", app.udp_port))
    finally:
        status = app.stop()
    thread.join(5)
    assert status == 0 and app.intake_process is not None and app.intake_process.exitcode == 0
    with open(day_path(app.config.LOG_DIR, day_of(now))) as handle:
        assert handle.read() == (line + "\n") * 200


def test_a_stop_right_after_the_start_still_drains_the_intake(tmp_path, monkeypatch):
    """A SIGTERM that reaches the intake process before it has set its handlers (here: its
    start-up held up for half a second) waits for them: the intake drains and exits 0 instead of
    dying by the signal with datagrams still queued (seen once in CI)."""
    real_nice = os.nice
    monkeypatch.setattr(os, "nice", lambda step: (time.sleep(0.5), real_nice(step))[1])
    app = make_app(str(tmp_path), udp=True)
    app.start()
    thread = serve(app)
    now = int(time.time())
    line = event_line(now, src="10.4.4.5")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(50):
                sock.sendto(f"{now} {line}".encode(), ("127.0.0.1", app.udp_port))
    finally:
        status = app.stop()         # the intake child is still in its start-up
    thread.join(5)
    assert app.intake_process is not None and (status, app.intake_process.exitcode) == (0, 0)
    with open(day_path(app.config.LOG_DIR, day_of(now))) as handle:
        assert handle.read() == (line + "\n") * 50


def test_a_failed_intake_process_makes_the_exit_status_1(tmp_path):
    app = make_app(str(tmp_path), udp=True)
    app.start()
    assert app.intake_process is not None and app.intake_process.pid
    os.kill(app.intake_process.pid, signal.SIGKILL)
    app.intake_process.join(5)
    assert app.stop() == 1


def test_start_failures_are_start_errors(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        app = ServerApp(app_config(str(tmp_path)).replace(HTTP_PORT=port), str(tmp_path / "html"),
                        report=lambda _: None)
        with pytest.raises(StartError) as info:
            app.start()
    assert info.value.status == 1
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use " \
                              "(another instance already running?)"

    (tmp_path / "file").write_text("not a folder")
    app = make_app(str(tmp_path), LOG_DIR=str(tmp_path / "file" / "logs"))
    with pytest.raises(StartError) as info:
        app.start()
    assert info.value.status == 1 and str(info.value).startswith("cannot create LOG_DIR ")

    app = make_app(str(tmp_path), USE_SSL="true", SSL_PEM=str(tmp_path / "missing.pem"))
    with pytest.raises(StartError) as info:
        app.start()
    assert info.value.status == 2 and "SSL_PEM" in str(info.value) and "openssl req" in str(info.value)
    assert app.httpd is None


def test_a_busy_udp_port_fails_the_start_and_releases_the_http_port(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        app = ServerApp(app_config(str(tmp_path), udp=True).replace(UDP_PORT=port), str(tmp_path / "html"),
                        report=lambda _: None)
        with pytest.raises(StartError) as info:
            app.start()
    assert str(info.value).startswith(f"cannot listen for UDP events on 127.0.0.1:{port}: ")
    assert app.httpd is not None and app.httpd.sock.fileno() == -1 and app.intake_process is None
