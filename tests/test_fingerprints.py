"""JA3, JA3S and JA4: known answers (the JA4 specification's own example), ClientHellos made by
OpenSSL, a cross-check against tshark's `tls.handshake.ja3`/`ja3s` when tshark is installed, and
JA3/JA4/JA3S trails firing in the real sensor path on a ClientHello split over segments."""

from __future__ import annotations

import hashlib
import random
import shutil
import ssl
import struct
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.protocols import fingerprints as fp
from core.protocols import tls
from tests.kit import T0, SensorKit
from tests.kit import pcapgen as g
from tests.test_tls import ext, len24, make_chain, records, sni_ext

CLIENT, SERVER = "10.0.0.5", "198.51.100.20"
SPEC_JA4 = "t13d1516h2_8daaf6152771_e5627efa2ab1"  # the JA4 specification's example (Chrome)
SPEC_JA4_RAW_B = "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
SPEC_CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
                0x009D, 0x002F, 0x0035)
SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


def u16s(values: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def vec16(values: tuple[int, ...]) -> bytes:
    return struct.pack("!H", 2 * len(values)) + u16s(values)


def hello_message(ciphers: tuple[int, ...], exts: list[bytes], version: int = 0x0303) -> bytes:
    body = (struct.pack("!H", version) + b"\x5a" * 32 + b"\x20" + b"\x11" * 32 + vec16(ciphers) + b"\x01\x00"
            + struct.pack("!H", len(b"".join(exts))) + b"".join(exts))
    return b"\x01" + len24(body) + body


def chrome_like(host: bytes = b"spec.example", key_share: int = 32) -> bytes:
    """A ClientHello with the cipher and extension sets of the JA4 specification's example,
    plus GREASE values in the ciphers, extensions, groups and versions (RFC 8701)."""
    alpn = b"\x02h2\x08http/1.1"
    exts = [ext(0x1A1A, b""), sni_ext(host), ext(0x0017, b""), ext(0xFF01, b"\x00"),
            ext(0x000A, vec16((0x2A2A, 0x001D, 0x0017, 0x0018))), ext(0x000B, b"\x01\x00"), ext(0x0023, b""),
            ext(0x0010, struct.pack("!H", len(alpn)) + alpn), ext(0x0005, b"\x01\x00\x00\x00\x00"),
            ext(0x000D, vec16(SIGALGS)), ext(0x0012, b""),
            ext(0x0033, struct.pack("!H", key_share + 4) + b"\x00\x1d" + struct.pack("!H", key_share)
                + b"\x42" * key_share),
            ext(0x002D, b"\x01\x01"), ext(0x002B, b"\x06\x3a\x3a\x03\x04\x03\x03"), ext(0x001B, b"\x02\x00\x02"),
            ext(0x4469, b"\x00\x03\x02h2"), ext(0x0015, b"\x00" * 40), ext(0x4A4A, b"\x00")]
    return hello_message((0x0A0A, *SPEC_CIPHERS), exts)


SPEC_JA3_TEXT = ("771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
                 "0-23-65281-10-11-35-16-5-13-18-51-45-43-27-17513-21,29-23-24,0")


# --- known answers -----------------------------------------------------------------------------------

def test_ja4_specification_example_and_grease_removed():
    assert hashlib.sha256(SPEC_JA4_RAW_B.encode()).hexdigest()[:12] == SPEC_JA4.split("_")[1]
    fields = fp.client_hello_fields(chrome_like())
    assert fields is not None
    assert fp.ja4(fields) == SPEC_JA4
    assert fp.ja3_text(fields) == SPEC_JA3_TEXT  # GREASE gone from ciphers, extensions and groups
    assert fp.ja3(fields) == hashlib.md5(SPEC_JA3_TEXT.encode()).hexdigest()
    assert fp.ja4(fields, transport="q").startswith("q13d1516h2_")


def test_ja4_edge_cases():
    bare = hello_message((0x002F,), [], version=0x0301)
    fields = fp.client_hello_fields(bare)
    assert fields is not None and fp.ja4(fields) == f"t10i010000_{hashlib.sha256(b'002f').hexdigest()[:12]}_000000000000"
    assert fp.ja3_text(fields) == "769,47,,,"
    # ALPN with a non-alphanumeric end: hex digits; one-character ALPN: twice; SNI-only: hash over nothing
    odd = hello_message((), [ext(0x0010, b"\x00\x03\x02\xab\xcd")])
    assert fp.ja4(fp.client_hello_fields(odd)).startswith("t12i0001ad_000000000000_000000000000")
    one = hello_message((0x1301,), [ext(0x0010, b"\x00\x02\x01h"), sni_ext(b"a.example")])
    assert fp.ja4(fp.client_hello_fields(one))[:10] == "t12d0102hh"
    counts = hello_message(tuple(range(0x0100, 0x0100 + 120)), [ext(0x7000 + i, b"") for i in range(120)])
    assert fp.ja4(fp.client_hello_fields(counts))[:8] == "t12i9999"


def test_fingerprint_kind():
    assert fp.fingerprint_kind("b386946a5a44d1ddcc843bc75336dfce") == "ja3"
    assert fp.fingerprint_kind("ab" * 20) == "cert"
    assert fp.fingerprint_kind(SPEC_JA4) == "ja4"
    for other in ("evil.example", "B386946A5A44D1DDCC843BC75336DFCE", "ab" * 15, "t13d1516h2_8daaf6152771"):
        assert fp.fingerprint_kind(other) is None


def test_malformed_and_truncated_never_raise():
    whole = chrome_like()
    for cut in range(len(whole)):
        assert fp.client_hello_fields(whole[:cut]) is None
    rng = random.Random(7)
    for _ in range(3000):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        fields = fp.client_hello_fields(bytes(data))
        if fields is not None:
            fp.ja3(fields), fp.ja4(fields)
        fp.server_hello_ja3s(b"\x02" + bytes(data[1:]))


# --- real hellos from OpenSSL ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pem_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pem")
    leaf, _ca = make_chain(names=1)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = leaf.public_bytes(serialization.Encoding.PEM)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.subject)
            .public_key(key.public_key()).serial_number(3).not_valid_before(leaf.not_valid_before_utc)
            .not_valid_after(leaf.not_valid_after_utc).sign(key, hashes.SHA256()))
    path = folder / "server.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def openssl_hellos(pem: str, max_version: ssl.TLSVersion) -> tuple[bytes, bytes]:
    """(ClientHello records, first server flight) exchanged in memory by OpenSSL."""
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.maximum_version = max_version
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pem)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="openssl.example")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = c_out.read()
    s_in.write(hello)
    with pytest.raises(ssl.SSLWantReadError):
        server.do_handshake()
    return hello, s_out.read()


