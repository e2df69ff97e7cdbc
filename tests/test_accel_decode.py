"""The compiled batch pre-dispatch (core/accel/_decode.c) against the pure-Python batch loop.

Two production sensors (tests/kit: build_sensor) replay the same capture batches, one with `_scan`
(the C walker) and one without (the Python loop, its specification): event lines, bulk-skip
counts, decoder counters and errors must be equal on the conformance corpus, on random and mutated Ethernet frames, and on bulk TLS
interleaved with TLS handshakes (the walker's hand-back of bulk packets to the live state).
"""

from __future__ import annotations

import glob
import os
import random
import zlib

import pytest

from core.accel import load
from core.trails.store import TrailStore
from tests.kit import SensorKit
from tests.kit import pcapgen as g

pytestmark = pytest.mark.skipif(load("_decode") is None, reason="core/accel/_decode.c is not built "
                                "(run tools/build_accel.py)")

CORPUS = os.path.join(os.path.dirname(__file__), "data", "conformance")
T0 = 1_700_000_000
LOCAL_ADDR = "10.0.0.5"
NOP_OPTIONS = b"\x01" * 4  # an IPv4 header of 24 bytes: the Python decoder reads the frame


def replay(paths, store, folder, accelerated, batch_size=64):
    kit = SensorKit(store, folder=folder)
    detector = kit.detector
    if not accelerated:
        detector._scan = None
    assert (detector._scan is not None) == accelerated
    for path in paths:
        kit.feed_pcap(path, batch_size=batch_size)
    kit.close()
    return kit.lines, detector.skipped_bulk, detector.decode_counters(), detector.errors


def assert_same(paths, store, folder, batch_size=64):
    fast = replay(paths, store, folder, True, batch_size)
    slow = replay(paths, store, folder, False, batch_size)
    assert fast[3] == slow[3] == {}
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    return fast


def test_conformance_corpus_same_as_python_loop(tmp_path):
    store = TrailStore.open(os.path.join(CORPUS, "trails.csv"), index_dir=str(tmp_path))
    paths = sorted(glob.glob(os.path.join(CORPUS, "*.pcap")))
    assert len(paths) >= 25
    for path in paths:  # one at a time: each case starts from fresh state, as in the corpus README
        lines, *_ = assert_same([path], store, str(tmp_path))
    total = assert_same(paths, store, str(tmp_path), batch_size=7)  # all in a row, odd batch boundaries
    assert total[0]  # the corpus detects things: the comparison is not between two empty lists


def test_random_and_mutated_ethernet_frames_same_as_python_loop(tmp_path):
    store = TrailStore.open(os.path.join(CORPUS, "trails.csv"), index_dir=str(tmp_path))
    frames = g.random_frames(4_000, seed=3) + g.mutated_frames(g.sample_frames(g.LINKTYPE_ETHERNET), 16_000, seed=4)
    random.Random(5).shuffle(frames)
    path = str(tmp_path / "fuzz.pcap")
    g.write_pcap(path, [(T0 + n / 500, frame) for n, frame in enumerate(frames)])
    lines, skipped, counters, _ = assert_same([path], store, str(tmp_path), batch_size=512)
    assert sum(counters.values()) > 0  # the Python decoder still saw and counted the odd frames


def test_bulk_around_tls_handshakes_same_as_python_loop(tmp_path):
    """Bulk TLS data interleaved with ClientHellos and certificate flights: C stops skipping at a
    handshake and hands bulk packets back flagged; the skip count must still equal the loop's."""
    from tests.test_tls import client_hello, ders_of, make_chain, server_flight

    ders = ders_of(make_chain())
    flight = server_flight(ders, record_size=700)
    rng = random.Random(9)
    frames = []
    for n in range(600):
        kind = rng.random()
        port = 40000 + n % 50
        if kind < 0.05:
            frames.append(g.ether(g.ipv4("10.0.0.5", "93.184.216.34",
                                         g.tcp(port, 443, 0x18, client_hello(f"site{n}.example".encode())))))
        elif kind < 0.08:
            for part in (flight[:300], flight[300:1400], flight[1400:]):
                frames.append(g.ether(g.ipv4("198.51.100.7", "10.0.0.5", g.tcp(443, port, 0x18, part))))
        else:
            frames.append(g.ether(g.ipv4("93.184.216.34", "10.0.0.5",
                                         g.tcp(443, port, 0x18, b"\x17\x03\x03\x00\x10" + bytes(16)))))
    path = str(tmp_path / "tls.pcap")
    g.write_pcap(path, [(T0 + n / 50, frame) for n, frame in enumerate(frames)])
    store = TrailStore.from_rows([(f"site{n}.example", "malware (test)", "(static)") for n in range(0, 600, 3)],
                                 str(tmp_path))
    for batch_size in (1, 16, 512):
        lines, skipped, _, _ = assert_same([path], store, str(tmp_path), batch_size)
        assert skipped > 0 and lines  # some bulk was skipped, some SNI was detected


