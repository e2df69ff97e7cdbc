"""Bounded state: a flood of spoofed sources/names plateaus every table at its cap (counted), the
attacker cannot evict his own evidence, and exact trail detection still fires (production sensor,
tests/kit)."""

import random

from tests.kit import SensorKit
from tests.kit import pcapgen as g

T0 = 1_700_000_000
CAP = 500


def test_flood_plateaus_tables_and_detection_survives(tmp_path):
    kit = SensorKit([("66.66.66.66", "malware (test)", "(static)")], folder=str(tmp_path), USE_HEURISTICS=True)
    engine = kit.sensor.heuristics
    for table in (*engine.scan.tables(), engine.http.web):
        table.max_keys = CAP
    rng = random.Random(7)
    scanner = "203.0.113.9"
    sizes = []
    for i in range(6000):
        sec = T0 + i // 1000
        if i % 500 == 0:  # the real scanner keeps going during the flood
            for port in range(i // 500 * 3, i // 500 * 3 + 3):
                kit.feed(g.ether(g.ipv4(scanner, "198.51.100.7", g.tcp(40000, 1000 + port))), sec)
        src = f"100.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        frame = g.ether(g.ipv4(src, "198.51.100.7", g.tcp(rng.randrange(1024, 65535), rng.randrange(1, 65535))))
        kit.feed(frame, sec)
        frame = g.ether(g.ipv4(src, "198.51.100.7", g.udp(40000, rng.randrange(1, 1024), b"x")))
        kit.feed(frame, sec)
        name = f"{rng.getrandbits(40):x}.flood{rng.randrange(100000)}.net"
        kit.feed(g.ether(g.ipv4("8.8.8.8", "203.0.113.5", g.udp(53, 40000, g.dns_response(name, rcode=3)))), sec)
        sizes.append(len(engine.scan.ports))
    kit.feed(g.ether(g.ipv4("10.0.0.66", "66.66.66.66", g.tcp(50000, 443))), T0 + 7)
    kit.close()
    stats = engine.stats()
    assert max(sizes) <= CAP
    for name in ("port_scanning", "udp_scanning"):
        assert stats[name]["keys"] <= CAP
        assert stats[name]["refused"] + stats[name]["evicted"] > 0, stats[name]
    assert stats["nxdomain"]["keys"] <= stats["nxdomain"]["max_keys"]
    assert stats["dga_cache"]["keys"] <= stats["dga_cache"]["max_keys"]
    infos = [(e.trail, e.info) for e in kit.events]
    assert (scanner, "potential port scanning") in infos, "flood evicted the scanner's own evidence"
    assert ("66.66.66.66", "malware (test)") in infos
    assert not kit.errors
