"""The HTTP API: the explicit route table and the session, event and live endpoints.

Where it sits: httpd.py reads a request (parsed by messages.py) and calls `Api.handle`; this
module resolves the session (auth.py), dispatches by path through `routes`, and answers from the
day files (storage.py; `Range` and `date` parsing in ranges.py). app.py builds it. The query endpoints (/hunt, /geo, /counts) are in queries.py, the lists
(/fail2ban, /blacklist) in lists.py, the trail lookups (/check, /trails, /reference) in lookup.py,
/meta (the observables store) in meta.py, /check_ip in addrinfo.py, /ripe in ripe.py.
Static files (static.py) answer every other path.

Scope rule: every endpoint that returns, searches or counts events or addresses works on the
lines as the session sees them (auth.visible_line: the session's network filter, and custom-trail
info masked for UID >= 1000 under ENABLE_MASK_CUSTOM), never on the stored lines.
The /intel/... exports also take HTTP Basic credentials of a USERS account (feed subscribers hold
no session; auth.py `basic`). Request rules: /login and /logout change state and take POST only (405 otherwise); every POST
that a browser marks as cross-site (`Sec-Fetch-Site`, else an `Origin` that is not the `Host`)
gets 403 (auth.cross_site); requests with neither header (scripts, fail2ban) are served.
"""

from __future__ import annotations

import datetime
import math
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from core.addr import is_loopback
from core.config import Config
from core.server.auth import (
    CHALLENGE_TTL,
    DEVICE_COOKIE,
    SESSION_COOKIE,
    Auth,
    Session,
    cross_site,
    visible_line,
)
from core.server.messages import HttpError, Request, Response, json_response, text
from core.server.ranges import UNSATISFIABLE, multipart, parse_byte_ranges, parse_date, parse_date_param
from core.server.static import StaticFiles
from core.server.storage import Storage, iter_lines, read_range

LIVE_POLL = 0.5
LIVE_HEARTBEAT = 15.0
EVENTS_CHUNK = 1 << 20
BASIC_CHALLENGE = 'Basic realm="maltrail", charset="UTF-8"'  # RFC 7617: a 401 of /intel/... names the scheme


@dataclass(frozen=True)
class Route:
    handler: Callable[[Request, Session | None], Response]
    auth: bool                 # a logged-in session is required
    post_only: bool = False    # changes state: POST only (405 for GET/HEAD)


class Stream:
    """An iterable body that runs `on_close` exactly once, even if iteration never started."""

    def __init__(self, chunks: Generator[bytes, None, None], on_close: Callable[[], None]) -> None:
        self.chunks = chunks
        self.on_close = on_close
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.chunks.close()
            self.on_close()


