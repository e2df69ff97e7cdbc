"""The HTTP API of a real server.py: every endpoint, shapes, ranges, live stream, scope rules."""

from __future__ import annotations

import datetime
import json
import os
import socket
import time

import pytest

from tests.kit.server import Server, event_line, sha

RESTRICTED = f"local:{sha('pw1')}:1000:192.168.0.0/16, 2001:db8::/32"
NARROW = f"ops:{sha('pw2')}:0:10.0.0.0/8"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("api"))
    extra = "\n".join([
        "FAIL2BAN_REGEX attacker|scanner",
        "FAIL2BAN_ALLOWLIST 127.0.0.1, 10.0.0.0/8",
        "BLACKLIST_ALLOWLIST 127.0.0.3",
        "BLACKLIST", "    dst_port ~ ^22$ and src_ip !~ ^192\\.168\\.",
        "BLACKLIST_WEB", "    trail ~ evil",
        "HUNT_TIME_BUDGET 5",
    ])
    srv = Server(tmp, users=[f"admin:{sha('changeme!')}:0:", RESTRICTED, NARROW], extra=extra)
    now = time.time()
    srv.write_events([
        event_line(now, src="10.0.0.1", dst="1.2.3.4", info="known attacker"),
        event_line(now, src="192.168.1.5", dst="8.8.8.8", trail="evil.com", kind="DNS", info="malware",
                   reference="(custom)"),
        event_line(now, src="203.0.113.9", dst="10.0.0.7", trail="203.0.113.9", info="mass scanner", dport=22),
        event_line(now, src="2001:db8::5", dst="2001:db8::6", trail="x.evil.net", kind="DNS", info="phishing"),
    ])
    yesterday = now - 86400
    srv.write_events([event_line(yesterday, src="172.16.0.1", dst="5.6.7.8", trail="5.6.7.8")], yesterday)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin(server):
    cookie = server.login()
    assert cookie
    return cookie


def test_ping_whoami_and_default_password_warning(server, admin):
    assert server.get("/ping") == (200, b"pong")
    status, headers, body = server.request("GET", "/whoami", cookie=admin)
    assert (status, body) == (200, b"admin")
    assert headers["x-maltrail-warning"] == "default-password"
    assert server.get("/whoami")[1] == b""
    assert "default password" in server.read_err()


def test_events_need_a_session(server):
    assert server.get("/events")[0] == 401
    assert server.get("/events", cookie="0" * 32)[0] == 401


def test_session_is_bound_to_the_client_address(server, admin):
    assert server.get("/events", cookie=admin)[0] == 200
    assert server.get("/events", cookie=admin, source="127.0.0.2")[0] == 401


def test_login_cookie_attributes_and_logout(server):
    nonce = server.challenge()
    body = f"username=admin&nonce={nonce}&hash={sha(sha('changeme!') + nonce)}"
    status, headers, data = server.request("POST", "/login", body)
    assert status == 200 and data == b"Login success\n"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    # the same nonce is never accepted twice
    assert server.request("POST", "/login", body)[0] == 401
    sid = cookie.split("=", 1)[1].split(";")[0]
    status, headers, _ = server.request("POST", "/logout", cookie=sid)
    assert status == 302 and headers["location"] == "/"
    assert server.get("/events", cookie=sid)[0] == 401


def test_events_today_range_and_concatenation(server, admin):
    today = datetime.date.today()
    status, headers, body = server.request("GET", "/events", cookie=admin)
    assert status == 200 and body.count(b"\n") == 4
    with open(server.day_file(), "rb") as handle:
        assert body == handle.read()
    span = f"{today - datetime.timedelta(days=1)}_{today}"
    status, body2 = server.get(f"/events?date={span}", cookie=admin)
    assert status == 200 and body2.count(b"\n") == 5 and body2.startswith(b'"' + str(today - datetime.timedelta(days=1)).encode())
    assert server.get("/events?date=2020-13-45", cookie=admin)[0] == 400
    assert server.get("/events?date=2020-01-01_2025-01-01", cookie=admin)[0] == 400
    assert server.get("/events?date=1999-01-01", cookie=admin) == (200, b"")


