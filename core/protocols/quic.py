"""QUIC client Initial decryption (RFC 9000/9001, QUIC v2 RFC 9369) -> ClientHello SNI.

Where it sits: detect.py calls `initial_sni()` on UDP payloads; the SNI host goes to the domain
check with proto UDP, like a TLS SNI. Initial packets are encrypted with keys anyone can derive
from the Destination Connection ID, so the ClientHello is readable to a passive observer.

Steps (never raises; None at the first thing that does not fit):
1. Fast reject: a long header (0b11 top bits), version 1 or 2, the Initial packet type of that
   version, a DCID of 8-20 bytes (the client chooses at least 8, RFC 9000 §7.2). Anything else
   costs a few byte comparisons.
2. Header fields: SCID, token (varint length), Length (varint); the packet must fit the payload.
   Only the first packet of a coalesced datagram is read (the client Initial comes first).
3. Keys: HKDF-Extract(version salt, DCID) -> "client in" -> key/iv/hp ("quic ..." labels for v1,
   "quicv2 ..." for v2), HKDF-Expand-Label done with stdlib HMAC-SHA256.
4. Header protection removed with AES-128-ECB over the 16-byte sample (`cryptography`, an optional
   package imported by `_ciphers()` when the first Initial gets this far, so a start without
   QUIC traffic never loads it; without it every Initial reads as None; core/ops/deps.py says
   so), then the payload is decrypted as AES-128-GCM does it: AES-CTR from counter block nonce||2. The 16-byte
   GCM tag is deliberately not verified: Initial keys are public (derived from the DCID on the
   wire), so the tag proves nothing against a forger, and real-world generators (including the
   conformance corpus packet) emit Initials whose tag is wrong but whose ClientHello servers and
   the original sensor read. Noise is rejected by the frame and ClientHello structure checks.
5. Frames: PADDING, PING, ACK (with ECN) and CRYPTO are understood; CRYPTO fragments may come in
   any order and are joined from offset 0 while contiguous. Any other frame type ends the walk.
6. `tls.handshake_sni()` on the joined bytes. `initial_sni()` is stateless: a ClientHello larger
   than one Initial packet (big post-quantum key shares) is read as far as this packet goes.
   The `Initials` helper keeps bounded per-DCID state to finish such ClientHellos across packets.
"""

from __future__ import annotations

import struct
from typing import Any

from core.digests import hmac_sha256
from core.protocols.flows import FlowTable
from core.protocols.tls import handshake_complete, handshake_sni

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF
SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_V1_HEAD = b"\x00\x00\x00\x01"
_V2_HEAD = b"\x6b\x33\x43\xcf"
MAX_CRYPTO_OFFSET = 64 * 1024

_PADDING, _PING, _ACK, _ACK_ECN, _CRYPTO = 0x00, 0x01, 0x02, 0x03, 0x06


class InitialKeys:
    """Client Initial packet protection keys for one DCID."""

    __slots__ = ("key", "iv", "hp")

    def __init__(self, key: bytes, iv: bytes, hp: bytes) -> None:
        self.key, self.iv, self.hp = key, iv, hp


