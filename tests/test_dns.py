"""DNS parser: queries, responses, compression pointers, hostile counts/names, truncation, fuzz."""

from __future__ import annotations

import os
import random
import struct

import dpkt
import pytest

from core.protocols import dns
from tests.kit import pcapgen as g

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")


def corpus_dns_payloads(name: str) -> list[tuple[bytes, bool]]:
    """(payload, is_tcp) of every port-53 UDP/TCP packet with a payload in a corpus pcap."""
    out = []
    with open(os.path.join(CORPUS, name), "rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            l4 = getattr(ip, "data", None)
            if isinstance(l4, (dpkt.udp.UDP, dpkt.tcp.TCP)) and 53 in (l4.sport, l4.dport) and l4.data:
                out.append((bytes(l4.data), isinstance(l4, dpkt.tcp.TCP)))
    return out


def header(qd: int = 1, an: int = 0, flags: int = 0x0100, ident: int = 7) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, 0, 0)


# --- positive ---------------------------------------------------------------------------------------

def test_query_fields_and_lower_case():
    msg = dns.parse(g.dns_query("WWW.Evil-Test.COM.", qtype="TXT", txid=0xBEEF))
    assert msg is not None
    assert msg.qname == "www.evil-test.com"
    assert (msg.id, msg.qtype, msg.qclass) == (0xBEEF, 16, 1)
    assert not msg.is_response and not msg.ra and msg.opcode == 0 and msg.rcode == 0
    assert msg.flags == 0x0100 and not msg.bad_name and msg.answers == ()


def test_root_query_has_empty_name():
    msg = dns.parse(header() + b"\x00" + struct.pack("!HH", 2, 1))
    assert msg is not None and msg.qname == "" and msg.qtype == 2


def test_response_answers_and_a_records_in_order():
    payload = g.dns_response("evil.example", [("CNAME", "cdn.Other.example"), ("A", "198.51.100.7"),
                                              ("AAAA", "2001:db8::5"), ("TXT", "hello"), ("A", "192.0.2.1")])
    msg = dns.parse(payload)
    assert msg is not None and msg.is_response and msg.ra and msg.rcode == 0
    assert [a.type for a in msg.answers] == [5, 1, 28, 16, 1]
    assert msg.answers[0].rdata == "cdn.other.example"
    assert all(a.name == "evil.example" and a.ttl == 300 for a in msg.answers)
    assert msg.a_records() == [bytes([198, 51, 100, 7]), bytes.fromhex("20010db8" + "0" * 22 + "05"),
                               bytes([192, 0, 2, 1])]
    assert msg.answers_complete


def test_uncompressed_owner_names():
    msg = dns.parse(g.dns_response("sink.example", [("A", "10.1.2.3")], compress=False))
    assert msg is not None and msg.answers[0].name == "sink.example"
    assert msg.a_records() == [bytes([10, 1, 2, 3])]


def test_nxdomain_flags():
    msg = dns.parse(g.dns_response("nx.example", [], rcode=3))
    assert msg is not None and msg.rcode == dns.RCODE_NXDOMAIN and msg.ra
    assert (msg.flags & 0xFF) == 0x83  # the original's "byte 3 == 0x83" test still reads the same


def test_tcp_length_prefix_and_first_of_two_messages():
    first = g.dns_query("first.example", tcp=True)
    second = g.dns_query("second.example", tcp=True)
    msg = dns.parse(first + second, tcp=True)
    assert msg is not None and msg.qname == "first.example"
    assert dns.parse(first[:13], tcp=True) is None  # shorter than a header after the prefix


def test_tcp_message_cut_by_segment_is_parsed_as_far_as_bytes_go():
    payload = g.dns_response("cut.example", [("A", "1.2.3.4"), ("A", "5.6.7.8")], tcp=True)
    msg = dns.parse(payload[:-3], tcp=True)
    assert msg is not None and msg.qname == "cut.example"
    assert msg.a_records() == [bytes([1, 2, 3, 4])] and not msg.answers_complete


def test_compression_pointer_in_question_is_followed():
    # question: "www" + pointer to "example.com" stored after the question (forward pointer)
    tail_at = 12 + 4 + 2 + 4  # header, "\x03www", pointer, qtype/qclass
    payload = header() + b"\x03www" + struct.pack("!H", 0xC000 | tail_at) + struct.pack("!HH", 1, 1)
    payload += g.dns_name("Example.com")
    msg = dns.parse(payload)
    assert msg is not None and msg.qname == "www.example.com" and msg.qtype == 1


def test_cname_target_pointer_is_followed():
    body = g.dns_name("a.example") + struct.pack("!HH", 1, 1)
    # answer: owner -> question; CNAME rdata "x" + pointer to "example" inside the question name
    rdata = b"\x01x" + struct.pack("!H", 0xC000 | (12 + 2))
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(rdata)) + rdata
    msg = dns.parse(header(an=1, flags=0x8180) + body + answer)
    assert msg is not None and msg.answers[0].rdata == "x.example"


def test_extra_questions_are_skipped_before_answers():
    q = g.dns_name("one.example") + struct.pack("!HH", 1, 1)
    q2 = g.dns_name("two.example") + struct.pack("!HH", 1, 1)
    ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([9, 9, 9, 9])
    msg = dns.parse(header(qd=2, an=1, flags=0x8180) + q + q2 + ans)
    assert msg is not None and msg.qname == "one.example" and msg.a_records() == [bytes([9, 9, 9, 9])]


