"""DNS message parser: UDP/TCP payload bytes -> DnsMessage (first question, bounded answers) or None.

Where it sits: detect.py calls `parse()` on port-53 payloads; the query name is checked against
domain trails, and the heuristics use `rcode`/`ra` (NXDOMAIN counting) and `a_records()`
(sinkhole / parked-domain answers).

Behaviour on hostile or odd input (never raises):
- Fewer than 12 header bytes, no question (QDCOUNT 0), or a question that is cut, or whose name
  is malformed (label length 64-255 = reserved label types, a compression pointer outside the
  message, more than MAX_POINTER_JUMPS pointer jumps (loops), name longer than 255 octets)
  -> None.
- Compression pointers are followed anywhere a name appears (question, answer owner names, the
  targets of NS/CNAME/PTR/DNAME answers), with the jump bound above as loop protection.
- Labels holding bytes other than letters, digits, `-` and `_` (including a literal `.` inside a
  label) are kept, decoded latin-1 and lower-cased, and the message is flagged `bad_name=True`;
  callers should not match such names against trails as if they were ordinary host names.
- Answers (responses only) are parsed after the question section, at most MAX_ANSWERS of them.
  When a record is cut or malformed, parsing stops there: the records parsed so far are kept and
  `answers_complete` is False (a safe partial). Extra questions (QDCOUNT > 1) are skipped.
- TCP (`tcp=True`): the 2-byte length prefix is honoured and only the first message is parsed;
  a message cut by the end of the segment is parsed as far as the bytes go.

Implementations: `parse_py` below is the specification. When the C accelerator core.accel._dns is
built (tools/build_accel.py) and not disabled (MALTRAIL_PURE_PYTHON=1), `parse` is bound to its
`parse`, which returns exactly what `parse_py` returns for every input (tests/test_accel_dns.py
compares both); otherwise `parse` is `parse_py`. Callers always use `parse`.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from core.accel import load

MAX_ANSWERS = 32
MAX_QUESTIONS = 8
MAX_POINTER_JUMPS = 32
MAX_NAME_OCTETS = 255

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_DNAME = 39
_NAME_RDATA_TYPES = frozenset((TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_DNAME))

RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3

_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")
_VALID_NAME = re.compile(rb"[A-Za-z0-9_.\-]*")
_new_tuple = tuple.__new__


class DnsAnswer(NamedTuple):
    """One answer record. `rdata` is a decoded name (str) for NS/CNAME/PTR/DNAME, else raw bytes."""

    name: str
    type: int
    ttl: int
    rdata: bytes | str


class DnsMessage(NamedTuple):
    """The parts of a DNS message the sensor needs. `qname` is lower-case without a trailing dot."""

    id: int
    flags: int
    is_response: bool
    opcode: int
    rcode: int
    ra: bool
    qname: str
    qtype: int
    qclass: int
    bad_name: bool
    answers: tuple[DnsAnswer, ...]
    answers_complete: bool

    def a_records(self) -> list[bytes]:
        """Packed IPv4 (4 bytes) and IPv6 (16 bytes) addresses of the A/AAAA answers, in order."""
        out: list[bytes] = []
        for answer in self.answers:
            rdata = answer.rdata
            if isinstance(rdata, bytes) and (answer.type == TYPE_A and len(rdata) == 4
                                             or answer.type == TYPE_AAAA and len(rdata) == 16):
                out.append(rdata)
        return out


def _read_name(msg: bytes, off: int, end: int) -> tuple[str, int, bool] | None:
    """Decode the name at `off`: (name, offset after it, bad) or None when malformed."""
    labels: list[bytes] = []
    after = -1
    jumps = 0
    octets = 1
    while True:
        if off >= end:
            return None
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n >= 0xC0:
            if off + 1 >= end:
                return None
            if after < 0:
                after = off + 2
            jumps += 1
            off = ((n & 0x3F) << 8) | msg[off + 1]
            if jumps > MAX_POINTER_JUMPS or off >= end:
                return None
            continue
        if n > 63:
            return None
        octets += n + 1
        if octets > MAX_NAME_OCTETS:
            return None
        start = off + 1
        off = start + n
        if off > end:
            return None
        labels.append(msg[start:off])
    raw = b".".join(labels)
    # the root name (no label) has no bad byte: not flagged
    bad = _VALID_NAME.fullmatch(raw) is None or raw.count(b".") != max(len(labels) - 1, 0)
    return raw.lower().decode("latin-1"), (after if after >= 0 else off), bad


def _parse_answers(msg: bytes, off: int, end: int, qdcount: int, ancount: int,
                   qname: str) -> tuple[tuple[DnsAnswer, ...], bool]:
    """Skip the remaining questions, then read up to MAX_ANSWERS answers (safe partial on error)."""
    for _ in range(min(qdcount, MAX_QUESTIONS) - 1):
        skipped = _read_name(msg, off, end)
        if skipped is None or skipped[1] + 4 > end:
            return (), False
        off = skipped[1] + 4
    if qdcount > MAX_QUESTIONS:
        return (), False
    answers: list[DnsAnswer] = []
    for _ in range(min(ancount, MAX_ANSWERS)):
        if off + 2 <= end and msg[off] == 0xC0 and msg[off + 1] == 12:
            name, off = qname, off + 2  # the usual pointer back to the question name
        else:
            decoded = _read_name(msg, off, end)
            if decoded is None:
                return tuple(answers), False
            name, off = decoded[0], decoded[1]
        if off + 10 > end:
            return tuple(answers), False
        rtype, _rclass, ttl, rdlength = _RR.unpack_from(msg, off)
        off += 10
        if off + rdlength > end:
            return tuple(answers), False
        rdata: bytes | str = msg[off:off + rdlength]
        if rtype in _NAME_RDATA_TYPES:
            target = _read_name(msg, off, end)
            if target is not None:
                rdata = target[0]
        answers.append(DnsAnswer(name, rtype, ttl, rdata))
        off += rdlength
    return tuple(answers), ancount <= MAX_ANSWERS


def parse_py(payload: bytes, tcp: bool = False) -> DnsMessage | None:
    """Parse one DNS message (the first one of a TCP segment when `tcp`); None when malformed."""
    if tcp:
        if len(payload) < 14:
            return None
        msg = payload[2:2 + ((payload[0] << 8) | payload[1])]
    else:
        msg = payload
    end = len(msg)
    if end < 12:
        return None
    ident, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(msg, 0)
    if qdcount == 0:
        return None
    name = _read_name(msg, 12, end)
    if name is None:
        return None
    qname, off, bad = name
    if off + 4 > end:
        return None
    qtype, qclass = _QTAIL.unpack_from(msg, off)
    off += 4
    is_response = bool(flags & 0x8000)
    answers: tuple[DnsAnswer, ...] = ()
    complete = True
    if is_response and ancount:
        answers, complete = _parse_answers(msg, off, end, qdcount, ancount, qname)
    # tuple.__new__ skips the generated keyword-handling __new__ (about 0.4 us per message)
    return _new_tuple(DnsMessage, (ident, flags, is_response, (flags >> 11) & 0xF, flags & 0xF,
                                   bool(flags & 0x80), qname, qtype, qclass, bad, answers, complete))


parse = parse_py
_accel = load("_dns")
if _accel is not None:
    _accel.init(DnsMessage, DnsAnswer)
    parse = _accel.parse
