"""Trail index builder: trails.csv → one compact, mmap-able index file (format below).

Where it sits: update writes trails.csv; `TrailStore.open` (core/trails/store.py) calls
`ensure_index`, which (under an fcntl lock, so concurrent processes build once) runs
`build_index` in a short-lived child process (`python core/trails/index.py CSV IDX`) when the
index is missing, stale or damaged, writes a temporary file and renames it into place. Workers
then map the file read-only; nothing of the 1.6M keys lives on their Python heap.

CSV rules: rows `trail,info,reference` (Python csv quoting). Rows without exactly three fields,
with an empty key, fields longer than 65535 bytes, or bytes that are not UTF-8 are skipped and
counted. A quoted field spanning several lines is not supported (its lines are counted as
malformed). Duplicate keys: the last row wins. Keys are classified once, here:
- IPv4 / IPv6 (any valid spelling, `[v6]` too)       → binary key  0xFF + packed address
- `ip:port` / `[v6]:port` with port 1..65535           → binary key  0xFE + packed + port (BE)
- no `/`, regex syntax (`\\ [ ] * + ? ( ) { } ^ $ |`), compiles, differs from re.escape()
                                                      → regex list, text kept exactly as written
- anything else (domains, `host/path`, `/path`, `ip/`, SHA-1 hex, bad ip:port) → lower-cased UTF-8
UTF-8 never contains 0xFE/0xFF, so a text lookup can never reach a binary key.

Index file format (version 3, little-endian):
    header (256 bytes, zero padded)
      0  8s  magic b"MTRLIDX3"
      8  I   format version (3)
     12  I   crc32 of header bytes 16..256
     16  Q   CSV size     24 q CSV mtime_ns     32 Q CSV inode     40 Q CSV device
     48  d   built_at (unix time)               56 Q total file size
     64  I   keys (distinct, regex included)    68 I skipped rows
     72  I   table bits (slots = 2**bits)        76 I crc32 of everything after the header
     80  9 x (Q offset, Q length) sections, in this order:
    TABLE    2**bits slots of (u32 fingerprint = crc32(key), u32 record offset); offset 0 = empty.
             Linear probing from slot crc32(key) & (slots - 1); followed by PROBE_PAD (1024) spare
             slots so a probe never wraps. Load factor <= 0.5.
    RECORDS  8 bytes of padding, then per key: u32 pair id, u16 key length, key bytes.
    PAIRS    u32 count, count x u32 offsets (into this section), then per pair:
             u16 info length, info, u16 reference length, reference (UTF-8).
    IP4      sorted packed IPv4 addresses that have an exact row (prefilter for ip()).
    IP6      sorted packed IPv6 addresses that have an exact row.
    REGEX    u32 count, then per trail in CSV order: u32 pair id, u16 length, text (UTF-8).
    BLOOM    2**(bits+3) bits, one per key: bit number crc32(key) >> (29 - bits), LSB first (about
             5% false positives). A clear bit answers a miss from this 4 MiB mapping; the 32 MiB
             table and the records are only read (pread) after a set bit.
    PORT_IP4 sorted packed IPv4 addresses that have at least one ip:port row (the store turns them
    PORT_IP6 into a small in-memory prefilter keyed by hash(), so most ip_port() misses cost ~0.1 µs).
A header that does not parse, a size or CRC that does not match, or a section outside the file
makes the index invalid: `read_header` returns None and the store rebuilds it.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys
import time
import warnings
import zlib
from array import array
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

MAGIC = b"MTRLIDX3"
VERSION = 3
HEADER_SIZE = 256
HEADER = struct.Struct("<8sII QqQQ dQ IIII 18Q")
SECTIONS = ("TABLE", "RECORDS", "PAIRS", "IP4", "IP6", "REGEX", "BLOOM", "PORT_IP4", "PORT_IP6")
TABLE, RECORDS, PAIRS, IP4, IP6, REGEX, BLOOM, PORT_IP4, PORT_IP6 = range(9)
SLOT = struct.Struct("<II")
RECORD_HEAD = struct.Struct("<IH")
PROBE_PAD = 1024
RECORDS_PAD = 8
IP_TAG = b"\xff"
IPPORT_TAG = b"\xfe"
MAX_FIELD = 0xFFFF

_DOMAIN_CHARS = b"abcdefghijklmnopqrstuvwxyz0123456789.-_"
_IPV4_CHARS = b"0123456789."
_REGEX_SYNTAX = re.compile(r"[\\\[\]*+?(){}^$|]")

assert HEADER.size <= HEADER_SIZE


class IndexBuildError(Exception):
    """The index could not be built (unreadable CSV, unwritable destination)."""


class Header(NamedTuple):
    csv_size: int
    csv_mtime_ns: int
    csv_inode: int
    csv_dev: int
    built_at: float
    file_size: int
    keys: int
    skipped: int
    table_bits: int
    body_crc: int
    sections: tuple[tuple[int, int], ...]


class CsvStamp(NamedTuple):
    """What the index records about its CSV; a different stamp means the index is stale."""

    size: int
    mtime_ns: int
    inode: int
    dev: int


def bloom_shift(table_bits: int) -> int:
    """crc32(key) >> bloom_shift(bits) is the key's bit number in the BLOOM section."""
    return 29 - table_bits