def test_ip_prefilter_flag_keeps_every_ip_detection(tmp_path):
    """Packets whose addresses pass neither IP prefilter are flagged clean in C and skip their IP
    lookups; every IP, ip:port and resolver detection must still come out, exactly as in the loop,
    for listed sources and destinations, v4 and v6, SYN, UDP, DNS, ICMP and HTTP."""
    rows = [("198.51.100.7", "malware (test)", "(static)"), ("203.0.113.9:8443", "c2 (test)", "(static)"),
            ("2001:db8::66", "malware (test)", "(static)"), ("192.0.2.53", "bad resolver (test)", "(static)"),
            ("evil-test-domain.com", "malware (test)", "(static)")]
    store = TrailStore.from_rows(rows, str(tmp_path))
    assert store.ip_prefilter()[0] is not None
    rng = random.Random(11)
    listed = ["198.51.100.7", "203.0.113.9", "192.0.2.53"]
    frames = []
    for n in range(3000):
        other = f"93.184.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        peer = rng.choice(listed) if rng.random() < 0.1 else other
        kind = rng.randrange(6)
        port = 40000 + n
        if kind == 0:
            frames.append(g.ether(g.ipv4(LOCAL_ADDR, peer, g.tcp(port, rng.choice((80, 443, 8443)), 0x02))))
        elif kind == 1:
            frames.append(g.ether(g.ipv4(peer, LOCAL_ADDR, g.tcp(rng.choice((80, 8443)), port, 0x02))))
        elif kind == 2:
            frames.append(g.ether(g.ipv4(LOCAL_ADDR, peer, g.udp(port, 5000 + n % 7, b"x" * 30))))
        elif kind == 3:
            name = "evil-test-domain.com" if n % 50 == 0 else f"host{n}.example.org"
            frames.append(g.ether(g.ipv4(LOCAL_ADDR, peer, g.udp(port, 53, g.dns_query(name)))))
        elif kind == 4:
            frames.append(g.ether(g.ipv4(LOCAL_ADDR, peer, g.icmp())))
        else:
            frames.append(g.ether(g.ipv6("2001:db8::5", rng.choice(("2001:db8::66", "2001:db8::77")),
                                         g.tcp(port, 443, 0x02))))
    path = str(tmp_path / "ips.pcap")
    g.write_pcap(path, [(T0 + n / 100, frame) for n, frame in enumerate(frames)])
    lines, *_ = assert_same([path], store, str(tmp_path), batch_size=256)
    text = "\n".join(lines)
    for trail in ("198.51.100.7", "203.0.113.9:8443", "2001:db8::66", "192.0.2.53", "evil-test-domain.com"):
        assert trail in text, trail


def test_scan_rejects_meta_it_cannot_read():
    """Meta comes from the capture layer; anything but 4 uint32 per packet inside the buffer is a
    clear error, never a read outside the batch."""
    from array import array

    from core.decode.packet import Decoded
    from core.detect.detector import PARSED_FIRST_BYTES, SCAN_FLAGS

    scan = load("_decode")
    scan.init(Decoded, bytes(sorted(PARSED_FIRST_BYTES)), bytes(sorted(SCAN_FLAGS)))
    assert scan.scan(b"", array("I"), True, 0) == ([], 0, b"")
    for meta in (array("f", [0.0] * 4), array("I", [0, 0, 0]), array("I", [1, 0, 0, 99]),
                 array("I", [1, 0, 5, 0])):
        with pytest.raises(ValueError):
            scan.scan(b"abc", meta, True, 0)
    records, skipped, _ = scan.scan(b"abc", array("I", [7, 8, 0, 3]), True, 0)
    assert records == [(7, 8, 0, None, 0)] and skipped == 0  # too short: left to the Python decoder


