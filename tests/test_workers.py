"""Multi-worker routing: the kernel fanout program, its Python twin, and heuristic retention."""

from __future__ import annotations

import os

import pytest

from bench import retention
from core.capture import fanout
from core.capture.workers import worker_count
from core.config import load_config
from core.decode.packet import Decoder
from core.trails.store import TrailStore
from tests.kit import tunnelgen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "conformance")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("trails") / "trails.csv"
    path.write_bytes(open(os.path.join(CORPUS, "trails.csv"), "rb").read())
    return TrailStore.open(str(path))


@pytest.fixture(scope="module")
def config():
    return load_config(os.path.join(ROOT, "maltrail.conf"), env={}).replace(
        USE_HEURISTICS=True, DISABLE_TRAIL_UPDATES=True, LOG_DIR="/nonexistent")


def ip_packets():
    """(ethertype, ip bytes, decoded) for every decodable Ethernet packet of corpus and generator."""
    decoder = Decoder(1)
    packets = [p for p in retention.read_pcaps(retention.corpus_pcaps(CORPUS)) if p[0] == 1]
    packets += retention.generated_scans(sources=10)
    for _lt, _sec, _usec, frame in packets:
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype not in (0x0800, 0x86DD):
            continue
        d = decoder.decode(frame, 0, len(frame))
        if d is not None:
            yield ethertype, frame[14:], d


def test_kernel_program_matches_python_rule():
    program = fanout.program()
    checked = 0
    for ethertype, ip, d in ip_packets():
        expected = fanout.route_hash(ip)
        assert fanout.run_program(program, ip, ethertype) == expected
        assert retention.host_route(d) == expected
        checked += 1
    assert checked > 300


def test_program_encodes_to_sock_filter_array():
    code = fanout.program()
    blob = fanout.encode(code)
    assert len(blob) == 8 * len(code) and len(code) <= 4096  # BPF_MAXINSNS
    assert code[-1][0] == fanout.RET | fanout.RET_A


def test_requests_and_answers_route_to_the_client():
    import dpkt

    client, server = bytes([10, 0, 0, 5]), bytes([93, 184, 216, 34])

    def ip(src, dst, l4, proto):
        pkt = dpkt.ip.IP(src=src, dst=dst, p=proto, data=l4)
        pkt.len = len(bytes(pkt))
        return bytes(pkt)

    syn = ip(client, server, dpkt.tcp.TCP(sport=40000, dport=80, flags=0x02), 6)
    synack = ip(server, client, dpkt.tcp.TCP(sport=80, dport=40000, flags=0x12), 6)
    response = ip(server, client, dpkt.tcp.TCP(sport=80, dport=40000, flags=0x18, data=b"HTTP/1.1 200"), 6)
    request = ip(client, server, dpkt.tcp.TCP(sport=40000, dport=80, flags=0x18, data=b"GET /"), 6)
    query = ip(client, server, dpkt.udp.UDP(sport=5353, dport=53, data=b"q"), 17)
    answer = ip(server, client, dpkt.udp.UDP(sport=53, dport=5353, data=b"a"), 17)
    fin_probe = ip(server, client, dpkt.tcp.TCP(sport=80, dport=22, flags=0x01), 6)
    routes = {fanout.route_hash(p) for p in (syn, synack, response, request, query, answer)}
    assert routes == {fanout.fold(int.from_bytes(client, "big"))}
    assert fanout.route_hash(fin_probe) == fanout.fold(int.from_bytes(server, "big"))  # prober owns it


@pytest.mark.parametrize("workers", [2, 4])
def test_corpus_heuristics_fully_retained(config, store, workers):
    packets = list(retention.read_pcaps(retention.corpus_pcaps(CORPUS)))
    single, kept = retention.retention(config, store, packets, workers)
    assert single >= 8
    assert kept == single


@pytest.mark.parametrize("workers", [2, 4])
def test_generated_scans_fully_retained(config, store, workers):
    packets = retention.generated_scans()
    single, kept = retention.retention(config, store, packets, workers)
    assert single >= 15
    assert kept == single
    # the comparison point: per-flow hashing (the original's fanout) loses alerts on the same input
    _single, flow_kept = retention.retention(config, store, packets, workers, retention.kernel_hash_route)
    assert flow_kept < single


