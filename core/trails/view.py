"""The lookup view of one mapped trail index: the prefilters and the lookup closures.

Where it sits: core/trails/store.py installs one `View` per mapped index (core/trails/lifecycle.py
maps it) and publishes its closures as the store's lookups. A miss is answered by a prefilter (the
mapped BLOOM section, or one of two in-memory address bitmaps: the addresses with exact IP rows and
those with ip:port rows); only after a prefilter says "maybe" is the hash table read with pread,
behind small answer caches.
"""

from __future__ import annotations

import enum
import functools
import os
import struct
import zlib
from collections.abc import Callable
from mmap import mmap as mmap_type
from typing import NamedTuple

from core.accel import load as load_accel
from core.trails import index as ix
from core.trails.lifecycle import Mapped
from core.trails.regex import RegexTrails

IP_PREFILTER_CAP = 1 << 17    # addresses with exact IP rows in the in-memory prefilter (beyond: the bloom)
PORT_PREFILTER_CAP = 1 << 18  # addresses with ip:port rows in the in-memory prefilter (<= 2 MiB of bits)
RECENT_CAP = 4096             # answers (hits and bloom false positives) remembered per mapping
MARKER_CAP = 8192             # URL marker answers (hosts, first path segments) remembered per mapping
RECENT_KEY_MAX = 256          # longer keys are not remembered (bounds the cache at ~1.5 MB)
AGENT_CAP = 4096              # User-Agent answers remembered per mapping (TrailStore.user_agent)
AGENT_MAX = 512               # longer User-Agents are looked up each time, not remembered (~2 MB bound)
TRAIL_CACHE = 4096            # decoded (info, reference) pairs kept per mapping
# The address prefilters' bit pairs: entry i (picked by bits 32-37 of an address's hash()) is the
# (i % 28)th pair of distinct bits of a byte, pairs in the order (0,1), (0,2) .. (0,7), (1,2) ..
# (6,7). core/accel/_decode.c builds the same table.
_BIT_PAIRS = tuple(1 << a | 1 << b for a in range(8) for b in range(a + 1, 8))
PORT_MARK_BITS = bytes(_BIT_PAIRS[i % len(_BIT_PAIRS)] for i in range(64))
_U32 = struct.Struct("<I")
_PORT = struct.Struct(">H")


class _Missing(enum.Enum):
    """The answer cache's "not cached" (an enum member, so that `is not _MISSING` narrows the type)."""

    MISSING = 0


_MISSING = _Missing.MISSING


def port_marks_py(addresses: bytes, width: int, marks: bytearray) -> None:
    """Mark every packed address of `addresses` (`width` bytes each) in an address prefilter (the
    ip:port one, or the exact-IP one): the bit pair PORT_MARK_BITS[hash >> 32 & 63] in slot
    hash & (len(marks) - 1). The specification of core/accel/_decode.c port_marks."""
    mask, pairs = len(marks) - 1, PORT_MARK_BITS
    for x in map(hash, (addresses[i:i + width] for i in range(0, len(addresses), width))):  # no big temporaries
        marks[x & mask] |= pairs[x >> 32 & 63]


def port_marked(marks: bytes | bytearray, packed: bytes) -> bool:
    """Whether an address prefilter `marks` lets `packed` through (both bits of its pair are set
    in its slot): the test `ip` and `ip_port` inline and core/accel/_decode.c applies to whole
    batches."""
    x = hash(packed)
    bits = PORT_MARK_BITS[x >> 32 & 63]
    return marks[x & (len(marks) - 1)] & bits == bits


def _always(_path: str) -> bool:
    return True


MAX_SUFFIXES = 63  # candidates a domain_suffixes mask covers; a longer name answers -1 (every bit)


def suffixes_maybe_py(bloom: bytes | mmap_type, offset: int, shift: int, mix: int, name: str) -> int:
    """The domain walk's prefilter: bit k is set when the name without its first k labels (k = 0:
    the name itself; a candidate starts after each ".") may have a row, that is both of its
    bloom bits are set (the rule of `lookup` below). -1 (every bit) when the name has more than
    MAX_SUFFIXES candidates, 0 when it is not a str or cannot be encoded (no candidate can then
    have a row); ValueError for an offset outside `bloom`. The specification of
    core/accel/_url.c suffixes."""
    try:
        kb = name.encode()
    except (UnicodeEncodeError, AttributeError):
        return 0
    if kb.count(b".") >= MAX_SUFFIXES or shift > 31:
        return -1
    if not 0 <= offset <= len(bloom):
        raise ValueError("bloom offset outside the buffer")
    limit = len(bloom) - offset
    mask, start, k = 0, 0, 0
    while True:
        h = zlib.crc32(kb[start:])
        first, second = h >> shift, (h * mix & 0xFFFFFFFF) >> shift
        if (first >> 3 >= limit or second >> 3 >= limit or (bloom[offset + (first >> 3)] >> (first & 7) & 1
                                                            and bloom[offset + (second >> 3)] >> (second & 7) & 1)):
            mask |= 1 << k
        dot = kb.find(b".", start)
        if dot < 0:
            return mask
        start, k = dot + 1, k + 1


class Trail(NamedTuple):
    info: str
    reference: str