def _ciphers() -> tuple[Any, Any, Any] | None:
    """`cryptography`'s (Cipher, algorithms, modes), imported on first use (a sensor that sees
    no QUIC never loads it); None when the optional package is missing: no QUIC Initial SNI."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        return None
    return Cipher, algorithms, modes


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1) with an empty context; one block suffices (length <= 32)."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return hmac_sha256(secret, info + b"\x01")[:length]


def client_initial_keys(dcid: bytes, version: int = VERSION_1) -> InitialKeys:
    """Derive the client Initial key, IV and header-protection key (RFC 9001 §5.2, RFC 9369 §3.3)."""
    v2 = version == VERSION_2
    initial_secret = hmac_sha256(SALT_V2 if v2 else SALT_V1, dcid)
    client_secret = _expand_label(initial_secret, b"client in", 32)
    prefix = b"quicv2 " if v2 else b"quic "
    return InitialKeys(_expand_label(client_secret, prefix + b"key", 16),
                       _expand_label(client_secret, prefix + b"iv", 12),
                       _expand_label(client_secret, prefix + b"hp", 16))


def _varint(data: bytes, off: int) -> tuple[int, int]:
    """(value, next offset); next offset -1 when the integer is cut."""
    if off >= len(data):
        return 0, -1
    first = data[off]
    size = 1 << (first >> 6)
    if off + size > len(data):
        return 0, -1
    value = first & 0x3F
    for i in range(1, size):
        value = (value << 8) | data[off + i]
    return value, off + size


def decrypt_initial(payload: bytes) -> bytes | None:
    """Plaintext frames of a client Initial packet at the start of a UDP payload, or None."""
    opened = open_initial(payload)
    return None if opened is None else opened[1]


def open_initial(payload: bytes) -> tuple[bytes, bytes] | None:
    """(DCID, plaintext frames) of a client Initial packet at the start of a UDP payload, or None."""
    n = len(payload)
    if n < 64:
        return None
    first = payload[0]
    if first & 0xC0 != 0xC0:
        return None
    head = payload[1:5]
    if head == _V1_HEAD:
        if first & 0x30 != 0x00:
            return None
        version = VERSION_1
    elif head == _V2_HEAD:
        if first & 0x30 != 0x10:
            return None
        version = VERSION_2
    else:
        return None
    dcid_len = payload[5]
    if not 8 <= dcid_len <= 20:
        return None
    off = 6 + dcid_len
    dcid = payload[6:off]
    scid_len = payload[off]
    if scid_len > 20:
        return None
    off += 1 + scid_len
    token_len, off = _varint(payload, off)
    if off < 0:
        return None
    off += token_len
    length, pn_off = _varint(payload, off)
    if pn_off < 0 or length < 21 or pn_off + length > n:
        return None

    ciphers = _ciphers()
    if ciphers is None:
        return None
    Cipher, algorithms, modes = ciphers
    keys = client_initial_keys(dcid, version)
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()  # noqa: S305 - RFC 9001 §5.4.3
    mask = encryptor.update(payload[pn_off + 4:pn_off + 20])
    first ^= mask[0] & 0x0F
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(payload[pn_off + i] ^ mask[1 + i] for i in range(pn_len))
    nonce = (int.from_bytes(keys.iv, "big") ^ int.from_bytes(pn_bytes, "big")).to_bytes(12, "big")
    decryptor = Cipher(algorithms.AES(keys.key), modes.CTR(nonce + b"\x00\x00\x00\x02")).decryptor()
    return dcid, decryptor.update(payload[pn_off + pn_len:pn_off + length - 16])


def crypto_stream(frames: bytes) -> bytes:
    """Join the CRYPTO frames of a decrypted Initial from offset 0 while contiguous."""
    return join_pieces(crypto_pieces(frames))


def crypto_pieces(frames: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of every CRYPTO frame of a decrypted Initial, in packet order."""
    pieces: list[tuple[int, bytes]] = []
    off = 0
    n = len(frames)
    while off < n:
        ftype = frames[off]
        if ftype == _PADDING:
            off = n - len(frames[off:].lstrip(b"\x00"))
            continue
        off += 1
        if ftype == _PING:
            continue
        if ftype == _CRYPTO:
            start, off = _varint(frames, off)
            if off < 0:
                break
            size, off = _varint(frames, off)
            if off < 0 or off + size > n:
                break
            if start <= MAX_CRYPTO_OFFSET:
                pieces.append((start, frames[off:off + size]))
            off += size
        elif ftype in (_ACK, _ACK_ECN):
            fields = 4  # largest acknowledged, delay, range count, first range
            ranges = -1
            for i in range(fields):
                value, off = _varint(frames, off)
                if off < 0:
                    break
                if i == 2:
                    ranges = value
            if off < 0 or not 0 <= ranges <= 256:
                break
            for _ in range(2 * ranges + (3 if ftype == _ACK_ECN else 0)):
                _value, off = _varint(frames, off)
                if off < 0:
                    break
            if off < 0:
                break
        else:
            break
    return pieces


def join_pieces(pieces: list[tuple[int, bytes]]) -> bytes:
    """The contiguous stream from offset 0 that (offset, data) pieces in any order make up."""
    pieces = sorted(pieces, key=lambda piece: piece[0])
    stream = bytearray()
    for start, data in pieces:
        if start > len(stream):
            break
        if start + len(data) > len(stream):
            stream += data[len(stream) - start:]
    return bytes(stream)


def initial_sni(payload: bytes) -> str | None:
    """SNI of the ClientHello carried by a QUIC v1/v2 client Initial packet, or None."""
    frames = decrypt_initial(payload)
    if frames is None:
        return None
    return handshake_sni(crypto_stream(frames))


class Initials(FlowTable):
    """Bounded reassembly of ClientHellos spread over several client Initial packets.

    Browsers' ClientHellos with post-quantum key shares exceed one Initial packet, and the
    extension order is randomised, so the SNI is often in the second packet. `feed(payload, now)`
    returns the SNI as soon as the CRYPTO bytes received so far (keyed by DCID, which the client
    keeps for all its Initials) reveal it. A DCID is kept only while its ClientHello is
    incomplete and shows no SNI; it is dropped when the SNI is found, when the ClientHello
    completes without one, beyond `max_bytes` of CRYPTO data, by LRU beyond `max_flows`, or
    after `ttl` seconds of packet time idle. Outcomes are counted in `counters`.
    """

    outcomes = ("pending", "reassembled", "no_sni", "too_big")

    def __init__(self, max_flows: int = 4096, max_bytes: int = 16 * 1024, ttl: float = 10.0) -> None:
        super().__init__(max_flows, max_bytes, ttl)

    def feed(self, payload: bytes, now: float = 0.0) -> str | None:
        """Add one UDP payload; the SNI once readable, else None (non-Initials cost a fast reject)."""
        opened = open_initial(payload)
        if opened is None:
            return None
        dcid, frames = opened
        pieces = crypto_pieces(frames)
        entry = self._flows.pop(dcid, None)
        if entry is not None:
            pieces = entry[0] + pieces
        stream = join_pieces(pieces)
        sni = handshake_sni(stream)
        if sni is not None or not pieces or handshake_complete(stream):
            if entry is not None:
                self.counters["reassembled" if sni is not None else "no_sni"] += 1
            return sni
        if sum(len(data) for _off, data in pieces) > self.max_bytes:
            self.counters["too_big"] += 1
            return None
        if entry is None:
            self._make_room(now)
            self.counters["pending"] += 1
        self._flows[dcid] = (pieces, now)
        return None

