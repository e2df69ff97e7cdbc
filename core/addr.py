"""Address helpers shared by every stage: packed <-> text, private/loopback tests, CIDR parsing, range lookup.

Where it sits: decode produces packed addresses (4 or 16 bytes); detect, heuristics and sinks
render them to text with `ip_text` only when an event is written. IPv6 text is RFC 5952.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Sequence

_AF = {4: socket.AF_INET, 16: socket.AF_INET6}


def ip_text(packed: bytes) -> str:
    """Dotted quad for 4 bytes, RFC 5952 text for 16 bytes."""
    return socket.inet_ntop(_AF[len(packed)], packed)


def ip_packed(text: str) -> bytes | None:
    """Packed form of an IPv4/IPv6 literal (any valid v6 spelling), or None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_pton(family, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def is_ip(text: str) -> bool:
    return ip_packed(text) is not None


def is_loopback(text: str) -> bool:
    """A loopback address (127.0.0.0/8, ::1) given as text; False for anything else."""
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def is_local(packed: bytes) -> bool:
    """RFC 1918 / loopback / link-local / unique-local (the original's `is_local`, extended to v6)."""
    if len(packed) == 4:
        a, b = packed[0], packed[1]
        return a == 10 or a == 127 or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168) or (a == 169 and b == 254)
    return packed == b"\x00" * 15 + b"\x01" or packed[0] & 0xFE == 0xFC or (packed[0] == 0xFE and packed[1] & 0xC0 == 0x80)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR or a single address as a network (host bits masked), or None when malformed."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def range_label(starts: Sequence[int], rows: Sequence[tuple[int, str]], value: int) -> str | None:
    """The label of the range holding `value` in sorted, non-overlapping ranges: `starts[i]` is the
    first address of range i, `rows[i]` its (last address, label). The country table and the address
    lists (datacenter, worst-ASN ranges) answer through it."""
    index = bisect.bisect_right(starts, value) - 1
    if index < 0:
        return None
    last, label = rows[index]
    return label if value <= last else None

