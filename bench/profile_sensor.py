#!/usr/bin/env python3
"""Where a packet's CPU goes: the bench capture replayed in process, per traffic class, with an
optional cProfile of one class.

Where it sits: outside the product, beside bench_sensor.py (whose capture generator and trail
sampling it reuses). The capture is read once into memory, then replayed through one
`build_sensor` sensor (core/assemble.py: heuristics on, events to day files in a temporary
folder), so the figures are detection only: decode, lookups, heuristics and events, without the
pcap reading that bench_sensor.py's figures include. Each class is a fresh sensor over the same
mapped trail index and its first pass (cold answer caches, as in a replay); `--passes 2` also
prints a second pass over the same packets (every cache warm).

    .venv/bin/python bench/profile_sensor.py [--trails ../shared/bench/trails.csv.gz] [--packets 300000]
    .venv/bin/python bench/profile_sensor.py --profile http --top 25    # cProfile of one class
    .venv/bin/python bench/profile_sensor.py --only dns --passes 2      # one class, no cProfile
    .venv/bin/python bench/profile_sensor.py --reps 6                   # min / median of 6 fresh sensors

This machine's speed moves from minute to minute: to compare two trees, run this script in both
at the same time (one per vCPU, so both see the same slow and fast minutes) with --reps.
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_sensor as traffic  # noqa: E402  (the one generator of the bench capture)

ROOT = traffic.ROOT
sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trails", default=traffic.DEFAULT_TRAILS, help="trails.csv.gz (default: ../shared/bench)")
    parser.add_argument("--packets", type=int, default=300_000)
    parser.add_argument("--passes", type=int, default=1, help="replays of each class per sensor (2: warm caches)")
    parser.add_argument("--profile", metavar="CLASS", help="cProfile one class (tls, syn, dns, http, icmp, mdns, mixed)")
    parser.add_argument("--only", metavar="CLASS", help="replay only this class (no cProfile)")
    parser.add_argument("--reps", type=int, default=1,
                        help="fresh sensors per class (cold caches each): prints the minimum and median of each pass")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    args = parser.parse_args()

    from core.assemble import build_sensor
    from core.capture.offline import OfflineSource
    from core.config import load_config
    from core.events.sinks import LogFileSink
    from core.trails.store import TrailStore

    work = tempfile.mkdtemp(prefix="profile-sensor-")
    try:
        trails_gz = args.trails
        if not os.path.exists(trails_gz):
            trails_gz = os.path.join(work, "generated.csv.gz")
            traffic.generate_gz(trails_gz)
        trails = os.path.join(work, "trails.csv")
        with gzip.open(trails_gz, "rb") as src, open(trails, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        hits = traffic.sample_trails(trails_gz)
        rng = random.Random(42)  # the same capture as bench_sensor.py
        total = sum(weight for _, weight in traffic.MIX)
        classes = {kind: traffic.build_traffic(kind, args.packets * weight // total, hits, rng)
                   for kind, weight in traffic.MIX}
        mixed = [frame for frames in classes.values() for frame in frames]
        rng.shuffle(mixed)
        classes["mixed"] = mixed
        log_dir = os.path.join(work, "logs")
        os.makedirs(log_dir)
        env = dict(os.environ, MALTRAIL_TRAILS_FILE=trails, MALTRAIL_LOG_DIR=log_dir,
                   MALTRAIL_DISABLE_TRAIL_UPDATES="true", MALTRAIL_USE_HEURISTICS="true")
        config = load_config(os.path.join(ROOT, "maltrail.conf"), env=env)
        store = TrailStore.open(trails)
        t0 = 1_700_000_000.0
        for kind, frames in classes.items():
            if (args.profile or args.only) and kind not in (args.profile, args.only):
                continue
            path = os.path.join(work, f"{kind}.pcap")
            traffic.write_pcap(path, [(t0 + i * 1e-4, f) for i, f in enumerate(frames)])
            source = OfflineSource([path])
            batches = list(source)
            source.close()
            profiler = cProfile.Profile() if args.profile else None
            runs: list[list[float]] = []  # per fresh sensor, ns/packet of each pass
            for _ in range(max(1, args.reps)):
                sensor = build_sensor(config, store, sinks=[LogFileSink(log_dir)], plugins=[])
                figures = []
                for _ in range(max(1, args.passes)):
                    if profiler is not None:
                        profiler.enable()
                    started = time.process_time()
                    for linktype, buf, meta in batches:
                        sensor.process_batch(linktype, buf, meta)
                    figures.append((time.process_time() - started) / len(frames) * 1e9)
                    if profiler is not None:
                        profiler.disable()
                sensor.close()
                runs.append(figures)
            if len(runs) == 1:
                passes = " / ".join(f"{ns:6.0f}" for ns in runs[0])
            else:  # the minimum and the median of each pass over the fresh sensors
                passes = " / ".join(f"min {min(column):6.0f} med {statistics.median(column):6.0f}"
                                    for column in zip(*runs, strict=True))
            print(f"{kind:>5}: {passes} ns/packet ({len(frames):,} packets, {sensor.events.delivered} events"
                  f"{', cProfile on' if profiler else ''}{f', {len(runs)} fresh sensors' if len(runs) > 1 else ''})")
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
