"""Server operations against a real server.py: login events forwarded as CEF (SYSLOG_SERVER) and
JSON (LOGSTASH_SERVER) to UDP sockets on 127.0.0.1 with a sanitised username, and the intake's
start-up line with the effective receive buffer, and the processes' priorities."""

from __future__ import annotations

import json
import re
import socket
import urllib.parse

from tests.kit.procs import children, niceness
from tests.kit.server import Server, free_port


def udp_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def receive(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(65535).decode("utf-8") for _ in range(count)]


def test_login_events_reach_syslog_and_logstash_collectors(tmp_path):
    cef_sock, json_sock = udp_listener(), udp_listener()
    cef_port, json_port = cef_sock.getsockname()[1], json_sock.getsockname()[1]
    extra = (f"SYSLOG_SERVER 127.0.0.1:{cef_port}\nLOGSTASH_SERVER 127.0.0.1:{json_port}\n"
             "SENSOR_NAME collector-test\n")
    try:
        with Server(str(tmp_path), extra=extra, udp=False) as srv:
            assert srv.login() is not None
            hostile = "evil\r\nFailed password for root" + "\x00\x1b[31m" + "x" * 200
            body = urllib.parse.urlencode({"username": hostile, "password": "wrong"})
            assert srv.request("POST", "/login", body)[0] == 401
            cefs, docs = receive(cef_sock, 2), [json.loads(d) for d in receive(json_sock, 2)]
    finally:
        cef_sock.close()
        json_sock.close()

    ok, failed = cefs
    assert re.fullmatch(r"<38>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ CEF:0\|Maltrail\|server\|[^|]+\|auth\|"
                        r"Accepted password for admin from 127\.0\.0\.1 port \d+\|1\|src=127\.0\.0\.1 "
                        r"spt=\d+ suser=admin outcome=success", ok), ok
    assert failed.startswith("<36>") and "|2|" in failed and "outcome=failure" in failed
    for text in cefs + [json.dumps(d) for d in docs]:
        assert "\n" not in text and "\r" not in text and "\x00" not in text and "\x1b" not in text
    assert docs[0]["type"] == "auth" and docs[0]["outcome"] == "success" and docs[0]["user"] == "admin"
    assert docs[0]["sensor"] == "collector-test" and docs[0]["src_ip"] == "127.0.0.1"
    assert docs[1]["outcome"] == "failure"
    user = docs[1]["user"]
    assert len(user) == 64 and user.startswith("evilFailed password for root[31mxxx")
    assert f"suser={user} outcome=failure" in failed


def test_unreachable_collector_never_breaks_login(tmp_path):
    port = free_port(socket.SOCK_DGRAM)          # nothing listens: sends get ECONNREFUSED
    with Server(str(tmp_path), extra=f"SYSLOG_SERVER 127.0.0.1:{port}\n", udp=False) as srv:
        for _ in range(3):
            assert srv.login() is not None
        assert srv.request("POST", "/login", "username=admin&password=bad")[0] == 401
    assert "Traceback" not in srv.stderr


def test_intake_logs_its_effective_receive_buffer(tmp_path):
    with Server(str(tmp_path)) as srv:
        err = srv.read_err()
    m = re.search(r"UDP intake on 127\.0\.0\.1:\d+ \(unsigned, receive buffer (\d+) kB\)", err)
    assert m, err
    effective = int(m.group(1))
    with open("/proc/sys/net/core/rmem_max") as handle:
        rmem_max = int(handle.read())
    asked = 64 << 10
    assert effective > 0
    if effective < asked:
        assert "net.core.rmem_max" in err and f"sysctl -w net.core.rmem_max={asked << 10}" in err
        assert effective <= 2 * (rmem_max >> 10)
    else:
        assert "net.core.rmem_max" not in err


def test_the_intake_goes_before_the_http_side(tmp_path):
    """Niceness (docs/operations-server.md "Process priorities"): the HTTP side 10 above the
    server's, the intake 5 below where allowed (root) else the server's, its observables writer
    5 above the intake."""
    import os

    server_nice = os.nice(0)          # the server inherits this test's
    with Server(str(tmp_path)) as srv:
        assert srv.proc is not None
        main = srv.proc.pid
        (intake,) = children(main, wait=10)
        (writer,) = children(intake, wait=10)
        intake_nice = server_nice - 5 if os.geteuid() == 0 else server_nice
        assert niceness(main) == min(19, server_nice + 10)
        assert niceness(intake) == max(-20, intake_nice)
        assert niceness(writer) == min(19, max(-20, intake_nice) + 5)
        assert srv.login() is not None          # the HTTP side still answers
