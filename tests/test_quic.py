"""QUIC Initial SNI: RFC 9001/9369 known answers, CRYPTO reassembly, fast rejects, truncation, fuzz."""

from __future__ import annotations

import os
import random
import struct

import dpkt
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.protocols import quic
from tests.test_tls import client_hello_handshake, ext

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")
RFC_DCID = bytes.fromhex("8394c8f03e515708")

# RFC 9001 Appendix A.2: the client Initial's CRYPTO frame (padding follows up to 1162 bytes) ...
RFC_FRAMES = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff")
# ... and the protected 1200-byte packet it becomes.
RFC_PACKET = bytes.fromhex(
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934")


# --- builder: the sending side of RFC 9001 §5 -------------------------------------------------------

def varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return struct.pack("!H", 0x4000 | value)
    return struct.pack("!I", 0x80000000 | value)


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def protect(dcid: bytes, frames: bytes, version: int = quic.VERSION_1, pn: int = 0, pn_len: int = 1,
            scid: bytes = b"", token: bytes = b"", plaintext_len: int | None = None) -> bytes:
    """A protected client Initial carrying `frames` (zero-padded so the datagram is >= 1200 bytes)."""
    keys = quic.client_initial_keys(dcid, version)
    first = 0xC0 | (0x10 if version == quic.VERSION_2 else 0x00) | (pn_len - 1)
    head = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
            + varint(len(token)) + token)
    if plaintext_len is None:
        plaintext_len = max(len(frames), 1200 - len(head) - 2 - pn_len - 16)
    plaintext = frames + b"\x00" * (plaintext_len - len(frames))
    header = head + struct.pack("!H", 0x4000 | (pn_len + len(plaintext) + 16)) + pn.to_bytes(pn_len, "big")
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    packet = bytearray(header + AESGCM(keys.key).encrypt(nonce, plaintext, header))
    pn_off = len(header) - pn_len
    mask = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor().update(bytes(packet[pn_off + 4:pn_off + 20]))
    packet[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        packet[pn_off + i] ^= mask[1 + i]
    return bytes(packet)


def hello(host: bytes = b"quic.example") -> bytes:
    return client_hello_handshake(host, before=(ext(10, b"\x00\x02\x00\x1d"), ext(16, b"\x00\x03\x02h3")),
                                  after=(ext(43, b"\x02\x03\x04"),))


# --- known answers ----------------------------------------------------------------------------------

def test_rfc9001_client_initial_keys():
    keys = quic.client_initial_keys(RFC_DCID)
    assert keys.key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert keys.iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert keys.hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


def test_rfc9369_v2_client_initial_keys():
    keys = quic.client_initial_keys(RFC_DCID, quic.VERSION_2)
    assert keys.key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert keys.iv.hex() == "91f73e2351d8fa91660e909f"
    assert keys.hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"


def test_rfc9001_packet_decrypts_to_the_published_payload():
    plaintext = RFC_FRAMES + b"\x00" * (1162 - len(RFC_FRAMES))
    assert quic.decrypt_initial(RFC_PACKET) == plaintext
    assert quic.initial_sni(RFC_PACKET) == "example.com"
    # the builder used below reproduces the published packet byte for byte
    assert protect(RFC_DCID, RFC_FRAMES, pn=2, pn_len=4, plaintext_len=1162) == RFC_PACKET


def test_corpus_quic_initial():
    with open(os.path.join(CORPUS, "quic_sni.pcap"), "rb") as fh:
        payloads = [bytes(dpkt.ethernet.Ethernet(f).data.data.data) for _ts, f in dpkt.pcap.Reader(fh)]
    assert [quic.initial_sni(p) for p in payloads] == ["quic-evil.example"]


# --- behaviour --------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [quic.VERSION_1, quic.VERSION_2])
@pytest.mark.parametrize("pn_len", [1, 2, 3, 4])
def test_round_trip_versions_and_packet_number_lengths(version, pn_len):
    dcid = bytes(range(1, 1 + 8 + pn_len))
    packet = protect(dcid, crypto_frame(0, hello(f"V{pn_len}.Example".encode())), version, pn=pn_len * 3, pn_len=pn_len,
                     scid=b"\x01\x02\x03", token=b"tok")
    assert quic.initial_sni(packet) == f"v{pn_len}.example"


def test_crypto_frames_out_of_order_with_other_frames():
    data = hello(b"ooo.example")
    a, b, c = data[:40], data[40:90], data[90:]
    ack = b"\x02" + varint(5) + varint(0) + varint(1) + varint(0) + varint(1) + varint(2)  # one extra range
    ack_ecn = b"\x03" + varint(1) + varint(0) + varint(0) + varint(0) + varint(1) + varint(2) + varint(3)
    frames = (b"\x01" + crypto_frame(90, c) + b"\x00" * 7 + ack + crypto_frame(0, a) + ack_ecn
              + crypto_frame(40, b) + crypto_frame(0, a[:10]))  # a duplicate overlapping fragment
    assert quic.initial_sni(protect(bytes(8), frames)) == "ooo.example"


def test_crypto_gap_before_the_sni_loses_it():
    data = hello(b"gap.example")
    at = data.index(b"gap.example")
    frames = crypto_frame(0, data[:20]) + crypto_frame(30, data[30:])  # bytes 20..29 missing
    assert at > 30 and quic.initial_sni(protect(bytes(8), frames)) is None


def test_wrong_tag_is_tolerated():
    packet = bytearray(protect(bytes(range(8)), crypto_frame(0, hello(b"tag.example"))))
    packet[-1] ^= 0xFF
    assert quic.initial_sni(bytes(packet)) == "tag.example"


def test_unknown_frame_stops_the_walk():
    frames = b"\x1e" + crypto_frame(0, hello())  # HANDSHAKE_DONE is not allowed in an Initial
    assert quic.initial_sni(protect(bytes(8), frames)) is None


@pytest.mark.parametrize("mutate", [
    lambda p: bytes([p[0] & 0x7F]) + p[1:],                 # short header
    lambda p: bytes([p[0] | 0x20]) + p[1:],                 # Handshake packet type
    lambda p: p[:1] + b"\xff\x00\x00\x1d" + p[5:],          # another version
    lambda p: p[:1] + b"\x00\x00\x00\x00" + p[5:],          # version negotiation
    lambda p: p[:5] + b"\x15" + p[6:],                      # DCID of 21 bytes
    lambda p: p[:5] + b"\x04" + p[6:],                      # DCID shorter than 8
    lambda p: p[:200],                                      # Length beyond the datagram
    lambda p: p[:30],
])
def test_fast_rejects(mutate):
    packet = protect(bytes(range(8)), crypto_frame(0, hello()))
    assert quic.initial_sni(packet) == "quic.example"
    assert quic.initial_sni(mutate(packet)) is None


def test_truncated_at_every_byte():
    packet = protect(bytes(range(10)), crypto_frame(0, hello(b"cut.example")))
    for cut in range(len(packet)):
        assert quic.initial_sni(packet[:cut]) is None, cut
    assert quic.initial_sni(packet + b"\x00" * 30) == "cut.example"  # a coalesced tail is ignored


def test_random_and_mutated_never_raise():
    rng = random.Random(6)
    base = protect(bytes(range(8)), crypto_frame(0, hello(b"fuzz.example")))
    for i in range(10000):
        if i % 2:
            data = bytes([0xC0 | rng.randrange(4)]) + b"\x00\x00\x00\x01\x08" + rng.randbytes(rng.randrange(0, 300))
        else:
            mutable = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable)
        got = quic.initial_sni(data)
        assert got is None or got == "fuzz.example" or (got.isascii() and len(got) <= 253)
        quic.crypto_stream(rng.randbytes(rng.randrange(0, 64)))