def first_record(data: bytes) -> bytes:
    return data[5:5 + struct.unpack("!H", data[3:5])[0]]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_openssl_hellos_parse(pem_files, version):
    hello, flight = openssl_hellos(pem_files, version)
    message = tls.ClientHellos().feed("k", hello)
    assert message is not None and message.sni == "openssl.example"
    fields = fp.client_hello_fields(message.message)
    assert fields is not None and fields.alpn == b"h2"
    assert fp.ja4(fields).startswith("t13d" if version == ssl.TLSVersion.TLSv1_3 else "t12d")
    server_hello = tls.server_hello_message(flight)
    assert server_hello == first_record(flight)[:len(server_hello)]
    assert fp.server_hello_ja3s(server_hello) is not None


# --- the independent implementation: tshark ---------------------------------------------------------

def tcp_frames(payload: bytes, sport: int, dport: int, src: str, dst: str, parts: int = 1,
               seq: int = 1000) -> list[bytes]:
    size = -(-len(payload) // parts)
    frames = []
    for off in range(0, len(payload), size):
        chunk = payload[off:off + size]
        frames.append(g.ether(g.ipv4(src, dst, g.tcp(sport, dport, 0x18, chunk, seq=seq + off, ack=1))))
    return frames


def conversation(hello: bytes, flight: bytes, port: int, parts: int = 1) -> list[tuple[float, bytes]]:
    """A TCP handshake then the hellos, so any dissector sees a proper stream."""
    frames = [g.ether(g.ipv4(CLIENT, SERVER, g.tcp(port, 443, 0x02, seq=999))),
              g.ether(g.ipv4(SERVER, CLIENT, g.tcp(443, port, 0x12, seq=4999, ack=1000))),
              g.ether(g.ipv4(CLIENT, SERVER, g.tcp(port, 443, 0x10, seq=1000, ack=5000)))]
    frames += tcp_frames(hello, port, 443, CLIENT, SERVER, parts, seq=1000)
    frames += tcp_frames(flight, 443, port, SERVER, CLIENT, 1, seq=5000)
    return [(T0 + i / 1000, frame) for i, frame in enumerate(frames)]


@pytest.fixture(scope="module")
def hello_set(pem_files):
    """(ClientHello records, server flight) pairs: OpenSSL TLS 1.3 and 1.2, and the GREASE-laden one."""
    pairs = [openssl_hellos(pem_files, ssl.TLSVersion.TLSv1_3), openssl_hellos(pem_files, ssl.TLSVersion.TLSv1_2)]
    spec_flight = records(0x16, tls_server_hello())
    pairs.append((records(0x16, chrome_like(key_share=1600)), spec_flight))
    return pairs


def tls_server_hello() -> bytes:
    exts = ext(0xFF01, b"\x00") + ext(0x0017, b"") + ext(0x000B, b"\x01\x00")
    body = b"\x03\x03" + b"\x33" * 32 + b"\x00" + b"\xc0\x2f" + b"\x00" + struct.pack("!H", len(exts)) + exts
    return b"\x02" + len24(body) + body


def expected(hello: bytes, flight: bytes) -> tuple[str, str, str]:
    message = tls.ClientHellos().feed("k", hello)
    assert message is not None and message.message is not None
    fields = fp.client_hello_fields(message.message)
    assert fields is not None
    server_hello = tls.server_hello_message(flight)
    assert server_hello is not None
    ja3s = fp.server_hello_ja3s(server_hello)
    assert ja3s is not None
    return fp.ja3(fields), fp.ja4(fields), ja3s


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_ja3_and_ja3s_agree_with_tshark(hello_set, tmp_path):
    path = str(tmp_path / "hellos.pcap")
    packets = []
    for n, (hello, flight) in enumerate(hello_set):
        packets += conversation(hello, flight, 40000 + n, parts=3 if len(hello) > 1400 else 1)
    g.write_pcap(path, sorted(packets))
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", "tls.handshake.type == 1 || tls.handshake.type == 2",
                          "-T", "fields", "-e", "tls.handshake.ja3", "-e", "tls.handshake.ja3s"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    ja3s_seen = [tuple(line.split("\t")) for line in out.splitlines() if line.strip()]
    theirs_ja3 = [a for a, _ in ja3s_seen if a]
    theirs_ja3s = [b for _, b in ja3s_seen if b]
    ours = [expected(hello, flight) for hello, flight in hello_set]
    assert sorted(theirs_ja3) == sorted(o[0] for o in ours)
    assert sorted(theirs_ja3s) == sorted(o[2] for o in ours)


# --- the sensor path -------------------------------------------------------------------------------

def test_trails_fire_in_the_sensor_on_a_segmented_hello(hello_set, tmp_path):
    """A ClientHello over three segments (as big post-quantum key shares arrive) gives its SNI
    and its JA3/JA4; the ServerHello gives JA3S; other hellos do not fire."""
    hello, flight = hello_set[2]
    ja3, ja4, ja3s = expected(hello, flight)
    assert ja4 == SPEC_JA4
    rows = [(ja3, "dridex ja3 (suspicious)", "sslbl.abuse.ch"), (ja4, "testbot ja4 (suspicious)", "(custom)"),
            (ja3s, "testbot ja3s (suspicious)", "(custom)")]
    kit = SensorKit(rows, folder=str(tmp_path), EVENT_THROTTLE_MODE="off")
    events = kit.replay(conversation(hello, flight, 40002, parts=3))
    got = [(e.type, e.trail, e.info, e.src_ip, e.dst_port) for e in events]
    assert got == [("JA3", ja3, "dridex ja3 (suspicious)", CLIENT, 443), ("JA4", ja4, "testbot ja4 (suspicious)", CLIENT, 443),
                   ("JA3S", ja3s, "testbot ja3s (suspicious)", SERVER, 40002)]
    other = SensorKit(rows, folder=str(tmp_path / "o"), EVENT_THROTTLE_MODE="off")
    assert other.replay(conversation(*hello_set[0], 40003) + conversation(*hello_set[1], 40004)) == []


def test_replay_of_a_pcap_through_the_capture_path(hello_set, tmp_path):
    """Every hello in a capture file, read in batches like `sensor.py -r`: each fingerprint
    listed fires once (the count the documentation gives)."""
    path = str(tmp_path / "replay.pcap")
    packets = []
    for n, (hello, flight) in enumerate(hello_set):
        packets += conversation(hello, flight, 41000 + n, parts=3 if len(hello) > 1400 else 1)
    g.write_pcap(path, sorted(packets))
    rows = []
    for n, (hello, flight) in enumerate(hello_set):
        ja3, ja4, _ = expected(hello, flight)
        rows += [(ja3, f"client{n} ja3 (suspicious)", "sslbl.abuse.ch"), (ja4, f"client{n} ja4 (suspicious)", "(custom)")]
    kit = SensorKit(rows, folder=str(tmp_path / "k"), EVENT_THROTTLE_MODE="off")
    kit.feed_pcap(path)
    kit.close()
    assert sorted((e.type, e.info) for e in kit.events) == sorted(
        [("JA3", f"client{n} ja3 (suspicious)") for n in range(3)] + [("JA4", f"client{n} ja4 (suspicious)") for n in range(3)])
