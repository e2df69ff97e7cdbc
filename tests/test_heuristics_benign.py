"""False-positive check: a few thousand packets of ordinary browsing (DNS, HTTPS, HTTP), written to a
pcap and replayed through the production sensor (tests/kit: the offline capture source into
build_sensor) with heuristics on, must detect nothing: no event written, and none emitted only to be
dropped by the whitelist or ignore filters."""

import os
import random

from tests.kit import SensorKit
from tests.kit import pcapgen as g

CORPUS_TRAILS = os.path.join(os.path.dirname(__file__), "data", "conformance", "trails.csv")
SITES = ["news.example.org", "shop.example.net", "mail.example.com", "video.example.tv", "docs.python.org",
         "en.wikipedia.org", "www.debian.org", "static.cdn-provider.net", "api.weather.example.net", "maps.example.org"]
PATHS = ["/", "/index.html", "/css/site.css?v=12", "/js/app.js", "/img/logo.png", "/search?q=weather+tomorrow",
         "/products?id=42&sort=price", "/article/2024/05/hello-world", "/login?next=/account", "/api/v2/items?page=3"]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def browsing(seed=1, clients=8, seconds=120):
    rng = random.Random(seed)
    packets = []
    t = 1_700_000_000.0
    for step in range(seconds * 4):
        t += 0.25
        client = f"10.0.0.{10 + rng.randrange(clients)}"
        site = rng.choice(SITES)
        server = f"93.184.{rng.randrange(1, 200)}.{rng.randrange(1, 250)}"
        sport = 40000 + step % 20000
        packets.append((t, g.ether(g.ipv4(client, "10.0.0.1", g.udp(sport, 53, g.dns_query(site))))))
        packets.append((t, g.ether(g.ipv4("10.0.0.1", client, g.udp(53, sport, g.dns_response(site, [("A", server)]))))))
        packets.append((t, g.ether(g.ipv4(client, server, g.tcp(sport, 443, flags=g.SYN)))))
        packets.append((t, g.ether(g.ipv4(server, client, g.tcp(443, sport, flags=0x12)))))
        packets.append((t, g.ether(g.ipv4(client, server, g.tcp(sport, 443, flags=0x10)))))
        if rng.random() < 0.4:
            path = rng.choice(PATHS)
            request = g.http_request(path=path, host=site, headers={"User-Agent": UA, "Accept": "*/*"})
            packets.append((t, g.ether(g.ipv4(client, server, g.tcp(sport + 1, 80, flags=g.SYN)))))
            packets.append((t, g.ether(g.ipv4(client, server, g.tcp(sport + 1, 80, flags=0x18, payload=request)))))
            reply = g.http_response(headers={"Content-Type": "text/html; charset=utf-8", "Server": "nginx"},
                                    body=b"<html><title>Welcome</title></html>")
            packets.append((t, g.ether(g.ipv4(server, client, g.tcp(80, sport + 1, flags=0x18, payload=reply)))))
        if rng.random() < 0.2:  # QUIC / NTP chatter
            packets.append((t, g.ether(g.ipv4(server, client, g.udp(443, sport + 2, b"\x40" + bytes(40))))))
            packets.append((t, g.ether(g.ipv4(client, "162.159.200.1", g.udp(123, 123, bytes(48))))))
    return packets


def test_benign_browsing_produces_no_event(tmp_path):
    packets = browsing()
    assert len(packets) > 2500
    pcap = g.write_pcap(str(tmp_path / "benign.pcap"), packets)
    kit = SensorKit(CORPUS_TRAILS, folder=str(tmp_path), USE_HEURISTICS=True, CHECK_MISSING_HOST=True)
    kit.feed_pcap(pcap)
    kit.close()
    assert kit.errors == {}
    assert kit.lines == []
    assert kit.sensor.events.emitted == 0  # nothing detected, not merely filtered
