"""User-Agent trails end to end: a MISP feed (served over HTTP) with `user-agent` attributes -> the
trail update -> trails.csv `ua:` rows -> the sensor replaying a capture file of HTTP requests:
one `UA` event naming the MISP source, generic values refused by the row validation."""

from __future__ import annotations

from core.update.orchestrate import UpdateStatus
from tests.kit import pcapgen as g
from tests.kit.intel_peers import (
    intel_update,
    misp_attribute,
    misp_event,
    serve_directory,
    trail_rows,
    write_misp_feed,
)
from tests.kit.sensorkit import SensorKit

AGENT = "EvilLoader/3.2 (Windows NT 10.0; build 19045)"


def _capture(path: str, agents: list[str]) -> None:
    """One HTTP request per User-Agent, each on its own connection, written as a pcap."""
    packets = []
    for n, agent in enumerate(agents):
        session = g.TcpSession(client="10.0.0.5", server="93.184.216.34", sport=41000 + n)
        frames = session.handshake() + [session.client(g.http_request("GET", f"/update/{n}.bin",
                                                                       {"User-Agent": agent, "Accept": "*/*"},
                                                                       host="downloads.example.com"))]
        packets += [(1_700_000_000 + n + i / 1000, frame) for i, frame in enumerate(frames)]
    g.write_pcap(path, packets)


def test_misp_user_agent_attribute_becomes_a_ua_event(tmp_path):
    feed = tmp_path / "feed"
    feed.mkdir()
    event = misp_event("EvilLoader campaign", [
        misp_attribute("user-agent", AGENT),
        misp_attribute("user-agent", "Mozilla/5.0"),  # every browser's prefix: refused as too generic
        misp_attribute("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", to_ids=False),
    ], tags=('misp-galaxy:malpedia="EvilLoader"',))
    write_misp_feed(str(feed), [event])
    with serve_directory(str(feed)) as (base, _seen):
        result = intel_update(tmp_path, [f"misp-feed {base} name=circl"])
    assert result.status is UpdateStatus.PUBLISHED, result.message
    rows = trail_rows(result)
    assert rows["ua:" + AGENT] == ("evilloader (malware)", "misp:circl")
    assert "ua:Mozilla/5.0" not in rows
    assert result.rejected["misp:circl"] == {"user-agent too generic": 1}
    assert result.intel["intel:misp-feed:circl"]["skipped"] == {"to_ids false": 1}

    capture = str(tmp_path / "requests.pcap")
    # the listed User-Agent (sent in other capitals), a browser's, and the listed one with a suffix
    _capture(capture, [AGENT.upper(), "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                       AGENT + " extra"])
    with SensorKit(result.path, folder=str(tmp_path / "sensor"), EVENT_THROTTLE_MODE="off") as kit:
        kit.feed_pcap(capture)
        kit.close()
        events = [e for e in kit.events if e.type == "UA"]
    assert len(events) == 1, kit.events
    (hit,) = events
    assert (hit.trail, hit.info, hit.reference) == (AGENT.upper(), "evilloader (malware)", "misp:circl")
    assert (hit.src_ip, hit.dst_ip, hit.dst_port, hit.proto) == ("10.0.0.5", "93.184.216.34", 80, "TCP")