def test_tunnelled_frames_same_as_python_loop(tmp_path):
    """Tunnels are opened by the Python decoder only: C hands UDP to the VXLAN/GENEVE ports back and
    never fast-decodes GRE, IP-in-IP or MPLS, so the wrapped corpus (every encapsulation of
    tests/kit/tunnelgen.py) and mutated tunnel frames give the loop's events, skips and counters."""
    from core.decode.packet import decapsulated
    from tests.kit import tunnelgen as t

    folder = str(tmp_path)
    store = TrailStore.open(os.path.join(CORPUS, "trails.csv"), index_dir=str(tmp_path))
    paths = sorted(glob.glob(os.path.join(CORPUS, "*.pcap")))
    for kind in t.KINDS:
        (tmp_path / kind).mkdir()
        wrapped = [t.wrap_pcap(kind, path, str(tmp_path / kind / os.path.basename(path))) for path in paths]
        lines, _, counters, _ = assert_same(wrapped, store, folder, batch_size=7)
        assert lines and decapsulated(counters), kind
    inner = g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN)))
    frames = [t.wrap(kind, inner, 1) for kind in t.KINDS]
    mutated = g.mutated_frames(frames, 8_000, seed=15)
    path = str(tmp_path / "tunnels.pcap")
    g.write_pcap(path, [(T0 + n / 500, frame) for n, frame in enumerate(frames * 20 + mutated)])
    lines, _, counters, _ = assert_same([path], store, folder, batch_size=512)
    assert lines and counters.get("tunnel_malformed") and counters.get("decap_vxlan")


def test_scan_hands_udp_tunnel_ports_back():
    from array import array

    from core.decode.packet import Decoded
    from core.detect.detector import PARSED_FIRST_BYTES, SCAN_FLAGS
    from tests.kit import tunnelgen as t

    scan = load("_decode")
    inner = g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN)))
    frames = [g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, g.udp(1, port, t.vxlan(inner)))) for port in (4789, 4790)]
    frames.append(g.ether(g.ipv6(t.OUTER6_A, t.OUTER6_B, g.udp(1, 4789, t.vxlan(inner)))))
    buf = b"".join(frames)
    meta, off = array("I"), 0
    for frame in frames:
        meta.extend((T0, 0, off, len(frame)))
        off += len(frame)
    scan.init(Decoded, bytes(sorted(PARSED_FIRST_BYTES)), bytes(sorted(SCAN_FLAGS)), b"\x12\xb5")  # 4789
    records, _, _ = scan.scan(buf, meta, True, 0)
    assert [d is None for _, _, _, d, _ in records] == [True, False, True]
    scan.init(Decoded, bytes(sorted(PARSED_FIRST_BYTES)), bytes(sorted(SCAN_FLAGS)))  # no tunnel ports
    records, _, _ = scan.scan(buf, meta, True, 0)
    assert [d is None for _, _, _, d, _ in records] == [False, False, False]
    with pytest.raises(ValueError):
        scan.init(Decoded, bytes(sorted(PARSED_FIRST_BYTES)), bytes(sorted(SCAN_FLAGS)), b"\x12")


def test_bulk_inside_tunnels_and_ipv6_same_as_python_loop(tmp_path):
    """The bulk test on decoded records (core.detect.bulk_record): bulk TLS carried by tunnels and
    over IPv6, interleaved with ClientHellos, is skipped in C exactly when the Python loop skips
    it, and the SNI detections inside the tunnels all come out."""
    from tests.kit import tunnelgen as t
    from tests.test_tls import client_hello

    rng = random.Random(21)
    kinds = ["vxlan", "geneve", "gre_ip", "erspan3", "ip_in_ip", "mpls_ip", "mpls_pw_cw", "vlan_gre_vxlan", None]
    frames = []
    for n in range(900):
        kind = rng.choice(kinds)
        port = 40000 + n % 40
        if rng.random() < 0.05:
            frame = g.ether(g.ipv4("10.0.0.5", "93.184.216.34", g.tcp(port, 443, 0x18,
                                                                      client_hello(f"site{n}.example".encode()))))
        elif rng.random() < 0.3:
            frame = g.ether(g.ipv6("2001:db8::5", "2001:db8::34", g.tcp(port, 443, 0x18,
                                                                        b"\x17\x03\x03\x00\x10" + bytes(16))))
        else:
            frame = g.ether(g.ipv4("93.184.216.34", "10.0.0.5", g.tcp(443, port, 0x18,
                                                                      b"\x17\x03\x03\x00\x10" + bytes(16))))
        frames.append(frame if kind is None else t.wrap(kind, frame, 1))
    path = str(tmp_path / "tunnelled-tls.pcap")
    g.write_pcap(path, [(T0 + n / 50, frame) for n, frame in enumerate(frames)])
    store = TrailStore.from_rows([(f"site{n}.example", "malware (test)", "(static)") for n in range(900)],
                                 str(tmp_path))
    folder = str(tmp_path)
    for batch_size in (1, 16, 512):
        lines, skipped, counters, _ = assert_same([path], store, folder, batch_size)
        assert skipped > 400 and len(lines) >= 20 and counters.get("decap_vxlan")


