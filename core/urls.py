"""URL candidates of an HTTP request: the original's candidate list, their URL markers, and the
bracketed rendering of a URL hit.

Where it sits: detect.py `_url_trails` turns a request path (and a POST body) into the keys it looks
up among the URL trails: `url_candidates` is the original's list, in its order; `candidate_markers`
is the set of URL markers (core/trails/index.py `url_marker`) those candidates can have, computed
without building the list (core/accel/_url.c computes the same set in C); `bracket_url` renders a
hit as `(unmatched)matched(unmatched)`. Pure functions on text, tested directly.
"""

from __future__ import annotations

from collections.abc import Callable


def url_candidates(path: str, body: str = "") -> list[str]:
    """The original's URL candidate list, in order, without duplicates."""
    first = path.rstrip("/") if path != "/" else path
    out = [first] if first else []
    base, _, query = path.partition("?")
    if base and base not in out:
        out.append(base)
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
