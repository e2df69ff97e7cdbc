"""HTTP heuristics: web scans, suspicious requests, User-Agents, downloads and responses.

Where it sits: the engine's `http_request` / `http_response` hooks, called by detect.py with a
parsed `core.protocols.http.HttpRequest` / `HttpResponse` after the URL trails missed. Patterns
come from data files (core/heuristics/patterns.py); all checks here run only on HTTP heads, never
on the per-packet fast path.

Request checks (each may emit one event; reference `(heuristic)`):
- web_scanning: more than WEB_SCANNING_THRESHOLD distinct first path segments per (src, dst)
  inside SCAN_WINDOW → `PATH` `*` `potential web scanning` (not when both ends are local);
- suspicious User-Agent (data/ua.txt, data/ua_whitelist.txt) → `UA`;
- iot-malware download from a bare-IPv4 host; missing Host (CHECK_MISSING_HOST); proxy probe;
- suspicious request battery on the decoded path (only when it holds one of ? .. .ht = space ')
  and on the decoded POST body; direct executable download; suspicious path names.
Forwarded-for: the first IPv4 in CF-Connecting-IP / True-Client-IP / X-Forwarded-For is appended
to the source as `src,fwd` in these events.
Response checks: sinkhole response, seized-domain page title, suspicious content type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from sys import intern
from urllib.parse import unquote, unquote_plus

from core.addr import ip_packed, ip_text, is_local
from core.config import Config
from core.decode.packet import Decoded
from core.events.event import Event, TrailType
from core.heuristics.patterns import HttpPatterns
from core.heuristics.state import MISSING, BoundedCache, WindowTable
from core.protocols.http import HttpRequest, HttpResponse
from core.trails.literals import canon
from core.trails.literals import gate as literal_gate
from core.trails.whitelist import Whitelist

REFERENCE = "(heuristic)"
REQUEST_MARKERS = ("?", "..", ".ht", "=", " ", "'")
DOWNLOAD_EXTENSIONS = frozenset(("apk", "bin", "class", "chm", "dll", "egg", "exe", "hta", "hwp", "lnk", "msi",
                                 "pif", "ps1", "pyz", "scr", "sct", "vsto", "wbk", "xpi"))
PROXY_WORDS = ("probe", "proxy", "echo", "check")
FORWARD_HEADERS = ("cf-connecting-ip", "true-client-ip", "x-forwarded-for")
FORWARD_TOKENS = (b"-ip", b"x-forwarded-for")  # every FORWARD_HEADERS name holds one of these
UA_CACHE_ENTRIES = 10000
WEB_SCAN_MAX_KEYS = 50000
_WORDS = re.compile(r"\w+")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_TITLE = re.compile(r"<title>([^<]{0,300})</title>", re.IGNORECASE)


def _encode_trail(text: str) -> str:
    """Force-encode the characters that would confuse bracketed trails or log lines."""
    return text.replace("(", "%28").replace(")", "%29").replace("\r", "%0D").replace("\n", "%0A")


class HttpHeuristics:
    def __init__(self, config: Config, whitelist: Whitelist | None, patterns: HttpPatterns,
                 emit: Callable[[Event], None], enabled: Callable[[str], bool]) -> None:
        self.whitelist = whitelist
        self.patterns = patterns
        self.emit = emit
        self.check_missing_host = config.CHECK_MISSING_HOST
        self.use_web_scan = enabled("web_scanning")
        self.use_requests = enabled("suspicious_request")
        self.use_ua = enabled("user_agent")
        self.use_download = enabled("direct_download")
        self.use_responses = enabled("http_response")
        self.web = WindowTable("web_scanning", config.SCAN_WINDOW,
                               config.WEB_SCANNING_THRESHOLD, 1024, WEB_SCAN_MAX_KEYS)
        self.ua_cache: BoundedCache[str | None] = BoundedCache("user_agent", UA_CACHE_ENTRIES)
        self.request_markers = literal_gate(frozenset(REQUEST_MARKERS))

    # --- requests ------------------------------------------------------------------------------

    def request(self, sec: int, usec: int, d: Decoded, request: HttpRequest) -> None:
        # Hot path (every HTTP request head): plain locals, no closure; each check returns what
        # to report and `_alert` builds the event only when one fires.
        path = request.path or "/"
        host = (request.host or "").lower()

        if self.use_web_scan and path[:1] == "/":
            # one string per distinct segment, however many client/server keys hold it
            segment = intern(path[1:].split("/", 1)[0].split("?", 1)[0])
            if self.web.observe(d.src + d.dst, segment, sec):
                if not (is_local(d.src) and is_local(d.dst)) and not self._listed(d.src):
                    self._alert(sec, usec, d, request, TrailType.PATH, "*", "potential web scanning")

        ua = request.user_agent
        if ua is not None and self.use_ua:
            trail = self.ua_cache.data.get(ua, MISSING)  # BoundedCache.get, inlined
            if trail is MISSING:
                trail = self._ua_trail(ua)
            if trail is not None:
                self._alert(sec, usec, d, request, TrailType.UA, trail, "user agent (suspicious)")

        if request.method == "CONNECT":
            return
        plain_path = path.split("?", 1)[0]
        dst_local = is_local(d.dst)

        if host[-1:].isdigit() and _IPV4.fullmatch(host) and not dst_local and self.patterns.iot_url is not None:
            if self.patterns.iot_url.search(host + plain_path):
                self._alert(sec, usec, d, request, TrailType.HTTP, f"({host}){_encode_trail(plain_path)}",
                            "potential iot-malware download (suspicious)")
                return

        if not host and self.check_missing_host and not request.absolute:
            self._alert(sec, usec, d, request, TrailType.HTTP, f"{ip_text(d.dst)}{_encode_trail(path)}",
                        "missing host header (suspicious)")

        if request.absolute and d.dport == 80:
            target = request.target.lower()
            if any(word in target for word in PROXY_WORDS) and not (host and self.whitelist is not None
                                                                     and self.whitelist.domain(host)):
                prefix = f"http://{host}"
                rest = target[len(prefix):] if target.startswith(prefix) else path
                self._alert(sec, usec, d, request, TrailType.HTTP, f"{prefix}({_encode_trail(rest)})",
                            "potential proxy probe (suspicious)")
                return

        display_host = host or ip_text(d.dst)
        if self.use_requests:
            found = self._suspicious_request(request, path, display_host, dst_local)
            if found is not None:
                self._alert(sec, usec, d, request, *found)
                return
        if self.use_download and not dst_local:
            found = self._direct_download(path, display_host)
            if found is not None:
                self._alert(sec, usec, d, request, *found)
                return
        if self.use_requests:
            text = canon(plain_path)
            any_gate = self.patterns.paths_gate
            if text is not None and any_gate is not None and any_gate.search(text) is None:
                return
            for desc, path_gate, pattern in self.patterns.paths:
                if text is not None and path_gate is not None and path_gate.search(text) is None:
                    continue
                if pattern.search(plain_path):
                    self._alert(sec, usec, d, request, TrailType.URL, f"{display_host}({_encode_trail(plain_path)})",
                                f"{desc} (suspicious)")
                    return

    def request_shortcut(self) -> tuple[object, ...]:
        """What core/accel/_http.c request_seen reads to prove `request` above reports nothing,
        in its order: (use_web_scan, the web-scan table, its threshold and key cap, use_ua, the
        UA verdict memo and the function that fills it, use_requests, the request markers gate, the
        request battery gate, use_download, DOWNLOAD_EXTENSIONS, the path families' gate: False when
        there is no family, None when there are families but no gate)."""
        patterns = self.patterns
        web = self.web
        return (self.use_web_scan, web.table, web.threshold, web.max_keys, self.use_ua, self.ua_cache.data,
                self._ua_trail, self.use_requests, self.request_markers, patterns.request_gate, self.use_download,
                DOWNLOAD_EXTENSIONS, patterns.paths_gate if patterns.paths else False)

    def _alert(self, sec: int, usec: int, d: Decoded, request: HttpRequest, kind: str, trail: str, info: str) -> None:
        src = self._source(d, request)  # forwarded-for annotation, only when something fires
        self.emit(Event(sec, usec, src, d.sport, ip_text(d.dst), d.dport, "TCP", kind, trail, info, REFERENCE))

    def _suspicious_request(self, request: HttpRequest, path: str, host: str,
                            dst_local: bool) -> tuple[str, str, str] | None:
        """The request battery on the decoded path, then on a form body: (kind, trail, info) to
        report, or None (also when the skip list vetoes a hit: the later checks still run)."""
        skip = self.patterns.request_skip
        decoded = unquote_plus(path) if "%" in path or "+" in path else path
        markers = self.request_markers
        if markers is not None and markers.search(decoded) is not None:
            desc = self._battery(decoded, dst_local)
            if desc is not None:
                if skip is not None and skip.search(path):  # consulted only when something fires
                    return None
                return (TrailType.URL, f"{host}({_encode_trail(path)})", f"{desc} (suspicious)")
        body = request.body
        if body and request.method in ("POST", "PUT", "PATCH"):
            text = body[:4096].decode("latin-1")
            text = unquote_plus(text) if "%" in text or "+" in text else text
            desc = self._battery(text, dst_local)
            if desc is not None:
                if skip is not None and skip.search(path):
                    return None
                trail = f"{host}({_encode_trail(path)} \\({request.method} {_encode_trail(text[:200])}\\))"
                return (TrailType.HTTP, trail, f"{desc} (suspicious)")
        return None

    def _battery(self, text: str, dst_local: bool) -> str | None:
        low = text.lower()
        request_gate = self.patterns.request_gate
        if request_gate is not None and request_gate.search(low) is None:
            return None
        for desc, gate, pattern in self.patterns.requests:
            if gate and not any(word in low for word in gate):
                continue
            if pattern.search(text):
                if dst_local and "data leakage" in desc:
                    continue
                return desc
        return None

    def _direct_download(self, path: str, host: str) -> tuple[str, str, str] | None:
        plain, _, query = path.partition("?")
        if "=" in query:
            return None
        name = plain.rsplit("/", 1)[-1]
        stem, dot, ext = name.rpartition(".")
        ext = ext.lower()
        if not dot or ext not in DOWNLOAD_EXTENSIONS or not stem or len(stem) >= 10:
            return None
        skip = self.patterns.download_skip
        if skip is not None and skip.search(plain):
            return None
        return (TrailType.URL, f"{host}{_encode_trail(plain)}", f"direct .{ext} download (suspicious)")

    def _ua_trail(self, ua: str) -> str | None:
        """The UA trail of a User-Agent (None: not suspicious), computed once per UA (ua_cache)."""
        cached = self.ua_cache.get(ua)
        if cached is not MISSING:
            return cached
        result: str | None = None
        pattern = self.patterns.ua
        if pattern is not None and self._ua_candidate(ua):
            match = pattern.search(ua)
            whitelist = self.patterns.ua_whitelist
            if match is not None and not (whitelist is not None and whitelist.search(ua)):
                start, end = match.span()
                before, hit, after = ua[:start], ua[start:end], ua[end:]
                result = (f"({before})" if before else "") + (hit or "-") + (f"({after})" if after else "")
                result = result.replace("\r", " ").replace("\n", " ")
        self.ua_cache.put(ua, result)
        return result

    def _ua_candidate(self, ua: str) -> bool:
        """False only when the prefilter proves no UA pattern can match (the full alternation
        costs hundreds of µs on a long UA; an attacker could otherwise send a new one per packet)."""
        patterns = self.patterns
        text = canon(ua)
        if text is None or patterns.ua_gate is None:
            return True
        if text in patterns.ua_exact or patterns.ua_gate.search(text) is not None:
            return True
        if not patterns.ua_tokens.isdisjoint(_WORDS.findall(text)):
            return True
        return patterns.ua_slow is not None and patterns.ua_slow.search(ua) is not None

    def _source(self, d: Decoded, request: HttpRequest) -> str:
        src = ip_text(d.src)
        if not request.may_have(FORWARD_TOKENS):
            return src
        for name in FORWARD_HEADERS:
            value = request.header(name)
            if value:
                first = value.split(",", 1)[0].strip()
                if _IPV4.fullmatch(first) and ip_packed(first) is not None:
                    return f"{src},{first}"
        return src

    def _listed(self, packed: bytes) -> bool:
        return self.whitelist is not None and self.whitelist.ip(packed)

    # --- responses -----------------------------------------------------------------------------

    def response(self, sec: int, usec: int, d: Decoded, response: HttpResponse) -> None:
        if not self.use_responses:
            return
        payload = bytes(d.buf[d.poff:min(d.pend, d.poff + 2000)]).decode("latin-1")
        patterns = self.patterns

        def alert(trail: str, info: str) -> None:
            self.emit(Event(sec, usec, ip_text(d.src), d.sport, ip_text(d.dst), d.dport, "TCP", TrailType.HTTP,
                            trail, info, REFERENCE))

        if patterns.sinkhole is not None:
            match = patterns.sinkhole.search(payload)
            if match is not None:
                alert(match.group(0).strip()[:100], "sinkhole response (malware)")
                return
        if patterns.seized is not None and "<title" in payload.lower():
            title = _TITLE.search(payload)
            if title is not None and patterns.seized.search(title.group(1)):
                alert(title.group(1).strip()[:200], "seized domain (suspicious)")
                return
        content_type = response.headers.get("content-type")
        if content_type:
            value = content_type.split(";", 1)[0].strip().lower()
            if value in patterns.content_types:
                alert(value, "content type (suspicious)")


def decode_path(path: str) -> str:
    """The URL-decoded form used by the request battery (exposed for tests)."""
    return unquote(path)
