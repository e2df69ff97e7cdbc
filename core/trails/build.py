"""Trail index build: trails.csv → the index file whose format core/trails/index.py describes.

Where it sits: update writes trails.csv; `TrailStore.open` (core/trails/store.py), under an
fcntl lock so concurrent processes build once, runs `build_index` in a short-lived child process
(`main`: the `core.trails.build` module with the arguments CSV IDX) when the index is missing,
stale or damaged. The build writes a temporary file and renames it into place. Workers then map
the file read-only; nothing of the 1.6M keys lives on their Python heap.

Build (two CPUs, CSV >= 8 MiB): a forked helper parses the tail of the file while the builder
parses the head (`_Part`: crc32 + record per key, in file order). Then the table is filled
region by region: a second helper takes the upper half of the slots, and keys whose probe would
cross into the other region are placed after the join (`_Grid`; the table is a shared mapping
the helper fills in place). With one CPU, or for small files, the same steps run in one process.
With core/accel/_build.c built, the common lines are parsed and the keys placed in C; the Python
loops (`_Part.feed_lines`, `_Grid._region_py`) are their specification.

CSV rules: rows `trail,info,reference` (Python csv quoting). Rows without exactly three fields,
with an empty key, fields longer than 65535 bytes, or bytes that are not UTF-8 are skipped and
counted. A quoted field spanning several lines is not supported (its lines are counted as
malformed). Duplicate keys: the last row wins. Keys are classified by `index.classify`; URL-shaped
text keys also get their marker key (`index.url_marker`).
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import sys
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, NamedTuple, cast

from core.accel import load as load_accel
from core.trails.index import (
    BLOOM_MIX,
    HEADER_SIZE,
    IP_TAG,
    IPPORT_TAG,
    MAX_FIELD,
    PROBE_PAD,
    RECORD_HEAD,
    RECORDS_PAD,
    IndexBuildError,
    bloom_shift,
    classify,
    csv_stamp,
    pack_header,
    url_marker,
)

PARALLEL_MIN_BYTES = 8 << 20  # CSVs at least this big are parsed by two processes
PARALLEL_SPLIT = 0.44         # share of the file the parent parses (it also places every key)
_U32 = struct.Struct("<I")

_DOMAIN_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789.-_"
_IPV4_CHARS = b"0123456789."


class _Part:
    """The rows of one byte range of the CSV, parsed and classified but not yet placed: per key
    (in file order) its crc32 and the offset of its record in this part's own `records`."""

    def __init__(self) -> None:
        self.hashes = array("I")
        self.offsets = array("I")
        self.records = bytearray()
        self.pair_ids: dict[object, int] = {}
        self.pairs: list[tuple[bytes, bytes]] = []
        self.regex: dict[str, int] = {}
        self.ip4: set[bytes] = set()
        self.ip6: set[bytes] = set()
        self.port_ips: set[bytes] = set()
        self.url_marks: set[bytes] = set()
        self.skipped = 0

    def state(self) -> tuple:
        return (self.hashes, self.offsets, self.records, self.pairs, self.regex, self.ip4, self.ip6,
                self.port_ips, self.url_marks, self.skipped)

    @classmethod
    def from_state(cls, state: tuple) -> _Part:
        part = cls()
        (part.hashes, part.offsets, part.records, part.pairs, part.regex, part.ip4, part.ip6,
         part.port_ips, part.url_marks, part.skipped) = state
        return part

    def pair(self, info: bytes, ref: bytes, intern_key: object) -> int:
        pid = self.pair_ids.get(intern_key)
        if pid is None:
            try:
                info.decode("utf-8")
                ref.decode("utf-8")
            except UnicodeDecodeError:
                pid = -1
            else:
                if len(info) > MAX_FIELD or len(ref) > MAX_FIELD:
                    pid = -1
                else:
                    pid = len(self.pairs)
                    self.pairs.append((info, ref))
            self.pair_ids[intern_key] = pid
        return pid

    def add(self, kb: bytes, pid: int) -> None:
        self.hashes.append(zlib.crc32(kb))
        self.offsets.append(len(self.records))
        self.records += RECORD_HEAD.pack(pid, len(kb)) + kb

    def add_slow(self, key: str, pid: int) -> None:
        """One key through `classify` (IPs, v6, regex, odd spellings, non-ASCII)."""
        if not key.strip():
            self.skipped += 1
            return
        kind, value = classify(key)
        if kind == "regex":
            assert isinstance(value, str)
            self.regex.pop(value, None)  # keep the CSV order of the last occurrence
            self.regex[value] = pid
            return
        kb = value if isinstance(value, bytes) else value.encode("utf-8")
        if len(kb) > MAX_FIELD:
            self.skipped += 1
            return
        if kind == "bin" and kb[0] == IP_TAG[0]:
            (self.ip4 if len(kb) == 5 else self.ip6).add(kb[1:])
        elif kind == "bin" and kb[0] == IPPORT_TAG[0]:
            self.port_ips.add(kb[1:-2])
        elif kind == "bin":
            pass  # a User-Agent (UA_TAG): a table key only
        elif b"/" in kb:
            self.url_marks.add(url_marker(kb.decode("utf-8")).encode("utf-8"))
        self.add(kb, pid)

    def add_non_ascii(self, key: bytes, pid: int) -> None:
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            self.skipped += 1
            return
        self.add_slow(text, pid)

    def feed(self, lines: Iterable[bytes]) -> None:
        """Every line of the range, then the URL markers as keys."""
        self.feed_lines(lines)
        self.add_marks()

    def feed_blocks(self, blocks: Iterable[list[bytes]], fast: Callable[..., int]) -> None:
        """`feed` with core/accel/_build.c `feed` taking the common lines of each block (plain
        ASCII domains, URLs, IPv4:port with a known info/reference pair); every other line goes
        through `feed_lines`, its specification, in file order. C gives back the record offsets of
        URL keys; their markers are made here."""
        url_offsets = array("I")
        records = self.records
        args = (self.pair_ids, records, self.hashes, self.offsets, self.port_ips, url_offsets)
        for block in blocks:
            i, n = 0, len(block)
            while i < n:
                i = fast(block, i, *args)
                if i < n:
                    self.feed_lines(block[i:i + 1])
                    i += 1
        head_at = RECORD_HEAD.unpack_from
        add_mark = self.url_marks.add
        for off in url_offsets:
            key = records[off + 6:off + 6 + head_at(records, off)[1]].decode("ascii")
            add_mark(url_marker(key).encode("ascii"))
        self.add_marks()

    def feed_lines(self, lines: Iterable[bytes]) -> None:
        """The lines, in order. The hot path (plain ASCII domains, URLs, IPv4:port) is inlined;
        anything unusual goes through `classify` (add_slow) or the csv module (_quoted)."""
        add_slow, pair, pair_ids = self.add_slow, self.pair, self.pair_ids
        hashes, offsets, records, port_ips = self.hashes, self.offsets, self.records, self.port_ips
        add_mark = self.url_marks.add
        crc32, pack_head, inet_pton, af_inet = zlib.crc32, RECORD_HEAD.pack, socket.inet_pton, socket.AF_INET
        add_hash, add_offset = hashes.append, offsets.append
        domain_chars, ipv4_chars, ipv4_port_chars = _DOMAIN_CHARS, _IPV4_CHARS, _IPV4_CHARS + b":"
        for line in lines:
            key, _, tail = line.partition(b",")
            if tail.count(b",") != 1 or b'"' in line:
                if line.strip():
                    self._quoted(line.rstrip(b"\r"))
                continue
            pid = pair_ids.get(tail)
            if pid is None:
                info, _, ref = tail.partition(b",")
                pid = pair(info, ref.rstrip(b"\r"), tail)
            if pid < 0 or not 0 < len(key) <= MAX_FIELD:
                self.skipped += 1
                continue
            if not key.isascii():
                self.add_non_ascii(key, pid)
                continue
            kb = key.lower()
            if b"/" in kb or not kb.translate(None, domain_chars):
                if kb[-1] < 58 and not kb.translate(None, ipv4_chars) or kb[:3] == b"ua:":
                    add_slow(key.decode("ascii"), pid)  # looks like an IPv4 address, or a User-Agent
                    continue
            elif not kb.translate(None, ipv4_port_chars) and kb.count(b":") == 1:
                host, _, port = kb.partition(b":")
                try:
                    packed = inet_pton(af_inet, host.decode("ascii"))
                    number = int(port) if len(port) <= 5 else 0
                except (OSError, ValueError):
                    number = 0
                if not 0 < number < 65536:
                    add_slow(kb.decode("ascii"), pid)
                    continue
                kb = b"\xfe" + packed + number.to_bytes(2, "big")
                port_ips.add(packed)
            else:
                add_slow(key.decode("ascii"), pid)
                continue
            add_hash(crc32(kb))
            add_offset(len(records))
            records += pack_head(pid, len(kb)) + kb
            if kb[0] != 0xFE and b"/" in kb:
                add_mark(url_marker(kb.decode("ascii")).encode("ascii"))

    def add_marks(self) -> None:
        """The URL markers of this part as keys (pair 0: only their presence matters)."""
        for mark in sorted(self.url_marks):
            self.add(mark, 0)

    def _quoted(self, line: bytes) -> None:
        import csv

        try:
            fields = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            self.skipped += 1
            return
        if len(fields) != 3 or not fields[0].strip():
            self.skipped += 1
            return
        info, ref = fields[1].encode("utf-8"), fields[2].encode("utf-8")
        pid = self.pair(info, ref, (info, ref))
        if pid < 0:
            self.skipped += 1
            return
        self.add_slow(fields[0], pid)


