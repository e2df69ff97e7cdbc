"""Tunnelled traffic: the decoder opens VXLAN, GENEVE, GRE, ERSPAN, IP-in-IP and MPLS and the sensor
reports the carried packets exactly as it reports them captured plain.

The conformance corpus (../shared/conformance) is wrapped here in every encapsulation between two
outer hosts in no trail and replayed through the real `sensor.py --offline -r`, with the compiled
accelerators and with MALTRAIL_PURE_PYTHON=1: the event lines must equal the plain replay's in
every field but the time. Hostile tunnel headers (wrong lengths, nesting loops, truncation at every
byte) must never raise and every frame decoded to None must be counted.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

from core.config import ConfigError, load_config
from core.decode.packet import MAX_TUNNEL_DEPTH, Decoder, decapsulated, skipped
from core.decode.tunnel import MAX_MPLS_LABELS, udp_tunnels
from tests.kit import pcapgen as g
from tests.kit import tunnelgen as t

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "conformance", "corpus")

INNER_V4 = g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN)))
INNER_V6 = g.ether(g.ipv6("2001:db8::1", "dead::beef", g.udp(40001, 53, g.dns_query("evil-test-domain.com"))))
EXPECTED_KINDS = {
    "vxlan": {"vxlan"}, "geneve": {"geneve"}, "geneve_ip": {"geneve"}, "gre_ip": {"gre"},
    "gre_teb": {"gre_teb"}, "erspan1": {"erspan1"}, "erspan2": {"erspan2"}, "erspan3": {"erspan3"},
    "erspan3_platform": {"erspan3"}, "ip_in_ip": {"ip_in_ip", "ipv6_in_ip"},
    "ip_in_ipv6": {"ip_in_ip", "ipv6_in_ip"}, "mpls_ip": {"mpls"}, "mpls_multicast": {"mpls"},
    "mpls_pw_cw": {"mpls"}, "vlan_gre_vxlan": {"gre", "vxlan"}, "gre_mpls_geneve": {"gre", "mpls", "geneve"},
}


def decode(frame: bytes, decoder: Decoder | None = None):
    decoder = decoder or Decoder(g.LINKTYPE_ETHERNET)
    return decoder.decode(frame, 0, len(frame)), decoder


def same_packet(a, b) -> bool:
    """Two records describe the same packet (their payloads sit at different offsets)."""
    return a[:7] == b[:7] and a.payload == b.payload


# --- every encapsulation, decoded --------------------------------------------------------------------

def test_builder_covers_every_kind():
    assert set(EXPECTED_KINDS) == set(t.KINDS)


@pytest.mark.parametrize("kind", sorted(t.KINDS))
def test_each_encapsulation_yields_the_inner_packet(kind):
    for inner in (INNER_V4, INNER_V6):
        plain, _ = decode(inner)
        d, decoder = decode(t.wrap(kind, inner, g.LINKTYPE_ETHERNET))
        assert d is not None and same_packet(d, plain), (kind, d)
        assert set(decapsulated(decoder.counters)) <= EXPECTED_KINDS[kind]
        assert skipped(decoder.counters) == {}
    assert set(decapsulated(decoder.counters)) | {"ip_in_ip", "ipv6_in_ip"} >= EXPECTED_KINDS[kind]


def test_raw_ip_frames_are_wrapped_too():
    ip = g.ipv4("10.0.0.1", "66.66.66.66", g.udp(1, 2, b"x"))
    plain = Decoder(g.LINKTYPE_RAW).decode(ip, 0, len(ip))
    for kind in ("vxlan", "gre_ip", "mpls_ip"):
        d, _ = decode(t.wrap(kind, ip, g.LINKTYPE_RAW))
        assert d is not None and same_packet(d, plain)


def test_mpls_pseudowire_without_control_word_and_vlan_inside():
    inner = g.ether(g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN)), vlans=[(0x8100, 5)])
    plain, _ = decode(inner)
    d, decoder = decode(g.ether(t.mpls(inner, labels=(16,)), ethertype=0x8847))
    assert d is not None and same_packet(d, plain)
    assert decapsulated(decoder.counters) == {"mpls": 1}


def test_udp_tunnel_ports_come_from_the_configuration(tmp_path):
    frame = g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, g.udp(1000, 8472, t.vxlan(INNER_V4))))
    config = load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_VXLAN_PORTS": "8472, 4789"})
    d, _ = decode(frame, Decoder(1, udp_tunnels(config)))
    assert d is not None and d.dst == bytes([66, 66, 66, 66])
    off = load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_VXLAN_PORTS": "none", "TUNNEL_GENEVE_PORTS": "none"})
    assert udp_tunnels(off) == {}
    d, decoder = decode(t.wrap("vxlan", INNER_V4, 1), Decoder(1, udp_tunnels(off)))
    assert d is not None and d.dport == 4789 and decoder.counters == {}  # the outer packet, as before
    for bad in ("0", "70000", "vxlan", "4789;x"):
        with pytest.raises(ConfigError, match="TUNNEL_VXLAN_PORTS"):
            load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_VXLAN_PORTS": bad})
    with pytest.raises(ConfigError, match="also a VXLAN port"):
        udp_tunnels(load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_GENEVE_PORTS": "4789"}))


def test_unsupported_payloads_leave_the_outer_packet():
    geneve_arp = g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, g.udp(1, 6081, t.geneve(b"\x00" * 28, proto=0x0806))))
    d, decoder = decode(geneve_arp)
    assert d is not None and (d.proto, d.dport) == (17, 6081)
    assert decoder.counters == {"tunnel_unsupported": 1}
    gre_other = g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, t.gre(b"\x00" * 20, 0x880B), proto=47))
    d, decoder = decode(gre_other)
    assert d is not None and d.proto == 47 and decoder.counters == {"tunnel_unsupported": 1}


# --- hostile headers ---------------------------------------------------------------------------------

def nested(levels: int, kind: str) -> bytes:
    frame = INNER_V4
    for _ in range(levels):
        frame = t.wrap(kind, frame, g.LINKTYPE_ETHERNET)
    return frame


@pytest.mark.parametrize("kind", ["ip_in_ip", "vxlan", "gre_teb", "mpls_pw_cw", "erspan3"])
def test_nesting_is_limited(kind):
    d, decoder = decode(nested(MAX_TUNNEL_DEPTH, kind))
    assert d is not None and d.dst == bytes([66, 66, 66, 66])
    d, decoder = decode(nested(MAX_TUNNEL_DEPTH + 1, kind))
    assert d is None and skipped(decoder.counters) == {"tunnel_too_deep": 1}
    d, decoder = decode(nested(200, kind))
    assert d is None and skipped(decoder.counters) == {"tunnel_too_deep": 1}


def test_label_stack_limit_and_missing_bottom_of_stack():
    ip = g.ipv4("10.0.0.1", "66.66.66.66", g.tcp(40000, 80, flags=g.SYN))
    d, _ = decode(g.ether(t.mpls(ip, labels=tuple(range(16, 16 + MAX_MPLS_LABELS))), ethertype=0x8847))
    assert d is not None
    for frame in (g.ether(t.mpls(ip, labels=tuple(range(16, 17 + MAX_MPLS_LABELS))), ethertype=0x8847),
                  g.ether(t.mpls(b"\x00" * 400, labels=(1,) * 100, bottom=False), ethertype=0x8847)):
        d, decoder = decode(frame)
        assert d is None and skipped(decoder.counters) == {"tunnel_too_deep": 1}
    d, decoder = decode(g.ether(t.mpls(b"", labels=(1, 2, 3), bottom=False), ethertype=0x8847))
    assert d is None and skipped(decoder.counters) == {"tunnel_malformed": 1}


def outer_udp(dport: int, payload: bytes) -> bytes:
    return g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, g.udp(1, dport, payload)))


def outer_gre(payload: bytes) -> bytes:
    return g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, payload, proto=47))


MALFORMED = {
    "vxlan without the I flag": outer_udp(4789, b"\x00" * 8 + INNER_V4),
    "vxlan header cut": outer_udp(4789, b"\x08\x00\x00"),
    "geneve version 1": outer_udp(6081, t.geneve(INNER_V4, version=1)),
    "geneve options past the end": outer_udp(6081, t.geneve(INNER_V4[:20], opt_words=63)),
    "gre routing present": outer_gre(t.gre(INNER_V4[14:], 0x0800, flags=0x40)),
    "gre recursion bits": outer_gre(t.gre(INNER_V4[14:], 0x0800, flags=0x04)),
    "gre optional words past the end": outer_gre(b"\xb0\x00\x08\x00\x00\x00"),
    "gre ip protocol with ipv6 inside": outer_gre(t.gre(INNER_V6[14:], 0x0800)),
    "ip-in-ip with ipv6 inside": g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, INNER_V6[14:], proto=4)),
    "erspan2 version 2": outer_gre(t.gre(t.erspan2_header(version=2) + INNER_V4, 0x88BE, seq=1)),
    "erspan2 header cut": outer_gre(t.gre(b"\x10\x00\x00", 0x88BE, seq=1)),
    "erspan3 version 1": outer_gre(t.gre(t.erspan3_header(version=1) + INNER_V4, 0x22EB, seq=1)),
    "erspan3 platform header cut": outer_gre(t.gre(t.erspan3_header(platform=True)[:16], 0x22EB)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_tunnel_headers_are_counted(name):
    d, decoder = decode(MALFORMED[name])
    assert d is None, d
    assert skipped(decoder.counters) == {"tunnel_malformed": 1}


@pytest.mark.parametrize("kind", sorted(t.KINDS))
def test_truncation_at_every_byte_never_raises_and_is_counted(kind):
    for inner in (INNER_V4, INNER_V6):
        frame = t.wrap(kind, inner, g.LINKTYPE_ETHERNET)
        buf = frame + b"\x45" * 64  # IP-looking bytes after the frame: reading past it would show
        decoder = Decoder(g.LINKTYPE_ETHERNET)
        for cut in range(len(frame) + 1):
            before = sum(skipped(decoder.counters).values())
            d = decoder.decode(buf, 0, cut)
            counted = sum(skipped(decoder.counters).values()) - before
            if d is None:
                assert counted == 1, (kind, cut, decoder.counters)
            else:
                assert counted == 0 and d.pend <= cut


def test_mutated_tunnel_frames_never_raise():
    frames = [t.wrap(kind, inner, 1) for kind in t.KINDS for inner in (INNER_V4, INNER_V6)]
    decoder = Decoder(g.LINKTYPE_ETHERNET)
    nones = 0
    for frame in g.mutated_frames(frames, 20_000, seed=14):
        buf = frame + b"\x45" * 64
        d = decoder.decode(buf, 0, len(frame))
        nones += d is None
        if d is not None:
            assert 0 <= d.poff <= d.pend <= len(frame)
    assert sum(skipped(decoder.counters).values()) == nones
    assert nones and decapsulated(decoder.counters)


# --- the conformance corpus through the real sensor, wrapped -------------------------------------------

needs_corpus = pytest.mark.skipif(not os.path.isdir(SHARED_CORPUS),
                                  reason="../shared/conformance is absent (the shared conformance corpus)")


def sensor_lines(pcaps: list[str], log_dir: str, pure_python: bool) -> list[str]:
    env = dict(os.environ)
    env.update({
        "MALTRAIL_TRAILS_FILE": os.path.join(SHARED_CORPUS, "trails.csv"),
        "MALTRAIL_LOG_DIR": log_dir,
        "MALTRAIL_DISABLE_TRAIL_UPDATES": "true",
        "MALTRAIL_USE_HEURISTICS": "true",
    })
    env.pop("MALTRAIL_PURE_PYTHON", None)
    if pure_python:
        env["MALTRAIL_PURE_PYTHON"] = "1"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-r", *pcaps],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines: list[str] = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*.log"))):
        if os.path.basename(path) != "error.log":
            with open(path, encoding="utf-8") as handle:
                lines.extend(line.rstrip("\n").split('" ', 1)[1] for line in handle)  # all but the time
    return lines


@pytest.fixture(scope="module")
def corpus_pcaps() -> list[str]:
    return sorted(glob.glob(os.path.join(SHARED_CORPUS, "*.pcap")))


@pytest.fixture(scope="module")
def plain_lines(corpus_pcaps, tmp_path_factory) -> list[str]:
    lines = sensor_lines(corpus_pcaps, str(tmp_path_factory.mktemp("plain")), pure_python=False)
    assert len(lines) > 30
    return lines


@needs_corpus
@pytest.mark.parametrize("pure_python", [False, True], ids=["accelerated", "pure_python"])
@pytest.mark.parametrize("kind", sorted(t.KINDS))
def test_wrapped_corpus_writes_the_plain_events(kind, pure_python, corpus_pcaps, plain_lines, tmp_path):
    wrapped = [t.wrap_pcap(kind, path, str(tmp_path / os.path.basename(path))) for path in corpus_pcaps]
    (tmp_path / "logs").mkdir()
    lines = sensor_lines(wrapped, str(tmp_path / "logs"), pure_python)
    assert sorted(lines) == sorted(plain_lines)
    assert not any(outer in line for line in lines for outer in (t.OUTER_A, t.OUTER_B, t.OUTER6_A, t.MID_A))


def test_sensor_exit_line_names_the_tunnels_opened(tmp_path):
    frames = [(1_700_000_000 + n, t.wrap(kind, INNER_V4, g.LINKTYPE_ETHERNET))
              for n, kind in enumerate(("vxlan", "vxlan", "gre_ip", "mpls_ip"))]
    frames.append((1_700_000_010, g.ether(g.ipv4(t.OUTER_A, t.OUTER_B, g.udp(1, 4789, b"\x00" * 8)))))
    pcap = g.write_pcap(str(tmp_path / "t.pcap"), frames)
    env = dict(os.environ, MALTRAIL_TRAILS_FILE=str(tmp_path / "trails.csv"), MALTRAIL_LOG_DIR=str(tmp_path / "log"),
               MALTRAIL_DISABLE_TRAIL_UPDATES="true")
    (tmp_path / "trails.csv").write_text("66.66.66.66,malware (test),(static)\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "sensor.py"), "--offline", "-r", pcap],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped frames: tunnel_malformed 1" in result.stderr
    assert "tunnels opened: gre 1, mpls 1, vxlan 2" in result.stderr


def test_preflight_probe_frames_and_filter_check(tmp_path):
    """The -T check: the probe frames are tunnels the decoder opens (to the configured ports), the
    shipped CAPTURE_FILTER admits them all and a filter without GRE/MPLS is reported."""
    from core.decode.tunnel import probe_frames
    from core.ops.preflight import tunnels_dropped

    config = load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_GENEVE_PORTS": "6082"})
    tunnels = udp_tunnels(config)
    probes = probe_frames(tunnels)
    assert set(probes) == {"GRE", "ERSPAN", "IP-in-IP", "MPLS", "VXLAN", "GENEVE"}
    for name, frame in probes.items():
        d, decoder = decode(frame, Decoder(1, tunnels))
        assert d is not None and (d.proto, d.dport) == (6, 80), name
        assert len(decapsulated(decoder.counters)) == 1, name
    assert tunnels_dropped(config.CAPTURE_FILTER, 2000, tunnels) == []
    assert tunnels_dropped("udp or (tcp and port 80)", 2000, tunnels) == ["GRE", "ERSPAN", "IP-in-IP", "MPLS"]
    assert tunnels_dropped("udp and not port 6082", 2000, tunnels)[-1] == "GENEVE"
    off = load_config(overrides={"LOG_DIR": str(tmp_path), "TUNNEL_VXLAN_PORTS": "none", "TUNNEL_GENEVE_PORTS": "none"})
    assert "VXLAN" not in probe_frames(udp_tunnels(off))