def test_clean_flag_is_the_stores_prefilters(tmp_path):
    """C flags a packet clean exactly when neither address passes the exact-IP prefilter nor the
    ip:port one, as core/trails/view.py `port_marked` tests them (two bits of a byte slot), over
    thousands of listed and unlisted v4 and v6 addresses, each listed by an exact-IP or an ip:port
    row."""
    from core.trails.view import port_marked

    rng = random.Random(5)
    listed4 = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
               for _ in range(3000)]
    listed6 = [f"2001:db8:{n:x}::{rng.randrange(1, 65535):x}" for n in range(200)]
    rows = [(f"{a}:{rng.randrange(1, 65536)}", "c2 (test)", "(static)") for a in listed4[::2]]
    rows += [(a, "malware (test)", "(static)") for a in listed4[1::2]]
    rows += [(f"[{a}]:{rng.randrange(1, 65536)}", "c2 (test)", "(static)") for a in listed6[::2]]
    rows += [(a, "malware (test)", "(static)") for a in listed6[1::2]]
    rows.append(("198.51.100.7", "malware (test)", "(static)"))
    store = TrailStore.from_rows(rows, str(tmp_path))
    ip_marks, marks = store.ip_prefilter()
    assert ip_marks is not None
    frames = []
    for n in range(4000):
        # many sources: hash() is salted per process, so any one address passes a prefilter in
        # about 1 process of 120, and a single source would then leave none of its packets clean
        if n % 2:
            src, dst = f"10.0.{n % 250}.{n % 200 + 1}", rng.choice(listed4) if n % 3 == 0 else \
                f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            frames.append(g.ether(g.ipv4(src, dst, g.tcp(40000 + n % 20000, 443, 0x02))))
        else:
            dst = rng.choice(listed6) if n % 3 == 0 else f"2001:db8:ffff::{rng.randrange(1, 65535):x}"
            frames.append(g.ether(g.ipv6(f"2001:db8::{n + 1:x}", dst, g.tcp(40000 + n % 20000, 443, 0x02))))
    frames.append(g.ether(g.ipv4(LOCAL_ADDR, "198.51.100.7", g.tcp(40000, 80, 0x02))))
    buf = b"".join(frames)
    meta, off = [], 0
    for frame in frames:
        meta += [T0, 0, off, len(frame)]
        off += len(frame)
    from array import array

    from core.addr import ip_packed

    kit = SensorKit(store, folder=str(tmp_path))  # its detector initialises the walker
    records, _, _ = kit.detector._scan(buf, memoryview(array("I", meta)), False, 0, ip_marks, marks, None)
    kit.close()
    assert len(records) == len(frames)
    listed = {ip_packed(a) for a in listed4 + listed6 + ["198.51.100.7"]}
    clean_count = 0
    for _, _, _, d, flags in records:
        expected = all(not port_marked(ip_marks, addr) and not port_marked(marks, addr) for addr in (d[2], d[3]))
        assert bool(flags & 2) == expected
        assert not (expected and d[3] in listed)  # a listed address is never clean
        clean_count += expected
    assert clean_count > len(frames) * 0.6  # the unlisted ones (2 in 3) nearly all are


def test_port_marks_twin():
    """core/accel/_decode.c port_marks builds exactly the prefilter its Python specification
    (core/trails/view.py port_marks_py) builds, for v4 and v6 blobs and table sizes."""
    from core.trails.view import port_marks_py

    accel = load("_decode")
    rng = random.Random(3)
    for width, count, size in ((4, 5000, 1 << 12), (4, 200_000, 1 << 21), (16, 3000, 1 << 15), (4, 0, 1 << 12)):
        blob = rng.randbytes(width * count)
        python, compiled = bytearray(size), bytearray(size)
        port_marks_py(blob, width, python)
        accel.port_marks(blob, width, compiled)
        assert python == compiled
    with pytest.raises(ValueError):
        accel.port_marks(b"\x01\x02\x03", 4, bytearray(16))
    with pytest.raises(ValueError):
        accel.port_marks(b"\x01\x02\x03\x04", 4, bytearray(12))


def window_replay(path, store, folder, accelerated, batch_size, window, max_keys, watch):
    """Replay `path` through a SensorKit with the C walk or the Python loop, `max_keys` for the
    scan window named `window` ("ports", "udp_ports"); `watch(detector)` installs an observer and
    returns what it collects. -> (state to compare, what the observer collected)."""
    kit = SensorKit(store, folder=folder, EVENT_THROTTLE_MODE="off")
    detector = kit.detector
    if not accelerated:
        detector._scan = None
    ports = getattr(detector.heuristics.scan, window)
    ports.max_keys = max_keys
    seen = watch(detector)
    kit.feed_pcap(path, batch_size=batch_size)
    kit.close()
    assert detector.errors == {}
    # each key's items in their order (the per-key cap drops the oldest inserted)
    table = {key: list(items.items()) if isinstance(items, dict) else items for key, items in ports.table.items()}
    state = (kit.lines, table, dict(ports.alerted), ports.stats(), detector.skipped_bulk, detector._last_udp)
    return state, seen


