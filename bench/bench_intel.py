"""Benchmark: intel import at scale, and the /intel exports of a 1.6M-row trail set.

Where it sits: measures core/update/intel/ (through the real update CLI, as a child process so its
wall time and peak RSS are its own) and core/server/intel.py (a real server.py; its peak RSS read
from /proc while the exports stream).

    .venv/bin/python bench/bench_intel.py [--misp 1000000] [--stix 100000] [--export-rows 1600000]

1. A MISP feed of `--misp` to_ids attributes (1,000 events) served on 127.0.0.1: first import, then
   a refresh where nothing changed (only the manifest is downloaded).
2. A STIX bundle of `--stix` indicators: first import (every pattern parsed by stix2-patterns),
   then a refresh with the same bundle (patterns of unchanged indicators are not parsed again).
3. The exports of a generated same-shape trail set: bytes, seconds and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_trails import generate  # noqa: E402  (the one generator of a same-shape trail set)

from tests.kit.intel_peers import bundle, indicator, serve_directory, write_misp_feed  # noqa: E402
from tests.kit.server import Server  # noqa: E402


def run_update(workdir: str, sources: list[str]) -> dict[str, float]:
    conf = os.path.join(workdir, "maltrail.conf")
    with open(conf, "w") as handle:
        handle.write(f"TRAILS_FILE {workdir}/trails.csv\nCUSTOM_TRAILS_DIR {workdir}/custom\nIP_MINIMUM_FEEDS 1\n"
                     "FEED_MAX_SIZE 2GB\nFEED_TIMEOUT 120\nINTEL_SOURCES\n" + "".join(f"    {s}\n" for s in sources))
    if not sources:
        with open(conf) as handle:
            conf_text = handle.read().replace("INTEL_SOURCES\n", "")
        with open(conf, "w") as handle:
            handle.write(conf_text)
    if os.path.exists(os.path.join(workdir, "trails.csv")):
        os.unlink(os.path.join(workdir, "trails.csv"))  # a rebuild without --force: no public feeds
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "core.update", "-c", conf, "--no-geo"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"update failed ({status}):\n{output.decode(errors='replace')[-3000:]}")
    with open(os.path.join(workdir, "trails.health.json")) as handle:
        health = json.load(handle)
    return {"seconds": time.monotonic() - started, "peak_mib": usage.ru_maxrss / 1024, "rows": health["rows"]}


def misp_feed(directory: str, attributes: int) -> None:
    per_event = max(1, attributes // 1000)
    events = []
    for number in range(1000):
        base = number * per_event
        attrs = [{"type": "domain", "value": f"c{base + i}.evil-bench-{number}.example", "to_ids": True,
                  "uuid": f"{number:08x}-0000-4000-8000-{base + i:012x}"} for i in range(per_event)]
        events.append({"Event": {"uuid": f"{number:08x}-1111-4111-8111-{number:012x}", "info": f"bench {number}",
                                 "date": "2026-12-01", "timestamp": "1764547200",
                                 "Orgc": {"name": "bench", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
                                 "Tag": [{"name": 'misp-galaxy:malpedia="Bench"'}], "Attribute": attrs}})
    write_misp_feed(directory, events)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_exports(workdir: str, rows: int) -> None:
    server_dir = os.path.join(workdir, "server")
    os.makedirs(server_dir)
    generate(os.path.join(server_dir, "trails.csv"), rows)
    with Server(server_dir, udp=False) as srv:
        assert srv.proc is not None
        cookie = srv.login()
        base_rss = peak_rss_mib(srv.proc.pid)
        print(f"exports of {rows:,} rows ({os.path.getsize(os.path.join(server_dir, 'trails.csv')) / 1e6:.0f} MB csv), "
              f"server peak RSS before: {base_rss:.0f} MiB")
        for path in ("/intel/stix", "/intel/zeek", "/intel/suricata/maltrail-domains.lst",
                     "/intel/misp/manifest.json"):
            for encoding in ("identity", "gzip"):
                started = time.monotonic()
                status, headers, body = srv.request("GET", path, cookie=cookie, timeout=600,
                                                    headers={"Accept-Encoding": encoding})
                seconds = time.monotonic() - started
                assert status == 200, (path, status)
                print(f"  {path:38} {encoding:8} {len(body) / 1e6:8.1f} MB in {seconds:6.2f} s, "
                      f"server peak RSS {peak_rss_mib(srv.proc.pid):.0f} MiB")
                etag = headers["etag"]
            started = time.monotonic()
            status, _headers, body = srv.request("GET", path, cookie=cookie, headers={"If-None-Match": etag})
            print(f"  {path:38} poll: {status} in {(time.monotonic() - started) * 1000:.1f} ms")
        manifest = json.loads(srv.request("GET", "/intel/misp/manifest.json", cookie=cookie, timeout=600)[2])
        biggest = max(manifest, key=lambda event: len(manifest[event]["info"]))
        started = time.monotonic()
        body = srv.request("GET", f"/intel/misp/{biggest}.json", cookie=cookie, timeout=600)[2]
        print(f"  one MISP event ({manifest[biggest]['info'][:30]}): {len(body) / 1e6:.1f} MB in "
              f"{time.monotonic() - started:.2f} s; {len(manifest)} events")


def stix_bundle(path: str, count: int) -> None:
    with open(path, "w") as handle:
        json.dump(bundle([indicator(f"s{i}", f"[domain-name:value = 's{i}.evil-bench.example'] OR "
                                             f"[ipv4-addr:value = '45.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}']")
                          for i in range(count)]), handle)


def generate_in_child(kind: str, path: str, count: int) -> None:
    """Inputs are generated by a child process: a parent grown by them would count in the update
    child's peak RSS (a forked child's high-water mark starts at its parent's size)."""
    subprocess.run([sys.executable, __file__, "--generate", kind, path, str(count)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misp", type=int, default=1_000_000)
    parser.add_argument("--stix", type=int, default=100_000)
    parser.add_argument("--export-rows", type=int, default=1_600_000)
    parser.add_argument("--generate", nargs=3, metavar=("KIND", "PATH", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        kind, path, count = args.generate
        (misp_feed if kind == "misp" else stix_bundle)(path, int(count))
        return 0
    workdir = tempfile.mkdtemp(prefix="bench-intel-")
    try:
        misp_dir, stix_dir, none_dir = (os.path.join(workdir, name) for name in ("misp", "stix", "none"))
        for directory in (misp_dir, stix_dir, none_dir):  # one trails file (and size history) per scenario
            os.makedirs(os.path.join(directory, "custom"))
        base_line = run_update(none_dir, [])
        print(f"no intel source (static trails only): {base_line['seconds']:.1f} s, peak {base_line['peak_mib']:.0f} MiB")
        feed = os.path.join(workdir, "feed")
        os.makedirs(feed)
        generate_in_child("misp", feed, args.misp)
        with serve_directory(feed) as (base, seen):
            first = run_update(misp_dir, [f"misp-feed {base} name=bench"])
            fetched = len(seen)
            again = run_update(misp_dir, [f"misp-feed {base} name=bench"])
        print(f"misp-feed, {args.misp:,} attributes in 1,000 events: first {first['seconds']:.1f} s, "
              f"peak {first['peak_mib']:.0f} MiB, {first['rows']:,} rows ({fetched} requests); unchanged refresh "
              f"{again['seconds']:.1f} s, peak {again['peak_mib']:.0f} MiB ({len(seen) - fetched} request)")
        path = os.path.join(workdir, "bundle.json")
        generate_in_child("stix", path, args.stix)
        first = run_update(stix_dir, [f"stix {path} name=bench"])
        again = run_update(stix_dir, [f"stix {path} name=bench"])
        print(f"stix, {args.stix:,} indicators: first {first['seconds']:.1f} s "
              f"({first['seconds'] / args.stix * 1e3:.2f} ms an indicator), peak {first['peak_mib']:.0f} MiB, "
              f"{first['rows']:,} rows; same bundle again {again['seconds']:.1f} s, peak {again['peak_mib']:.0f} MiB")
        bench_exports(workdir, args.export_rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
