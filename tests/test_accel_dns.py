"""C DNS parser (core.accel._dns) against its specification core.protocols.dns.parse_py.

Every check parses the same bytes with both implementations and requires equal results with equal
field types (bool is not int, str is not bytes): structured messages built by hypothesis
(compression pointers incl. loops and forward pointers, odd labels, answers of every rdata kind,
lying counts and lengths, cuts, mutations, TCP framing), random and mutated bytes, and every input
of tests/test_dns.py.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.protocols import dns
from tests import test_dns
from tests.accel_twins import assert_same_record, load_twin
from tests.kit import pcapgen as g

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


accel = load_twin("_dns", dns.DnsMessage, dns.DnsAnswer)
pytestmark = pytest.mark.skipif(accel is None, reason="core.accel._dns is not built "
                                "(run .venv/bin/python tools/build_accel.py)")
FUZZ = settings(max_examples=2500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def same(payload: bytes, tcp: bool = False) -> dns.DnsMessage | None:
    assert accel is not None
    c = accel.parse(payload, tcp)
    assert_same_record(c, dns.parse_py(payload, tcp), f"payload={payload!r} tcp={tcp}")
    return c


# --- structured messages ----------------------------------------------------------------------------

DICE = st.integers(0, 9)  # weighted choices: 0 (the common, well-formed case) is what shrinking aims at
WORDS = [b"www", b"example", b"com", b"Site123", b"_ldap", b"x-y", b"q" * 63, b"EVIL", b"a"]
LABEL = st.one_of(
    st.sampled_from(WORDS),
    st.binary(min_size=1, max_size=8),                       # odd bytes: spaces, dots, NUL, >= 0x80
    st.integers(1, 63).map(lambda n: b"q" * n),             # long labels: the 255-octet limit
)


@st.composite
def names(draw: Any) -> list[Any]:
    """A name as layout parts: bytes, ("mark",) (a pointer target) and ("ptr", selector, raw)."""
    parts: list[Any] = []
    for label in draw(st.lists(LABEL, max_size=5)):
        parts += [("mark",), bytes([len(label)]) + label]
    end = draw(DICE)
    if end <= 6:
        parts.append(b"\x00")
    elif end <= 7:
        parts.append(("ptr", draw(st.integers(0, 1 << 16)), draw(st.booleans())))  # to a mark (any) / raw offset
    elif end == 8:
        parts.append(bytes([draw(st.integers(64, 191))]) + b"x" * 4)  # reserved label types
    return parts  # end == 9: the name runs on into whatever follows


TYPES = [1, 1, 28, 5, 2, 12, 39, 16, 6]


@st.composite
def answers(draw: Any) -> list[Any]:
    kind = draw(DICE)
    owner = [b"\xc0\x0c"] if kind <= 5 else [("ptr", 0, False)] if kind == 6 else draw(names())
    rtype = draw(st.sampled_from(TYPES)) if draw(DICE) else draw(st.integers(0, 65535))
    if rtype == 1:
        rdata: list[Any] = [draw(st.binary(min_size=4, max_size=4))]
    elif rtype == 28:
        rdata = [draw(st.binary(min_size=16, max_size=16))]
    elif rtype in (2, 5, 12, 39):
        rdata = draw(names())
    else:
        rdata = [draw(st.binary(max_size=20))]
    lie = None if draw(DICE) <= 7 else draw(st.integers(0, 65535))
    ttl = struct.pack("!HHI", rtype, 1, draw(st.integers(0, 2**32 - 1)))
    return owner + [ttl, ("rdlength", lie)] + rdata + [("rdend",)]


def layout(parts: list[Any]) -> bytes:
    """Resolve marks, pointers (forward ones included) and rdlength fields into bytes."""
    marks = [12]
    size = 0
    for part in parts:
        if isinstance(part, bytes):
            size += len(part)
        elif part[0] == "mark":
            marks.append(size)
        elif part[0] in ("ptr", "rdlength"):
            size += 2
    out = bytearray()
    fixups: list[tuple[int, int | None]] = []
    ends: list[int] = []
    for part in parts:
        if isinstance(part, bytes):
            out += part
        elif part[0] == "ptr":
            target = part[1] & 0x3FFF if part[2] else marks[part[1] % len(marks)]
            out += struct.pack("!H", 0xC000 | target)
        elif part[0] == "rdlength":
            fixups.append((len(out), part[1]))
            out += b"\0\0"
        elif part[0] == "rdend":
            ends.append(len(out))
    for (at, lie), end in zip(fixups, ends, strict=True):
        out[at:at + 2] = struct.pack("!H", (end - at - 2 if lie is None else lie) & 0xFFFF)
    return bytes(out)


@st.composite
def messages(draw: Any) -> tuple[bytes, bool]:
    questions = draw(st.lists(names(), min_size=1, max_size=1 if draw(DICE) <= 6 else 10))
    records = draw(st.lists(answers(), max_size=6 if draw(DICE) else 0))
    qdcount = len(questions) if draw(DICE) <= 7 else draw(st.integers(0, 65535))
    ancount = len(records) if draw(DICE) <= 6 else draw(st.integers(0, 40))
    flags = draw(st.sampled_from([0x8180, 0x8180, 0x0100, 0x8183, 0x8580])) if draw(DICE) else draw(
        st.integers(0, 65535))
    parts: list[Any] = [struct.pack("!HHHHHH", draw(st.integers(0, 65535)), flags, qdcount, ancount, 0, 0)]
    for question in questions:
        parts += question + [struct.pack("!HH", draw(st.sampled_from(TYPES)), 1)]
    for record in records:
        parts += record
    msg = bytearray(layout(parts))
    if draw(DICE) >= 8:
        msg = msg[:draw(st.integers(0, len(msg)))]
    if draw(DICE) >= 8:
        for pos, value in draw(st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=3)):
            if msg:
                msg[pos % len(msg)] = value
    tcp = draw(DICE) >= 7
    if tcp:
        prefix = draw(DICE)
        length = len(msg) if prefix <= 5 else draw(st.integers(0, len(msg) + 4) if prefix <= 8 else st.integers(0, 65535))
        msg = bytearray(struct.pack("!H", length)) + msg + (g.dns_query("next.example", tcp=True) if prefix & 1 else b"")
    return bytes(msg), tcp


@FUZZ
@given(messages())
def test_structured_messages_agree(case):
    payload, tcp = case
    same(payload, tcp)
    same(payload, not tcp)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_agree(payload):
    same(payload, False)
    same(payload, True)


@FUZZ
@given(st.binary(min_size=0, max_size=120))
def test_random_bodies_after_a_plausible_header_agree(body):
    for flags, qd, an in ((0x8180, 1, 3), (0x0100, 1, 0), (0x8180, 2, 40), (0x8180, 9, 1)):
        same(struct.pack("!HHHHHH", 1, flags, qd, an, 0, 0) + body)


def test_seeded_mutations_agree():
    rng = random.Random(5)
    bases = [g.dns_query("mutate.example"), g.dns_query("Www.Site123.com", tcp=True),
             g.dns_response("m.example", [("A", "1.2.3.4"), ("CNAME", "x.m.example"), ("NS", "ns1.m.example"),
                                          ("PTR", "p.example"), ("AAAA", "::1"), ("TXT", "t")]),
             g.dns_response("m.example", [("AAAA", "::1"), ("A", "9.9.9.9")], compress=False)]
    parsed = 0
    for i in range(30000):
        base = bases[i % len(bases)]
        data = bytearray(base)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)):]
        tcp = base is bases[1]
        parsed += same(bytes(data), tcp) is not None
        same(bytes(data), not tcp)
    assert parsed > 1000  # the mutations kept many messages parseable, so the answers were compared


# --- the bounds, at and around their limits -----------------------------------------------------------

def chain(start: int, jumps: int, tail: bytes) -> bytes:
    """Bytes for offset `start`: jumps-1 pointers each to the next, then the name `tail`
    (entered through one more pointer, the name reaches `tail` after `jumps` jumps)."""
    cells = b"".join(struct.pack("!H", 0xC000 | (start + 2 * (i + 1))) for i in range(jumps - 1))
    return cells + tail


def long_name(octets: int) -> bytes:
    """An uncompressed name of exactly `octets` octets (5 labels of 40, then one of the rest)."""
    last = octets - 1 - 5 * 41 - 1
    return (b"\x28" + b"m" * 40) * 5 + bytes([last]) + b"n" * last + b"\x00"


def bound_cases(jumps: int, octets: int) -> list[bytes]:
    """Messages where the question, a skipped question, an answer owner and a CNAME target each
    sit exactly at a pointer-jump count or a name length."""
    a_name = g.dns_name("a.example") + struct.pack("!HH", 1, 1)
    out = []
    # question name through `jumps` pointers; and a name of `octets` octets as the question
    out.append(test_dns.header() + b"\xc0\x12" + b"\0\1\0\1" + chain(18, jumps, g.dns_name("deep.example")))
    out.append(test_dns.header() + long_name(octets) + b"\0\1\0\1")
    # an answer owner 0xC00C reuses the question name even when following it would exceed the jumps
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 9, 4) + b"\x01\x02\x03\x04"
    out.append(test_dns.header(an=1, flags=0x8180) + b"\xc0\x22" + b"\0\1\0\1" + answer
               + chain(34, jumps, g.dns_name("deep.example")))
    # the same as a skipped second question, then one A answer
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 9, 4) + b"\x01\x02\x03\x04"
    head = test_dns.header(qd=2, an=1, flags=0x8180) + a_name
    second = b"\xc0" + bytes([len(head) + 2 + 4 + len(answer)]) + b"\0\1\0\1"
    out.append(head + second + answer + chain(len(head) + 6 + len(answer), jumps, g.dns_name("q2.example")))
    out.append(head + long_name(octets) + b"\0\1\0\1" + answer)
    # answer owner and CNAME target through `jumps` pointers / of `octets` octets
    head = test_dns.header(an=2, flags=0x8180) + a_name
    first = b"\xc0\x00" + struct.pack("!HHIH", 5, 1, 9, 2) + b"\xc0\x00"
    tail_at = len(head) + 2 * len(first)
    own = chain(tail_at, jumps, g.dns_name("own.example"))
    first = b"\xc0" + bytes([tail_at]) + struct.pack("!HHIH", 5, 1, 9, 2) + b"\xc0" + bytes([tail_at])
    out.append(head + first + first + own)
    out.append(head + long_name(octets) + struct.pack("!HHIH", 1, 1, 9, 4) + b"\x05\x06\x07\x08")
    rdata = long_name(octets)
    out.append(head + b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 9, len(rdata)) + rdata)
    return out


@pytest.mark.parametrize("jumps, octets", [(n, 253 + n - 30) for n in range(30, 36)])
def test_pointer_and_length_limits_agree(jumps, octets):
    for payload in bound_cases(jumps, octets):
        for cut in (len(payload), len(payload) - 1, len(payload) - 5):
            same(payload[:cut])
            same(struct.pack("!H", len(payload)) + payload[:cut], True)
    # the cases really sit on the limits: the question parses up to the limit and not beyond
    parsed = [dns.parse_py(p) for p in bound_cases(jumps, octets)[:2]]
    assert (parsed[0] is not None) == (jumps <= dns.MAX_POINTER_JUMPS)
    assert (parsed[1] is not None) == (octets <= dns.MAX_NAME_OCTETS)


def test_answer_record_cut_at_every_byte_agrees():
    payload = g.dns_response("cut.example", [("A", "1.2.3.4"), ("NS", "ns.cut.example"), ("AAAA", "::2")])
    for cut in range(len(payload) + 1):
        same(payload[:cut])
        same(struct.pack("!H", len(payload)) + payload[:cut], True)
        same(struct.pack("!H", cut) + payload, True)


def test_pointer_byte_at_the_end_of_the_message_agrees():
    """A name target ending in a lone pointer byte: the byte after the message must not be read."""
    head = test_dns.header(an=1, flags=0x8180) + g.dns_name("a.example") + b"\0\1\0\1"
    for rdata in (b"\xc0", b"\x01x\xc0", b"\x01x"):
        payload = head + b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 9, len(rdata)) + rdata
        msg = same(payload)
        assert msg is not None and msg.answers[0].rdata == rdata  # not a name: bytes
        for after in (b"\x00", b"\x0c", b"\x0c\x00\x01"):
            assert same(struct.pack("!H", len(payload)) + payload + after, True) == msg


# --- the inputs of tests/test_dns.py ----------------------------------------------------------------

def _dns_cases() -> list[Any]:
    cases = []
    for name, fn in sorted(vars(test_dns).items()):
        if not name.startswith("test_") or not callable(fn):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            cases.append(pytest.param(fn, {}, id=name))
            continue
        argname, values = marks[0].args[0], marks[0].args[1]
        for i, value in enumerate(values):
            cases.append(pytest.param(fn, {argname: value}, id=f"{name}[{i}]"))
    return cases


@pytest.mark.parametrize(("fn", "kwargs"), _dns_cases())
def test_dns_suite_inputs_agree(fn, kwargs, monkeypatch):
    """Each test of test_dns.py, with dns.parse answering from both implementations (compared)."""
    calls = []

    def both(payload: bytes, tcp: bool = False) -> dns.DnsMessage | None:
        calls.append(1)
        return same(payload, tcp)

    monkeypatch.setattr(test_dns.dns, "parse", both)
    fn(**kwargs)
    assert calls, "the test did not parse anything"


# --- records, arguments, selection ------------------------------------------------------------------

def bench_query() -> bytes:
    labels = b"".join(bytes([len(p)]) + p for p in b"www.site123.com".split(b"."))
    return struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"


def test_records_are_the_python_classes():
    assert accel is not None
    response = g.dns_response("two.example", [("A", "192.0.2.1"), ("A", "192.0.2.2"), ("CNAME", "Alias.Example")])
    msg = accel.parse(response)
    assert isinstance(msg, dns.DnsMessage) and isinstance(msg, tuple) and len(msg) == 12
    assert msg.a_records() == [bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])]
    assert msg.qname == "two.example" and msg.is_response is True and msg.answers_complete is True
    assert isinstance(msg.answers, tuple) and all(isinstance(a, dns.DnsAnswer) for a in msg.answers)
    assert msg.answers[2].rdata == "alias.example" and msg.answers[0]._asdict()["ttl"] == 300
    assert msg._replace(qname="x").qname == "x" and hash(msg) == hash(dns.parse_py(response))
    query = accel.parse(bench_query())
    assert query is not None and query.qname == "www.site123.com" and query.a_records() == []


def test_root_name_is_not_flagged_bad():
    msg = same(test_dns.header() + b"\x00" + struct.pack("!HH", 2, 1))
    assert msg is not None and msg.qname == "" and msg.bad_name is False


def test_arguments():
    assert accel is not None
    framed = g.dns_query("kw.example", tcp=True)
    assert accel.parse(framed, tcp=True).qname == "kw.example"
    assert accel.parse(payload=framed, tcp=1).qname == "kw.example"
    assert accel.parse(framed).qname != "kw.example" and accel.parse(framed, tcp=0).qname != "kw.example"
    for bad_call in (lambda: accel.parse("text"), lambda: accel.parse(bytearray(framed)),
                     lambda: accel.parse(), lambda: accel.parse(framed, True, 1),
                     lambda: accel.parse(framed, tcp=True, udp=True), lambda: accel.parse(framed, True, tcp=True)):
        with pytest.raises(TypeError):
            bad_call()
    with pytest.raises(TypeError):
        accel.init(tuple, dns.DnsAnswer)


def test_selection_follows_the_environment():
    assert dns.parse is (dns.parse_py if os.environ.get("MALTRAIL_PURE_PYTHON") else accel.parse)
    code = "from core.protocols import dns; print(dns.parse is dns.parse_py)"
    env = dict(os.environ, MALTRAIL_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