def with_late_pairs(frames, first, later):
    """Every 25th frame (but the last 1,500) replaced by a client/server pair's first packet,
    whose transport part is `first()`; the pair is seen again 1,450 frames on with `later(n)`
    (n: the first's position), after its window ran out at 40 frames a second: between the two, a
    tick (every 10 s of packet time) expires the first observation."""
    late = {}
    for n in range(0, len(frames) - 1500, 25):
        client, server = f"10.1.{n % 200}.{n % 97 + 2}", f"198.18.{n % 100}.{n % 211 + 1}"
        frames[n] = g.ether(g.ipv4(client, server, first()))
        late[n + 1450] = [g.ether(g.ipv4(client, server, later(n)))]
    return [frame for n, frame0 in enumerate(frames) for frame in [frame0] + late.get(n, [])]


def test_syns_counted_in_c_leave_the_port_table_and_events_as_the_python_loop(tmp_path):
    """Clean SYNs whose port-scan count cannot alert (a new key, the same single port, a second
    port or a dict within the threshold) are counted in C (ScanHeuristics.syn_shortcut):
    the port table (every key and value), its counters and hold-offs, and the event lines must be
    those of the Python loop, with keys seen again on other ports, port scans that alert, stealth
    flags, SYNs with data, infection ports, listed peers (not clean), duplicates around counted
    SYNs, frames the Python decoder reads (IP options), clean ICMP, bulk TLS (the skip count must stay
    the loop's), a cut HTTP head (the loop walks the rest of its batch again), pairs seen again after their window ran out (the expiry tick between the two
    must run first) and a key cap the C side must stay clear of."""
    listed = "198.51.100.7"
    store = TrailStore.from_rows([(listed, "malware (test)", "(static)")], str(tmp_path))
    rng = random.Random(21)
    servers = [f"93.184.{rng.randrange(4)}.{n}" for n in range(1, 120)]
    frames = []
    for n in range(6000):
        kind = rng.random()
        client = f"10.0.{n % 3}.{rng.randrange(2, 40)}"
        sport = 40000 + n % 20000
        if kind < 0.55:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, rng.choice((80, 443, 22)), 0x02))))
        elif kind < 0.62:  # a scanner walking the ports of one host: alerts
            frames.append(g.ether(g.ipv4("10.9.9.9", servers[0], g.tcp(sport, 1 + n % 3000, 0x02))))
        elif kind < 0.66:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 443, rng.choice((0x00, 0x01, 0x29))))))
        elif kind < 0.69:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 80, 0x02, b"GET / HTTP/1.1\r\n"))))
        elif kind < 0.72:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, rng.choice((445, 3389)), 0x02))))
        elif kind < 0.74:  # a FIN, then a SYN of the same pair to another port: items in packet order
            server = f"203.0.113.{n % 250}"
            frames += [g.ether(g.ipv4(client, server, g.tcp(sport, 443, 0x01))),
                       g.ether(g.ipv4(client, server, g.tcp(sport, 80, 0x02)))]
        elif kind < 0.80:  # a listed peer between clean SYNs, then the same SYN again
            first = g.ether(g.ipv4(client, listed, g.tcp(sport, 443, 0x02)))
            frames += [first, g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport + 1, 443, 0x02))), first, first]
        elif kind < 0.85:
            frames.append(g.ether(g.ipv6("2001:db8::5", f"2001:db8::{rng.randrange(1, 30):x}",
                                         g.tcp(sport, rng.choice((80, 443)), 0x02))))
        elif kind < 0.88:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 443, 0x02), options=NOP_OPTIONS)))
        elif kind < 0.89:  # an HTTP head cut by its segment's end: the Python loop takes the rest of the batch
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 80, 0x18, b"GET /x HTTP/1.1\r\nHo"))))
        elif kind < 0.92:  # echo requests between clean addresses end in C
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.icmp())))
        else:
            frames.append(g.ether(g.ipv4(rng.choice(servers), client, g.tcp(443, sport, 0x18, b"\x17\x03\x03\x00\x04data"))))
    # pairs seen again on another port (and on the same one) after their window ran out
    frames = with_late_pairs(frames, lambda: g.tcp(41000, 80, 0x02), lambda n: g.tcp(41001, 443 if n % 2 else 80, 0x02))
    path = str(tmp_path / "syns.pcap")
    g.write_pcap(path, [(T0 + n / 40, frame) for n, frame in enumerate(frames)])
    syns = sum(1 for frame in frames if frame[12:14] == b"\x08\x00" and frame[23] == 6 and frame[47] == 0x02)

    def watch(detector):  # the SYNs and stealth packets that reached the Python hook
        seen, hook = [], detector.heuristics.tcp

        def counted(sec, usec, d):
            seen.append(d)
            hook(sec, usec, d)

        detector.heuristics.tcp = counted
        return seen

    for batch_size, max_keys in ((1, 50_000), (7, 400), (64, 50_000), (512, 1_000), (512, 50_000)):
        fast, fast_seen = window_replay(path, store, str(tmp_path), True, batch_size, "ports", max_keys, watch)
        slow, slow_seen = window_replay(path, store, str(tmp_path), False, batch_size, "ports", max_keys, watch)
        assert fast == slow, (batch_size, max_keys)
        assert len(slow_seen) >= syns  # every SYN reached the hook in the Python loop
        if batch_size > 1:  # C counted
            assert len(fast_seen) < len(slow_seen) * (0.9 if batch_size < 512 else 0.99), (batch_size, max_keys)
    text = "\n".join(slow[0])
    assert "potential port scanning" in text and listed in text
    assert slow[3]["alerts"] > 0 and slow[3]["refused"] + slow[3]["evicted"] == 0 and slow[4] > 0  # bulk skipped


