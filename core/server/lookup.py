"""Trail lookups for the client: /check, /trails and /reference.

Where it sits: called by api.py's route table. /check asks the trail store (core/trails/store.py,
opened lazily from TRAILS_FILE and reopened when the file changes); /trails streams the trails CSV
(what UPDATE_SERVER sensors pull) without `(custom)` rows for callers who may not see them;
/reference finds the `# Reference:` header above a trail in trails/static/ (2 s budget, cache), or
an imported trail's source object (core/server/intel.py).
Custom trails are visible to logged-in sessions that are not masked (UID < 1000 or
ENABLE_MASK_CUSTOM off), and to everyone when no USERS are configured.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.config import ROOT_DIR, Config
from core.server.auth import Session
from core.server.messages import HttpError, Request, Response, json_response

if TYPE_CHECKING:  # imported when first used: the server starts without the detect stage
    from core.trails.store import Trail, TrailStore

REFERENCE_BUDGET = 2.0
REFERENCE_CACHE = 8192
CUSTOM = "(custom)"


def sees_custom(session: Session | None) -> bool:
    return session is not None and not session.mask_custom


class Lookup:
    def __init__(self, config: Config, static_dir: str | None = None) -> None:
        self.config = config
        self.trails_file: str = config.TRAILS_FILE
        self.static_dir = static_dir or os.path.join(ROOT_DIR, "trails", "static")
        self.lock = threading.Lock()
        self.store: TrailStore | None = None
        self.store_mtime = -1.0
        self.references: OrderedDict[str, dict[str, str | None]] = OrderedDict()

    # -- /check ----------------------------------------------------------------------------------

    def _store(self) -> TrailStore | None:
        try:
            mtime = os.stat(self.trails_file).st_mtime
        except OSError:
            return None
        with self.lock:
            if self.store is None or mtime != self.store_mtime:
                from core.trails.store import TrailStore  # the detect stage's store

                self.store = TrailStore.open(self.trails_file)
                self.store_mtime = mtime
            return self.store

    def check(self, request: Request, session: Session | None) -> Response:
        query = (request.params.get("q") or request.params.get("query") or "").strip()
        if not query or len(query) > 256:
            raise HttpError(400, "q must be 1 to 256 characters")
        try:
            store = self._store()
        except Exception as ex:  # noqa: BLE001 - isolation point: the store may be mid-rebuild
            return json_response({"query": query, "found": False, "error": f"trail store unavailable: {ex}"}, 503)
        if store is None:
            return json_response({"query": query, "found": False, "error": "no trails file yet"}, 503)
        custom_ok = sees_custom(session)
        for candidate, hit in self._candidates(store, query.lower()):
            if hit is not None and (custom_ok or hit.reference != CUSTOM):
                return json_response({"query": query, "found": True, "trail": candidate,
                                      "info": hit.info, "reference": hit.reference})
        return json_response({"query": query, "found": False, "trail": None, "info": None, "reference": None})

    @staticmethod
    def _candidates(store: TrailStore, query: str) -> Iterator[tuple[str, Trail | None]]:
        text = query
        for scheme in ("http://", "https://"):
            if text.startswith(scheme):
                text = text[len(scheme):]
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
            yield str(addr), store.ip(addr.packed)
            return
        except ValueError:
            pass
        host, slash, path = text.partition("/")
        host = host.rsplit("@", 1)[-1]
        if ":" in host and host.count(":") == 1:
            host = host.split(":", 1)[0]
        if slash:
            yield f"{host}/{path}", store.get(f"{host}/{path}")
            yield "/" + path, store.get("/" + path)
        yield host, store.get(host)
        labels = host.split(".")
        for i in range(1, len(labels) - 1):
            parent = ".".join(labels[i:])
            yield parent, store.get(parent)
        if text != host and not slash:
            yield text, store.lookup_key(text)

    # -- /trails ---------------------------------------------------------------------------------

    def trails(self, request: Request, session: Session | None) -> Response:
        try:
            size = os.stat(self.trails_file).st_size
        except OSError:
            return Response(200, b"")
        custom_ok = sees_custom(session)
        path = self.trails_file

        def rows() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                remaining = size
                tail = b""
                while remaining > 0:
                    chunk = handle.read(min(1 << 20, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if custom_ok:
                        yield chunk
                        continue
                    chunk = tail + chunk
                    cut = chunk.rfind(b"\n")
                    tail, chunk = chunk[cut + 1:], chunk[: cut + 1]
                    if b",(custom)" in chunk:
                        chunk = b"".join(line for line in chunk.splitlines(keepends=True)
                                         if not line.rstrip(b"\r\n").endswith(b",(custom)"))
                    yield chunk
                if tail and not tail.rstrip(b"\r\n").endswith(b",(custom)"):
                    yield tail

        return Response(200, rows(), "text/plain; charset=utf-8", length=size if custom_ok else None)

    # -- /reference ------------------------------------------------------------------------------

    def reference(self, request: Request, session: Session | None) -> Response:
        trail = (request.params.get("trail") or "").strip().lower()
        if not trail or len(trail) > 256:
            raise HttpError(400, "trail must be 1 to 256 characters")
        with self.lock:
            cached = self.references.get(trail)
        if cached is None:
            cached = self._scan(trail)
            if not cached.get("partial"):
                with self.lock:
                    self.references[trail] = cached
                    while len(self.references) > REFERENCE_CACHE:
                        self.references.popitem(last=False)
        return json_response(cached)

    def _scan(self, trail: str) -> dict[str, str | None]:
        deadline = time.monotonic() + REFERENCE_BUDGET
        target = trail.encode("utf-8", "replace")
        for folder, _dirs, files in sorted(os.walk(self.static_dir)):
            for name in sorted(files):
                if not name.endswith(".txt"):
                    continue
                if time.monotonic() > deadline:
                    return {"reference": None, "source": None, "partial": "1"}
                path = os.path.join(folder, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read(64 << 20)
                except OSError:
                    continue
                if target not in data.lower():
                    continue
                reference = None
                for raw in data.splitlines():
                    line = raw.strip()
                    if line.lower().startswith(b"# reference:"):
                        reference = line.split(b":", 1)[1].strip().decode("utf-8", "replace")
                    elif line.lower() == target:
                        source = os.path.relpath(path, self.static_dir)
                        return {"reference": reference, "source": source}
        # an imported trail: its STIX id or MISP event UUID (docs/intel.md)
        from core.server.intel import source_object

        return source_object(self.trails_file, trail) or {"reference": None, "source": None}
