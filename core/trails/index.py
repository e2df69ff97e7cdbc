"""Trail index format: the on-disk layout of the one compact, mmap-able index over trails.csv,
and the key rules the build and the lookups share.

Where it sits: core/trails/build.py writes this file from trails.csv (`build_index`); `TrailStore`
(core/trails/store.py) checks its header (`read_header`, `body_crc_of`, `csv_stamp`), maps it
read-only and looks keys up with the same rules (`classify`, `url_marker`, `bloom_shift`). This
module holds only the format and those rules: constants, header packing and checking, key
classification.

Keys are classified once, by `classify` (at build time, and by TrailStore.lookup_key):
- IPv4 / IPv6 (any valid spelling, `[v6]` too)       → binary key  0xFF + packed address
- `ip:port` / `[v6]:port` with port 1..65535           → binary key  0xFE + packed + port (BE)
- `ua:<User-Agent>` (an exact User-Agent trail)        → binary key  0xFD + the User-Agent stripped and
                                                        lower-cased, UTF-8 (`user_agent_key`)
- no `/`, regex syntax (`\\ [ ] * + ? ( ) { } ^ $ |`), compiles, differs from re.escape()
                                                      → regex list, text kept exactly as written
- anything else (domains, `host/path`, `/path`, `ip/`, SHA-1 hex, bad ip:port) → lower-cased UTF-8
UTF-8 never contains 0xFD/0xFE/0xFF, so a text lookup (a domain, a URL) can never reach a binary key,
and a User-Agent lookup never reaches a domain or URL trail.

URL markers: for every URL-shaped text key (one holding `/`) the table also holds a marker key,
`0x01 + host` for `host/...` keys and `0x02 + the first two path segments` (up to the query) for
`/path` keys (`url_marker`). A candidate equal to a key has that key's marker, so a candidate
whose marker is absent cannot match; detect.py looks candidates up only where a marker exists.
Markers are not counted in `keys`.

Index file format (version 7, little-endian):
    header (256 bytes, zero padded)
      0  8s  magic b"MTRLIDX7"
      8  I   format version (7)
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
    BLOOM    2**(bits+3) bits, two per key (h = crc32(key)): bit numbers h >> (29 - bits) and
             (h * 0x9E3779B1 mod 2**32) >> (29 - bits), LSB first; about 1% false positives. A
             clear bit answers a miss from this 4 MiB mapping; the 32 MiB table and the records
             are only read (pread) when both bits are set.
    PORT_IP4 sorted packed IPv4 addresses that have at least one ip:port row (the store turns them
    PORT_IP6 into a small in-memory prefilter keyed by hash(), so most ip_port() misses cost ~0.1 µs).
A header that does not parse, a size or CRC that does not match, or a section outside the file
makes the index invalid: `read_header` returns None and the store rebuilds it.
"""

from __future__ import annotations

import mmap
import os
import re
import socket
import struct
import warnings
import zlib
from typing import NamedTuple

MAGIC = b"MTRLIDX7"
VERSION = 7  # 7: User-Agent trails (0xFD keys)
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
UA_TAG = b"\xfd"
UA_PREFIX = "ua:"             # a trails.csv key `ua:<User-Agent>` is an exact User-Agent trail
MAX_FIELD = 0xFFFF
BLOOM_MIX = 0x9E3779B1        # Fibonacci multiplier: the bloom's second bit from the same crc32

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
    """The key's two bits in the BLOOM section: h >> shift and (h * BLOOM_MIX mod 2**32) >> shift,
    with h = crc32(key)."""
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
    """A key that is a wildcard/regex trail: regex syntax, no `/`, not a User-Agent trail, compiles,
    not a plain literal."""
    if "/" in text or not _REGEX_SYNTAX.search(text) or text[:3].lower() == UA_PREFIX:
        return False
    return compile_trail(text) is not None and re.escape(text) != text


def compile_trail(text: str) -> re.Pattern[str] | None:
    """A regex trail compiled, or None. Names are matched lower-case, so a pattern with capitals
    is compiled case-insensitively; an all-lower-case one is not, because IGNORECASE disables
    the regex engine's first-character skip of alternatives (3x slower misses). The re module's
    FutureWarnings about possible set syntax are not for the operator of a sensor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return re.compile(text, 0 if text == text.lower() else re.I)
        except (re.error, RecursionError, OverflowError, ValueError):
            return None


HOST_MARK = "\x01"
PATH_MARK = "\x02"


def url_marker(key: str) -> str:
    """The marker of a URL-shaped key or candidate: 0x01 + host, or 0x02 + the path up to its
    second segment's end (`/a/b` of `/a/b/c?q`, `/a` of `/a?q`). Any function of the string
    would be correct (equal strings, equal markers); two segments make it selective. The build
    and the lookups (TrailStore.url_marker) share this one rule."""
    if key[:1] == "/":
        end = key.find("?")
        if end < 0:
            end = len(key)
        first = key.find("/", 1, end)
        if first >= 0:
            second = key.find("/", first + 1, end)
            if second >= 0:
                end = second
        return PATH_MARK + key[:end]
    return HOST_MARK + key[:key.find("/")]


def user_agent_key(user_agent: str) -> bytes:
    """The index key of a User-Agent: UA_TAG + the value stripped and lower-cased (UTF-8). The one
    rule for the build (a `ua:` trail) and for the sensor's lookup of a request's User-Agent."""
    return UA_TAG + user_agent.strip().lower().encode("utf-8", "surrogateescape")


def classify(key: str) -> tuple[str, bytes | str]:
    """One CSV key → ("bin", binary key) | ("regex", text as written) | ("text", lower-case UTF-8 str)."""
    key = key.strip()
    low = key.lower()
    if low.startswith(UA_PREFIX):
        return "bin", user_agent_key(key[len(UA_PREFIX):])
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


def body_crc_of(mm: mmap.mmap) -> int:
    """CRC32 of everything after the header of a mapped index, read in place 4 MiB at a time;
    each piece is dropped from this process's resident set once read (the lookups fault back in
    only the pages they touch), so the check costs no copy and no RSS growth."""
    crc, pos, size = 0, HEADER_SIZE, len(mm)
    with memoryview(mm) as view:
        while pos < size:
            end = min(pos + (4 << 20), size)
            crc = zlib.crc32(view[pos:end], crc)
            start = pos - pos % mmap.PAGESIZE
            mm.madvise(mmap.MADV_DONTNEED, start, end - start)
            pos = end
    return crc
