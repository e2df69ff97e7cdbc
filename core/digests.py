"""Message digests for the sensor's own work: a TLS certificate's SHA-1, the JA3/JA3S/JA4 hashes,
the QUIC Initial key derivation (HMAC-SHA256) and the trail index's file name.

Where it sits: a leaf used by core/protocols and core/trails. They take CPython's built-in hash
modules rather than hashlib or hmac: importing either loads OpenSSL's libcrypto, about 3.5 MiB
resident for a process that only ever hashes a few short byte strings. Where those modules are
absent (another Python build) hashlib serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["hmac_sha256", "md5", "sha1", "sha256"]

Constructor = Callable[..., Any]


def _constructor(name: str, *modules: str) -> Constructor:
    """`name` from the first of `modules` this Python has (its own implementation), else hashlib's."""
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError:
            continue
    import hashlib

    return getattr(hashlib, name)


md5 = _constructor("md5", "_md5")
sha1 = _constructor("sha1", "_sha1")
sha256 = _constructor("sha256", "_sha2", "_sha256")    # _sha2 from Python 3.12 on

_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) of `msg` under `key`: what hmac.digest(key, msg, "sha256") returns."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    inner = sha256(key.translate(_IPAD) + msg).digest()
    return bytes(sha256(key.translate(_OPAD) + inner).digest())
