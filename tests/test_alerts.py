"""Alert webhook against a real server.py and a real HTTP receiver on 127.0.0.1: severity
threshold, ALERT_FORMAT (JSON-safe substitution, %(json)s), throttle per (src, trail), events that
arrive over the UDP intake, file rotation, and receivers that are slow or down (intake unaffected,
failures counted)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import build_config
from core.events.event import parse_line, safe_value
from core.events.severity import default_pattern
from core.server.alerts import Alerts
from tests.kit.server import Server, event_line, free_port

FORMAT = '{"text": "%(severity)s: %(src_ip)s -> %(trail)s (%(info)s) [%(type)s]", "raw": %(json)s}'


class Receiver:
    """A webhook receiver that records every POST (body, content type); optionally slow, or failing
    its first `fail_first` POSTs with 503."""

    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.posts: list[tuple[bytes, str]] = []
        self.refused = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if delay:
                    time.sleep(delay)
                with outer.lock:
                    if outer.refused < fail_first:
                        outer.refused += 1
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    outer.posts.append((body, self.headers.get("Content-Type", "")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[bytes, str]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.posts) >= count:
                    return list(self.posts)
            time.sleep(0.05)
        with self.lock:
            return list(self.posts)


def alert_server(tmp: str, url: str, extra: str = "") -> Server:
    conf = (f"ALERT_WEBHOOK_URL {url}\nALERT_SEVERITY high\nALERT_THROTTLE 300\n"
            f"REMOTE_SEVERITY_REGEX {default_pattern()}\n" + extra)
    return Server(tmp, extra=conf)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def started(srv: Server) -> bool:
    return wait_for(lambda: "alerts: following" in srv.read_err())


def summary(stderr: str) -> dict[str, int]:
    m = re.search(r"alerts: ((?:\w+=\d+ ?)+)", stderr)
    assert m, stderr
    return {k: int(v) for k, v in (item.split("=") for item in m.group(1).split())}


def test_severity_format_throttle_udp_and_rotation(tmp_path):
    with Receiver() as receiver:
        srv = alert_server(str(tmp_path), receiver.url, f"ALERT_FORMAT {FORMAT}\n")
        with srv:
            assert started(srv)
            now = time.time()
            lines = [
                event_line(now, src="10.0.0.1", trail="evil.example", info="malware", kind="DNS"),  # high
                event_line(now, src="10.0.0.2", trail="1.2.3.4", info="known attacker"),           # low
                event_line(now, src="10.0.0.1", trail="evil.example", info="malware", kind="DNS"),  # repeat
                event_line(now, src="10.0.0.3", trail="evil.example", info="malware", kind="DNS"),  # new src
                event_line(now, src="10.0.0.4", trail="bad.example", info="ransomware", kind="DNS").replace(
                    " ransomware ", " " + safe_value('ransomware "x" \\ y') + " "),
                event_line(now, src="10.0.0.5", trail="site.example", info="potential malware site"),  # medium
            ]
            # every event arrives over the UDP intake, as from a remote sensor
            srv.send_udp([f"{int(now)} {line}".encode() for line in lines])
            posts = receiver.wait(3)
            assert len(posts) == 3, srv.read_err()
            docs = [json.loads(body) for body, _ in posts]
            assert all(ctype.startswith("application/json") for _, ctype in posts)
            assert [d["raw"]["src_ip"] for d in docs] == ["10.0.0.1", "10.0.0.3", "10.0.0.4"]
            assert docs[0]["text"] == "high: 10.0.0.1 -> evil.example (malware) [DNS]"
            assert docs[2]["raw"]["info"] == 'ransomware "x" \\ y'
            assert docs[2]["text"] == 'high: 10.0.0.4 -> bad.example (ransomware "x" \\ y) [DNS]'
            assert all(d["raw"]["severity"] == "high" and d["raw"]["sensor"] == "s1" for d in docs)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}", docs[0]["raw"]["time"])
            assert isinstance(docs[0]["raw"]["timestamp"], int)

            # rotation: the day file is moved away and a new one (new inode) starts from byte 0
            day = srv.day_file()
            assert wait_for(lambda: os.path.exists(day) and open(day).read().count("\n") == len(lines))
            os.rename(day, day + ".1")
            srv.write_events([event_line(time.time(), src="10.0.0.9", trail="c2.example", info="adversary")])
            posts = receiver.wait(4)
            assert len(posts) == 4
            assert json.loads(posts[3][0])["raw"]["trail"] == "c2.example"
            time.sleep(2.5)                 # one more poll: nothing else may arrive
            assert len(receiver.posts) == 4
        counts = summary(srv.stderr)
        assert counts["sent"] == 4 and counts["below"] == 2 and counts["throttled"] == 1
        assert counts["failed"] == 0 and counts["dropped"] == 0


def test_slow_receiver_never_holds_up_the_intake(tmp_path):
    with Receiver(delay=2.0) as receiver:
        srv = alert_server(str(tmp_path), receiver.url)
        with srv:
            assert started(srv)
            now = time.time()
            lines = [event_line(now, src=f"10.1.0.{i}", trail="evil.example", info="malware", kind="DNS")
                     for i in range(1, 31)]
            t0 = time.time()
            srv.send_udp([f"{int(now)} {line}".encode() for line in lines])
            day = srv.day_file()
            assert wait_for(lambda: os.path.exists(day) and open(day).read().count("\n") == 30, 5)
            assert time.time() - t0 < 5
            assert wait_for(lambda: "alerts" in srv.read_err() and len(receiver.posts) >= 1, 8)
            start = time.time()
            assert srv.get("/ping") == (200, b"pong")
            assert time.time() - start < 1.0
            body = receiver.posts[0][0]
            assert parse_line(lines[0]) is not None and json.loads(body)["trail"] == "evil.example"
        counts = summary(srv.stderr)
        assert counts["queued"] == 30 and counts["sent"] < 30 and counts["dropped"] == 0


def test_receiver_down_is_counted_and_intake_keeps_writing(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/hook"      # nothing listens there
    srv = alert_server(str(tmp_path), url, "ALERT_THROTTLE 0\n")
    with srv:
        assert started(srv)
        now = time.time()
        lines = [event_line(now, src="10.2.0.1", trail="evil.example", info="malware", kind="DNS")] * 5
        srv.send_udp([f"{int(now)} {line}".encode() for line in lines])
        assert wait_for(lambda: "alert webhook failed" in srv.read_err(), 8)
        day = srv.day_file()
        assert open(day).read().count("\n") == 5
        assert srv.get("/ping") == (200, b"pong")
        time.sleep(1.0)
    counts = summary(srv.stderr)
    assert counts["failed"] >= 1 and counts["sent"] == 0 and counts["queued"] == 5
    assert srv.proc is not None and srv.proc.returncode == 0
    assert "Traceback" not in srv.stderr


def test_a_failed_post_is_retried_with_backoff(tmp_path):
    """A receiver that answers 503 twice (restarting, overloaded) still gets the alert, once."""
    with Receiver(fail_first=2) as receiver:
        srv = alert_server(str(tmp_path), receiver.url, "ALERT_THROTTLE 0\n")
        with srv:
            assert started(srv)
            now = time.time()
            line = event_line(now, src="10.3.0.1", trail="evil.example", info="malware", kind="DNS")
            srv.send_udp([f"{int(now)} {line}".encode()])
            posts = receiver.wait(1, timeout=15)
            assert len(posts) == 1 and receiver.refused == 2, srv.read_err()
            assert b"10.3.0.1" in posts[0][0]
        counts = summary(srv.stderr)
    assert counts["sent"] == 1 and counts["failed"] == 0


def _alerts(tmp: str, **values: str) -> tuple[Alerts, list[tuple[str, bytes, str]]]:
    config = build_config({"LOG_DIR": tmp, "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x",
                           "REMOTE_SEVERITY_REGEX": default_pattern(), **values}, env={})
    sent: list[tuple[str, bytes, str]] = []
    return Alerts(config, threading.Event(), lambda u, b, c: sent.append((u, b, c)), queue_size=2), sent


@pytest.mark.parametrize("template, expected_json", [("%(nope)s", True), ("100%", True), ("", True),
                                                    ("%(src_ip)s hit %(trail)s", False)])
def test_template_errors_fall_back_to_the_json_body(tmp_path, template, expected_json):
    alerts, _ = _alerts(str(tmp_path), ALERT_FORMAT=template)
    body, ctype = alerts.body(parse_line(event_line(time.time(), info="malware")), "high")
    if expected_json:
        assert json.loads(body)["info"] == "malware" and ctype == "application/json"
    else:
        assert body == b"10.0.0.1 hit 1.2.3.4" and ctype.startswith("text/plain")


def test_queue_is_bounded_and_overflow_counted(tmp_path):
    alerts, _ = _alerts(str(tmp_path), ALERT_THROTTLE="0")
    for i in range(5):
        alerts.handle(event_line(time.time(), src=f"10.3.0.{i}", info="malware"), time.monotonic())
    assert alerts.counters["queued"] == 2 and alerts.counters["dropped"] == 3
    alerts.handle("not a log line", time.monotonic())
    assert alerts.counters["malformed"] == 1