def test_answer_count_is_capped():
    answers = [("A", f"10.0.{i // 256}.{i % 256}") for i in range(dns.MAX_ANSWERS + 10)]
    msg = dns.parse(g.dns_response("many.example", answers))
    assert msg is not None and len(msg.answers) == dns.MAX_ANSWERS and not msg.answers_complete


# --- negative and hostile ---------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"", b"\x00" * 11,
    header(qd=0) + g.dns_name("x.example") + b"\x00\x01\x00\x01",       # no question
    header() + b"\xc0\x0c" + b"\x00\x01\x00\x01",                        # pointer to itself
    header() + b"\xc0\x12\x00\x00\x00\x00\xc0\x0c",                      # two-pointer loop
    header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",            # label type 0x40 (> 63)
    header() + b"\x80" + b"a" * 10 + b"\x00\x00\x01\x00\x01",            # label type 0x80
    header() + b"\xc0\xff" + b"\x00\x01\x00\x01",                        # pointer past the end
    header() + b"\x05abc",                                                # label cut
    header() + g.dns_name("cut.example") + b"\x00",                      # qtype/qclass cut
    header() + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",      # name of 257 octets
])
def test_malformed_returns_none(payload):
    assert dns.parse(payload) is None


def test_name_of_255_octets_is_accepted():
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    assert len(name) == 255
    msg = dns.parse(header() + name + b"\x00\x01\x00\x01")
    assert msg is not None and len(msg.qname) == 253


def test_bad_label_bytes_are_kept_and_flagged():
    for label in (b"ev il", b"a.b", b"\xff\x00x", b"*"):
        payload = header() + bytes([len(label)]) + label + g.dns_name("example")
        msg = dns.parse(payload + b"\x00\x01\x00\x01")
        assert msg is not None and msg.bad_name, label
        assert msg.qname == (label + b".example").lower().decode("latin-1")
    assert not dns.parse(g.dns_query("_ldap._tcp.dc.example")).bad_name


def test_answer_count_larger_than_packet_gives_safe_partial():
    payload = bytearray(g.dns_response("lie.example", [("A", "203.0.113.9")]))
    payload[6:8] = struct.pack("!H", 65535)
    msg = dns.parse(bytes(payload))
    assert msg is not None and msg.a_records() == [bytes([203, 0, 113, 9])] and not msg.answers_complete


def test_answer_pointer_loop_stops_answers_not_message():
    body = g.dns_name("loop.example") + struct.pack("!HH", 1, 1)
    loop_at = 12 + len(body)
    answer = struct.pack("!H", 0xC000 | loop_at)  # owner name points to itself
    msg = dns.parse(header(an=1, flags=0x8180) + body + answer + b"\x00" * 10)
    assert msg is not None and msg.qname == "loop.example" and msg.answers == () and not msg.answers_complete


def test_truncation_at_every_byte_boundary():
    payload = g.dns_response("trunc.example", [("CNAME", "c.trunc.example"), ("A", "1.1.1.1"),
                                               ("AAAA", "2001:db8::1")])
    question_end = 12 + len(g.dns_name("trunc.example")) + 4
    full = dns.parse(payload)
    assert full is not None and full.answers_complete and len(full.answers) == 3
    for cut in range(len(payload)):
        msg = dns.parse(payload[:cut])
        if cut < question_end:
            assert msg is None, cut
        else:
            assert msg is not None and msg.qname == "trunc.example", cut
            assert not msg.answers_complete
            assert msg.answers == full.answers[:len(msg.answers)]
    for cut in range(len(payload) + 2):
        dns.parse(struct.pack("!H", len(payload)) + payload[:cut], tcp=True)


def test_random_bytes_never_raise():
    rng = random.Random(1)
    parsed = 0
    for _ in range(10000):
        data = rng.randbytes(rng.randrange(0, 120))
        if dns.parse(data) is not None:
            parsed += 1
        dns.parse(data, tcp=True)
    assert parsed < 10000


def test_mutated_messages_never_raise():
    rng = random.Random(2)
    bases = [g.dns_query("mutate.example"), g.dns_response("m.example", [("A", "1.2.3.4"), ("CNAME", "x.m.example")]),
             g.dns_response("m.example", [("AAAA", "::1")], compress=False)]
    for i in range(10000):
        data = bytearray(bases[i % len(bases)])
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        msg = dns.parse(bytes(data))
        if msg is not None:
            assert isinstance(msg.qname, str) and len(msg.answers) <= dns.MAX_ANSWERS
            msg.a_records()


# --- corpus -----------------------------------------------------------------------------------------

def test_corpus_queries_and_responses():
    names = [dns.parse(p, tcp).qname for p, tcp in corpus_dns_payloads("dns_queries.pcap")]
    assert "evil-test-domain.com" in names and "www.evil-parent.com" in names and "badsite.onion.to" in names
    responses = [dns.parse(p, tcp) for p, tcp in corpus_dns_payloads("dns_responses.pcap")]
    assert all(r is not None and r.is_response and r.ra and r.rcode == 0 for r in responses)
    assert {r.qname for r in responses} == {"sinkholed.com", "parked.com"}
    assert all(len(r.a_records()) == 1 for r in responses)


def test_corpus_malformed_dns_is_rejected_or_partial():
    results = [dns.parse(p, tcp) for p, tcp in corpus_dns_payloads("dns_malformed.pcap")]
    assert len(results) >= 5 and sum(r is None for r in results) >= 4
    for r in results:  # every packet there is broken somewhere: a parse can only be a partial
        assert r is None or not r.answers_complete