def test_events_byte_ranges(server, admin):
    full = server.get("/events", cookie=admin)[1]
    total = len(full)
    status, headers, body = server.request("GET", "/events", cookie=admin, headers={"Range": "bytes=5-14"})
    assert status == 206 and body == full[5:15] and headers["content-range"] == f"bytes 5-14/{total}"
    status, headers, body = server.request("GET", "/events", cookie=admin, headers={"Range": "bytes=-7"})
    assert status == 206 and body == full[-7:]
    status, headers, body = server.request("GET", "/events", cookie=admin, headers={"Range": f"bytes={total - 3}-"})
    assert status == 206 and body == full[-3:]
    status, headers, body = server.request("GET", "/events", cookie=admin, headers={"Range": "bytes=0-1,4-5"})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")
    assert full[0:2] in body and full[4:6] in body and body.count(b"Content-Range: bytes") == 2
    status, headers, _ = server.request("GET", "/events", cookie=admin, headers={"Range": f"bytes={total}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{total}"
    # malformed or abusive Range headers are ignored (full 200), never an error
    for bad in ("bytes=9-3", "bytes=abc", "items=0-1", "bytes=" + ",".join(["0-0"] * 500), "bytes=-",
                "bytes=99999999999999999999999-"):
        status, _, body = server.request("GET", "/events", cookie=admin, headers={"Range": bad})
        assert status in (200, 416) and (status == 416 or body == full), bad


def test_events_uncompressed_for_a_loopback_client(server, admin):
    # gzip would cost the server and the browser CPU and save no transfer time on loopback: the day
    # comes as stored, with its length (the page sizes its columns and its progress bar from it)
    status, headers, body = server.request("GET", "/events", cookie=admin, headers={"Accept-Encoding": "gzip, br"})
    assert status == 200 and "content-encoding" not in headers
    assert int(headers["content-length"]) == len(body) > 0
    assert body == server.get("/events", cookie=admin)[1]


def test_loopback_rule():
    from core.addr import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("::1")
    assert not any(is_loopback(a) for a in ("10.0.0.1", "192.0.2.7", "2001:db8::1", "::ffff:7f00:1x", "", "localhost"))


def test_restricted_user_sees_only_its_networks_and_masked_custom(server):
    cookie = server.login("local", "pw1")
    assert cookie
    body = server.get("/events", cookie=cookie)[1].decode()
    lines = body.splitlines()
    assert len(lines) == 2
    assert all("192.168.1.5" in line or "2001:db8::5" in line for line in lines)
    custom = [line for line in lines if "evil.com" in line][0]
    assert " malware " not in custom and custom.endswith(" - (custom)")
    counts = json.loads(server.get("/counts", cookie=cookie)[1])
    assert counts == {datetime.date.today().isoformat(): 2}
    hunt = json.loads(server.get("/hunt?q=10.0.0.1", cookie=cookie)[1])
    assert hunt["counts"] == {} and hunt["samples"] == []
    status, headers, _ = server.request("GET", "/events", cookie=cookie, headers={"Range": "bytes=0-10"})
    assert status == 200


def test_counts(server, admin):
    today = datetime.date.today()
    counts = json.loads(server.get(f"/counts?from={today - datetime.timedelta(days=3)}&to={today}", cookie=admin)[1])
    assert counts == {str(today): 4, str(today - datetime.timedelta(days=1)): 1}
    counts = json.loads(server.get(f"/counts?from={int(time.time())}&to={int(time.time())}", cookie=admin)[1])
    assert counts == {str(today): 4}
    assert server.get("/counts?from=bad", cookie=admin)[0] == 400
    narrow = server.login("ops", "pw2")
    assert json.loads(server.get("/counts", cookie=narrow)[1]) == {str(today): 2}


def test_hunt(server, admin):
    assert server.get("/hunt?q=ab", cookie=admin)[0] == 400
    result = json.loads(server.get("/hunt?q=10.0.0.0/8", cookie=admin)[1])
    assert result["counts"] == {str(datetime.date.today()): 2} and len(result["samples"]) == 2
    assert {"truncated", "scanned", "selected", "partial", "capped_samples"} <= set(result)
    result = json.loads(server.get("/hunt?q=EVIL.COM", cookie=admin)[1])
    assert sum(result["counts"].values()) == 1 and "evil.com" in result["samples"][0]["line"]
    today = datetime.date.today()
    result = json.loads(server.get(f"/hunt?q=5.6.7.8&from={today - datetime.timedelta(days=2)}&to={today}",
                                   cookie=admin)[1])
    assert result["counts"] == {str(today - datetime.timedelta(days=1)): 1}


def test_geo_from_the_bundled_table_counts_unmapped(server, admin):
    """No update has run: the bundled table maps 1.2.3.4 (APNIC, AU); DNS events and the
    documentation address 203.0.113.9 stay unmapped."""
    result = json.loads(server.get("/geo", cookie=admin)[1])
    assert result["counts"] == {"AU": 1} and result["mapped"] == 1 and result["unmapped"] == 3
    assert result["home"] is None


def test_live_stream_and_resume(server, admin):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"GET /live?pos=0 HTTP/1.1\r\nHost: x\r\nCookie: maltrail_sessid={admin}\r\n\r\n".encode())
    data = b""
    while data.count(b"\ndata: ") < 4:
        data += sock.recv(65536)
    assert b"text/event-stream" in data
    ids = [int(line.split(b": ")[1]) for line in data.splitlines() if line.startswith(b"id: ")]
    assert ids[-1] == os.path.getsize(server.day_file())
    server.write_events([event_line(time.time(), src="10.9.9.9", trail="9.9.9.9", info="phishing")])
    while b"10.9.9.9" not in data:
        data += sock.recv(65536)
    sock.close()
    # resume from an offset: only what follows it
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"GET /live HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {ids[-1]}\r\nCookie: maltrail_sessid={admin}\r\n\r\n".encode())
    data = b""
    while b"10.9.9.9" not in data:
        data += sock.recv(65536)
    assert data.count(b"\ndata: ") == 1
    sock.close()


