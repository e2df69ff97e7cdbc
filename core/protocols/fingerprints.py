"""TLS client and server fingerprints: JA3 and JA4 of a ClientHello, JA3S of a ServerHello.

Where it sits: core/detect/detector.py hands the whole ClientHello message (handshake bytes,
reassembled across TCP segments by `tls.ClientHellos`, exactly as for the SNI) to
`client_hello_fields()`, then looks `ja3()` and `ja4()` up in the trail store; the first ServerHello
of a server flight goes to `server_hello_ja3s()`. Only packets that carry a ClientHello or a
ServerHello pay for this. `fingerprint_kind()` is the one rule saying which trail keys are
fingerprints (core/update/sanity.py accepts them; they are not DNS names).

Definitions (docs/trails.md, "TLS fingerprints"):
- JA3 = MD5 of `version,ciphers,extensions,groups,point_formats`: decimal values joined by `-`,
  the ClientHello's legacy version, extension types in wire order, with GREASE values (RFC 8701,
  0x?a?a) removed from every list.
- JA3S = MD5 of `version,cipher,extensions` of the ServerHello (decimal, `-` joined).
- JA4 = `a_b_c`: a = `t` (TCP), the highest supported version (`13`, `12`, ... or the legacy
  version when supported_versions is absent), `d` with an SNI / `i` without, the cipher and
  extension counts (two digits each, GREASE excluded, capped at 99), the first and last
  character of the first ALPN value (`00` without ALPN; hex digits when either is not
  alphanumeric); b = first 12 hex of SHA-256 of the sorted cipher list (4-digit hex, `,` joined);
  c = first 12 hex of SHA-256 of the sorted extension list without SNI (0) and ALPN (16), then
  `_` and the signature algorithms in wire order when there are any. An empty list hashes as
  twelve zeros.
Parsers take bytes and return a record or None on malformed input; they never raise.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from core.digests import md5, sha256

CLIENT_HELLO = 1
SERVER_HELLO = 2
EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0200: "s2",
                0x0100: "s1", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}
EMPTY_HASH = "000000000000"
_JA3 = re.compile(r"[0-9a-f]{32}\Z")
_SHA1 = re.compile(r"[0-9a-f]{40}\Z")
_JA4 = re.compile(r"[tqd](?:13|12|11|10|s3|s2|s1|d1|d2|d3|00)[di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}\Z")


class ClientHelloFields(NamedTuple):
    """What the fingerprints read from one ClientHello (lists in wire order, GREASE included)."""

    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    groups: tuple[int, ...]
    point_formats: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    supported_versions: tuple[int, ...]
    alpn: bytes  # the first ALPN protocol name, b"" when none


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))  # RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values 0x0a0a, 0x1a1a, ... 0xfafa."""
    return value in GREASE


def fingerprint_kind(key: str) -> str | None:
    """`ja3` (32 hex: JA3 or JA3S MD5), `cert` (40 hex: certificate SHA-1), `ja4`, or None."""
    if _JA3.match(key):
        return "ja3"
    if _SHA1.match(key):
        return "cert"
    if _JA4.match(key):
        return "ja4"
    return None


def _u16s(data: bytes, off: int, end: int) -> tuple[int, ...]:
    return tuple((data[i] << 8) | data[i + 1] for i in range(off, end - 1, 2))


def _extensions(data: bytes, off: int, end: int) -> list[tuple[int, int, int]] | None:
    """(type, start, end) of each extension in data[off:end]; None when the framing is broken."""
    found: list[tuple[int, int, int]] = []
    while off < end:
        if off + 4 > end:
            return None
        ext_type = (data[off] << 8) | data[off + 1]
        size = (data[off + 2] << 8) | data[off + 3]
        off += 4
        if off + size > end:
            return None
        found.append((ext_type, off, off + size))
        off += size
    return found


def _vector16(data: bytes, start: int, end: int) -> tuple[int, ...]:
    """A u16-length-prefixed list of u16 values inside one extension (cut to the extension)."""
    if start + 2 > end:
        return ()
    stop = min(end, start + 2 + ((data[start] << 8) | data[start + 1]))
    return _u16s(data, start + 2, stop)


def _hello_start(hs: bytes, kind: int) -> tuple[int, int, int] | None:
    """A whole hello message of type `kind`: (its end, legacy version, the offset after the random
    and the session id); None when it is of another type, cut or malformed."""
    n = len(hs)
    if n < 4 + 38 or hs[0] != kind:
        return None
    end = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3])
    if end > n:
        return None
    off = 4 + 2 + 32
    return end, (hs[4] << 8) | hs[5], off + 1 + hs[off]


def _extension_block(hs: bytes, off: int, end: int) -> list[tuple[int, int, int]] | None:
    """The extensions of a hello whose extension block (optional) starts at `off`: [] when there is
    none, None when it runs past `end` or is malformed."""
    if off + 2 > end:
        return []
    ext_end = off + 2 + ((hs[off] << 8) | hs[off + 1])
    if ext_end > end:
        return None
    return _extensions(hs, off + 2, ext_end)


