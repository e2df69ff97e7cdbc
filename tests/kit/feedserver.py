"""A local HTTP server that answers for every feed with its saved sample (tests and bench/bench_update.py).

Where it sits: test kit, beside the other harnesses of tests/kit; tests/test_kit_feedserver.py tests it.

Feeds are fetched through `FeedContext.base_url`, so a request arrives as
`/<feed name>/<quoted original URL>`; the server answers with `tests/data/feeds/<feed>.*` (gzip
encoded when the client accepts it) or misbehaves on purpose for the feeds named in `behaviours`:
`timeout` (sleeps past the client's timeout), `html` (an HTML error page with status 200), `empty`
(200 with no body), `503` (server error), `flaky` (503 once, then the sample), `huge` (a body larger
than any sane cap). `files` maps a feed to another body file; a `.gz` file is sent as is with
`Content-Encoding: gzip` (the benchmark's 80 MB compilation).
"""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "feeds")
HTML_ERROR = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
              b"<body><h1>Bad Gateway</h1><p>The proxy received an invalid response. 1.2.3.4</p></body></html>\n")


def sample_path(feed: str, samples: str = SAMPLES) -> str | None:
    matches = sorted(glob.glob(os.path.join(samples, f"{feed}.*")))
    return matches[0] if matches else None


class FeedServer:
    def __init__(self, samples: str = SAMPLES, behaviours: dict[str, str] | None = None,
                 files: dict[str, str] | None = None, delay: float = 3.0) -> None:
        self.samples = samples
        self.behaviours = dict(behaviours or {})
        self.files = dict(files or {})
        self.delay = delay
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._flaky_seen: set[str] = set()
        self._lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None
        self.base_url = ""

    def __enter__(self) -> FeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                parts = self.path.lstrip("/").split("/", 1)
                feed = parts[0]
                original = unquote(parts[1]) if len(parts) > 1 else ""
                with server._lock:
                    server.requests.append((feed, original, dict(self.headers.items())))
                server.answer(self, feed)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "text/plain",
              encoding: str | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        if encoding:
            handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def answer(self, handler: BaseHTTPRequestHandler, feed: str) -> None:
        behaviour = self.behaviours.get(feed)
        if behaviour == "timeout":
            time.sleep(self.delay)
            handler.close_connection = True
            return
        if behaviour == "html":
            return self._send(handler, 200, HTML_ERROR, "text/html; charset=utf-8")
        if behaviour == "empty":
            return self._send(handler, 200, b"")
        if behaviour == "503":
            return self._send(handler, 503, b"Service Unavailable")
        if behaviour == "huge":
            return self._send(handler, 200, b"1.1.1.1\n" * (9 << 17))
        if behaviour == "flaky":
            with self._lock:
                first = feed not in self._flaky_seen
                self._flaky_seen.add(feed)
            if first:
                return self._send(handler, 503, b"try again")
        path = self.files.get(feed) or sample_path(feed, self.samples)
        if path is None:
            return self._send(handler, 404, b"no such feed")
        if path.endswith(".gz"):
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(os.path.getsize(path)))
            handler.end_headers()
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handler.wfile, 1 << 20)
            return None
        with open(path, "rb") as source:
            body = source.read()
        if "gzip" in handler.headers.get("Accept-Encoding", ""):
            return self._send(handler, 200, gzip.compress(body, 1), encoding="gzip")
        return self._send(handler, 200, body)
