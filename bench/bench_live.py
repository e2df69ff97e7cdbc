#!/usr/bin/env python3
"""Live-capture benchmark: highest packet rate without kernel drops for 1 and 2 workers, and the
share of single-worker heuristic alerts kept with 2, 4 and 8 workers (plain and tunnelled scans).

Run as root (it creates a veth pair into a private network namespace, replays a generated
capture into it with tcpreplay at rising rates, and reads the real sensor's Prometheus counters):

    sudo .venv/bin/python bench/bench_live.py [--rates 5000,10000,...] [--seconds 3] [--skip-live]

Prints one line per (workers, rate) step and a summary. The retention part runs without root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import retention  # noqa: E402
from core.config import load_config  # noqa: E402
from tests.kit.ports import free_port  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "data", "conformance")
NS, HOST, PEER = "mlbench", "mlbh0", "mlbn0"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def retention_figures() -> None:
    from core.trails.store import TrailStore

    tmp = tempfile.mkdtemp(prefix="mlret")
    shutil.copy(os.path.join(CORPUS, "trails.csv"), os.path.join(tmp, "trails.csv"))
    store = TrailStore.open(os.path.join(tmp, "trails.csv"))
    config = load_config(os.path.join(ROOT, "maltrail.conf"), env={}).replace(USE_HEURISTICS=True)
    from tests.kit import tunnelgen

    scans = retention.generated_scans(sources=60)
    inputs = {"conformance corpus": list(retention.read_pcaps(retention.corpus_pcaps(CORPUS))),
              "generated scans": scans}
    for kind in ("vxlan", "gre_ip", "erspan3", "mpls_ip"):  # the same scans mirrored through a tunnel
        inputs[f"scans in {kind}"] = [(1, sec, usec, tunnelgen.wrap(kind, frame, linktype))
                                      for linktype, sec, usec, frame in scans]
    for name, packets in inputs.items():
        for workers in (2, 4, 8):
            single, kept = retention.retention(config, store, packets, workers)
            _s, flow = retention.retention(config, store, packets, workers, retention.kernel_hash_route)
            print(f"retention  {name:20s} workers={workers}  host-affine {kept}/{single} "
                  f"({100.0 * kept / max(single, 1):.0f}%)   per-flow hash {flow}/{single} "
                  f"({100.0 * flow / max(single, 1):.0f}%)", flush=True)


def write_traffic(path: str) -> int:
    """A mixed capture (DNS, SYNs, HTTP, scans) from many hosts; returns its packet count."""
    import dpkt

    packets = retention.generated_scans(sources=200, seed=3)
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=1)
        for _lt, sec, usec, frame in packets:
            writer.writepkt(frame, ts=sec + usec / 1e6)
    return len(packets)


def counters(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("maltrail_") and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            out[name] = out.get(name, 0.0) + float(line.split()[-1])
    return out


def veth_up() -> None:
    veth_down()
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", HOST, "type", "veth", "peer", "name", PEER)
    sh("ip", "link", "set", PEER, "netns", NS)
    sh("ip", "link", "set", HOST, "up")
    sh("ip", "netns", "exec", NS, "ip", "link", "set", PEER, "up")
    time.sleep(0.5)


def veth_down() -> None:
    sh("ip", "link", "del", HOST, check=False)
    sh("ip", "netns", "del", NS, check=False)


def start_sensor(workers: int, tmp: str, log_name: str, ring: str) -> tuple[subprocess.Popen[bytes], int]:
    """The live sensor on the veth host end (corpus trails, metrics on a free port), once it is up."""
    port = free_port()
    shutil.copy(os.path.join(CORPUS, "trails.csv"), os.path.join(tmp, "trails.csv"))
    env = dict(os.environ, MALTRAIL_LOG_DIR=os.path.join(tmp, log_name),
               MALTRAIL_TRAILS_FILE=os.path.join(tmp, "trails.csv"), MALTRAIL_MONITOR_INTERFACE=HOST,
               MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_CAPTURE_BUFFER_SIZE=ring,
               MALTRAIL_CAPTURE_WORKERS=str(workers), MALTRAIL_STATS_ADDRESS=f"127.0.0.1:{port}",
               MALTRAIL_USE_HEURISTICS="true", MALTRAIL_CAPTURE_FILTER="")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "sensor.py"), "-q"], env=env)
    for _ in range(100):
        try:
            if counters(port).get("maltrail_up") == 1:
                break
        except OSError:
            pass
        time.sleep(0.2)
    return proc, port


def live_steps(workers: int, rates: list[int], seconds: float, pcap: str, count: int, tmp: str) -> int:
    proc, port = start_sensor(workers, tmp, f"log{workers}", "4MB")
    best = 0
    try:
        for rate in rates:
            loops = max(1, int(rate * seconds / count))
            before = counters(port)
            sh("ip", "netns", "exec", NS, "tcpreplay", "-q", "-i", PEER, "--pps", str(rate), "--loop",
               str(loops), pcap)
            sent = loops * count
            for _ in range(50):  # let the workers drain the ring
                time.sleep(0.2)
                after = counters(port)
                if after["maltrail_packets_total"] - before["maltrail_packets_total"] >= sent:
                    break
            dropped = after["maltrail_capture_dropped_total"] - before["maltrail_capture_dropped_total"]
            processed = after["maltrail_packets_total"] - before["maltrail_packets_total"]
            ok = dropped == 0 and processed >= sent
            print(f"live       workers={workers} rate={rate:>7,} pps  sent {sent:>8,}  processed "
                  f"{int(processed):>8,}  kernel drops {int(dropped):>7,}  {'ok' if ok else 'DROPS'}", flush=True)
            if not ok:
                break
            best = rate
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    return best


def drain_rate(workers: int, pcap: str, count: int, loops: int, tmp: str) -> float:
    """Processing capacity with the generator out of the way: blast the capture into a ring big
    enough to hold it (tcpreplay --topspeed), then time how fast the workers empty it. On a small
    machine the generator itself needs a CPU, so this is the fair 1-vs-2-worker comparison."""
    proc, port = start_sensor(workers, tmp, f"dlog{workers}", "256MB")
    try:
        sent = loops * count
        began = time.monotonic()
        sh("ip", "netns", "exec", NS, "tcpreplay", "-q", "-i", PEER, "--topspeed", "--loop", str(loops), pcap)
        start, first = time.monotonic(), counters(port)["maltrail_packets_total"]
        send_time = start - began
        while True:
            time.sleep(0.1)
            now = counters(port)
            done = now["maltrail_packets_total"]
            if done >= sent or time.monotonic() - start > 120:
                break
        took = time.monotonic() - start
        dropped = now["maltrail_capture_dropped_total"]
        rate = done / (send_time + took)
        print(f"drain      workers={workers} {int(done):,} packets sent at top speed in {send_time:.2f} s, all "
              f"processed {took:.2f} s later: {rate:,.0f} pps overall (kernel drops {int(dropped)}; "
              f"{int(first):,} processed while sending)", flush=True)
        return rate
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10000,20000,40000,60000,80000,100000,120000,160000,200000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    retention_figures()
    if args.skip_live:
        return 0
    if os.geteuid() != 0 or not shutil.which("tcpreplay"):
        print("live part skipped: needs root and tcpreplay")
        return 0
    rates = [int(r) for r in args.rates.split(",")]
    tmp = tempfile.mkdtemp(prefix="mlbench")
    pcap = os.path.join(tmp, "traffic.pcap")
    count = write_traffic(pcap)
    veth_up()
    try:
        best = {workers: live_steps(workers, rates, args.seconds, pcap, count, tmp) for workers in (1, 2)}
        drain = {workers: drain_rate(workers, pcap, count, max(1, 900_000 // count), tmp) for workers in (1, 2)}
    finally:
        veth_down()
    print(f"summary    top-speed burst throughput: 1 worker {drain[1]:,.0f} pps, 2 workers {drain[2]:,.0f} pps "
          f"({drain[2] / max(drain[1], 1):.2f}x)")
    ratio = best[2] / best[1] if best[1] else 0.0
    print(f"summary    highest rate without kernel drops: 1 worker {best[1]:,} pps, 2 workers "
          f"{best[2]:,} pps ({ratio:.2f}x) on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