def client_hello_fields(hs: bytes) -> ClientHelloFields | None:
    """Fields of a whole ClientHello handshake message (type byte first); None when malformed."""
    head = _hello_start(hs, CLIENT_HELLO)
    if head is None:
        return None
    end, version, off = head
    if off + 2 > end:
        return None
    size = (hs[off] << 8) | hs[off + 1]
    if size & 1 or off + 2 + size > end:
        return None
    ciphers = _u16s(hs, off + 2, off + 2 + size)
    off += 2 + size
    if off + 1 > end:
        return None
    off += 1 + hs[off]  # compression methods
    if off > end:
        return None
    exts = _extension_block(hs, off, end)
    if exts is None:
        return None
    groups: tuple[int, ...] = ()
    formats: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    versions: tuple[int, ...] = ()
    alpn = b""
    for ext_type, start, stop in exts:
        if ext_type == EXT_SUPPORTED_GROUPS:
            groups = _vector16(hs, start, stop)
        elif ext_type == EXT_POINT_FORMATS and start < stop:
            formats = tuple(hs[start + 1:min(stop, start + 1 + hs[start])])
        elif ext_type == EXT_SIGNATURE_ALGORITHMS:
            sigalgs = _vector16(hs, start, stop)
        elif ext_type == EXT_SUPPORTED_VERSIONS and start < stop:
            versions = _u16s(hs, start + 1, min(stop, start + 1 + hs[start]))
        elif ext_type == EXT_ALPN and start + 3 <= stop:
            first = hs[start + 2]
            alpn = bytes(hs[start + 3:min(stop, start + 3 + first)])
    return ClientHelloFields(version, ciphers, tuple(e[0] for e in exts), groups, formats, sigalgs, versions,
                             alpn)


def _dashed(values: tuple[int, ...]) -> str:
    return "-".join([str(v) for v in values if v not in GREASE])


def ja3_text(fields: ClientHelloFields) -> str:
    """The JA3 string before hashing (e.g. `771,4865-4866,0-11-10,29-23,0`)."""
    return ",".join((str(fields.version), _dashed(fields.ciphers), _dashed(fields.extensions),
                     _dashed(fields.groups), "-".join(str(v) for v in fields.point_formats)))


def ja3(fields: ClientHelloFields) -> str:
    """Lower-case hex MD5 of the JA3 string: the form JA3 trails are written in."""
    return md5(ja3_text(fields).encode("ascii"), usedforsecurity=False).hexdigest()


def _hash12(text: str) -> str:
    return sha256(text.encode("ascii")).hexdigest()[:12]


def _alpn_code(alpn: bytes) -> str:
    if not alpn:
        return "00"
    first, last = alpn[0], alpn[-1]
    if chr(first).isascii() and chr(first).isalnum() and chr(last).isascii() and chr(last).isalnum():
        return chr(first) + chr(last)
    return f"{first:02x}"[0] + f"{last:02x}"[1]


def ja4(fields: ClientHelloFields, transport: str = "t") -> str:
    """The JA4 fingerprint (`t13d1516h2_8daaf6152771_e5627efa2ab1`): transport `t` TCP, `q` QUIC."""
    ciphers = [c for c in fields.ciphers if c not in GREASE]
    exts = [e for e in fields.extensions if e not in GREASE]
    versions = [v for v in fields.supported_versions if v not in GREASE]
    version = JA4_VERSIONS.get(max(versions) if versions else fields.version, "00")
    sni = "d" if EXT_SERVER_NAME in exts else "i"
    head = f"{transport}{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_alpn_code(fields.alpn)}"
    part_b = _hash12(",".join([f"{c:04x}" for c in sorted(ciphers)])) if ciphers else EMPTY_HASH
    hashed = sorted(e for e in exts if e not in (EXT_SERVER_NAME, EXT_ALPN))
    if hashed:
        text = ",".join([f"{e:04x}" for e in hashed])
        sigalgs = [s for s in fields.signature_algorithms if s not in GREASE]
        if sigalgs:
            text += "_" + ",".join([f"{s:04x}" for s in sigalgs])
        part_c = _hash12(text)
    else:
        part_c = EMPTY_HASH
    return f"{head}_{part_b}_{part_c}"


def server_hello_ja3s(hs: bytes) -> str | None:
    """JA3S (lower-case hex MD5) of a whole ServerHello handshake message; None when malformed."""
    head = _hello_start(hs, SERVER_HELLO)
    if head is None:
        return None
    end, version, off = head
    if off + 3 > end:
        return None
    cipher = (hs[off] << 8) | hs[off + 1]
    exts = _extension_block(hs, off + 3, end)  # after the cipher suite and compression method
    if exts is None:
        return None
    text = f"{version},{cipher},{'-'.join(str(e[0]) for e in exts)}"
    return md5(text.encode("ascii"), usedforsecurity=False).hexdigest()
