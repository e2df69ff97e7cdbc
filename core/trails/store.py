"""TrailStore: read-only lookups over the mmap'd trail index (built from trails.csv by build.py).

Where it sits: sensor.py / server.py open one store per process; detect.py, domains.py and the
HTTP /check endpoint call its lookups. The 1.6M keys stay in the index file, never on the Python
heap. A miss is answered by a prefilter: the mmap'd 4 MiB BLOOM section (text keys, ip:port;
two bits per key, ~1% false positives), an in-memory set of the exact IP trails and a hash()
bitmap of the addresses that have ip:port rows (a few MB together). Only after a prefilter says "maybe" is the hash table read, with
pread (page cache shared by every worker, not counted in RSS), behind a small answer cache.
So the sensor's RSS stays at about its baseline plus 4 MiB however much traffic it looks up.

Lookups (all return `Trail(info, reference)` or None and never raise on odd input):
- `ip(packed)`            4/16-byte packed address (exact IP rows)
- `ip_port(packed, port)` `1.2.3.4:80` / `[v6]:443` rows
- `get(text)`             exact lower-case key: domain, `host/path`, `/path`, `ip/`, SHA-1 hex...
- `user_agent(ua)`        the `ua:<User-Agent>` row equal to a request's User-Agent (stripped,
                          case-insensitive), answers remembered per mapping (UAs repeat all day)
- `lookup_key(csv_key)`   any row exactly as written in the CSV (IPs in any spelling, regex text)
- `match_regex(name)`     every regex/wildcard trail, full match; -> (trail text, Trail)
- `path_markers_maybe(p)` False only when no URL marker of request path p is in the bloom (the
                          compiled prefilter of core/accel/_url.c; always True without it)
- `domain_suffixes(name)` int, bit k set when the name without its first k labels passes the
                          bloom (-1: every bit), so the parent-domain walk `get`s only those
Each hot lookup is a closure over one mapped index, published as an instance attribute, so a
reload (`reopen_if_changed`) swaps it atomically per call and old mappings die with their last user.

The index's lifecycle (location, mapping, child build, lock) is core/trails/lifecycle.py; the lookup
closures over one mapping are core/trails/view.py.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable

from core.trails import index as ix
from core.trails.lifecycle import (
    BackgroundBuild,
    Mapped,
    TrailStoreError,
    ensure_index,
    index_candidates,
    map_valid,
    start_background,
)
from core.trails.literals import Gate
from core.trails.view import MARKER_CAP, Trail, View

__all__ = ["Trail", "TrailStore", "TrailStoreError", "index_candidates"]


class TrailStore:
    """Read-only trail lookups over one index file; see the module docstring."""

    get: Callable[[str], Trail | None]
    ip: Callable[[bytes], Trail | None]
    ip_port: Callable[[bytes, int], Trail | None]
    path_markers_maybe: Callable[[str], bool]
    domain_suffixes: Callable[[str], int]
    user_agent: Callable[[str], Trail | None]

    def __init__(self, csv_path: str, index_dir: str | None, mapped: Mapped, build: dict[str, object] | None) -> None:
        self.path = csv_path
        self.index_dir = index_dir
        self.generation = 0
        self.build_info = build
        self.did_build = build is not None
        self._pending: BackgroundBuild | None = None
        self._install(View(mapped))

    def _install(self, view: View) -> None:
        self._view = view
        self.get, self.ip, self.ip_port = view.get, view.ip, view.ip_port
        self.path_markers_maybe, self.domain_suffixes = view.path_markers_maybe, view.domain_suffixes
        self.user_agent = view.user_agent
        self.generation += 1

    @classmethod
    def open(cls, csv_path: str, index_dir: str | None = None) -> TrailStore:
        """Map the index of csv_path, building it first when missing, stale or damaged."""
        if not os.path.isfile(csv_path):
            raise TrailStoreError(f"trail file {csv_path} does not exist (run the trail update first)")
        mapped, build = ensure_index(csv_path, index_dir)
        return cls(csv_path, index_dir, mapped, build)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]], index_dir: str | None = None) -> TrailStore:
        """Test helper: write rows to `<index_dir>/trails.csv` (a new temp dir when None) and open it."""
        import csv
        import tempfile

        folder = index_dir if index_dir is not None else tempfile.mkdtemp(prefix="trails-")
        path = os.path.join(folder, "trails.csv")
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
        return cls.open(path)

    # --- properties -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._view.header.keys

    @property
    def skipped(self) -> int:
        return self._view.header.skipped

    @property
    def built_at(self) -> float:
        return self._view.header.built_at

    @property
    def index_path(self) -> str:
        return self._view.index_path

    @property
    def counters(self) -> dict[str, int]:
        """Bounded-structure counters of the current mapping (cache resets)."""
        return dict(self._view.counters)

    def ip_prefilter(self) -> tuple[bytearray | None, bytearray]:
        """The current mapping's exact-IP marks (None beyond IP_PREFILTER_CAP) and ip:port marks:
        the first tests of `ip` and `ip_port`, which core/accel/_decode.c applies to whole batches."""
        view = self._view
        return view.ip_marks, view.port_marks

    # --- slower lookups ---------------------------------------------------------------------------
    def lookup_key(self, csv_key: str) -> Trail | None:
        """Any row exactly as written in the CSV (used by /check and the walk test)."""
        view = self._view
        kind, value = ix.classify(csv_key)
        if kind == "regex":
            for text, pid in view.regex_trails().entries:
                if text == value:
                    return view.trail_of(pid)
            return None
        kb = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        return view.probe(kb, zlib.crc32(kb))

    def url_host(self, host: str) -> bool:
        """Whether any `host/...` URL trail exists for this (lower-case) host."""
        return self.has_marker(ix.HOST_MARK + host)

    url_marker = staticmethod(ix.url_marker)

    def has_marker(self, marker: str) -> bool:
        """Whether a URL marker (`url_marker(candidate)`) is in the index: some URL trail shares
        that host or first path segment. Answers are remembered per mapping (hosts and first path
        segments repeat all day); the memo is cleared when it reaches MARKER_CAP entries."""
        view = self._view
        markers = view.markers
        found = markers.get(marker)
        if found is None:
            found = self.get(marker) is not None
            if len(markers) >= MARKER_CAP:
                markers.clear()
                view.counters["marker_cache_resets"] += 1
            markers[marker] = found
        return found

    def regex_may_match(self, name: str) -> bool:
        """False only when no regex/wildcard trail can fully match `name` or any suffix of it that
        starts at a label boundary (domains.py then skips its per-suffix match_regex calls)."""
        return self._view.regex_trails().may_match_suffix(name)

    def memos(self) -> tuple[dict[str, bool], dict[str, Trail | None]]:
        """The mapping's URL-marker memo (`has_marker`) and User-Agent memo (`user_agent`), which
        the compiled request path reads (core/accel/_http.c request_seen)."""
        return self._view.markers, self._view.agents

    def regex_proofs(self) -> tuple[dict[str, Gate | bool], Gate | bool]:
        """RegexTrails.proofs of this trail set (compiles the regex trails on first use)."""
        return self._view.regex_trails().proofs()

    def match_regex(self, name: str) -> tuple[str, Trail] | None:
        """The first (CSV order) regex/wildcard trail that fully matches `name`."""
        view = self._view
        found = view.regex_trails().match(name)
        if found is None:
            return None
        return found[0], view.trail_of(found[1])

    def regex_count(self) -> int:
        return len(self._view.regex_trails().entries)

    # --- reload -----------------------------------------------------------------------------------
    def reopen_if_changed(self, wait: bool = True) -> bool:
        """Cheap stat of the CSV; when it changed, map the new index (building it if needed) and
        swap. True when a new index is now in use.

        wait=True blocks while the index is built (seconds for the full set). wait=False never
        blocks (use it from a packet loop): it starts the build in a child process, or notices
        that another process is building, and returns False. Lookups keep using the old index,
        and a later call swaps in the new one. A CSV that vanished keeps the current mapping. A
        failed build raises TrailStoreError, and the current mapping stays in use."""
        if self._pending is not None:
            if not wait and not self._pending.done():
                return False
            pending, self._pending = self._pending, None
            mapped, build = pending.finish()
            self.build_info, self.did_build = build, True
            self._install(View(mapped))
            return True
        try:
            stamp = ix.csv_stamp(self.path)
        except OSError:
            return False
        h = self._view.header
        if (h.csv_size, h.csv_mtime_ns, h.csv_inode, h.csv_dev) == stamp:
            return False
        if wait:
            mapped, built = ensure_index(self.path, self.index_dir)
            self.build_info, self.did_build = built, built is not None
            self._install(View(mapped))
            return True
        for idx_path in index_candidates(self.path, self.index_dir):
            fresh = map_valid(idx_path, stamp)
            if fresh is not None:
                self.build_info, self.did_build = None, False
                self._install(View(fresh))
                return True
        started = start_background(self.path, self.index_dir, stamp)
        if isinstance(started, BackgroundBuild):
            self._pending = started
        elif started is not None:
            self.build_info, self.did_build = None, False
            self._install(View(started))
            return True
        return False

    def close(self) -> None:
        """Unmap and close the index; lookups after close() raise ValueError or OSError."""
        self._view.trail_of.cache_clear()
        self._view.mm.close()
        self._view.file.close()