def _blocks(f: BinaryIO, start: int, end: int, block: int = 4 << 20) -> Iterator[list[bytes]]:
    """The lines of bytes [start, end) of f without their \\n, a list per block read."""
    f.seek(start)
    pos, rest = start, b""
    if start == 0:
        rest = f.read(3)
        pos = 3
        if rest == b"\xef\xbb\xbf":
            rest = b""
    while pos < end:
        data = f.read(min(block, end - pos))
        if not data:
            break
        pos += len(data)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield lines
    if rest:
        yield [rest]


def _parse_range(csv_path: str, start: int, end: int) -> _Part:
    part = _Part()
    accel = load_accel("_build")
    with open(csv_path, "rb") as f:
        if accel is None:
            part.feed(line for lines in _blocks(f, start, end) for line in lines)
        else:
            part.feed_blocks(_blocks(f, start, end), accel.feed)
    return part


def _split_point(csv_path: str, size: int, fraction: float) -> int:
    """The offset just after the first newline at or beyond size * fraction (size when none)."""
    with open(csv_path, "rb") as f:
        f.seek(int(size * fraction))
        chunk = f.read(1 << 16)
        while chunk:
            nl = chunk.find(b"\n")
            if nl >= 0:
                return f.tell() - len(chunk) + nl + 1
            chunk = f.read(1 << 16)
    return size


