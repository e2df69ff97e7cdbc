"""Malformed input through the whole production sensor (tests/kit: build_sensor): 100,000+ random
and mutated frames, for several link types, must raise nothing out of the packet loop and count no
internal error. Without heuristics they write no event; with heuristics on, mutated frames may
look like scans (ports and paths are mutated), so only heuristic events may appear."""

from __future__ import annotations

import os

import pytest

from tests.kit import SensorKit
from tests.kit import pcapgen as g

CORPUS_TRAILS = os.path.join(os.path.dirname(__file__), "data", "conformance", "trails.csv")


@pytest.mark.parametrize("heuristics", [False, True])
def test_random_and_mutated_frames(tmp_path, heuristics):
    kit = SensorKit(CORPUS_TRAILS, folder=str(tmp_path), USE_HEURISTICS=heuristics)
    total = 0
    for linktype in (g.LINKTYPE_ETHERNET, g.LINKTYPE_LINUX_SLL, g.LINKTYPE_RAW, g.LINKTYPE_NULL, 276, 147):
        base = g.sample_frames(linktype if linktype != 147 else g.LINKTYPE_ETHERNET)
        frames = g.random_frames(8_000, seed=linktype) + g.mutated_frames(base, 12_000, seed=linktype)
        for n, frame in enumerate(frames):
            kit.feed(frame, 1_700_000_000 + n // 1000 + (n % 1000) / 1e6, linktype)
        total += len(frames)
    kit.close()
    assert total >= 100_000
    assert kit.errors == {}, next(iter(kit.errors.values()), "")
    assert [e for e in kit.events if not heuristics or e.reference != "(heuristic)"] == [], kit.lines[:5]
    assert sum(kit.detector.decode_counters().values()) > 0  # garbage was seen and counted
