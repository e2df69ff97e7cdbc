"""URL trails of an HTTP request: the original's candidate list, their URL markers, the lookups, and the
bracketed rendering of a URL hit.

Where it sits: the detector (core/detect/detector.py) hands each HTTP request to its `UrlChecker`,
which turns the request path (and a POST body) into the keys it looks up among the URL trails:
`url_candidates` is the original's list, in its order; `candidate_markers` is the set of URL markers
(core/trails/index.py `url_marker`) those candidates can have, computed without building the list
(core/accel/_url.c computes the same set in C); `bracket_url` renders a hit as
`(unmatched)matched(unmatched)`. The helpers are pure functions on text, tested directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from core.events.event import TrailType
from core.protocols.http import HttpRequest
from core.trails.store import Trail, TrailStore


class UrlHit(NamedTuple):
    """A URL trail found in a request: the event's trail type and rendered trail, and the row."""

    kind: str  # TrailType.URL or TrailType.HTTP
    trail: str
    hit: Trail


class UrlChecker:
    """Looks one request up among the URL trails of a store (`store` is swapped on reload)."""

    def __init__(self, store: TrailStore) -> None:
        self.store = store

    def check(self, request: HttpRequest, host: str, word: bool = False) -> UrlHit | None:
        """The first URL trail the request hits, in the original's candidate order, or None. A
        target with a space (`GET /uri afterspace HTTP/1.1`) is read both ways servers read it:
        the whole target first, then (`word`) its first word; a hit is rendered on the whole."""
        path = request.path
        if not path.startswith("/"):
            return None
        while "//" in path:
            path = path.replace("//", "/")
        shown = path
        if word:
            path = path.split(" ", 1)[0]
        host = host.lower()
        # URL markers (core/trails/index.py): a candidate is looked up bare only when a /path trail
        # shares its marker, and host-prefixed only when the host has URL trails.
        store = self.store
        host_listed = store.url_host(host)
        low_path = path.lower()
        if not host_listed and not store.path_markers_maybe(low_path):
            # the usual request: no marker of any candidate is in the bloom
            return self.check(request, host, True) if " " in path and not word else None
        body = request.body.decode("latin-1", "replace") if request.method == "POST" and request.body else ""
        get = store.get
        post_form = f"{path}?{body}".lower() if body else None
        has_marker = store.has_marker
        url_marker = store.url_marker
        low_body = body.lower()
        seen: dict[str, bool] = {}  # most candidates of one request share their marker
        if not host_listed:
            # No candidate can hit unless one of their markers is listed.
            for marker in candidate_markers(low_path, low_body, url_marker):
                seen[marker] = has_marker(marker)
                if seen[marker]:
                    break
            else:
                return self.check(request, host, True) if " " in path and not word else None
        for candidate in url_candidates(low_path, low_body):
            key = candidate
            marker = url_marker(candidate)
            known = seen.get(marker)
            if known is None:
                known = seen[marker] = has_marker(marker)
            hit = get(key) if known else None
            if hit is None and host_listed:
                key = host + candidate
                hit = get(key)
            if hit is None:
                continue
            if candidate == post_form:
                return UrlHit(TrailType.HTTP, f"{host}({path} ({request.method} {body}))", hit)
            return UrlHit(TrailType.URL, bracket_url(host + shown, key), hit)
        hit = get(host + "/") if host_listed else None
        if hit is not None:
            return UrlHit(TrailType.URL, bracket_url(host + shown, host + "/"), hit)
        return self.check(request, host, True) if " " in path and not word else None


def url_candidates(path: str, body: str = "") -> list[str]:
    """The original's URL candidate list, in order, without duplicates."""
    first = path.rstrip("/") if path != "/" else path
    out = [first] if first else []
    base, _, query = path.partition("?")
    if base and base not in out:
        out.append(base)
    trimmed = base.rstrip("/")  # `/dir/?q` must reach a `host/dir` trail
    if trimmed and trimmed not in out:
        out.append(trimmed)
    if "=" in path:
        item = path[: path.index("=") + 1]
        if item not in out:
            out.append(item)
    if query:
        stripped = base + "?" + "&".join(part.split("=", 1)[0] + ("=" if "=" in part else "") for part in query.split("&"))
        if stripped not in out:
            out.append(stripped)
        item = stripped[stripped.rfind("/"):]
        if item and item not in out:
            out.append(item)
    elif body:
        item = f"{path}?{body}"
        if item not in out:
            out.append(item)
    if base.count("/") > 1:
        item = base[: base.rfind("/") + 1]
        if item not in out:
            out.append(item)
    last = base[base.rfind("/"):]
    if last != "/" and last and last not in out:
        out.append(last)
    return out


def candidate_markers(path: str, body: str, url_marker: Callable[[str], str]) -> set[str]:
    """A superset of {url_marker(c) for c in url_candidates(path, body)}, without building the
    candidate list (tests check the superset property on random paths). Markers end at the first
    `?`, so the query-stripped and POST-form candidates share the base path's marker, and the
    last-segment candidates share the marker of the base's last segment."""
    base, _, query = path.partition("?")
    out = {url_marker(base)}
    if path != "/" and path.endswith("/"):
        out.add(url_marker(path.rstrip("/")))
    if base != path and base.endswith("/") and base.rstrip("/"):  # the base without its trailing slashes
        out.add(url_marker(base.rstrip("/")))
    if "=" in path:
        out.add(url_marker(path[: path.index("=") + 1]))
    slash = base.rfind("/")
    if slash > 0:
        out.add(url_marker(base[: slash + 1]))
    last = base[slash:]
    if last not in ("", "/") or query:  # the last component, and the stripped form's last segment
        out.add(url_marker(last))
    if "/" in query:  # parameter names may hold a "/": the stripped form's last segment may start there
        keys = "&".join(part.split("=", 1)[0] + ("=" if "=" in part else "") for part in query.split("&"))
        if "/" in keys:
            stripped = base + "?" + keys
            out.add(url_marker(stripped[stripped.rfind("/"):]))
    return out


def bracket_url(full: str, key: str) -> str:
    """`(unmatched)matched(unmatched)` rendering of a URL hit."""
    low = full.lower()
    index = low.find(key.lower())
    if index < 0:
        return f"({full.split('/', 1)[0]}){key}" if not key.startswith(full.split("/", 1)[0]) else key
    prefix, suffix = full[:index], full[index + len(key):]
    return (f"({prefix})" if prefix else "") + full[index:index + len(key)] + (f"({suffix})" if suffix else "")