def _fork_call(work: Callable[[], object]) -> Callable[[], object | None]:
    """Run work() in a forked child now; the returned collect() waits for it and gives its
    (pickled) result, or None when the child failed in any way (the caller then does the work)."""
    import pickle

    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        status = 1
        try:
            os.close(read_fd)
            data = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)

    def collect() -> object | None:
        with os.fdopen(read_fd, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(child, 0)
        if status != 0 or not data:
            return None
        try:
            return pickle.loads(data)
        except (pickle.UnpicklingError, ValueError, TypeError, EOFError):
            return None

    return collect


def _parse_parallel(csv_path: str, size: int) -> list[_Part]:
    """Two processes: a forked child parses the tail of the file while we parse the head. The
    child does not place keys, so it takes the larger share. Any trouble with the child: we parse
    its range ourselves."""
    mid = _split_point(csv_path, size, PARALLEL_SPLIT)
    if mid >= size:
        return [_parse_range(csv_path, 0, size)]
    collect = _fork_call(lambda: _parse_range(csv_path, mid, size).state())
    head = _parse_range(csv_path, 0, mid)
    state = collect()
    tail = None
    if isinstance(state, tuple):
        try:
            tail = _Part.from_state(state)
        except (ValueError, TypeError):
            tail = None
    if tail is None:
        tail = _parse_range(csv_path, mid, size)
    return [head, tail]


class _Grid:
    """Places every key (in file order, last row wins) into the linear-probing table and sets its
    two bloom bits. The table is cut in two regions by home slot; with `parallel`, a forked helper
    fills the upper region while we fill the lower one. Keys of the lower region whose probe runs
    past the cut are put aside and placed last, after both halves are joined: probing order is
    all lookups rely on, and every earlier copy of a put-aside key was put aside too."""

    def __init__(self, bits: int, chunks: list[tuple[int, bytearray]],
                 streams: list[tuple[array, array, int]]) -> None:
        self.bits, self.chunks, self.streams = bits, chunks, streams
        self.mask, self.shift = (1 << bits) - 1, bloom_shift(bits)
        self.half = 1 << (bits - 1)
        # An anonymous shared mapping: a forked helper fills the upper region in place (nothing to
        # send back or copy), and pages are only resident once written.
        self.table_map = mmap.mmap(-1, 8 * ((1 << bits) + PROBE_PAD))
        self.table = memoryview(self.table_map).cast("I")
        self.bloom: bytearray | memoryview = bytearray(1 << bits)

    def _record(self, off: int) -> tuple[bytearray, int]:
        """The records chunk holding global record offset `off`, and the offset inside it."""
        for base, chunk in reversed(self.chunks):
            if off >= base:
                return chunk, off - base
        raise IndexBuildError(f"record offset {off} outside the records")

    def _same_key(self, taken: int, off: int) -> bool:
        a, i = self._record(taken)
        b, j = self._record(off)
        klen = RECORD_HEAD.unpack_from(b, j)[1]
        return RECORD_HEAD.unpack_from(a, i)[1] == klen and a[i + 6:i + 6 + klen] == b[j + 6:j + 6 + klen]

    def _set_pid(self, off: int, pid: int) -> None:
        chunk, i = self._record(off)
        _U32.pack_into(chunk, i, pid)

    def _pid(self, off: int) -> int:
        chunk, i = self._record(off)
        return int(_U32.unpack_from(chunk, i)[0])

    def place(self, parallel: bool) -> tuple[memoryview, bytearray | memoryview, int]:
        if not parallel or not hasattr(os, "fork"):
            placed, _, spilled = self._region(False)
            placed_up, fixups, _ = self._region(True)
            return self._join(placed + placed_up, spilled, fixups)

        upper_bloom = mmap.mmap(-1, len(self.bloom))  # the helper's bloom bits, merged after the join

        def upper_half() -> object:
            self.bloom = memoryview(upper_bloom)
            placed_up, fixups, _ = self._region(True)
            return placed_up, fixups

        collect = _fork_call(upper_half)
        placed, _, spilled = self._region(False)
        result = collect()
        try:
            if result is None:
                raise ValueError("helper failed")
            placed_up, fixups = cast(tuple[int, list[tuple[int, int]]], result)
            bloom, step = self.bloom, 1 << 16
            for i in range(0, len(bloom), step):  # OR in the helper's bits, a slice at a time
                merged = int.from_bytes(bloom[i:i + step], "little") | int.from_bytes(upper_bloom[i:i + step], "little")
                bloom[i:i + step] = merged.to_bytes(len(bloom[i:i + step]), "little")
        except (ValueError, TypeError):
            self.table_map[8 * self.half:] = bytes(len(self.table_map) - 8 * self.half)  # drop any partial work
            placed_up, fixups, _ = self._region(True)  # do the helper's share ourselves
        finally:
            upper_bloom.close()
        return self._join(placed + placed_up, spilled, fixups)

    def _region(self, upper: bool) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """Place the keys whose home slot is in one region. Returns (placed, pid fix-ups for
        earlier copies of duplicate keys, put-aside (h, offset) of the lower region). With
        core/accel/_build.c built, its `place` runs this loop (`_region_py` is its specification)."""
        accel = load_accel("_build")
        if accel is None:
            return self._region_py(upper)
        placed, fixups, spilled, overflow = accel.place(self.streams, self.chunks, self.table, self.bloom, self.mask,
                                                        self.shift, self.half, BLOOM_MIX, upper)
        if overflow:
            raise IndexBuildError("hash table probe overflow")
        return placed, fixups, spilled

    def _region_py(self, upper: bool) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        table, bloom = self.table, self.bloom
        mask, shift, half, mix = self.mask, self.shift, self.half, BLOOM_MIX
        stop = len(table) if upper else 2 * half
        placed, fixups, spilled = 0, [], []
        for hashes, offsets, base in self.streams:
            for h, off in zip(hashes, offsets, strict=True):
                home = h & mask
                if (home >= half) is not upper:
                    continue
                off += base
                j = home << 1
                while True:
                    if j >= stop:
                        if upper:
                            raise IndexBuildError("hash table probe overflow")
                        spilled.append((h, off))
                        break
                    taken = table[j + 1]
                    if taken == 0:
                        table[j] = h
                        table[j + 1] = off
                        bit = h >> shift
                        bloom[bit >> 3] |= 1 << (bit & 7)
                        bit = (h * mix & 0xFFFFFFFF) >> shift
                        bloom[bit >> 3] |= 1 << (bit & 7)
                        placed += 1
                        break
                    if table[j] == h and self._same_key(taken, off):
                        pid = self._pid(off)
                        fixups.append((taken, pid))  # a later duplicate: last row wins
                        if not upper:
                            self._set_pid(taken, pid)
                        break
                    j += 2
        return placed, fixups, spilled

    def _join(self, placed: int, spilled: list[tuple[int, int]],
              fixups: list[tuple[int, int]]) -> tuple[memoryview, bytearray | memoryview, int]:
        for taken, pid in fixups:
            self._set_pid(taken, pid)
        if spilled:
            lower, self.streams = self.streams, [(array("I", [h for h, _ in spilled]),
                                                  array("I", [off for _, off in spilled]), 0)]
            self.half = 0  # every put-aside key now counts as "upper": probe to the end of the table
            more, more_fixups, _ = self._region(True)
            for taken, pid in more_fixups:
                self._set_pid(taken, pid)
            placed += more
            self.streams = lower
        return self.table, self.bloom, placed


Section = bytes | bytearray | memoryview | list[bytearray]  # a list: chunks written back to back


class _Placed(NamedTuple):
    keys: int
    skipped: int
    bits: int
    sections: list[Section]


def _remap_py(records: bytearray, offsets: Iterable[int], remap: Sequence[int]) -> None:
    """Rewrite the pair id of the record at each offset through `remap` (a part parsed by the
    forked helper numbered its pairs on its own). The specification of core/accel/_build.c remap."""
    pid_at, pid_set = _U32.unpack_from, _U32.pack_into
    for off in offsets:
        pid_set(records, off, remap[pid_at(records, off)[0]])


def _place(parts: list[_Part], parallel: bool = False) -> _Placed:
    """Merge the parts in file order: pairs, regex and address sets, then every key into one
    linear-probing table (last row wins) with its bloom bit."""
    pairs: list[tuple[bytes, bytes]] = []
    pair_index: dict[tuple[bytes, bytes], int] = {}
    regex: dict[str, int] = {}
    ip4: set[bytes] = set()
    ip6: set[bytes] = set()
    port_ips: set[bytes] = set()
    chunks = [bytearray(RECORDS_PAD)]  # the RECORDS section: each part's records, never concatenated
    bases, skipped, size = [], 0, RECORDS_PAD
    for part in parts:
        remap = []
        for info_ref in part.pairs:
            if info_ref not in pair_index:
                pair_index[info_ref] = len(pairs)
                pairs.append(info_ref)
            remap.append(pair_index[info_ref])
        if remap != list(range(len(remap))):
            accel = load_accel("_build")
            if accel is not None:
                accel.remap(part.records, part.offsets, array("I", remap))  # _remap_py, in C
            else:
                _remap_py(part.records, part.offsets, remap)
        for text, pid in part.regex.items():
            regex.pop(text, None)
            regex[text] = remap[pid]
        ip4 |= part.ip4
        ip6 |= part.ip6
        port_ips |= part.port_ips
        part.ip4, part.ip6, part.port_ips = set(), set(), set()
        skipped += part.skipped
        bases.append(size)
        chunks.append(part.records)
        size += len(part.records)

    count = sum(len(part.hashes) for part in parts)
    bits = 3
    while (1 << bits) < 2 * max(count, 1):
        bits += 1
    grid = _Grid(bits, list(zip([0, *bases], chunks, strict=True)),
                 [(part.hashes, part.offsets, base) for part, base in zip(parts, bases, strict=True)])
    table, bloom, placed = grid.place(parallel)
    for part in parts:
        part.hashes, part.offsets, part.records = array("I"), array("I"), bytearray()

    pairs_blob = bytearray()
    offsets = []
    first = 4 + 4 * len(pairs)
    for info, ref in pairs:
        offsets.append(first + len(pairs_blob))
        pairs_blob += struct.pack("<H", len(info)) + info + struct.pack("<H", len(ref)) + ref
    pairs_section = struct.pack(f"<I{len(offsets)}I", len(offsets), *offsets) + pairs_blob
    regex_section = bytearray(struct.pack("<I", len(regex)))
    for text, pid in regex.items():
        tb = text.encode("utf-8")
        regex_section += RECORD_HEAD.pack(pid, len(tb)) + tb
    table_bytes = table.cast("B") if sys.byteorder == "little" else memoryview(_swapped(table))
    del table
    sections: list[Section] = [
        table_bytes, chunks, memoryview(pairs_section), b"".join(sorted(ip4)), b"".join(sorted(ip6)),
        memoryview(regex_section), memoryview(bloom), b"".join(sorted(ip for ip in port_ips if len(ip) == 4)),
        b"".join(sorted(ip for ip in port_ips if len(ip) == 16))]
    marks = 0  # distinct URL markers (keys of their own, not rows), counted without a merged set
    for n, part in enumerate(parts):
        earlier = parts[:n]
        marks += sum(1 for mark in part.url_marks if not any(mark in other.url_marks for other in earlier))
    return _Placed(placed + len(regex) - marks, skipped, bits, sections)


def _swapped(a: memoryview) -> bytes:
    b = array("I", a)
    b.byteswap()
    return b.tobytes()


class BuildResult(NamedTuple):
    keys: int
    skipped: int
    seconds: float
    size: int


def build_index(csv_path: str, idx_path: str, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> BuildResult:
    """Read csv_path, write idx_path atomically (temp file in the same folder + os.replace).
    CSVs of at least parallel_min_bytes are parsed by two processes when there are two CPUs."""
    start = time.perf_counter()
    try:
        stamp = csv_stamp(csv_path)
        size = stamp.size
        parallel = size >= parallel_min_bytes and (os.cpu_count() or 1) > 1 and hasattr(os, "fork")
        parts = _parse_parallel(csv_path, size) if parallel else [_parse_range(csv_path, 0, size)]
    except OSError as ex:
        raise IndexBuildError(f"cannot read trail file {csv_path}: {ex.strerror or ex}") from ex
    keys, skipped, bits, blobs = _place(parts, parallel)
    del parts
    pieces = [blob if isinstance(blob, list) else [blob] for blob in blobs]
    sections: list[int] = []
    offset = HEADER_SIZE
    for section in pieces:
        offset += (-offset) % 8
        nbytes = sum(memoryview(piece).nbytes for piece in section)
        sections += [offset, nbytes]
        offset += nbytes
    total = offset
    tmp = f"{idx_path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            out.write(bytes(HEADER_SIZE))
            pos, body_crc = HEADER_SIZE, 0
            for i, section in enumerate(pieces):
                pad = bytes(sections[2 * i] - pos)
                out.write(pad)
                body_crc = zlib.crc32(pad, body_crc)
                for piece in section:
                    out.write(piece)
                    body_crc = zlib.crc32(piece, body_crc)
                pos = sections[2 * i] + sections[2 * i + 1]
            out.seek(0)
            out.write(pack_header(stamp, time.time(), total, keys, skipped, bits, body_crc, sections))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, idx_path)
    except OSError as ex:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise IndexBuildError(f"cannot write trail index {idx_path}: {ex.strerror or ex}") from ex
    return BuildResult(keys, skipped, time.perf_counter() - start, total)


def main(argv: list[str]) -> int:
    """Child-process entry point (TrailStore runs it; by hand: `python -m core.trails.build CSV IDX` from
    the project folder): argv [_, CSV, IDX] → one JSON line with the build figures."""
    import json
    import resource

    if len(argv) != 3:
        print("usage: python -m core.trails.build TRAILS_CSV INDEX_FILE", file=sys.stderr)
        return 2
    try:
        result = build_index(argv[1], argv[2])
    except IndexBuildError as ex:
        print(str(ex), file=sys.stderr)
        return 1
    own, helper = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + helper.ru_utime + helper.ru_stime
    print(json.dumps({**result._asdict(), "cpu_seconds": round(cpu, 3), "peak_rss_kib": own.ru_maxrss,
                      "helper_peak_rss_kib": helper.ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