def test_worker_count_from_legacy_fanout(config):
    assert worker_count(config.replace(CAPTURE_WORKERS=3)) == 3
    assert worker_count(config.replace(CAPTURE_WORKERS=1, CAPTURE_FANOUT="2")) == 2
    assert worker_count(config.replace(CAPTURE_WORKERS=1, CAPTURE_FANOUT="auto")) == (os.cpu_count() or 1)
    assert worker_count(config.replace(CAPTURE_WORKERS=1, CAPTURE_FANOUT="false")) == 1


ROUTED_KINDS = [kind for kind in tunnelgen.KINDS if kind != "vlan_gre_vxlan"]  # an outer tag: the kernel's view


def wrapped(kind, packets):
    return [(1, sec, usec, tunnelgen.wrap(kind, frame, linktype)) for linktype, sec, usec, frame in packets]


@pytest.mark.parametrize("kind", ROUTED_KINDS + ["gre_vxlan"])
def test_kernel_program_routes_tunnels_on_the_carried_packet(kind):
    """Every encapsulation, and two levels (GRE > MPLS > GENEVE, VXLAN inside GRE): the program,
    its Python twin and the decoded packet's route agree, and equal the route of the same packet
    captured plain."""
    program = fanout.program()
    decoder = Decoder(1)
    checked = 0
    for ethertype, ip, _d in ip_packets():
        if kind == "gre_vxlan":
            frame = tunnelgen.wrap("gre_ip", tunnelgen.wrap("vxlan", ip, 12)[14:], 12)
        else:
            frame = tunnelgen.wrap(kind, ip, 12)
        outer_type, net = int.from_bytes(frame[12:14], "big"), frame[14:]
        expected = fanout.route_hash(ip, ethertype)
        assert fanout.route_hash(net, outer_type) == expected
        assert fanout.run_program(program, net, outer_type) == expected
        d = decoder.decode(frame, 0, len(frame))
        if d is not None:
            assert retention.host_route(d) == expected
        checked += 1
    assert checked > 300


def test_third_tunnel_level_routes_on_the_second():
    from tests.kit import pcapgen as g

    plain = g.ipv4("10.1.2.3", "10.9.9.9", g.tcp(40000, 22, flags=g.SYN))
    third = g.ipv4("192.0.2.77", "192.0.2.78", plain, proto=4)
    second = g.ipv4("192.0.2.55", "192.0.2.56", g.udp(40000, 4789, tunnelgen.vxlan(g.ether(third))))
    net = g.ipv4("192.0.2.33", "192.0.2.34", tunnelgen.gre(second, 0x0800), proto=47)
    expected = fanout.fold(int.from_bytes(bytes([192, 0, 2, 77]), "big"))  # IP-in-IP: by its source
    assert fanout.route_hash(net, 0x0800) == fanout.run_program(fanout.program(), net, 0x0800) == expected
    assert fanout.route_hash(third) != expected != fanout.route_hash(plain)


def test_tunnel_ports_follow_the_configuration(config):
    from core.decode.tunnel import udp_tunnels
    from tests.kit import pcapgen as g

    plain = g.ipv4("10.1.2.3", "10.9.9.9", g.tcp(40000, 22, flags=g.SYN))
    net = g.ipv4(tunnelgen.OUTER_A, tunnelgen.OUTER_B, g.udp(1, 8472, tunnelgen.vxlan(g.ether(plain))))
    moved = udp_tunnels(config.replace(TUNNEL_VXLAN_PORTS="8472"))
    program = fanout.program(moved)
    assert fanout.run_program(program, net, 0x0800) == fanout.route_hash(net, 0x0800, moved) == fanout.route_hash(plain)
    default = fanout.program()
    assert fanout.run_program(default, net, 0x0800) == fanout.route_hash(net) == fanout.fold(
        int.from_bytes(bytes([198, 18, 0, 1]), "big"))  # not a tunnel port: the outer source


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("kind", ["vxlan", "geneve", "gre_ip", "erspan3", "ip_in_ip", "mpls_pw_cw"])
def test_tunnelled_heuristics_fully_retained(config, store, workers, kind):
    packets = wrapped(kind, list(retention.read_pcaps(retention.corpus_pcaps(CORPUS))) + retention.generated_scans())
    single, kept = retention.retention(config, store, packets, workers)
    assert single >= 20
    assert kept == single