def test_datagrams_ended_in_c_leave_the_udp_table_and_duplicate_tests_as_the_python_loop(tmp_path):
    """Clean datagrams whose only effect is their UDP-scan count, and datagrams equal to the one
    before them, end in C (ScanHeuristics.udp_shortcut and the duplicate key of the detector's
    _udp): the UDP-scan table, its counters, the events, the skip count and the last key must be
    the Python loop's, and every datagram the detector still sees must get the loop's repeat
    verdict -- with mDNS chatter, UDP port scans that alert, replies from service ports, repeats
    (also across TCP packets), DNS, QUIC long headers followed by their pair on another port
    (items in packet order), listed peers, copies with IP options of datagrams ended in C (the Python
    decoder must know them as repeats), a datagram only the Python decoder reads between a query
    and its repeat (the walk loses the key there), ticks and a small key cap."""
    listed = "198.51.100.7"
    store = TrailStore.from_rows([(listed, "malware (test)", "(static)")], str(tmp_path))
    rng = random.Random(31)
    servers = [f"93.184.{rng.randrange(4)}.{n}" for n in range(1, 90)]
    frames = []
    for n in range(6000):
        kind = rng.random()
        client = f"10.0.{n % 3}.{rng.randrange(2, 40)}"
        sport = 40000 + n % 20000
        if kind < 0.30:  # mDNS: the same few keys, the same port
            frames.append(g.ether(g.ipv4(client, "224.0.0.251", g.udp(5353, 5353, b"\x00" * 12 + bytes([n % 7])))))
        elif kind < 0.40:
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.udp(sport, rng.choice((123, 5060, 9999)), b"x" * 30))))
        elif kind < 0.47:  # a UDP port sweep of one host: alerts
            frames.append(g.ether(g.ipv4("10.9.9.9", servers[0], g.udp(sport, 1 + n % 3000, b"probe"))))
        elif kind < 0.55:  # replies from a service port
            frames.append(g.ether(g.ipv4(rng.choice(servers), client, g.udp(123, sport, b"y" * 48))))
        elif kind < 0.65:  # the same datagram again, right after or across a TCP packet, or with IP options
            server = rng.choice(servers)
            datagram = g.ipv4(client, server, g.udp(sport, 7777, b"again"))
            middle = {0: [], 1: [g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 443, 0x18, b"\x17\x03\x03\x00\x01z")))],
                      2: [g.ether(g.ipv4(client, server, g.udp(sport, 7777, b"again"), options=NOP_OPTIONS))]}[n % 3]
            frames += [g.ether(datagram)] + middle + [g.ether(datagram)]
        elif kind < 0.72:
            frames.append(g.ether(g.ipv4(client, "192.0.2.53", g.udp(sport, 53, g.dns_query(f"host{n % 50}.example.org")))))
        elif kind < 0.73:  # a query to a listed resolver, a datagram only the Python decoder reads, the query again
            query = g.ether(g.ipv4(client, listed, g.udp(sport, 53, g.dns_query(f"again{n}.example.org"))))
            frames += [query, g.ether(g.ipv4(client, listed, g.udp(sport, 9, b"between"), options=NOP_OPTIONS)), query]
        elif kind < 0.75:  # a QUIC long header (the Initial parser sees it), then the pair on another port
            server = f"203.0.113.{n % 250}"
            frames += [g.ether(g.ipv4(client, server, g.udp(sport, 443, b"\xc3" + bytes(40)))),
                       g.ether(g.ipv4(client, server, g.udp(sport, 8443, b"plain")))]
        elif kind < 0.80:
            frames.append(g.ether(g.ipv4(client, listed, g.udp(sport, 9999, b"to a listed peer"))))
        elif kind < 0.85:
            frames.append(g.ether(g.ipv6("2001:db8::5", f"2001:db8::{rng.randrange(1, 30):x}", g.udp(sport, 5000, b"v6"))))
        elif kind < 0.86:  # an HTTP head cut by its segment's end: the Python loop takes the rest of the batch
            frames.append(g.ether(g.ipv4(client, rng.choice(servers), g.tcp(sport, 80, 0x18, b"GET /x HTTP/1.1\r\nHo"))))
        else:
            frames.append(g.ether(g.ipv4(rng.choice(servers), client, g.tcp(443, sport, 0x18, b"\x17\x03\x03\x00\x04data"))))
    # pairs seen again on another port (and on the same one) after their window ran out
    frames = with_late_pairs(frames, lambda: g.udp(41000, 6000, b"first"),
                             lambda n: g.udp(41001, 6001 if n % 2 else 6000, b"later"))
    path = str(tmp_path / "udp.pcap")
    g.write_pcap(path, [(T0 + n / 40, frame) for n, frame in enumerate(frames)])

    def watch(detector):  # time stamp (unique here) of each datagram the detector's _udp saw -> was it a repeat
        verdicts, udp = {}, detector._udp

        def watched(sec, usec, d, clean=0):
            _, _, src, dst, sport, dport, _, buf, poff, pend = d
            key = (sec, src, dst, sport, dport, zlib.crc32(buf[poff:min(pend, poff + 512)]))
            verdicts[sec, usec] = key == detector._last_udp
            udp(sec, usec, d, clean)

        detector._udp = watched
        return verdicts

    for batch_size, max_keys in ((1, 50_000), (7, 300), (64, 50_000), (512, 50_000)):
        fast, fast_verdicts = window_replay(path, store, str(tmp_path), True, batch_size, "udp_ports", max_keys, watch)
        slow, slow_verdicts = window_replay(path, store, str(tmp_path), False, batch_size, "udp_ports", max_keys, watch)
        assert fast == slow, (batch_size, max_keys)
        assert all(slow_verdicts[i] == verdict for i, verdict in fast_verdicts.items()), (batch_size, max_keys)
        if batch_size > 1:  # datagrams ended in C (frames the Python decoder reads stop that for the rest of a batch)
            share = 0.8 if batch_size < 512 else 0.99
            assert len(fast_verdicts) < len(slow_verdicts) * share, (batch_size, len(fast_verdicts), len(slow_verdicts))
    text = "\n".join(slow[0])
    assert "potential udp scanning" in text and listed in text
    assert sum(slow_verdicts.values()) > 100  # repeats were there to be recognised


