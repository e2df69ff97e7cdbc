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
- `lookup_key(csv_key)`   any row exactly as written in the CSV (IPs in any spelling, regex text)
- `match_regex(name)`     every regex/wildcard trail, full match; -> (trail text, Trail)
- `path_markers_maybe(p)` False only when no URL marker of request path p is in the bloom (the
                          compiled prefilter of core/accel/_url.c; always True without it)
Each hot lookup is a closure over one mapped index, published as an instance attribute, so a
reload (`reopen_if_changed`) swaps it atomically per call and old mappings die with their last user.

Index location: `<csv>.idx` beside the CSV when that folder is writable, else
`~/.maltrail/index/<sha1 of the absolute CSV path>.idx` (or `index_dir` when given).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import itertools
import mmap
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable
from typing import NamedTuple

from core.accel import load as load_accel
from core.trails import index as ix
from core.trails.regex import RegexTrails

IP_SET_CAP = 1 << 17          # exact IP rows kept in an in-memory prefilter set (beyond: table only)
PORT_PREFILTER_CAP = 1 << 18  # addresses with ip:port rows in the in-memory prefilter (<= 2 MiB)
RECENT_CAP = 4096             # answers (hits and bloom false positives) remembered per mapping
MARKER_CAP = 8192             # URL marker answers (hosts, first path segments) remembered per mapping
RECENT_KEY_MAX = 256          # longer keys are not remembered (bounds the cache at ~1.5 MB)
TRAIL_CACHE = 4096            # decoded (info, reference) pairs kept per mapping
BUILD_TIMEOUT = 900.0         # seconds a child build may take before it is given up
# The build child: `python -I` (no user site, no PYTHONPATH, no script folder on sys.path), so it is
# told where the `core` package lives and runs core.trails.build.main(["-c", CSV, IDX]).
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(ix.__file__))))
BUILD_CHILD = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
               "from core.trails.build import main; sys.exit(main(sys.argv))")
_U32 = struct.Struct("<I")
_PORT = struct.Struct(">H")
_MISSING = object()


def _always(_path: str) -> bool:
    return True


class TrailStoreError(Exception):
    """The trail set cannot be used (missing CSV, unwritable index location, failed build)."""


class Trail(NamedTuple):
    info: str
    reference: str