def csv_stamp(csv_path: str) -> CsvStamp:
    st = os.stat(csv_path)
    return CsvStamp(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


# --- key classification (shared with TrailStore.lookup_key) ------------------------------------------

def _packed_ip(text: str) -> bytes | None:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, ValueError):
        return None


def ip_port_key(packed: bytes, port: int) -> bytes:
    return IPPORT_TAG + packed + port.to_bytes(2, "big")


def is_regex_trail(text: str) -> bool:
    """A key that is a wildcard/regex trail: regex syntax, no `/`, compiles, not a plain literal."""
    if "/" in text or not _REGEX_SYNTAX.search(text):
        return False
    return compile_trail(text) is not None and re.escape(text) != text


def compile_trail(text: str) -> re.Pattern[str] | None:
    """A regex trail compiled case-insensitively, or None; the re module's FutureWarnings about
    possible set syntax are not for the operator of a sensor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return re.compile(text, re.I)
        except (re.error, RecursionError, OverflowError, ValueError):
            return None


def classify(key: str) -> tuple[str, bytes | str]:
    """One CSV key → ("bin", binary key) | ("regex", text as written) | ("text", lower-case UTF-8 str)."""
    key = key.strip()
    low = key.lower()
    packed = _packed_ip(low)
    if packed is not None:
        return "bin", IP_TAG + packed
    if ":" in low and "/" not in low:
        host, _, port = low.rpartition(":")
        if port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536 and \
                (":" not in host or host.startswith("[")):
            packed = _packed_ip(host)
            if packed is not None:
                return "bin", ip_port_key(packed, int(port))
    if is_regex_trail(key):
        return "regex", key
    return "text", low


# --- build --------------------------------------------------------------------------------------------

class _Builder:
    """Single pass over the CSV: classify each key, intern (info, reference), place into the table."""

    def __init__(self, expected_rows: int) -> None:
        bits = 3
        while (1 << bits) < 2 * max(expected_rows, 1):
            bits += 1
        self.bits = bits
        self.mask = (1 << bits) - 1
        self.table = array("I", bytes(8 * ((1 << bits) + PROBE_PAD)))
        self.bloom = bytearray(1 << bits)
        self.bloom_shift = bloom_shift(bits)
        self.records = bytearray(RECORDS_PAD)
        self.pair_ids: dict[object, int] = {}
        self.pairs: list[tuple[bytes, bytes]] = []
        self.regex: dict[str, int] = {}
        self.ip4: set[bytes] = set()
        self.ip6: set[bytes] = set()
        self.port_ips: set[bytes] = set()
        self.keys = 0
        self.skipped = 0

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

    def put(self, kb: bytes, pid: int) -> None:
        """Insert or overwrite (last row wins) one binary/text key."""
        h = zlib.crc32(kb)
        table, records = self.table, self.records
        j = (h & self.mask) << 1
        while True:
            off = table[j + 1]
            if off == 0:
                break
            if table[j] == h:
                klen = RECORD_HEAD.unpack_from(records, off)[1]
                if records[off + 6:off + 6 + klen] == kb:
                    RECORD_HEAD.pack_into(records, off, pid, klen)
                    return
            j += 2
            if j >= len(table):
                raise IndexBuildError("hash table probe overflow")
        table[j] = h
        table[j + 1] = len(records)
        records += RECORD_HEAD.pack(pid, len(kb))
        records += kb
        bit = h >> self.bloom_shift
        self.bloom[bit >> 3] |= 1 << (bit & 7)
        self.keys += 1

    def add_slow(self, key: str, pid: int) -> None:
        """One key through `classify` (IPs, v6, regex, odd spellings, non-ASCII)."""
        if not key.strip():
            self.skipped += 1
            return
        kind, value = classify(key)
        if kind == "regex":
            assert isinstance(value, str)
            if value in self.regex:
                del self.regex[value]  # keep CSV order of the last occurrence
            else:
                self.keys += 1
            self.regex[value] = pid
            return
        kb = value if isinstance(value, bytes) else value.encode("utf-8")
        if len(kb) > MAX_FIELD:
            self.skipped += 1
            return
        if kind == "bin" and kb[0] == IP_TAG[0]:
            (self.ip4 if len(kb) == 5 else self.ip6).add(kb[1:])
        elif kind == "bin":
            self.port_ips.add(kb[1:-2])
        self.put(kb, pid)

    def feed(self, f: BinaryIO) -> None:
        """All rows of an open binary CSV file. The hot path (plain ASCII domains, URLs, IPv4:port)
        is inlined; anything unusual goes through `classify` (add_slow) or the csv module."""
        head = f.read(3)
        if head != b"\xef\xbb\xbf":
            f.seek(0)
        add_slow, pair, pair_ids = self.add_slow, self.pair, self.pair_ids
        table, records, mask = self.table, self.records, self.mask
        bloom, bloom_shift = self.bloom, self.bloom_shift
        port_ips = self.port_ips
        crc32, pack_head, inet_pton, af_inet = zlib.crc32, RECORD_HEAD.pack, socket.inet_pton, socket.AF_INET
        limit = len(table)
        domain_chars, ipv4_chars, ipv4_port_chars = _DOMAIN_CHARS, _IPV4_CHARS, _IPV4_CHARS + b":"
        inserted = 0
        for line in _lines(f):
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
                add_slow_text(self, key, pid)
                continue
            kb = key.lower()
            if b"/" in kb or not kb.translate(None, domain_chars):
                if kb[-1] < 58 and not kb.translate(None, ipv4_chars):
                    add_slow(kb.decode("ascii"), pid)  # looks like an IPv4 address
                    continue
            elif not kb.translate(None, ipv4_port_chars) and kb.count(b":") == 1:
                host, _, port = kb.partition(b":")
                try:
                    packed = inet_pton(af_inet, host.decode("ascii"))
                    number = int(port)
                except (OSError, ValueError):
                    add_slow(kb.decode("ascii"), pid)
                    continue
                if not 0 < number < 65536:
                    add_slow(kb.decode("ascii"), pid)
                    continue
                kb = b"\xfe" + packed + number.to_bytes(2, "big")
                port_ips.add(packed)
            else:
                add_slow(key.decode("ascii"), pid)
                continue
            # inlined put(kb, pid)
            h = crc32(kb)
            j = (h & mask) << 1
            while True:
                off = table[j + 1]
                if off == 0:
                    table[j] = h
                    table[j + 1] = len(records)
                    records += pack_head(pid, len(kb)) + kb
                    bit = h >> bloom_shift
                    bloom[bit >> 3] |= 1 << (bit & 7)
                    inserted += 1
                    break
                if table[j] == h and records[off + 6:off + 6 + len(kb)] == kb and \
                        RECORD_HEAD.unpack_from(records, off)[1] == len(kb):
                    RECORD_HEAD.pack_into(records, off, pid, len(kb))
                    break
                j += 2
                if j >= limit:
                    raise IndexBuildError("hash table probe overflow")
        self.keys += inserted

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

    def sections(self) -> list[bytes]:
        table = self.table.tobytes() if sys.byteorder == "little" else _swapped(self.table)
        pairs_blob = bytearray()
        offsets = []
        base = 4 + 4 * len(self.pairs)
        for info, ref in self.pairs:
            offsets.append(base + len(pairs_blob))
            pairs_blob += struct.pack("<H", len(info)) + info + struct.pack("<H", len(ref)) + ref
        pairs = struct.pack(f"<I{len(offsets)}I", len(offsets), *offsets) + pairs_blob
        regex = bytearray(struct.pack("<I", len(self.regex)))
        for text, pid in self.regex.items():
            tb = text.encode("utf-8")
            regex += RECORD_HEAD.pack(pid, len(tb)) + tb
        return [table, bytes(self.records), pairs, b"".join(sorted(self.ip4)), b"".join(sorted(self.ip6)),
                bytes(regex), bytes(self.bloom),
                b"".join(sorted(ip for ip in self.port_ips if len(ip) == 4)),
                b"".join(sorted(ip for ip in self.port_ips if len(ip) == 16))]


def _lines(f: BinaryIO, block: int = 4 << 20) -> Iterator[bytes]:
    """The file's lines without their \\n, read in large blocks (cheaper than line iteration)."""
    rest = b""
    while True:
        data = f.read(block)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def add_slow_text(builder: _Builder, key: bytes, pid: int) -> None:
    """A non-ASCII key: must be UTF-8, else the row is skipped."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        builder.skipped += 1
        return
    builder.add_slow(text, pid)


def _swapped(a: array) -> bytes:
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


class BuildResult(NamedTuple):
    keys: int
    skipped: int
    seconds: float
    size: int


def build_index(csv_path: str, idx_path: str) -> BuildResult:
    """Read csv_path, write idx_path atomically (temp file in the same folder + os.replace)."""
    start = time.perf_counter()
    try:
        stamp = csv_stamp(csv_path)
        with open(csv_path, "rb") as f:
            expected = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) + 1
            f.seek(0)
            builder = _Builder(expected)
            builder.feed(f)
    except OSError as ex:
        raise IndexBuildError(f"cannot read trail file {csv_path}: {ex.strerror or ex}") from ex
    keys, skipped, bits = builder.keys, builder.skipped, builder.bits
    parts = builder.sections()
    del builder
    sections: list[int] = []
    offset = HEADER_SIZE
    for part in parts:
        offset += (-offset) % 8
        sections += [offset, len(part)]
        offset += len(part)
    total = offset
    tmp = f"{idx_path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            out.write(bytes(HEADER_SIZE))
            pos, body_crc = HEADER_SIZE, 0
            for i, part in enumerate(parts):
                pad = bytes(sections[2 * i] - pos)
                out.write(pad)
                out.write(part)
                body_crc = zlib.crc32(part, zlib.crc32(pad, body_crc))
                pos = sections[2 * i] + len(part)
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


def pack_header(stamp: CsvStamp, built_at: float, total: int, keys: int, skipped: int, bits: int,
                body_crc: int, sections: list[int]) -> bytes:
    rest = HEADER.pack(MAGIC, VERSION, 0, stamp.size, stamp.mtime_ns, stamp.inode, stamp.dev, built_at, total,
                       keys, skipped, bits, body_crc, *sections)
    rest = rest.ljust(HEADER_SIZE, b"\0")
    crc = zlib.crc32(rest[16:])
    return rest[:12] + struct.pack("<I", crc) + rest[16:]


def read_header(data: bytes, file_size: int) -> Header | None:
    """Parse and check the first HEADER_SIZE bytes; None when anything is off (never trusted)."""
    if len(data) < HEADER_SIZE or file_size < HEADER_SIZE:
        return None
    fields = HEADER.unpack_from(data, 0)
    magic, version, crc = fields[0], fields[1], fields[2]
    if magic != MAGIC or version != VERSION or crc != zlib.crc32(data[16:HEADER_SIZE]):
        return None
    size, mtime_ns, inode, dev, built_at, total, keys, skipped, bits, body_crc = fields[3:13]
    flat = fields[13:]
    sections = tuple((flat[2 * i], flat[2 * i + 1]) for i in range(len(SECTIONS)))
    if total != file_size or not 3 <= bits <= 29:
        return None
    for off, length in sections:
        if off < HEADER_SIZE or off + length > file_size:
            return None
    if sections[TABLE][1] != 8 * ((1 << bits) + PROBE_PAD) or sections[RECORDS][1] < RECORDS_PAD or \
            sections[BLOOM][1] != 1 << bits:
        return None
    return Header(size, mtime_ns, inode, dev, built_at, total, keys, skipped, bits, body_crc, sections)


def body_crc_of(fd: int, file_size: int) -> int:
    """CRC32 of everything after the header, read with pread (no mapping, so no RSS growth)."""
    crc, pos = 0, HEADER_SIZE
    while pos < file_size:
        chunk = os.pread(fd, min(4 << 20, file_size - pos), pos)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        pos += len(chunk)
    return crc


def main(argv: list[str]) -> int:
    """Child-process entry point: `index.py CSV IDX` → one JSON line with the build figures."""
    import json
    import resource

    if len(argv) != 3:
        print("usage: index.py TRAILS_CSV INDEX_FILE", file=sys.stderr)
        return 2
    try:
        result = build_index(argv[1], argv[2])
    except IndexBuildError as ex:
        print(str(ex), file=sys.stderr)
        return 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**result._asdict(), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                      "peak_rss_kib": usage.ru_maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