def test_vlan_tagged_frames_same_as_python_loop(tmp_path):
    """Frames under 802.1Q / 802.1ad / QinQ tags are decoded in C by the general path's rules (up to
    link.MAX_VLAN_DEPTH tags; deeper, or anything but IP under them, goes to the Python decoder):
    the corpus under one, two and five tags of each kind, and mutated tagged frames, give the
    loop's events, skips and counters, and tagged bulk TLS is skipped in C."""
    from tests.kit import tunnelgen as t

    store = TrailStore.open(os.path.join(CORPUS, "trails.csv"), index_dir=str(tmp_path))
    paths = sorted(glob.glob(os.path.join(CORPUS, "*.pcap")))
    for tags in ([(0x8100, 7)], [(0x88A8, 100), (0x8100, 7)], [(0x9100, 1)] * 5):
        folder = tmp_path / f"tags{len(tags)}_{tags[0][0]:x}"
        folder.mkdir()
        tagged = []
        for path in paths:
            linktype, packets = g.read_pcap(path)
            tagged.append(g.write_pcap(str(folder / os.path.basename(path)),
                                       [(ts, g.tagged(t.ether_of(frame, linktype), tags)) for ts, frame in packets]))
        lines, _, counters, _ = assert_same(tagged, store, str(tmp_path), batch_size=7)
        assert bool(lines) == (len(tags) <= 4) == (not counters.get("vlan_too_deep")), tags
    inner = [g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN)), vlans=[(0x8100, 5)]),
             g.ether(g.ipv6("2001:db8::1", "2001:db8::66", g.udp(5000, 53, g.dns_query("x.example"))), vlans=[(0x88A8, 2), (0x8100, 3)]),
             g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.icmp()), vlans=[(0x8100, 9)])]
    bulk = g.ether(g.ipv4("93.184.216.34", "10.0.0.5", g.tcp(443, 40000, 0x18, b"\x17\x03\x03\x00\x10" + bytes(16))),
                   vlans=[(0x8100, 5)])
    frames = inner * 30 + [bulk] * 200 + g.mutated_frames(inner, 8_000, seed=16)
    path = str(tmp_path / "vlan.pcap")
    g.write_pcap(path, [(T0 + n / 500, frame) for n, frame in enumerate(frames)])
    lines, skipped, counters, _ = assert_same([path], store, str(tmp_path), batch_size=512)
    assert skipped >= 200 and counters
    # the tagged frames were decoded in C (a Decoded in the record, not None), the bulk skipped there
    from array import array

    buf, meta, off = b"".join(inner + [bulk]), [], 0
    for frame in inner + [bulk]:
        meta += [T0, 0, off, len(frame)]
        off += len(frame)
    kit = SensorKit(store, folder=str(tmp_path))  # its detector initialises the walker
    records, skipped, _ = kit.detector._scan(buf, memoryview(array("I", meta)), True, 0)
    kit.close()
    assert [record[3] is not None for record in records] == [True] * 3 and skipped == 1


