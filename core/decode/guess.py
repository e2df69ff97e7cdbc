"""IP-offset inference for link types the decoder does not know.

Where it sits: decode, only when the capture's link type is not in `link.LINK_PARSERS`. Each
frame's candidate offsets 0..MAX_GUESS_OFFSET are scored as "an IPv4/IPv6 header starts here";
once two consecutive frames agree on their best offset it is locked for the rest of the capture
(frames before the lock are not decoded and are counted by the decoder as "offset_unknown").
"""

from __future__ import annotations

import struct

MAX_GUESS_OFFSET = 64
MIN_SCORE = 3
_U16S = [struct.Struct(f">{n}H") for n in range(31)]
_KNOWN_PROTOS = frozenset((1, 6, 17, 58, 0, 43, 44, 47, 50, 51, 60, 132))


def score_ipv4(buf: bytes, pos: int, end: int) -> int:
    if pos + 20 > end:
        return 0
    vihl = buf[pos]
    ihl = (vihl & 15) * 4
    if vihl >> 4 != 4 or ihl < 20 or pos + ihl > end:
        return 0
    total = (buf[pos + 2] << 8) | buf[pos + 3]
    if total < ihl or pos + total > end:
        return 0
    score = 1
    words = _U16S[ihl // 2].unpack_from(buf, pos)
    csum = sum(words)
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    if csum == 0xFFFF:
        score += 3
    if pos + total == end:
        score += 1
    if buf[pos + 9] in _KNOWN_PROTOS:
        score += 1
    return score


def score_ipv6(buf: bytes, pos: int, end: int) -> int:
    if pos + 40 > end or buf[pos] >> 4 != 6:
        return 0
    plen = (buf[pos + 4] << 8) | buf[pos + 5]
    if pos + 40 + plen > end:
        return 0
    score = 1
    if pos + 40 + plen == end:
        score += 2
    if buf[pos + 6] in _KNOWN_PROTOS:
        score += 1
    return score


def best_offset(buf: bytes, off: int, end: int) -> int:
    """Relative offset of the most plausible IP header in this frame, or -1 when none scores enough."""
    best, best_score = -1, MIN_SCORE - 1
    last = min(MAX_GUESS_OFFSET, end - off - 20)
    for rel in range(last + 1):
        pos = off + rel
        version = buf[pos] >> 4
        if version == 4:
            score = score_ipv4(buf, pos, end)
        elif version == 6:
            score = score_ipv6(buf, pos, end)
        else:
            continue
        if score > best_score:
            best, best_score = rel, score
    return best


class OffsetGuesser:
    """Locks the link-header length of an unknown link type once two consecutive frames agree."""

    def __init__(self) -> None:
        self.locked: int | None = None
        self._previous = -1

    def feed(self, buf: bytes, off: int, end: int) -> int:
        """Relative IP offset once locked (this frame included), else -1."""
        if self.locked is not None:
            return self.locked
        rel = best_offset(buf, off, end)
        if rel >= 0 and rel == self._previous:
            self.locked = rel
            return rel
        self._previous = rel
        return -1
