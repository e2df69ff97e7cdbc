"""Decoder fuzzing: well over 100,000 random and mutated frames for several link types, packed into
batch buffers the way next_batch delivers them. No exception may escape, every record must stay
inside its own frame, and every None must be counted."""

from __future__ import annotations

import pytest

from core.decode import Decoder
from core.decode.packet import skipped
from tests.kit import pcapgen as g

LINKTYPES = [g.LINKTYPE_ETHERNET, g.LINKTYPE_LINUX_SLL, g.LINKTYPE_LINUX_SLL2, g.LINKTYPE_RAW,
             g.LINKTYPE_NULL, g.LINKTYPE_PPP, g.LINKTYPE_PFLOG, 147]  # 147: unknown, offset inferred
PER_LINKTYPE = 14_000  # x 8 link types = 112,000 frames, half random and half mutated


def check_batch(decoder: Decoder, frames: list[bytes]) -> int:
    buf = b"".join(frames) + b"\x45" * 64  # IP-looking tail: reading past a frame would show
    offset, records, nones = 0, 0, 0
    before = sum(skipped(decoder.counters).values())
    for frame in frames:
        end = offset + len(frame)
        d = decoder.decode(buf, offset, len(frame))
        if d is None:
            nones += 1
        else:
            records += 1
            assert d.family in (4, 6)
            assert len(d.src) == len(d.dst) == (4 if d.family == 4 else 16)
            assert 0 <= d.proto <= 255 and 0 <= d.sport <= 65535 and 0 <= d.dport <= 65535
            assert 0 <= d.flags <= 255
            assert offset <= d.poff <= d.pend <= end, (frame.hex(), d)
            assert d.buf is buf
        offset = end
    after = sum(skipped(decoder.counters).values())
    assert after - before == nones
    return records


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_random_and_mutated_frames_never_raise(linktype):
    decoder = Decoder(linktype)
    base = g.sample_frames(linktype if linktype != 147 else g.LINKTYPE_RAW)
    if linktype == 147:
        base = [b"\x99" * 6 + f for f in base]  # made-up 6-byte link header
        check_batch(decoder, base * 2)  # lets the decoder lock the offset first
        assert decoder.counters.get("linktype_offset_locked") == 1
    assert check_batch(decoder, base) == len(base)  # the unmutated bases all decode
    random = g.random_frames(PER_LINKTYPE // 2, seed=linktype)
    mutated = g.mutated_frames(base, PER_LINKTYPE // 2, seed=linktype + 1000)
    records = 0
    for start in range(0, len(random), 512):
        records += check_batch(decoder, random[start:start + 512])
        records += check_batch(decoder, mutated[start:start + 512])
    assert records > 0  # the mutants are close enough to real frames that many still decode


def test_generators_are_deterministic():
    assert g.random_frames(50, seed=3) == g.random_frames(50, seed=3)
    assert g.random_frames(50, seed=3) != g.random_frames(50, seed=4)
    base = g.sample_frames()
    assert g.mutated_frames(base, 50, seed=9) == g.mutated_frames(base, 50, seed=9)
    assert any(m not in base for m in g.mutated_frames(base, 50, seed=9))