class View:
    """One mapped index with its lookup closures."""

    def __init__(self, mapped: Mapped) -> None:
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
        # None: more exact IP rows than IP_PREFILTER_CAP, the bloom answers their misses
        self.ip_marks = self._address_marks(ix.IP4, ix.IP6, IP_PREFILTER_CAP)
        port_marks = self._address_marks(ix.PORT_IP4, ix.PORT_IP6, PORT_PREFILTER_CAP)
        # no ip:port prefilter beyond its cap: every address passes to the bloom and table
        self.port_marks = port_marks if port_marks is not None else bytearray(b"\xff")
        self.counters = {"recent_cache_resets": 0, "marker_cache_resets": 0, "agent_cache_resets": 0}
        self.markers: dict[str, bool] = {}  # URL marker -> present (bounded by MARKER_CAP)
        self.agents: dict[str, Trail | None] = {}  # User-Agent -> its trail (bounded by AGENT_CAP)
        self._make_lookups()

    def _address_marks(self, section4: int, section6: int, cap: int) -> bytearray | None:
        """The prefilter of the packed addresses in two sections (IPv4, IPv6), None beyond `cap`
        addresses: one byte per slot, indexed by hash(packed IP) & mask; every address sets two
        of its slot's 8 bits, chosen by the hash's bits from 32 on (`port_marked`). 8+ slots per
        address: about 0.05% false hits, so a busy address (a monitored host) almost never pays
        the bloom and table, in 8 bytes an address (a set of the addresses took ~110). hash() of
        a bytes object is cached in it, so the next test of the same address pays nothing."""
        (off4, len4), (off6, len6) = self.header.sections[section4], self.header.sections[section6]
        count = len4 // 4 + len6 // 16
        if count > cap:
            return None
        size = 1 << 12
        while size < 8 * count:
            size <<= 1
        marks = bytearray(size)
        accel = load_accel("_decode")
        mm = self.mm
        for off, length, width in ((off4, len4, 4), (off6, len6, 16)):
            if accel is not None:
                accel.port_marks(mm[off:off + length], width, marks)  # the loop below, in C
            else:
                port_marks_py(mm[off:off + length], width, marks)
        return marks

    def _make_lookups(self) -> None:
        mm, header = self.mm, self.header
        table_off = header.sections[ix.TABLE][0]
        records_off = header.sections[ix.RECORDS][0]
        mask = (1 << header.table_bits) - 1
        unpack_record = ix.RECORD_HEAD.unpack_from
        crc32 = zlib.crc32
        trail_of = self.trail_of
        ip_marks = self.ip_marks
        bloom_off, bloom_shift = header.sections[ix.BLOOM][0], ix.bloom_shift(header.table_bits)
        mix = ix.BLOOM_MIX
        fd, pread, iter_slots = self.file.fileno(), os.pread, ix.SLOT.iter_unpack
        table_end = table_off + header.sections[ix.TABLE][1]
        pack_port = _PORT.pack
        port_marks, port_mask, mark_bits = self.port_marks, len(self.port_marks) - 1, PORT_MARK_BITS
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
                return found
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

        ip_table = ip_marks if ip_marks is not None else bytearray(1)  # unused when None: ip_in_bloom
        ip_mask = len(ip_table) - 1

        def ip_in_marks(packed: bytes) -> Trail | None:
            try:
                x = hash(packed)  # port_marked(), inlined
                bits = mark_bits[x >> 32 & 63]
                if ip_table[x & ip_mask] & bits != bits:
                    return None
                kb = b"\xff" + packed
            except TypeError:
                return None
            return probe(kb, crc32(kb))

        def ip_in_bloom(packed: bytes) -> Trail | None:
            """More exact IP rows than IP_PREFILTER_CAP: no in-memory prefilter, the bloom answers misses."""
            try:
                kb = b"\xff" + packed
            except TypeError:
                return None
            return lookup(kb, crc32(kb))

        ip = ip_in_marks if ip_marks is not None else ip_in_bloom

        def ip_port(packed: bytes, port: int) -> Trail | None:
            try:
                x = hash(packed)  # port_marked(), inlined
                bits = mark_bits[x >> 32 & 63]
                if port_marks[x & port_mask] & bits != bits:
                    return None
                h = crc32(pack_port(port), crc32(packed, ipport_seed))
            except (struct.error, TypeError):
                return None
            return lookup(b"\xfe" + packed + pack_port(port), h)

        agents, user_agent_key = self.agents, ix.user_agent_key

        def user_agent(text: str) -> Trail | None:
            """The User-Agent trail (`ua:` row) equal to a request's User-Agent, remembered per mapping."""
            found = agents.get(text, _MISSING)
            if found is not _MISSING:
                return found
            kb = user_agent_key(text)
            found = lookup(kb, crc32(kb))  # the bloom answers almost every miss
            if len(text) <= AGENT_MAX:
                if len(agents) >= AGENT_CAP:
                    agents.clear()
                    counters["agent_cache_resets"] += 1
                agents[text] = found
            return found

        self.probe, self.get, self.ip, self.ip_port, self.user_agent = probe, get, ip, ip_port, user_agent
        url_accel = load_accel("_url")
        # False only when no bare-path candidate of a request path can hit (core/accel/_url.c);
        # without the compiled prefilter every path is a "maybe" and detect.py checks each marker.
        self.path_markers_maybe: Callable[[str], bool] = (
            functools.partial(url_accel.maybe, mm, bloom_off, bloom_shift, mix) if url_accel is not None
            else _always)
        # bit k: the domain name without its first k labels may have a row (core/detect/domains.py)
        self.domain_suffixes: Callable[[str], int] = functools.partial(
            url_accel.suffixes if url_accel is not None else suffixes_maybe_py, mm, bloom_off, bloom_shift, mix)

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


