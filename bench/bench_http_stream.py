#!/usr/bin/env python3
"""HTTP-on-TCP benchmark: CPU per packet of the detector's HTTP paths, and the memory of the
request-head table (core/protocols/heads.py) at its cap.

Where it sits: outside the product; it drives the real `Detector.process_batch` over capture
batches read by `OfflineSource` (in-process, so the figure is the detector's own work: decode,
parse, lookups, events), with a generated trail set of a few thousand URL and host rows.

    .venv/bin/python bench/bench_http_stream.py [--requests 20000] [--repeat 7]

Classes: `single` is the untouched path (one whole GET head per segment, the first request of its
connection); `split` cuts every head in two segments; `pipelined` sends three requests per
segment; `post` a POST whose body follows in the next segment. Each figure is the best of
`--repeat` replays (this machine is shared; best-of is the stable statistic). MALTRAIL_PURE_PYTHON=1
measures the pure-Python paths. Run the same file from an older tree to get a before figure (the
memory part needs core/protocols/heads.py and is skipped without it).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.capture.offline import OfflineSource  # noqa: E402
from core.config import load_config  # noqa: E402
from core.detect.detector import Detector  # noqa: E402
from core.events.pipeline import EventPipeline  # noqa: E402
from core.events.sinks import MemorySink  # noqa: E402
from core.trails.store import TrailStore  # noqa: E402
from tests.kit import pcapgen as g  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def head(rng: random.Random, n: int) -> bytes:
    return g.http_request("GET", f"/static/img{rng.randrange(100000)}.png?v=3",
                          [("Host", f"www.site{n % 5000}.com"), ("User-Agent", UA), ("Accept", "*/*"),
                           ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive")])


def traffic(kind: str, count: int, rng: random.Random) -> list[bytes]:
    frames: list[bytes] = []
    for n in range(count):
        s = g.TcpSession(client=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", sport=1024 + n % 60000,
                         isn=rng.randrange(1 << 32))
        if kind == "single":
            frames.append(s.client(head(rng, n)))
        elif kind == "split":
            data = head(rng, n)
            cut = rng.randrange(1, len(data))
            frames += [s.client(data[:cut]), s.client(data[cut:])]
        elif kind == "pipelined":
            frames.append(s.client(head(rng, n) + head(rng, n + 1) + head(rng, n + 2)))
        elif kind == "post":
            body = b"q=" + bytes(rng.randrange(97, 123) for _ in range(200))
            request = g.http_request("POST", "/api/search", [("Host", f"api{n % 500}.example.com"), ("User-Agent", UA)],
                                     body=body)
            frames += [s.client(request[:-len(body)]), s.client(body)]
    return frames


def replay_cost(path: str, store: TrailStore, work: str, packets: int) -> tuple[float, int]:
    config = load_config(overrides={"LOG_DIR": work, "USE_HEURISTICS": "false"})
    sink = MemorySink()
    detector = Detector(config, store, EventPipeline([sink], "bench"))
    batches = list(OfflineSource([path], snaplen=65535))
    start = time.process_time()
    for linktype, buf, meta in batches:
        detector.process_batch(linktype, buf, meta)
    return (time.process_time() - start) / packets * 1e9, len(sink.events)


def table_memory() -> None:
    try:
        from core.protocols.heads import RequestHeads
    except ImportError:
        print("memory: core/protocols/heads.py absent in this tree")
        return
    table = RequestHeads()
    cut = b"GET /" + b"a" * (table.max_bytes - 6)  # one byte short of the cap: the most a head holds
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(table.max_flows):
        table.start((bytes(4), n, bytes(4), 80), n, cut, 0.0)
        table.remember((bytes(4), n, bytes(4), 80), n, 0.0)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"memory at cap: {table.max_flows} heads of {table.max_bytes - 1} bytes + {len(table.resume)} "
          f"next-request positions: {used / 2**20:.1f} MiB ({used / table.max_flows:.0f} bytes per connection)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from core.accel import status
    built = status()
    print("accelerators: " + (", ".join(name for name, ok in built.items() if ok) or "none (pure Python)"))
    rng = random.Random(7)
    rows = [(f"evil{n}.example/gate{n}.php", "malware (bench)", "(static)") for n in range(2000)]
    rows += [(f"/panel{n}/login.php", "malware (bench)", "(static)") for n in range(2000)]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as work:
        store = TrailStore.from_rows(rows, work)
        for kind in ("single", "split", "pipelined", "post"):
            frames = traffic(kind, args.requests, rng)
            path = g.write_pcap(os.path.join(work, f"{kind}.pcap"),
                                [(1_700_000_000 + i * 1e-4, f) for i, f in enumerate(frames)])
            costs = [replay_cost(path, store, work, len(frames)) for _ in range(args.repeat)]
            best = min(cost for cost, _ in costs)
            print(f"{kind:>9}: {best:7.0f} ns/packet (best of {args.repeat}; {len(frames):,} packets)")
    table_memory()


if __name__ == "__main__":
    main()