def test_live_needs_session(server):
    assert server.get("/live")[0] == 401


def test_fail2ban_allowlist_and_cleared(server):
    status, body = server.get("/fail2ban")
    assert status == 200 and body.decode().split() == ["10.0.0.1", "203.0.113.9"]
    assert server.get("/fail2ban", source="127.0.0.2")[0] == 404
    time.sleep(1.1)
    with open(os.path.join(server.log_dir, "cleared.txt"), "w") as handle:
        handle.write("# remediated\n10.0.0.1\n203.0.113.9 2000-01-01 00:00:00\nnot-an-ip\n")
    assert server.get("/fail2ban")[1].decode().split() == ["203.0.113.9"]
    os.unlink(os.path.join(server.log_dir, "cleared.txt"))


def test_blacklist_rules_and_access(server, admin):
    assert server.get("/blacklist")[0] == 404               # no session, not allowlisted
    assert server.get("/blacklist", source="127.0.0.3") == (200, b"203.0.113.9\n")
    assert server.get("/blacklist", cookie=admin) == (200, b"203.0.113.9\n")
    assert server.get("/blacklist/web", cookie=admin)[1].split() == [b"192.168.1.5", b"2001:db8::5"]
    assert server.get("/blacklist/nope", cookie=admin)[0] == 404
    restricted = server.login("local", "pw1")
    assert server.get("/blacklist/web", cookie=restricted)[1].split() == [b"192.168.1.5", b"2001:db8::5"]
    narrow = server.login("ops", "pw2")
    assert server.get("/blacklist/web", cookie=narrow)[1] == b""


def test_trails_and_check_hide_custom_rows(server, admin):
    with open(os.path.join(server.tmp, "trails.csv"), "w") as handle:
        handle.write("evil.com,malware,(custom)\nbad.example,phishing,openphish.com\n6.6.6.6,attacker,example\n")
    assert server.get("/trails") == (200, b"bad.example,phishing,openphish.com\n6.6.6.6,attacker,example\n")
    assert server.get("/trails", cookie=admin)[1].count(b"\n") == 3
    masked = server.login("local", "pw1")
    assert b"(custom)" not in server.get("/trails", cookie=masked)[1]
    status, body = server.get("/check?q=www.bad.example", cookie=admin)
    if status == 503:
        pytest.skip("trail store not available: " + body.decode())
    result = json.loads(body)
    assert result["found"] and result["trail"] == "bad.example" and result["info"] == "phishing"
    assert json.loads(server.get("/check?q=6.6.6.6")[1])["found"]
    assert json.loads(server.get("/check?q=evil.com", cookie=admin)[1])["found"]
    assert not json.loads(server.get("/check?q=evil.com")[1])["found"]
    assert not json.loads(server.get("/check?q=evil.com", cookie=masked)[1])["found"]
    assert server.get("/check")[0] == 400


def test_reference_requires_session(server, admin):
    assert server.get("/reference?trail=x")[0] == 401
    status, body = server.get("/reference?trail=no-such-trail.invalid", cookie=admin)
    assert status == 200 and json.loads(body) == {"reference": None, "source": None}


def test_static_files_headers_and_templates(server):
    status, headers, body = server.request("GET", "/")
    assert status == 200 and b"Maltrail 0.1.0" in body and b"<!TZOFFSET!>" not in body
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline'; img" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert server.get("/robots.txt")[0] == 200
    assert server.get("/secret.conf")[0] == 404
    assert server.get("/index")[0] == 200
    status, headers, body = server.request("GET", "/js/main.js")
    assert status == 200 and headers["content-type"].startswith("application/javascript")
    status, body = server.get("/<script>alert(1)</script>")
    assert status == 404 and b"<script>" not in body and b"&lt;script&gt;" in body
