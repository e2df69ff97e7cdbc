"""Trail store benchmark: index build time and memory, warm open, RSS, ns per lookup.

Where it sits: measures core/trails (build.py builds, store.py looks up) with a real-size trail
set. Usage:

    .venv/bin/python bench/bench_trails.py [../shared/bench/trails.csv.gz] [--rows N]

The .gz is decompressed into a temporary folder (never into the project). When it is absent a
set of the same shape is generated (domains 71%, ip:port 17%, URLs 10%, IPv4 1.4%, IPv6 0.1%,
a few hundred regex trails). Opens run in fresh child processes so their RSS is what a sensor
worker would see. Lookup figures include the Python call and loop overhead (as the caller pays it).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.trails.index import classify  # noqa: E402
from core.trails.store import TrailStore  # noqa: E402

DEFAULT_SET = os.path.join(os.path.dirname(ROOT), "shared", "bench", "trails.csv.gz")  # ../shared beside the project
SHAPE = {"domain": 1_130_584, "ipport": 275_294, "url": 166_418, "ipv4": 22_734, "ipv6": 2_000, "regex": 300}

OPEN_CHILD = r"""
import json, random, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from core.trails.store import TrailStore
t1 = time.perf_counter()
c1 = time.process_time()
store = TrailStore.open(sys.argv[2])
t2 = time.perf_counter()
c2 = time.process_time()

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out

after_open = status()
after_traffic = None
if len(sys.argv) > 3:  # sensor-like use: many misses of every kind, then hits on sampled keys
    rng = random.Random(5)
    for _ in range(100_000):
        store.get(f"www{rng.randrange(10**6)}.host-{rng.randrange(10**6)}.example.com")
        packed = rng.randbytes(4)
        store.ip_port(packed, rng.randrange(1, 65536))
        store.ip(packed)
    with open(sys.argv[3]) as f:
        for key in f.read().splitlines():
            store.lookup_key(key)
    after_traffic = status()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "open_cpu_s": c2 - c1, "keys": len(store),
                  "built": store.did_build, "build": store.build_info, "status_kib": after_open,
                  "traffic_kib": after_traffic}))
"""


def generate(path: str, total: int, seed: int = 7) -> None:
    """A synthetic trail set with the real set's shape (used when the real one is absent)."""
    rng = random.Random(seed)
    scale = total / sum(SHAPE.values())
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    tlds = ["com", "net", "org", "ru", "info", "xyz", "top", "cn", "de", "pw"]

    def label(lo: int = 5, hi: int = 14) -> str:
        return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        for _ in range(int(SHAPE["domain"] * scale)):
            w.writerow([f"{label()}.{rng.choice(tlds)}", f"family{rng.randint(0, 2999)} (malware)", "(static)"])
        for _ in range(int(SHAPE["ipport"] * scale)):
            ip = socket.inet_ntoa(rng.randbytes(4))
            w.writerow([f"{ip}:{rng.randint(1, 65535)}", "interlock (malware)", "(static)"])
        for _ in range(int(SHAPE["url"] * scale)):
            w.writerow([f"{label()}.{rng.choice(tlds)}/{label(3, 8)}/{label(3, 10)}.php", "ek clearfake (malicious)",
                        "(static)"])
        for _ in range(int(SHAPE["ipv4"] * scale)):
            w.writerow([socket.inet_ntoa(rng.randbytes(4)), "known attacker", "(static)"])
        for _ in range(int(SHAPE["ipv6"] * scale)):
            w.writerow([socket.inet_ntop(socket.AF_INET6, rng.randbytes(16)), "known attacker", "(static)"])
        for i in range(max(1, int(SHAPE["regex"] * scale))):
            w.writerow([f"dga{i}[a-z]{{4,8}}[0-9]+\\.{label(4, 8)}\\.{rng.choice(tlds)}", f"dga{i} (malware)",
                        "(static)"])


