"""OfflineSource over real pcap/pcapng files written by pcapgen: order, timestamps, link types,
snaplen, batching, damaged and invalid files."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import dpkt
import pytest

from core.capture import CaptureError, PacketSource, iter_meta
from core.capture.offline import OfflineSource
from core.decode import Decoder
from core.events.dayfile import day_of
from tests.kit import pcapgen as g

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frames_of(source) -> list[tuple[int, int, int, bytes]]:
    """(linktype, sec, usec, frame) for every packet the source yields."""
    out = []
    for linktype, buf, meta in source:
        for sec, usec, offset, caplen in iter_meta(meta):
            out.append((linktype, sec, usec, bytes(buf[offset:offset + caplen])))
    return out


def udp_frames(n: int, start: float, tag: str) -> list[tuple[float, bytes]]:
    return [(start + i * 0.001001, g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1000 + i, 53, f"{tag}{i}".encode()))))
            for i in range(n)]


def test_is_a_packet_source(tmp_path):
    path = g.write_pcap(str(tmp_path / "a.pcap"), udp_frames(1, 1.0, "a"))
    assert isinstance(OfflineSource([path]), PacketSource)


def test_several_files_in_order_with_own_timestamps_and_linktypes(tmp_path):
    a = udp_frames(700, 1_700_000_000.5, "a")  # more than one batch
    b = [(1_700_000_100.25, g.sll(g.ipv4("10.0.0.3", "10.0.0.4", g.tcp()))),
         (1_700_000_100.75, g.sll(g.ipv6("2001:db8::1", "2001:db8::2", g.tcp())))]
    c = udp_frames(3, 1_600_000_000.000001, "c")  # older than the files before: order is the given one
    paths = [g.write_pcap(str(tmp_path / "a.pcap"), a),
             g.write_pcap(str(tmp_path / "b.pcap"), b, linktype=g.LINKTYPE_LINUX_SLL),
             g.write_pcap(str(tmp_path / "c.pcap"), c)]
    source = OfflineSource(paths, batch_size=256)
    got = frames_of(source)
    expected = [(lt, round(ts * 1e6) // 1_000_000, round(ts * 1e6) % 1_000_000, f)
                for lt, packets in ((1, a), (113, b), (1, c)) for ts, f in packets]
    assert got == expected
    stats = source.stats()
    assert stats["files"] == 3 and stats["packets"] == 705 and stats["file_errors"] == 0
    assert stats["batches"] == 3 + 1 + 1
    assert stats["bytes"] == sum(len(f) for *_, f in expected)
    source.close()


def test_decoder_over_source_batches(tmp_path):
    packets = udp_frames(50, 10.0, "x")
    path = g.write_pcap(str(tmp_path / "x.pcap"), packets)
    decoded = []
    for linktype, buf, meta in OfflineSource([path], batch_size=16):
        decoder = Decoder(linktype)
        for _, _, offset, caplen in iter_meta(meta):
            d = decoder.decode(buf, offset, caplen)
            decoded.append((d.sport, d.buf[d.poff:d.pend]))
    assert decoded == [(1000 + i, f"x{i}".encode()) for i in range(50)]


def test_snaplen_truncates(tmp_path):
    big = g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"A" * 1000)))
    small = g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"B")))
    path = g.write_pcap(str(tmp_path / "s.pcap"), [(1.0, big), (2.0, small), (3.0, big)])
    source = OfflineSource([path], snaplen=100)
    got = frames_of(source)
    assert [f for *_, f in got] == [big[:100], small, big[:100]]
    assert source.stats()["truncated"] == 2
    # the truncated frame still decodes, with the payload cut at the snap length
    d = Decoder(1).decode(got[0][3], 0, 100)
    assert d is not None and d.buf[d.poff:d.pend] == b"A" * (100 - 42)


def test_file_snaplen_smaller_than_frames_is_respected(tmp_path):
    frame = g.ether(g.ipv4("10.0.0.1", "10.0.0.2", g.udp(1, 2, b"C" * 500)))
    path = g.write_pcap(str(tmp_path / "s.pcap"), [(1.0, frame)], snaplen=64)
    assert [f for *_, f in frames_of(OfflineSource([path]))] == [frame[:64]]


def test_nanosecond_pcap_and_pcapng(tmp_path):
    packets = [(1_700_000_000.125 + i * 0.25, f) for i, (_, f) in enumerate(udp_frames(3, 0.0, "n"))]
    ns = g.write_pcap(str(tmp_path / "ns.pcap"), packets, nanosecond=True)
    ng = str(tmp_path / "x.pcapng")
    with open(ng, "wb") as fh:
        writer = dpkt.pcapng.Writer(fh, linktype=1)
        for ts, frame in packets:
            writer.writepkt(frame, ts=ts)
    for path in (ns, ng):
        got = frames_of(OfflineSource([path]))
        assert [f for *_, f in got] == [f for _, f in packets]
        assert [(s, u) for _, s, u, _ in got] == [(1_700_000_000, 125000), (1_700_000_000, 375000),
                                                 (1_700_000_000, 625000)]


def test_wallclock_timestamps(tmp_path):
    path = g.write_pcap(str(tmp_path / "w.pcap"), udp_frames(5, 1000.0, "w"))
    got = frames_of(OfflineSource([path], timestamps="wallclock"))
    assert len(got) == 5 and all(sec > 1_600_000_000 for _, sec, _, _ in got)


@pytest.mark.parametrize("mode", ["pcap", "wallclock"])
def test_sensor_replay_writes_events_with_the_configured_timestamps(tmp_path, mode):
    """OFFLINE_TIMESTAMPS through the real sensor.py -r: pcap time (the default) or the wall clock."""
    pcap_sec = 1_500_000_000  # 2017: far from today, so the day file tells the two modes apart
    frames = [(pcap_sec + 0.25, g.ether(g.ipv4("10.0.0.66", "66.66.66.66", g.tcp(50000, 443, flags=g.SYN))))]
    pcap = g.write_pcap(str(tmp_path / "one.pcap"), frames)
    logs = tmp_path / "log"
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=os.path.join(CORPUS, "trails.csv"), MALTRAIL_LOG_DIR=str(logs),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_OFFLINE_TIMESTAMPS=mode)
    before = int(time.time())
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-r", pcap],
                          capture_output=True, text=True, env=env, timeout=60)
    after = int(time.time())
    assert proc.returncode == 0, proc.stderr
    files = glob.glob(str(logs / "*.log"))
    assert len(files) == 1, files
    with open(files[0], encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 1 and "66.66.66.66" in lines[0]
    stamp = time.mktime(time.strptime(lines[0][1:20], "%Y-%m-%d %H:%M:%S"))
    if mode == "pcap":
        assert os.path.basename(files[0]) == day_of(pcap_sec) + ".log" and stamp == pcap_sec
    else:
        assert os.path.basename(files[0]) in (day_of(before) + ".log", day_of(after) + ".log")
        assert before <= stamp <= after


def test_damaged_file_delivers_complete_packets_then_continues(tmp_path):
    packets = udp_frames(20, 50.0, "d")
    path = g.write_pcap(str(tmp_path / "d.pcap"), packets)
    with open(path, "rb+") as fh:
        fh.truncate(os.path.getsize(path) - 3)  # the last record is cut
    after = g.write_pcap(str(tmp_path / "e.pcap"), udp_frames(2, 60.0, "e"))
    source = OfflineSource([path, after], batch_size=8)
    got = [f for *_, f in frames_of(source)]
    assert got == [f for _, f in packets[:19]] + [f for _, f in udp_frames(2, 60.0, "e")]
    assert source.stats()["file_errors"] == 1
    assert len(source.errors) == 1 and "d.pcap" in source.errors[0]


@pytest.mark.parametrize("make,message", [
    (lambda d: str(d / "missing.pcap"), "not found"),
    (lambda d: str(d), "directory"),
    (lambda d: _write(d / "text.pcap", b"this is not a capture file\n" * 4), "not a readable pcap"),
    (lambda d: _write(d / "empty.pcap", b""), "not a readable pcap"),
    (lambda d: _write(d / "short.pcap", b"\xd4\xc3\xb2\xa1\x02\x00"), "not a readable pcap"),
])
def test_bad_files_raise_capture_error_before_replay(tmp_path, make, message):
    good = g.write_pcap(str(tmp_path / "good.pcap"), udp_frames(1, 1.0, "g"))
    bad = make(tmp_path)
    with pytest.raises(CaptureError) as info:
        OfflineSource([good, bad])
    text = str(info.value)
    assert message in text and bad in text and "\n" not in text


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = g.write_pcap(str(tmp_path / "p.pcap"), udp_frames(1, 1.0, "p"))
    os.chmod(path, 0)
    with pytest.raises(CaptureError, match="permission denied"):
        OfflineSource([path])


def test_no_files_and_bad_mode():
    with pytest.raises(CaptureError):
        OfflineSource([])
    with pytest.raises(CaptureError):
        OfflineSource([os.path.join(CORPUS, "clean_tcp.pcap")], timestamps="sometimes")


def test_close_stops_iteration(tmp_path):
    path = g.write_pcap(str(tmp_path / "c.pcap"), udp_frames(100, 1.0, "c"))
    source = OfflineSource([path, path], batch_size=10)
    it = iter(source)
    next(it)
    source.close()
    assert list(it) == []
    source.close()  # idempotent
    assert source.stats()["packets"] == 10


def test_conformance_corpus_packet_counts():
    with open(os.path.join(CORPUS, "manifest.json")) as fh:
        cases = json.load(fh)
    for case in cases:
        source = OfflineSource([os.path.join(CORPUS, case["pcap"])])
        got = frames_of(source)
        assert len(got) == case["packets"], case["name"]
        assert {lt for lt, *_ in got} <= {case["linktype"]}


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)