@pytest.mark.parametrize("linktype", [113, 276])
def test_linux_cooked_frames_same_as_python_loop(tmp_path, linktype):
    """Captures of the "any" interface (Linux cooked v1 and v2, MONITOR_INTERFACE's default) are
    walked in C too: the corpus as cooked frames, tagged and tunnelled ones among them, and
    mutated cooked frames give the loop's events, skips and counters; the common ones arrive
    decoded from C and bulk TLS is skipped there."""
    from tests.kit import tunnelgen as t

    assert linktype in (g.LINKTYPE_LINUX_SLL, g.LINKTYPE_LINUX_SLL2)
    store = TrailStore.open(os.path.join(CORPUS, "trails.csv"), index_dir=str(tmp_path))
    converted = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.pcap"))):
        source_type, packets = g.read_pcap(path)
        frames = [(ts, t.ether_of(frame, source_type)) for ts, frame in packets]
        target = str(tmp_path / os.path.basename(path))
        converted.append(g.write_pcap(target, [(ts, g.cooked(frame, linktype)) for ts, frame in frames if frame],
                                      linktype=linktype))
    lines, *_ = assert_same(converted, store, str(tmp_path), batch_size=7)
    assert lines
    samples = [g.cooked(frame, linktype) for frame in (
        g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN))),
        g.ether(g.ipv6("2001:db8::1", "2001:db8::66", g.udp(5000, 53, g.dns_query("x.example")))),
        g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.udp(5000, 4789, b"\x08" + bytes(7))), vlans=[(0x8100, 4)]),
        g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.icmp()), vlans=[(0x8100, 9)]))]
    bulk = g.cooked(g.ether(g.ipv4("93.184.216.34", "10.0.0.5", g.tcp(443, 40000, 0x18, b"\x17\x03\x03\x00\x10" + bytes(16)))),
                  linktype)
    frames = samples * 30 + [bulk] * 200 + g.mutated_frames(samples, 8_000, seed=17)
    path = str(tmp_path / "cooked.pcap")
    g.write_pcap(path, [(T0 + n / 500, frame) for n, frame in enumerate(frames)], linktype=linktype)
    lines, skipped, counters, _ = assert_same([path], store, str(tmp_path), batch_size=512)
    assert skipped >= 200 and counters
    from array import array

    chosen = [samples[0], samples[1], samples[3], bulk]
    buf, meta, off = b"".join(chosen), [], 0
    for frame in chosen:
        meta += [T0, 0, off, len(frame)]
        off += len(frame)
    kit = SensorKit(store, folder=str(tmp_path))  # its detector initialises the walker
    records, skipped, _ = kit.detector._scan(buf, memoryview(array("I", meta)), True, 0, None, None, None, None, None,
                                             None, linktype)
    with pytest.raises(ValueError):
        kit.detector._scan(buf, memoryview(array("I", meta)), True, 0, None, None, None, None, None, None, 105)
    kit.close()
    assert [record[3] is not None for record in records] == [True] * 3 and skipped == 1