# --- ClientHello over several Initial packets -------------------------------------------------------

def big_hello(host: bytes) -> bytes:
    key_share = ext(51, b"\x04\xc4" + b"\x11\xec\x04\xc0" + b"\x66" * 1216)
    return client_hello_handshake(host, before=(key_share, ext(21, b"\x00" * 200)))


def test_initials_reassemble_across_packets_in_either_order():
    data = big_hello(b"Two.Example")
    dcid = bytes(range(20, 30))
    first = protect(dcid, crypto_frame(0, data[:1100]), pn=0)
    second = protect(dcid, crypto_frame(1100, data[1100:]), pn=1)
    assert quic.initial_sni(first) is None and quic.initial_sni(second) is None  # stateless: no luck
    initials = quic.Initials()
    assert initials.feed(first, now=1.0) is None and len(initials) == 1
    assert initials.feed(second, now=1.1) == "two.example" and len(initials) == 0
    assert initials.counters["reassembled"] == 1
    assert initials.feed(second, now=2.0) is None and len(initials) == 1  # a gap at 0: kept
    assert initials.feed(first, now=2.1) == "two.example" and len(initials) == 0


def test_initials_keep_no_state_when_one_packet_suffices():
    initials = quic.Initials()
    assert initials.feed(protect(bytes(8), crypto_frame(0, hello(b"one.example")))) == "one.example"
    assert initials.feed(protect(bytes(8), crypto_frame(0, client_hello_handshake(None)))) is None
    assert initials.feed(b"\x40" + bytes(100)) is None
    assert len(initials) == 0 and initials.counters["pending"] == 0


def test_initials_bounds():
    data = big_hello(b"bound.example")
    initials = quic.Initials(max_flows=3, max_bytes=1200, ttl=5.0)
    for i in range(5):
        initials.feed(protect(bytes([i]) * 8, crypto_frame(0, data[:1000])), now=0.0)
    assert len(initials) == 3 and initials.counters["evicted"] == 2
    dcid = bytes([4]) * 8
    assert initials.feed(protect(dcid, crypto_frame(1000, data[1000:1400])), now=1.0) is None
    assert initials.counters["too_big"] == 1 and len(initials) == 2
    initials.feed(protect(b"\x09" * 8, crypto_frame(0, data[:1000])), now=10.0)
    assert initials.counters["expired"] == 2 and len(initials) == 1
