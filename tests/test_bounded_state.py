"""Bounded state: a flood of spoofed sources/names plateaus every table at its cap (counted), the
attacker cannot evict his own evidence, and exact trail detection still fires."""

import random

from core.config import load_config
from core.detect.detector import Detector
from core.events.pipeline import EventPipeline
from core.events.sinks import MemorySink
from core.heuristics.engine import HeuristicEngine
from core.trails.store import TrailStore
from core.trails.whitelist import Whitelist
from tests import pcapgen as g

T0 = 1_700_000_000
CAP = 500


def test_flood_plateaus_tables_and_detection_survives(tmp_path):
    store = TrailStore.from_rows([("66.66.66.66", "malware (test)", "(static)")], str(tmp_path))
    config = load_config(overrides={"LOG_DIR": str(tmp_path), "USE_HEURISTICS": "true"})
    sink = MemorySink()
    events = EventPipeline([sink], "t")
    engine = HeuristicEngine(config, store, Whitelist(), events)
    for table in (*engine.scan.tables(), engine.http.web):
        table.max_keys = CAP
    pipeline = Detector(config, store, events, heuristics=engine, whitelist=Whitelist())
    rng = random.Random(7)
    scanner = "203.0.113.9"
    sizes = []
    for i in range(6000):
        sec = T0 + i // 1000
        if i % 500 == 0:  # the real scanner keeps going during the flood
            for port in range(i // 500 * 3, i // 500 * 3 + 3):
                pipeline.process(1, sec, 0, g.ether(g.ipv4(scanner, "198.51.100.7", g.tcp(40000, 1000 + port))))
        src = f"100.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        frame = g.ether(g.ipv4(src, "198.51.100.7", g.tcp(rng.randrange(1024, 65535), rng.randrange(1, 65535))))
        pipeline.process(1, sec, 0, frame)
        frame = g.ether(g.ipv4(src, "198.51.100.7", g.udp(40000, rng.randrange(1, 1024), b"x")))
        pipeline.process(1, sec, 0, frame)
        name = f"{rng.getrandbits(40):x}.flood{rng.randrange(100000)}.net"
        pipeline.process(1, sec, 0, g.ether(g.ipv4("8.8.8.8", "203.0.113.5", g.udp(53, 40000, g.dns_response(name, rcode=3)))))
        sizes.append(len(engine.scan.ports))
    pipeline.process(1, T0 + 7, 0, g.ether(g.ipv4("10.0.0.66", "66.66.66.66", g.tcp(50000, 443))))
    events.close()
    stats = engine.stats()
    assert max(sizes) <= CAP
    for name in ("port_scanning", "udp_scanning"):
        assert stats[name]["keys"] <= CAP
        assert stats[name]["refused"] + stats[name]["evicted"] > 0, stats[name]
    assert stats["nxdomain"]["keys"] <= stats["nxdomain"]["max_keys"]
    assert stats["dga_cache"]["keys"] <= stats["dga_cache"]["max_keys"]
    infos = [(e.trail, e.info) for e in sink.events]
    assert (scanner, "potential port scanning") in infos, "flood evicted the scanner's own evidence"
    assert ("66.66.66.66", "malware (test)") in infos
    assert not pipeline.errors
