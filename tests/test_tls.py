"""TLS: ClientHello SNI and server-flight certificate reassembly across segments and records."""

from __future__ import annotations

import datetime
import os
import random
import struct

import dpkt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.protocols import tls

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")


# --- builders (also used by test_quic.py) -----------------------------------------------------------

def len24(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:]


def ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(data)) + data


def sni_ext(host: bytes) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(host)) + host
    return ext(0, struct.pack("!H", len(entry)) + entry)


def client_hello_handshake(host: bytes | None, before: tuple[bytes, ...] = (), after: tuple[bytes, ...] = ()) -> bytes:
    """A ClientHello handshake message with the SNI extension between `before` and `after`."""
    exts = b"".join(before) + (sni_ext(host) if host is not None else b"") + b"".join(after)
    body = (b"\x03\x03" + b"\x11" * 32 + b"\x20" + b"\x22" * 32 + struct.pack("!H", 4) + b"\x13\x01\x13\x02"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return b"\x01" + len24(body) + body


def records(content_type: int, data: bytes, size: int = 16384) -> bytes:
    """`data` cut into TLS records of at most `size` bytes."""
    out = b""
    for i in range(0, len(data), size):
        chunk = data[i:i + size]
        out += bytes([content_type]) + b"\x03\x03" + struct.pack("!H", len(chunk)) + chunk
    return out


def client_hello(host: bytes | None, **kwargs: tuple[bytes, ...]) -> bytes:
    return records(0x16, client_hello_handshake(host, **kwargs))


def server_hello(tls13: bool = False) -> bytes:
    exts = ext(0xFF01, b"\x00") + (ext(43, b"\x03\x04") if tls13 else b"")
    body = b"\x03\x03" + b"\x33" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00" + struct.pack("!H", len(exts)) + exts
    return b"\x02" + len24(body) + body


def certificate_message(ders: list[bytes]) -> bytes:
    chain = b"".join(len24(d) + d for d in ders)
    body = len24(chain) + chain
    return b"\x0b" + len24(body) + body


SERVER_HELLO_DONE = b"\x0e\x00\x00\x00"


def make_chain(names: int = 60) -> list[x509.Certificate]:
    """A CA and a leaf with many SAN names (so the leaf alone spans several segments)."""
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(f"host{i}.c2-evil.example") for i in range(names)]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c2-evil.example")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return [leaf, ca]


@pytest.fixture(scope="module")
def chain() -> list[x509.Certificate]:
    return make_chain()


def ders_of(chain: list[x509.Certificate]) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in chain]


def server_flight(ders: list[bytes], record_size: int = 16384, tls13: bool = False) -> bytes:
    return records(0x16, server_hello(tls13) + certificate_message(ders) + SERVER_HELLO_DONE, record_size)


def split(data: bytes, parts: int, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), parts - 1))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# --- ClientHello SNI --------------------------------------------------------------------------------

def test_sni_basic_and_normalised():
    assert tls.client_hello_sni(client_hello(b"TLS-Evil.Example.")) == "tls-evil.example"
    padding = ext(21, b"\x00" * 300)
    assert tls.client_hello_sni(client_hello(b"a.example", before=(ext(10, b"\x00\x02\x00\x1d"), padding),
                                             after=(padding,))) == "a.example"


@pytest.mark.parametrize("host", [b"bad host.example", b"\xffx.example", b"", b".", b"a" * 254, b"a\x00b"])
def test_sni_invalid_names_are_refused(host):
    assert tls.client_hello_sni(client_hello(host)) is None


def test_sni_absent_or_not_a_client_hello():
    assert tls.client_hello_sni(client_hello(None, before=(ext(10, b"\x00\x02\x00\x1d"),))) is None
    hello = client_hello(b"x.example")
    assert tls.client_hello_sni(b"\x17" + hello[1:]) is None  # application data record
    assert tls.client_hello_sni(hello[:5] + b"\x02" + hello[6:]) is None  # ServerHello
    assert tls.client_hello_sni(b"GET / HTTP/1.1\r\n\r\n") is None
    # host_name entries of another name type are skipped
    entry = b"\x01" + struct.pack("!H", 3) + b"abc"
    other = ext(0, struct.pack("!H", len(entry)) + entry)
    assert tls.client_hello_sni(client_hello(None, before=(other,))) is None


def test_sni_client_hello_fragmented_over_records_in_one_segment():
    handshake = client_hello_handshake(b"frag.example", before=(ext(21, b"\x00" * 200),))
    assert tls.client_hello_sni(records(0x16, handshake, size=50)) == "frag.example"


def test_sni_cut_client_hello_reads_as_far_as_bytes_go():
    hello = client_hello(b"cut.example", after=(ext(21, b"\x00" * 500),))
    sni_end = hello.index(b"cut.example") + len(b"cut.example")
    for cut in range(len(hello) + 1):
        got = tls.client_hello_sni(hello[:cut])
        assert got == ("cut.example" if cut >= sni_end else None), cut