class Api:
    """Endpoint handlers and the route table. One instance per server process."""

    def __init__(self, config: Config, auth: Auth, storage: Storage, static: StaticFiles,
                 stopping: threading.Event | None = None) -> None:
        self.config = config
        self.auth = auth
        self.storage = storage
        self.static = static
        self.stopping = stopping or threading.Event()
        self.live_slots = threading.BoundedSemaphore(max(1, config.MAX_LIVE_STREAMS))
        self.live_enabled = config.MAX_LIVE_STREAMS > 0
        from core.server.lists import Lists
        from core.server.lookup import Lookup
        from core.server.queries import Queries

        self.queries = Queries(config, storage)
        self.lists = Lists(config, storage)
        self.lookup = Lookup(config)
        from core.server.meta import Meta

        self.meta = Meta(config, self.lookup, self.queries.geo_table)
        from core.server.addrinfo import AddressInfo

        self.addrinfo = AddressInfo(config, self.queries.geo_table)
        from core.server.ripe import Ripe

        self.ripe = Ripe(config)
        from core.server.intel import IntelExports  # the /intel/... exports (docs/intel.md)

        self.routes: dict[str, Route] = {
            "/challenge": Route(self.challenge, False),
            "/login": Route(self.login, False, post_only=True),
            "/logout": Route(self.logout, False, post_only=True),
            "/whoami": Route(self.whoami, False),
            "/ping": Route(self.ping, False),
            "/store": Route(self.store, True),       # app.py replaces it when EVENT_STORE names ClickHouse
            "/events": Route(self.events, True),
            "/live": Route(self.live, True),
            "/counts": Route(self.queries.counts, True),
            "/hunt": Route(self.queries.hunt, True),
            "/geo": Route(self.queries.geo, True),
            "/check": Route(self.lookup.check, False),
            "/trails": Route(self.lookup.trails, False),
            "/reference": Route(self.lookup.reference, True),
            "/meta": Route(self.meta.meta, True),
            "/check_ip": Route(self.addrinfo.check_ip, True),
            "/ripe": Route(self.ripe.ripe, True),
            "/fail2ban": Route(self.lists.fail2ban, False),
            "/blacklist": Route(self.lists.blacklist, False),
            "/intel": Route(IntelExports(config).handle, True),  # /intel/... exports (core/server/intel.py)
        }

    # -- dispatch --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "POST" and cross_site(request.headers):
            return text(403, "Cross-site request refused\n")
        path = request.path
        name = path.rstrip("/") or "/"
        if name.startswith("/blacklist/"):
            name = "/blacklist"
        elif name.startswith("/intel/"):
            name = "/intel"
        route = self.routes.get(name)
        if route is None:
            return self.static.serve(request)
        if route.post_only and request.method != "POST":
            return text(405, "Use POST\n", headers=[("Allow", "POST")])
        session = self.auth.session_for(request.cookie(SESSION_COOKIE), request.address)
        if route.auth and session is None and name == "/intel":
            # feed subscribers (a MISP instance, a script) cannot hold a session: HTTP Basic with a
            # USERS account, checked and throttled as the password login form (auth.py `basic`)
            header = request.headers.get("authorization")
            if header:
                outcome = self.auth.basic(header, request.address, request.port)
                if outcome.result == "throttled":
                    return _too_many(outcome.retry)
                session = outcome.session
            if session is None:
                return text(401, "Unauthorized\n", headers=[("WWW-Authenticate", BASIC_CHALLENGE)])
        if route.auth and session is None:
            return text(401, "Unauthorized\n")
        return route.handler(request, session)

    def _warning_headers(self) -> list[tuple[str, str]]:
        return [("X-Maltrail-Warning", "default-password")] if self.auth.default_password_in_use else []

    # -- session endpoints -----------------------------------------------------------------------

    def challenge(self, request: Request, session: Session | None) -> Response:
        return json_response({"nonce": self.auth.challenge(), "ttl": CHALLENGE_TTL})

    def login(self, request: Request, session: Session | None) -> Response:
        if not self.auth.enabled:
            return text(200, "Login success\n", headers=self._warning_headers())
        params = request.params
        username = params.get("username", "")[:256]
        password = params.get("password")
        if password is not None:
            password = password[:1024]
        outcome = self.auth.login(username, params.get("nonce", "")[:128], params.get("hash", "")[:128],
                                  password, request.address, request.port, request.cookie(DEVICE_COOKIE),
                                  params.get("work", "")[:16])
        if outcome.result == "throttled":
            return _too_many(outcome.retry, outcome.work)
        new = outcome.session
        if new is None:
            return text(401, "Login failed\n")
        headers = [("Set-Cookie", self.auth.device_cookie(new)), ("Set-Cookie", self.auth.cookie(new))]
        return text(200, "Login success\n", headers=headers + self._warning_headers())

    def logout(self, request: Request, session: Session | None) -> Response:
        self.auth.logout(request.cookie(SESSION_COOKIE))
        return Response(302, b"", headers=[("Location", "/"), ("Set-Cookie", self.auth.clear_cookie())])

    def whoami(self, request: Request, session: Session | None) -> Response:
        name = session.name if session is not None else ""
        return text(200, name, headers=self._warning_headers())

    def ping(self, request: Request, session: Session | None) -> Response:
        return text(200, "pong")

    def store(self, request: Request, session: Session | None) -> Response:
        """What the event store is: day files here (threats.py answers for ClickHouse)."""
        return json_response({"kind": "files", "files": True, "cluster": False})

    # -- /events ---------------------------------------------------------------------------------

    def _days(self, request: Request) -> list[datetime.date]:
        value = request.params.get("date") or datetime.date.today().isoformat()
        days = parse_date_param(value[:32])
        if days is None:
            raise HttpError(400, "date must be YYYY-MM-DD or YYYY-MM-DD_YYYY-MM-DD (at most 366 days)")
        return days

    def events(self, request: Request, session: Session | None) -> Response:
        """A day (or range) as stored. A loopback client gets it uncompressed whatever it accepts:
        there gzip saves no transfer time and costs both ends CPU (docs/web-client.md)."""
        assert session is not None
        segments = self.storage.segments(self._days(request))
        compressible = not is_loopback(request.address)
        if session.scope.restricted or session.mask_custom:
            def filtered() -> Iterator[bytes]:
                out: list[bytes] = []
                size = 0
                for line in iter_lines(segments):
                    kept = visible_line(line, session)
                    if kept is not None:
                        out.append(kept)
                        size += len(kept)
                        if size >= EVENTS_CHUNK:
                            yield b"".join(out)
                            out, size = [], 0
                if out:
                    yield b"".join(out)
            return Response(200, filtered(), "text/plain; charset=utf-8", compressible=compressible)
        total = sum(s.size for s in segments)
        header = request.headers.get("range")
        ranges = parse_byte_ranges(header, total) if header and "if-range" not in request.headers else None
        if ranges == UNSATISFIABLE:
            return Response(416, b"", headers=[("Content-Range", f"bytes */{total}")])
        accept = [("Accept-Ranges", "bytes")]
        if not isinstance(ranges, list):
            return Response(200, read_range(segments, 0, total - 1) if total else b"", length=total,
                            headers=accept, compressible=compressible)
        if len(ranges) == 1:
            a, b = ranges[0]
            return Response(206, read_range(segments, a, b), length=b - a + 1, compressible=False,
                            headers=accept + [("Content-Range", f"bytes {a}-{b}/{total}")])
        frame = multipart(ranges, total, os.urandom(12).hex())

        def body() -> Iterator[bytes]:
            for head, a, b in frame.parts:
                yield head
                yield from read_range(segments, a, b)
            yield frame.tail
        return Response(206, body(), frame.content_type, accept, length=frame.length, compressible=False)

    # -- /live (server-sent events) ----------------------------------------------------------------

    def live(self, request: Request, session: Session | None) -> Response:
        assert session is not None
        if not self.live_enabled or not self.live_slots.acquire(blocking=False):
            return Response(204, b"")
        try:
            date_param = request.params.get("date", "")
            day = parse_date(date_param) if date_param else datetime.date.today()
            if day is None:
                raise HttpError(400, "date must be YYYY-MM-DD")
            resume = request.params.get("pos") or request.headers.get("last-event-id") or "0"
            if not resume.isdigit() or len(resume) > 15:
                raise HttpError(400, "pos must be a byte offset")
        except HttpError:
            self.live_slots.release()
            raise
        chunks = self._live_stream(request, session, self.storage.day_path(day), int(resume))
        headers = [("X-Accel-Buffering", "no")]
        return Response(200, Stream(chunks, self.live_slots.release), "text/event-stream; charset=utf-8",
                        headers, compressible=False)

    def _live_stream(self, request: Request, session: Session, path: str, pos: int) -> Generator[bytes, None, None]:
        sid = request.cookie(SESSION_COOKIE)
        yield b"retry: 3000\n\n"
        last_sent = time.monotonic()
        tail = b""
        skip_partial = False
        if pos > 0:
            # a resume offset inside a line: start at the next whole line
            try:
                with open(path, "rb") as handle:
                    handle.seek(pos - 1)
                    skip_partial = handle.read(1) not in (b"\n", b"")
            except OSError:
                pass
        while not self.stopping.is_set():
            if self.auth.session_for(sid, request.address) is None:
                return
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0
            if size < pos:
                pos, tail = 0, b""
            out: list[bytes] = []
            if size > pos:
                with open(path, "rb") as handle:
                    handle.seek(pos)
                    data = handle.read(min(size - pos, 8 << 20))
                start = pos
                pos += len(data)
                data = tail + data
                start -= len(tail)
                cut = data.rfind(b"\n")
                tail = data[cut + 1:] if cut >= 0 else data
                if skip_partial and cut >= 0:
                    first = data.find(b"\n") + 1
                    start += first
                    data = data[first:]
                    cut -= first
                    skip_partial = False
                if len(tail) > 1 << 20:      # a runaway partial line: skip it rather than grow
                    tail = b""
                offset = start
                for line in data[: cut + 1].split(b"\n")[:-1] if cut >= 0 else []:
                    line += b"\n"
                    offset += len(line)
                    kept = visible_line(line, session)
                    if kept is not None:
                        out.append(b"id: %d\ndata: %s\n\n" % (offset, kept.rstrip(b"\r\n")))
            now = time.monotonic()
            if out:
                yield b"".join(out)
                last_sent = now
            elif now - last_sent >= LIVE_HEARTBEAT:
                yield b": ping\n\n"
                last_sent = now
            if _peer_closed(request.sock):
                return
            self.stopping.wait(LIVE_POLL)


def _too_many(retry: float, work: int = 0) -> Response:
    """The answer to a login attempt (form or HTTP Basic) refused by the throttle; `work`: the bits
    of a proof of work on a fresh challenge that would pass it (core/server/auth.py)."""
    wait = max(1, math.ceil(retry))
    headers = [("Retry-After", str(wait))]
    if work:
        headers.append(("X-Maltrail-Work", str(work)))
    return text(429, f"Too many failed logins; try again in {wait} s\n", headers=headers)


def _peer_closed(sock: socket.socket | None) -> bool:
    """True when the client has gone (readable with nothing to read)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if hasattr(sock, "pending"):          # TLS: a close_notify or EOF shows up as readable
            return True
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True