def _dir_writable(path: str) -> bool:
    """A folder we may create files in. root ignores permission bits, so honour them explicitly."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    if not os.access(path, os.W_OK):
        return False
    return not (os.geteuid() == 0 and not mode & 0o222)


def index_candidates(csv_path: str, index_dir: str | None = None) -> list[str]:
    """Where the index may live, in order of preference."""
    absolute = os.path.abspath(csv_path)
    digest = hashlib.sha1(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    if index_dir is not None:
        return [os.path.join(index_dir, f"{os.path.basename(absolute)}-{digest}.idx")]
    home = os.path.join(os.path.expanduser("~"), ".maltrail", "index", f"{digest}.idx")
    if _dir_writable(os.path.dirname(absolute)):
        return [absolute + ".idx", home]
    return [home]


class _Mapped(NamedTuple):
    mm: mmap.mmap
    file: io.FileIO
    header: ix.Header
    index_path: str


def _map_valid(idx_path: str, stamp: ix.CsvStamp | None) -> _Mapped | None:
    """Map idx_path when it exists, is intact (header + body CRC) and (if stamp) matches the CSV."""
    try:
        file = io.FileIO(idx_path, "r")
    except OSError:
        return None
    mapped = None
    try:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        header = ix.read_header(os.pread(fd, ix.HEADER_SIZE, 0), size)
        fresh = header is not None and (stamp is None or stamp == (header.csv_size, header.csv_mtime_ns,
                                                                   header.csv_inode, header.csv_dev))
        if header is not None and fresh and ix.body_crc_of(fd, size) == header.body_crc:
            mapped = _Mapped(mmap.mmap(fd, 0, access=mmap.ACCESS_READ), file, header, idx_path)
    except (OSError, ValueError):
        mapped = None
    if mapped is None:
        file.close()
    return mapped


def _start_child(csv_path: str, idx_path: str) -> subprocess.Popen[bytes]:
    """Start the index build in a child process, so its memory never inflates ours."""
    try:
        return subprocess.Popen([sys.executable, "-I", "-c", BUILD_CHILD, PROJECT_ROOT, csv_path, idx_path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as ex:
        raise TrailStoreError(f"trail index build failed for {csv_path}: {ex}") from ex


def _child_result(proc: subprocess.Popen[bytes], csv_path: str) -> dict[str, object]:
    """Wait for a build child; its figures (JSON line) or TrailStoreError with its last error line."""
    import json

    try:
        out, err = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TrailStoreError(f"trail index build for {csv_path} took longer than {BUILD_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise TrailStoreError(message[-1] if message else f"trail index build failed for {csv_path}")
    try:
        info = json.loads(out.decode("utf-8").strip().splitlines()[-1])
        return dict(info) if isinstance(info, dict) else {}
    except (ValueError, IndexError):
        return {}


class _BackgroundBuild:
    """A build running in a child process (holding the index lock) while lookups go on."""

    def __init__(self, proc: subprocess.Popen[bytes], lock_fd: int, csv_path: str, idx_path: str) -> None:
        self.proc, self.lock_fd, self.csv_path, self.idx_path = proc, lock_fd, csv_path, idx_path

    def done(self) -> bool:
        return self.proc.poll() is not None

    def finish(self) -> tuple[_Mapped, dict[str, object]]:
        """Wait for the child, release the lock, map the result."""
        try:
            build = _child_result(self.proc, self.csv_path)
        finally:
            os.close(self.lock_fd)
        mapped = _map_valid(self.idx_path, None)
        if mapped is None:
            raise TrailStoreError(f"trail index {self.idx_path} is invalid right after its build")
        return mapped, build


def _open_lock(idx_path: str, errors: list[str]) -> int | None:
    """The lock file guarding one index location (None, with the reason in errors, when the
    location cannot be used)."""
    try:
        os.makedirs(os.path.dirname(idx_path), exist_ok=True)
        return os.open(idx_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as ex:
        errors.append(f"{idx_path}: {ex.strerror or ex}")
        return None


def _start_background(csv_path: str, index_dir: str | None,
                      stamp: ix.CsvStamp) -> _Mapped | _BackgroundBuild | None:
    """Without blocking: a fresh index (someone built it), a build we started, or None when
    another process holds the lock (it is building; look again later)."""
    errors: list[str] = []
    for idx_path in index_candidates(csv_path, index_dir):
        lock_fd = _open_lock(idx_path, errors)
        if lock_fd is None:
            continue
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            return None
        try:
            mapped = _map_valid(idx_path, stamp)
            if mapped is not None:
                os.close(lock_fd)
                return mapped
            _remove_stale_temps(idx_path)
            return _BackgroundBuild(_start_child(csv_path, idx_path), lock_fd, csv_path, idx_path)
        except BaseException:
            os.close(lock_fd)
            raise
    raise TrailStoreError("no writable location for the trail index: " + "; ".join(errors))


def _remove_stale_temps(idx_path: str) -> None:
    """Temp files of builds that died (we hold the lock, so no live build owns one)."""
    folder, prefix = os.path.dirname(idx_path), os.path.basename(idx_path) + ".tmp."
    for name in os.listdir(folder):
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _ensure(csv_path: str, index_dir: str | None) -> tuple[_Mapped, dict[str, object] | None]:
    """A valid, fresh mapping for csv_path; builds (once, under a lock) when needed."""
    try:
        stamp = ix.csv_stamp(csv_path)
    except OSError as ex:
        raise TrailStoreError(f"trail file {csv_path} cannot be read: {ex.strerror or ex}") from None
    candidates = index_candidates(csv_path, index_dir)
    for idx_path in candidates:
        mapped = _map_valid(idx_path, stamp)
        if mapped is not None:
            return mapped, None
    errors: list[str] = []
    for idx_path in candidates:
        lock_fd = _open_lock(idx_path, errors)
        if lock_fd is None:
            continue
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            mapped = _map_valid(idx_path, ix.csv_stamp(csv_path))  # another process may have built it
            if mapped is not None:
                return mapped, None
            _remove_stale_temps(idx_path)
            build = _child_result(_start_child(csv_path, idx_path), csv_path)
            mapped = _map_valid(idx_path, None)
            if mapped is None:
                raise TrailStoreError(f"trail index {idx_path} is invalid right after its build")
            return mapped, build
        except OSError as ex:
            raise TrailStoreError(f"trail file {csv_path}: {ex.strerror or ex}") from None
        finally:
            os.close(lock_fd)
    raise TrailStoreError("no writable location for the trail index: " + "; ".join(errors))


# --- the store ------------------------------------------------------------------------------------

class _View:
    """One mapped index with its lookup closures."""

    def __init__(self, mapped: _Mapped) -> None:
        self.mm, self.file, self.header, self.index_path = mapped
        mm, header = self.mm, self.header
        sections = header.sections
        self.regex: RegexTrails | None = None

        pairs_off = sections[ix.PAIRS][0]
        pair_count = int.from_bytes(mm[pairs_off:pairs_off + 4], "little")

        @functools.lru_cache(maxsize=TRAIL_CACHE)
        def trail_of(pid: int) -> Trail:
            if not 0 <= pid < pair_count:
                raise ValueError(f"corrupt trail index: pair {pid}")
            (pos,) = _U32.unpack_from(mm, pairs_off + 4 + 4 * pid)
            pos += pairs_off
            n = int.from_bytes(mm[pos:pos + 2], "little")
            info = mm[pos + 2:pos + 2 + n].decode("utf-8", "replace")
            pos += 2 + n
            m = int.from_bytes(mm[pos:pos + 2], "little")
            return Trail(info, mm[pos + 2:pos + 2 + m].decode("utf-8", "replace"))

        self.trail_of = trail_of
        (off4, len4), (off6, len6) = sections[ix.IP4], sections[ix.IP6]
        self.ipset: frozenset[bytes] | None = None
        if len4 // 4 + len6 // 16 <= IP_SET_CAP:
            blob4, blob6 = mm[off4:off4 + len4], mm[off6:off6 + len6]
            self.ipset = frozenset(itertools.chain((blob4[i:i + 4] for i in range(0, len4, 4)),
                                                   (blob6[i:i + 16] for i in range(0, len6, 16))))
        self.port_marks = self._port_prefilter()
        self.counters = {"recent_cache_resets": 0, "marker_cache_resets": 0}
        self.markers: dict[str, bool] = {}  # URL marker -> present (bounded by MARKER_CAP)
        self._make_lookups()

    def _port_prefilter(self) -> bytearray:
        """One byte per slot, indexed by hash(packed IP) & mask, set for every address that has an
        ip:port row (8+ slots per address: about 7% false hits). hash() of a bytes object is
        cached in it, so detect's following ip() call on the same address pays nothing."""
        (off4, len4), (off6, len6) = self.header.sections[ix.PORT_IP4], self.header.sections[ix.PORT_IP6]
        count = len4 // 4 + len6 // 16
        if count > PORT_PREFILTER_CAP:
            return bytearray(b"\x01")  # no prefilter: every address passes to the bloom and table
        size = 1 << 12
        while size < 8 * count:
            size <<= 1
        marks, mask = bytearray(size), size - 1
        mm = self.mm
        for off, length, width in ((off4, len4, 4), (off6, len6, 16)):
            blob = mm[off:off + length]
            for x in map(hash, (blob[i:i + width] for i in range(0, length, width))):  # no big temporaries
                marks[x & mask] = 1
        return marks

    def _make_lookups(self) -> None:
        mm, header = self.mm, self.header
        table_off = header.sections[ix.TABLE][0]
        records_off = header.sections[ix.RECORDS][0]
        mask = (1 << header.table_bits) - 1
        unpack_record = ix.RECORD_HEAD.unpack_from
        crc32 = zlib.crc32
        trail_of = self.trail_of
        ipset = self.ipset
        bloom_off, bloom_shift = header.sections[ix.BLOOM][0], ix.bloom_shift(header.table_bits)
        mix = ix.BLOOM_MIX
        fd, pread, iter_slots = self.file.fileno(), os.pread, ix.SLOT.iter_unpack
        table_end = table_off + header.sections[ix.TABLE][1]
        pack_port = _PORT.pack
        port_marks, port_mask = self.port_marks, len(self.port_marks) - 1
        ipport_seed = crc32(ix.IPPORT_TAG)

        def read_table(kb: bytes, h: int) -> Trail | None:
            # The table and records are read with pread, not through the mapping: page-cache reads
            # do not count in RSS, and a mapped 32 MiB table would end up fully resident.
            pos = table_off + ((h & mask) << 3)
            while pos < table_end:
                chunk = pread(fd, 64, pos)
                for fp, off in iter_slots(chunk[:len(chunk) & ~7]):
                    if off == 0:
                        return None
                    if fp == h:
                        record = pread(fd, 6 + len(kb), records_off + off)
                        if record[6:] == kb and unpack_record(record)[1] == len(kb):
                            return trail_of(unpack_record(record)[0])
                pos += 64
            return None

        recent: dict[bytes, Trail | None] = {}
        counters = self.counters

        def probe(kb: bytes, h: int) -> Trail | None:
            """Table lookup behind a small answer cache (repeated hits and bloom false positives)."""
            found = recent.get(kb, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
            found = read_table(kb, h)
            if len(kb) <= RECENT_KEY_MAX:
                if len(recent) >= RECENT_CAP:
                    recent.clear()
                    counters["recent_cache_resets"] += 1
                recent[kb] = found
            return found

        def lookup(kb: bytes, h: int) -> Trail | None:
            """Both bloom bits of the key's crc32 h, then the table (a clear bit is a miss)."""
            bit = h >> bloom_shift
            if not mm[bloom_off + (bit >> 3)] >> (bit & 7) & 1:
                return None
            bit = (h * mix & 0xFFFFFFFF) >> bloom_shift
            if not mm[bloom_off + (bit >> 3)] >> (bit & 7) & 1:
                return None
            return probe(kb, h)

        def get(text: str) -> Trail | None:
            try:
                kb = text.encode()
            except (UnicodeEncodeError, AttributeError):
                return None
            return lookup(kb, crc32(kb))

        def ip_in_set(packed: bytes) -> Trail | None:
            try:
                if packed not in ipset:  # type: ignore[operator]
                    return None
            except TypeError:
                return None
            kb = b"\xff" + packed
            return probe(kb, crc32(kb))

        def ip_in_bloom(packed: bytes) -> Trail | None:
            """More exact IP rows than IP_SET_CAP: no in-memory set, the bloom answers misses."""
            try:
                kb = b"\xff" + packed
            except TypeError:
                return None
            return lookup(kb, crc32(kb))

        ip = ip_in_set if ipset is not None else ip_in_bloom

        def ip_port(packed: bytes, port: int) -> Trail | None:
            try:
                if not port_marks[hash(packed) & port_mask]:
                    return None
                h = crc32(pack_port(port), crc32(packed, ipport_seed))
            except (struct.error, TypeError):
                return None
            return lookup(b"\xfe" + packed + pack_port(port), h)

        self.probe, self.get, self.ip, self.ip_port = probe, get, ip, ip_port
        url_accel = load_accel("_url")
        # False only when no bare-path candidate of a request path can hit (core/accel/_url.c);
        # without the compiled prefilter every path is a "maybe" and detect.py checks each marker.
        self.path_markers_maybe: Callable[[str], bool] = (
            functools.partial(url_accel.maybe, mm, bloom_off, bloom_shift, mix) if url_accel is not None
            else _always)

    def regex_trails(self) -> RegexTrails:
        if self.regex is None:
            off, length = self.header.sections[ix.REGEX]
            mm = self.mm
            count = int.from_bytes(mm[off:off + 4], "little")
            pos, entries = off + 4, []
            for _ in range(count):
                pid, n = ix.RECORD_HEAD.unpack_from(mm, pos)
                entries.append((mm[pos + 6:pos + 6 + n].decode("utf-8", "replace"), pid))
                pos += 6 + n
            self.regex = RegexTrails(entries)
        return self.regex


class TrailStore:
    """Read-only trail lookups over one index file; see the module docstring."""

    get: Callable[[str], Trail | None]
    ip: Callable[[bytes], Trail | None]
    ip_port: Callable[[bytes, int], Trail | None]
    path_markers_maybe: Callable[[str], bool]

    def __init__(self, csv_path: str, index_dir: str | None, mapped: _Mapped, build: dict[str, object] | None) -> None:
        self.path = csv_path
        self.index_dir = index_dir
        self.generation = 0
        self.build_info = build
        self.did_build = build is not None
        self._pending: _BackgroundBuild | None = None
        self._install(_View(mapped))

    def _install(self, view: _View) -> None:
        self._view = view
        self.get, self.ip, self.ip_port = view.get, view.ip, view.ip_port
        self.path_markers_maybe = view.path_markers_maybe
        self.generation += 1

    @classmethod
    def open(cls, csv_path: str, index_dir: str | None = None) -> TrailStore:
        """Map the index of csv_path, building it first when missing, stale or damaged."""
        if not os.path.isfile(csv_path):
            raise TrailStoreError(f"trail file {csv_path} does not exist (run the trail update first)")
        mapped, build = _ensure(csv_path, index_dir)
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

    def ip_prefilter(self) -> tuple[frozenset[bytes] | None, bytearray]:
        """The current mapping's exact-IP set (None beyond IP_SET_CAP) and ip:port marks: the
        first tests of `ip` and `ip_port`, which core/accel/_decode.c applies to whole batches."""
        view = self._view
        return view.ipset, view.port_marks

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
            self._install(_View(mapped))
            return True
        try:
            stamp = ix.csv_stamp(self.path)
        except OSError:
            return False
        h = self._view.header
        if (h.csv_size, h.csv_mtime_ns, h.csv_inode, h.csv_dev) == stamp:
            return False
        if wait:
            mapped, built = _ensure(self.path, self.index_dir)
            self.build_info, self.did_build = built, built is not None
            self._install(_View(mapped))
            return True
        for idx_path in index_candidates(self.path, self.index_dir):
            fresh = _map_valid(idx_path, stamp)
            if fresh is not None:
                self.build_info, self.did_build = None, False
                self._install(_View(fresh))
                return True
        started = _start_background(self.path, self.index_dir, stamp)
        if isinstance(started, _BackgroundBuild):
            self._pending = started
        elif started is not None:
            self.build_info, self.did_build = None, False
            self._install(_View(started))
            return True
        return False

    def close(self) -> None:
        """Unmap and close the index; lookups after close() raise ValueError or OSError."""
        self._view.trail_of.cache_clear()
        self._view.mm.close()
        self._view.file.close()