def generate_gz(path: str, total: int = sum(SHAPE.values()), seed: int = 7) -> None:
    """The same synthetic set, gzip-compressed (what the other benchmarks take in place of the real file)."""
    import gzip
    import shutil
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as plain:
        generate(plain.name, total, seed)
        with open(plain.name, "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def child_open(csv_path: str, hits_file: str | None = None) -> dict:
    extra = [hits_file] if hits_file else []
    out = subprocess.run([sys.executable, "-c", OPEN_CHILD, ROOT, csv_path, *extra], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_call_ns(fn, args: list, repeat: int = 5) -> float:
    """Best of `repeat` passes over args; CPU ns per call including the loop (CPU time, so a busy
    machine's other processes do not count)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for a in args:
            fn(*a)
        best = min(best, time.process_time() - t)
    return best / len(args) * 1e9


def sample_keys(csv_path: str, per_kind: int, seed: int = 11) -> dict[str, list[str]]:
    """Reservoir sample of CSV keys per shape."""
    rng = random.Random(seed)
    kinds: dict[str, list[str]] = {"domain": [], "url": [], "ipv4": [], "ipv6": [], "ipport": [], "regex": []}
    seen = dict.fromkeys(kinds, 0)
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) != 3:
                continue
            kind, value = classify(row[0])
            if kind == "regex":
                name = "regex"
            elif kind == "bin":
                assert isinstance(value, bytes)
                name = ("ipv4" if len(value) == 5 else "ipv6") if value[0] == 0xFF else "ipport"
            else:
                name = "url" if "/" in row[0] else "domain"
            seen[name] += 1
            bucket = kinds[name]
            if len(bucket) < per_kind:
                bucket.append(row[0])
            else:
                j = rng.randrange(seen[name])
                if j < per_kind:
                    bucket[j] = row[0]
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trails", nargs="?", default=DEFAULT_SET, help="trails.csv.gz (or .csv)")
    parser.add_argument("--rows", type=int, default=sum(SHAPE.values()), help="rows to generate when absent")
    parser.add_argument("--lookups", type=int, default=100_000, help="lookups per measured kind")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="bench-trails-")
    try:
        csv_path = os.path.join(work, "trails.csv")
        if os.path.exists(args.trails):
            source = args.trails
            t = time.perf_counter()
            opener = gzip.open if args.trails.endswith(".gz") else open
            with opener(args.trails, "rb") as src, open(csv_path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            print(f"trail set: {args.trails} (decompressed in {time.perf_counter() - t:.1f} s)")
        else:
            source = f"generated ({args.rows:,} rows)"
            generate(csv_path, args.rows)
            print(f"trail set: {args.trails} absent, generated {args.rows:,} rows of the same shape")
        print(f"csv size: {os.path.getsize(csv_path) / 2**20:.1f} MiB")

        first = child_open(csv_path)
        build = first["build"] or {}
        print(f"first open (build from CSV): {first['open_s']:.2f} s wall   [child build {build.get('seconds', 0):.2f} s "
          f"wall, {build.get('cpu_seconds', 0):.2f} s CPU, "
              f"build peak RSS {build.get('peak_rss_kib', 0) / 1024:.0f} MiB (parse helper "
              f"{build.get('helper_peak_rss_kib', 0) / 1024:.0f} MiB), index "
              f"{build.get('size', 0) / 2**20:.1f} MiB, {first['keys']:,} keys]")
        warm = [child_open(csv_path) for _ in range(3)]
        assert not any(w["built"] for w in warm)
        best = min(warm, key=lambda w: w["open_s"])
        st = best["status_kib"]
        print(f"warm open: {best['open_s'] * 1000:.1f} ms wall, {best['open_cpu_s'] * 1000:.1f} ms CPU (median "
              f"{sorted(w['open_s'] for w in warm)[1] * 1000:.1f} ms wall; import {best['import_s'] * 1000:.0f} ms)")
        print(f"RSS after warm open: {st.get('VmRSS', 0) / 1024:.1f} MiB (anon {st.get('RssAnon', 0) / 1024:.1f}, "
              f"file {st.get('RssFile', 0) / 1024:.1f}; peak {st.get('VmHWM', 0) / 1024:.1f})")

        keys = sample_keys(csv_path, 20000)
        hits_file = os.path.join(work, "hits.txt")
        with open(hits_file, "w") as f:
            f.write("\n".join(k for items in keys.values() for k in items[:2000]))
        traffic = child_open(csv_path, hits_file)["traffic_kib"]
        print(f"RSS after 100k misses of each kind + {sum(min(2000, len(v)) for v in keys.values()):,} hits: "
              f"{traffic['VmRSS'] / 1024:.1f} MiB (anon {traffic['RssAnon'] / 1024:.1f}, file "
              f"{traffic['RssFile'] / 1024:.1f}; peak {traffic['VmHWM'] / 1024:.1f})")

        store = TrailStore.open(csv_path)
        rng = random.Random(3)
        n = args.lookups

        def cycle(items: list, count: int) -> list:
            return [items[i % len(items)] for i in range(count)] if items else []

        domains = [k.lower() for k in keys["domain"]]
        urls = [k.lower() for k in keys["url"]]
        ip4 = [socket.inet_aton(k) for k in keys["ipv4"]]
        ip6 = [socket.inet_pton(socket.AF_INET6, k.strip("[]")) for k in keys["ipv6"]]
        ipports = []
        for k in keys["ipport"]:
            host, _, port = k.rpartition(":")
            host = host.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            ipports.append((socket.inet_pton(family, host), int(port)))
        miss_names = [f"www{rng.randrange(10**6)}.miss-{rng.randrange(10**6)}.example.com" for _ in range(n)]
        miss_ip4 = [rng.randbytes(4) for _ in range(n)]
        miss_ip6 = [rng.randbytes(16) for _ in range(n)]
        miss_ports = [(rng.randbytes(4), rng.randrange(1, 65536)) for _ in range(n)]

        get, ip, ip_port, match_regex = store.get, store.ip, store.ip_port, store.match_regex
        rows = [
            ("get domain", get, [(d,) for d in domains], [(m,) for m in miss_names]),
            ("get url", get, [(u,) for u in urls], [(m + "/index.php",) for m in miss_names]),
            ("ip v4", ip, [(p,) for p in ip4], [(p,) for p in miss_ip4]),
            ("ip v6", ip, [(p,) for p in ip6], [(p,) for p in miss_ip6]),
            ("ip_port", ip_port, ipports, miss_ports),
        ]
        print(f"{'lookup':<14}{'first hit':>10}{'again hit':>10}{'miss ns':>10}   (first: distinct keys, more "
              f"than the answer cache holds; again: 1,000 keys repeated)")
        for name, fn, hits, misses in rows:
            if hits:
                assert all(fn(*a) is not None for a in hits), name
            assert sum(fn(*a) is not None for a in misses[:2000]) < 5, name
            first_ns = per_call_ns(fn, hits) if hits else float("nan")
            again_ns = per_call_ns(fn, cycle(hits[:1000], n)) if hits else float("nan")
            print(f"{name:<14}{first_ns:>10.0f}{again_ns:>10.0f}{per_call_ns(fn, misses):>10.0f}")
        regex_miss = [(m,) for m in miss_names[: n // 10]] + [("google.com",), ("cdn.example.net",)]
        print(f"{'match_regex':<14}{'':>20}{per_call_ns(match_regex, regex_miss):>10.0f}   "
              f"({store.regex_count()} regex trails, every one active)")
        t = time.perf_counter()
        walked = 0
        for items in keys.values():
            for k in items:
                walked += store.lookup_key(k) is not None
        total = sum(len(v) for v in keys.values())
        print(f"lookup_key (any CSV key): {(time.perf_counter() - t) / max(total, 1) * 1e9:.0f} ns, "
              f"{walked}/{total} sampled keys found")
        print(f"source: {source}")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