def test_sni_fuzz_never_raises_and_never_invents():
    rng = random.Random(4)
    base = client_hello(b"fuzz.example", before=(ext(10, b"\x00\x02\x00\x1d"),))
    for i in range(10000):
        if i % 2:
            data = b"\x16\x03\x01" + rng.randbytes(rng.randrange(0, 120))
        else:
            mutable = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable)
        got = tls.client_hello_sni(data)
        assert got is None or (got.isascii() and " " not in got and 0 < len(got) <= 253)
        tls.handshake_sni(data[5:])


def test_corpus_tls_sni():
    names = []
    with open(os.path.join(CORPUS, "tls_sni.pcap"), "rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            names.append(tls.client_hello_sni(bytes(dpkt.ethernet.Ethernet(frame).data.data.data)))
    assert names == ["tls-evil.example", "clean.example"]


# --- server flights ---------------------------------------------------------------------------------

def test_cert_sha1_matches_cryptography(chain):
    der = ders_of(chain)[0]
    assert tls.cert_sha1(der) == chain[0].fingerprint(hashes.SHA1()).hex()


def test_single_segment_flight(chain):
    flights = tls.ServerFlights()
    ders = ders_of(chain)
    assert flights.feed("k", server_flight(ders)) == ders
    assert len(flights) == 0 and flights.counters["certificates"] == 1 and not flights.active


@pytest.mark.parametrize("parts", [2, 3, 4, 5])
@pytest.mark.parametrize("record_size", [16384, 700, 97])
def test_certificate_spanning_segments_and_records(chain, parts, record_size):
    ders = ders_of(chain)
    assert len(ders[0]) > 1500  # the leaf alone does not fit one Ethernet segment
    flight = server_flight(ders, record_size)
    cert_end = len(records(0x16, server_hello() + certificate_message(ders), record_size))
    rng = random.Random(parts * 1000 + record_size)
    for _ in range(20):
        flights = tls.ServerFlights()
        fed = 0
        result = None
        for segment in split(flight, parts, rng):
            result = flights.feed(("10.0.0.1", 443), segment)
            fed += len(segment)
            if fed >= cert_end:  # out exactly with the segment that completes the Certificate
                break
            assert result is None and ("10.0.0.1", 443) in flights
        assert result == ders
        assert tls.cert_sha1(result[0]) == chain[0].fingerprint(hashes.SHA1()).hex()
        assert len(flights) == 0


def test_flight_truncated_at_every_byte(chain):
    ders = ders_of(chain)[:1]
    flight = server_flight(ders, 1000)
    cert_end = len(records(0x16, server_hello() + certificate_message(ders), 1000))
    for cut in range(0, len(flight) + 1, 7):
        flights = tls.ServerFlights()
        got = flights.feed("k", flight[:cut])
        assert got == (ders if cut >= cert_end else None), cut


def test_sequence_numbers_skip_retransmissions_and_abandon_gaps(chain):
    ders = ders_of(chain)
    segments = split(server_flight(ders, 1200), 4, random.Random(9))
    seqs = [1000]
    for seg in segments:
        seqs.append(seqs[-1] + len(seg))
    flights = tls.ServerFlights()
    assert flights.feed("k", segments[0], seq=seqs[0]) is None
    assert flights.feed("k", segments[0], seq=seqs[0]) is None  # full retransmission
    overlap = segments[0][-10:] + segments[1]
    assert flights.feed("k", overlap, seq=seqs[1] - 10) is None  # partial retransmission
    assert flights.feed("k", segments[2], seq=seqs[2]) is None
    assert flights.feed("k", segments[3], seq=seqs[3]) == ders

    flights = tls.ServerFlights()
    flights.feed("k", segments[0], seq=seqs[0])
    assert flights.feed("k", segments[2], seq=seqs[2]) is None  # a gap: segment 1 lost
    assert "k" not in flights and flights.counters["out_of_order"] == 1
    assert flights.feed("k", segments[1], seq=seqs[1]) is None  # not restarted mid-flight


def test_sequence_wraparound(chain):
    ders = ders_of(chain)
    first, second = split(server_flight(ders), 2, random.Random(1))
    flights = tls.ServerFlights()
    start = 0x100000000 - len(first) + 0  # the second segment starts at sequence 0
    assert flights.feed("k", first, seq=start) is None
    assert flights.feed("k", second, seq=0) == ders


def test_tls13_and_no_certificate_flows_are_dropped(chain):
    flights = tls.ServerFlights()
    assert flights.feed("a", server_flight(ders_of(chain), tls13=True)) is None
    assert flights.counters["tls13"] == 1 and "a" not in flights
    assert flights.feed("b", records(0x16, server_hello() + SERVER_HELLO_DONE)) is None
    assert flights.counters["no_cert"] == 1
    resumed = records(0x16, server_hello()) + b"\x14\x03\x03\x00\x01\x01"
    assert flights.feed("c", resumed) is None and flights.counters["no_cert"] == 2
    assert flights.feed("d", records(0x16, server_hello()) + b"\x00" * 8) is None
    assert flights.counters["not_tls"] == 1
    assert flights.feed("e", records(0x16, server_hello() + certificate_message([]))) is None
    assert flights.counters["malformed"] == 1
    assert len(flights) == 0


def test_untracked_flows_cost_nothing_and_are_not_started():
    flights = tls.ServerFlights()
    for payload in (b"", b"GET / HTTP/1.1\r\n", client_hello(b"x.example"), b"\x16\x03\x03\x00\x10\x0b"):
        assert flights.feed("k", payload) is None
    assert len(flights) == 0 and flights.counters["started"] == 0


def test_bounds_max_bytes_max_flows_and_expiry(chain):
    ders = ders_of(chain)
    flights = tls.ServerFlights(max_flows=10, max_bytes=1024, ttl=30.0)
    assert flights.feed("big", server_flight(ders)) is None
    assert flights.counters["too_big"] == 1 and len(flights) == 0
    hello = records(0x16, server_hello())
    for i in range(15):
        flights.feed(i, hello, now=1.0)
    assert len(flights) == 10 and flights.counters["evicted"] == 5 and 0 not in flights and 14 in flights
    flights.feed(7, b"\x16", now=20.0)  # keeps flow 7 fresh
    flights.feed("late", hello, now=45.0)
    assert flights.counters["expired"] == 9 and 7 in flights and "late" in flights and len(flights) == 2


def test_hostile_lengths_and_fuzz_never_raise(chain):
    rng = random.Random(5)
    base = server_flight(ders_of(chain)[:1], 500)
    flights = tls.ServerFlights(max_flows=64)
    for i in range(10000):
        mutable = bytearray(base[:rng.randrange(7, len(base))])
        for _ in range(rng.randrange(1, 4)):
            mutable[rng.randrange(6, len(mutable))] = rng.randrange(256)
        key = i % 50
        for segment in split(bytes(mutable), 3, rng) if len(mutable) > 3 else [bytes(mutable)]:
            got = flights.feed(key, segment, now=i / 100)
            if got is not None:
                assert all(isinstance(d, bytes) and d for d in got) and len(got) <= tls.MAX_CERTS
        flights.feed(key, rng.randbytes(rng.randrange(1, 40)), now=i / 100)
    assert len(flights) <= 64


# --- ClientHello larger than one segment ------------------------------------------------------------

def test_client_hello_spanning_segments():
    key_share = ext(51, b"\x04\xc4" + b"\x11\xec\x04\xc0" + b"\x66" * 1216)  # an ML-KEM sized key share
    big = client_hello(b"Split.Example", before=(key_share, ext(21, b"\x00" * 300)))
    whole = client_hello_handshake(b"Split.Example", before=(key_share, ext(21, b"\x00" * 300)))
    assert len(big) > 1600
    sni_end = big.index(b"Split.Example") + len(b"Split.Example")
    for parts in (2, 3, 4):
        rng = random.Random(parts)
        for _ in range(10):
            hellos = tls.ClientHellos()
            fed, snis, message = 0, [], None
            for segment in split(big, parts, rng):
                got = hellos.feed("c", segment, now=1.0)
                fed += len(segment)
                if fed < sni_end:
                    assert got is None and "c" in hellos and hellos.active
                if got is not None:
                    snis += [got.sni] if got.sni else []
                    message = got.message
                if fed < len(big):
                    assert message is None and "c" in hellos
            # the SNI is reported once, as soon as readable; the whole message once complete
            assert snis == ["split.example"] and message == whole and len(hellos) == 0


def test_client_hello_single_segment_keeps_no_state():
    hellos = tls.ClientHellos()
    assert hellos.feed("a", client_hello(b"one.example")) == tls.Hello("one.example",
                                                                       client_hello_handshake(b"one.example"))
    assert hellos.feed("b", client_hello(None)) == tls.Hello(None, client_hello_handshake(None))
    assert hellos.feed("c", b"GET / HTTP/1.1\r\n\r\n") is None
    assert len(hellos) == 0 and hellos.counters["pending"] == 0


def test_client_hello_reassembly_bounds():
    big = client_hello(None, before=(ext(21, b"\x00" * 3000),))
    hellos = tls.ClientHellos(max_flows=4, max_bytes=2000, ttl=10.0)
    for i in range(6):
        assert hellos.feed(i, big[:1000], now=0.0) is None
    assert len(hellos) == 4 and hellos.counters["evicted"] == 2
    assert hellos.feed(5, big[1000:2100], now=1.0) is None
    assert hellos.counters["too_big"] == 1 and 5 not in hellos
    assert hellos.feed(2, big[1000:1500], now=1.0) is None and 2 in hellos
    hellos.feed("new", big[:1000], now=20.0)
    assert hellos.counters["expired"] == 3 and set(hellos._flows) == {"new"}
    nosni = client_hello(None, before=(ext(21, b"\x00" * 1500),))
    hellos.feed("n", nosni[:800], now=20.0)
    done = hellos.feed("n", nosni[800:], now=20.0)
    assert done is not None and done.sni is None and done.message is not None
    assert hellos.counters["no_sni"] == 1 and "n" not in hellos
