"""GET /ripe of a real server.py against a local stand-in for RIPEstat: the answers, the 7-day
answer cache and 10-minute miss cache (counted upstream calls), 204 when unavailable or
disabled, 400 for private/bogon/invalid input."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.kit.server import Server

ANSWERS = {
    ("network-info", "193.0.6.139"): {"asns": ["3333"], "prefix": "193.0.0.0/21"},
    ("as-overview", "AS3333"): {"holder": "RIPE-NCC-AS - Reseaux IP Europeens Network Coordination Centre (RIPE NCC)"},
    ("maxmind-geo-lite", "193.0.6.139"): {"located_resources": [{"locations": [{"country": "nl"}]}]},
    ("network-info", "8.8.8.8"): {"asns": [], "prefix": None},
}


class Upstream:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.broken = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                name = url.path.split("/")[2] if url.path.startswith("/data/") else ""
                resource = urllib.parse.parse_qs(url.query).get("resource", [""])[0]
                upstream.calls.append((name, resource))
                if upstream.broken:
                    self.send_response(502)
                    self.end_headers()
                    return
                body = json.dumps({"status": "ok", "data": ANSWERS.get((name, resource), {})}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def upstream():
    up = Upstream()
    yield up
    up.close()


def test_ripe_lookups_and_caches(tmp_path, upstream):
    with Server(str(tmp_path), extra=f"DISABLE_RIPE_LOOKUPS false\nRIPESTAT_URL {upstream.url}") as srv:
        cookie = srv.login()
        status, data = srv.get("/ripe?address=193.0.6.139", cookie=cookie)
        assert status == 200 and json.loads(data) == {"asn": 3333, "holder": ANSWERS[("as-overview", "AS3333")]["holder"]}
        assert srv.get("/ripe?address=193.0.6.139&kind=geo", cookie=cookie) == (200, b'{"cc":"NL"}')
        calls = len(upstream.calls)
        assert calls == 3
        assert srv.get("/ripe?address=193.0.6.139", cookie=cookie)[0] == 200  # the 7-day cache
        assert srv.get("/ripe?address=8.8.8.8", cookie=cookie)[0] == 204  # no ASN: a miss
        assert srv.get("/ripe?address=8.8.8.8", cookie=cookie)[0] == 204  # the 10-minute miss cache
        assert len(upstream.calls) == calls + 1
        upstream.broken = True
        assert srv.get("/ripe?address=9.9.9.9", cookie=cookie)[0] == 204  # upstream error: unavailable
        upstream.broken = False
        for bad in ("10.0.0.1", "127.0.0.1", "192.0.2.1", "fe80::1", "", "x", "%00", "1.2.3.4/8"):
            assert srv.get(f"/ripe?address={bad}", cookie=cookie)[0] == 400, bad
        assert srv.get("/ripe?address=193.0.6.139&kind=whois", cookie=cookie)[0] == 400
        assert srv.get("/ripe?address=193.0.6.139")[0] == 401


def test_ripe_is_off_by_default(tmp_path, upstream):
    before = len(upstream.calls)
    with Server(str(tmp_path), extra=f"RIPESTAT_URL {upstream.url}") as srv:
        assert srv.get("/ripe?address=193.0.6.139", cookie=srv.login())[0] == 204
    assert len(upstream.calls) == before
