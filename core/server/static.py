"""Static files of the web client, served only from the html/ root.

Where it sits: the HTTP layer's fallback for any path that is not an API endpoint. Every
traversal form is refused: the path is percent-decoded repeatedly (double/overlong encodings),
backslashes, NULs, `..` segments, dot files and the original's refused extensions get 404, and
the final real path must still lie under the root (symlinks out of it are refused too).
HTML files get the original's template tokens substituted (`<!VERSION!>`, `<!LOGO!>`,
`<!ASSETVER!>`, `<!TZOFFSET!>`, `<!STATICS!>`, `<!SEVERITY!>`: the severity pattern in force,
core/events/severity.py, HTML-escaped into a meta tag, and `<!RIPE!>`: 1 when /ripe asks RIPEstat,
else 0, so the client does not ask for ASNs under DISABLE_RIPE_LOOKUPS) and `js/main.js` its `var IP_ALIASES = …;`
line.
"""

from __future__ import annotations

import html
import json
import mimetypes
import os
import re
import time
import urllib.parse

from core.server.messages import Request, Response

REFUSED_EXT = (".py", ".pyc", ".md", ".txt", ".bak", ".conf", ".zip", "~", ".orig", ".swp")
TYPES = {".js": "application/javascript", ".mjs": "application/javascript", ".css": "text/css",
         ".html": "text/html", ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".woff2": "font/woff2", ".woff": "font/woff", ".txt": "text/plain",
         ".map": "application/json", ".webmanifest": "application/manifest+json"}
MAX_STATIC = 32 << 20


class StaticFiles:
    def __init__(self, root: str, version: str, logo: str | None = None, ip_aliases: list[str] | None = None,
                 default_password: bool = False, severity_pattern: str = "", ripe_lookups: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.version = version
        self.logo = logo
        self.ip_aliases = ip_aliases or []
        self.default_password = default_password
        self.severity_pattern = severity_pattern
        self.ripe_lookups = ripe_lookups

    def not_found(self, request: Request) -> Response:
        body = f"<!DOCTYPE html><title>404</title><p>Not found: {html.escape(request.path[:200])}</p>\n"
        return Response(404, body.encode("utf-8"), "text/html; charset=utf-8")

    def resolve(self, raw_path: str) -> str | None:
        """Real file path under the root for a request path, or None when refused/missing."""
        path = raw_path
        for _ in range(4):
            decoded = urllib.parse.unquote(path, errors="strict") if "%" in path else path
            if decoded == path:
                break
            path = decoded
        else:
            return None
        if "\\" in path or "\x00" in path or "%" in path or not path.startswith("/"):
            return None
        segments = [s for s in path.split("/") if s]
        if any(s == ".." or s.startswith(".") for s in segments):
            return None
        rel = "/".join(segments) or "index.html"
        if rel.lower().endswith(REFUSED_EXT) and rel != "robots.txt":
            return None
        candidate = os.path.realpath(os.path.join(self.root, rel))
        if not os.path.isfile(candidate) and os.path.isfile(candidate + ".html"):
            candidate += ".html"
        if os.path.isdir(candidate) and os.path.isfile(os.path.join(candidate, "index.html")):
            candidate = os.path.join(candidate, "index.html")
        if os.path.commonpath([candidate, self.root]) != self.root or not os.path.isfile(candidate):
            return None
        return candidate

    def serve(self, request: Request) -> Response:
        try:
            path = self.resolve(request.raw_path)
        except UnicodeDecodeError:
            path = None
        if path is None:
            return self.not_found(request)
        try:
            stat = os.stat(path)
            if stat.st_size > MAX_STATIC:
                return self.not_found(request)
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return self.not_found(request)
        ext = os.path.splitext(path)[1].lower()
        ctype = TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        headers = [("Last-Modified", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(stat.st_mtime)))]
        if ext == ".html":
            data = self._template(data)
            return Response(200, data, ctype, headers, cache="no-cache")
        if path.endswith(os.path.join("js", "main.js")) and self.ip_aliases:
            data = self._aliases(data)
        since = request.headers.get("if-modified-since")
        if since and since == headers[0][1]:
            return Response(304, b"", ctype, headers, cache="max-age=3600, must-revalidate")
        return Response(200, data, ctype, headers, cache="max-age=3600, must-revalidate")

    def _asset_version(self) -> str:
        newest = 0.0
        for rel in ("js/main.js", "css/main.css"):
            try:
                newest = max(newest, os.stat(os.path.join(self.root, rel)).st_mtime)
            except OSError:
                pass
        return str(int(newest))

    def _template(self, data: bytes) -> bytes:
        offset = -time.timezone if not time.localtime().tm_isdst else -time.altzone
        tokens = {
            b"<!VERSION!>": self.version.encode(),
            b"<!LOGO!>": (self.logo or "").encode("utf-8"),
            b"<!ASSETVER!>": self._asset_version().encode(),
            b"<!TZOFFSET!>": str(offset // 60).encode(),
            b"<!STATICS!>": b"",
            b"<!DEFAULTPW!>": b"1" if self.default_password else b"0",
            b"<!SEVERITY!>": html.escape(self.severity_pattern, quote=True).encode("utf-8"),
            b"<!RIPE!>": b"1" if self.ripe_lookups else b"0",
        }
        for token, value in tokens.items():
            data = data.replace(token, value)
        # the original strips the demo script from index.html
        return re.sub(rb'<script[^>]*src="[^"]*demo\.js"[^>]*>\s*</script>\s*', b"", data)

    def _aliases(self, data: bytes) -> bytes:
        aliases = {}
        for entry in self.ip_aliases:
            address, _, name = entry.partition(":") if entry.count(":") == 1 else entry.rpartition(":")
            if address and name:
                aliases[address.strip()] = name.strip()
        line = (f"var IP_ALIASES = {json.dumps(aliases)};").encode()
        return re.sub(rb"var IP_ALIASES\s*=[^;\n]*;", lambda _m: line, data, count=1)
