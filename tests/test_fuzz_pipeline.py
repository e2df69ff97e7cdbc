"""Malformed input through the whole pipeline: 100,000+ random and mutated frames, for several
link types, must raise nothing out of the packet loop, count no internal error, and write no event."""

from __future__ import annotations

import os

from core.config import load_config
from core.detect.detector import Detector
from core.events.pipeline import EventPipeline
from core.events.sinks import MemorySink
from core.heuristics import Heuristics
from core.trails.store import TrailStore
from core.trails.whitelist import Whitelist
from tests import pcapgen as g

CORPUS_TRAILS = os.path.join(os.path.dirname(__file__), "data", "conformance", "trails.csv")


def test_random_and_mutated_frames(tmp_path):
    config = load_config(overrides={"LOG_DIR": str(tmp_path)})
    store = TrailStore.open(CORPUS_TRAILS, index_dir=str(tmp_path))
    sink = MemorySink()
    events = EventPipeline([sink], "fuzz")
    pipeline = Detector(config, store, events, heuristics=Heuristics(), whitelist=Whitelist.load(config))
    total = 0
    for linktype in (g.LINKTYPE_ETHERNET, g.LINKTYPE_LINUX_SLL, g.LINKTYPE_RAW, g.LINKTYPE_NULL, 276, 147):
        base = g.sample_frames(linktype if linktype != 147 else g.LINKTYPE_ETHERNET)
        frames = g.random_frames(8_000, seed=linktype) + g.mutated_frames(base, 12_000, seed=linktype)
        for n, frame in enumerate(frames):
            pipeline.process(linktype, 1_700_000_000 + n // 1000, n % 1000, frame)
        total += len(frames)
    events.close()
    assert total >= 100_000
    assert pipeline.errors == {}, next(iter(pipeline.first_errors.values()), "")
    assert sink.events == [], sink.lines[:5]
    assert sum(pipeline.decode_counters().values()) > 0  # garbage was seen and counted
