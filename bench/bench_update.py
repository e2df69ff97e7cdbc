"""Benchmark: a full trail update from local copies of every feed plus the 1.6M-row static compilation.

Where it sits: measures core/update/ (feeds -> merge -> trails.csv). A local HTTP server on
127.0.0.1 answers for every feed with its saved sample (tests/data/feeds/) and for the `statics`
feed with the real-size compilation (gzip-encoded, as GitHub serves it); the update runs as a child
process (`core/update/ --force --feed-base-url ...`) so its wall time and peak RSS are its own.

    .venv/bin/python bench/bench_update.py [../shared/bench/trails.csv.gz] [--runs 3]

Without the file (it must never be committed) a generated set of the same shape is used.
The original's static part alone: 17.6 s and 418 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.kit.feedserver import FeedServer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_trails import generate_gz  # noqa: E402  (the one generator of a same-shape trail set)

DEFAULT_SET = os.path.join(os.path.dirname(ROOT), "shared", "bench", "trails.csv.gz")  # ../shared beside the project


def run_once(base_url: str, workdir: str) -> dict[str, float]:
    conf = os.path.join(workdir, "maltrail.conf")
    with open(conf, "w") as handle:
        handle.write(f"TRAILS_FILE {workdir}/trails.csv\nUSE_FEED_UPDATES true\nFEED_TIMEOUT 60\n"
                     f"CUSTOM_TRAILS_DIR {workdir}/custom\nOTX_API_KEY bench\nABUSEIPDB_API_KEY bench\n")
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, os.path.join(ROOT, "core", "update.py"), "-c", conf, "--force",
                              "--no-geo", "--feed-base-url", base_url], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, cwd=workdir)
    assert child.stdout is not None
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"update failed ({status}):\n{output.decode(errors='replace')}")
    with open(os.path.join(workdir, "trails.health.json")) as handle:
        health = json.load(handle)
    statics = [feed for feed in health["feeds"] if feed["name"] == "statics"][0]
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "rows": health["rows"], "statics_rows": statics["rows"], "statics_fetch_s": statics["seconds"],
            "feeds_ok": sum(1 for feed in health["feeds"] if feed["status"] == "ok")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trails", nargs="?", default=DEFAULT_SET)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        source = args.trails
        if not os.path.isfile(source):
            source = os.path.join(workdir, "generated.csv.gz")
            print(f"{args.trails} not found: generating a set of the same shape")
            generate_gz(source)
        os.makedirs(os.path.join(workdir, "custom"))
        with FeedServer(files={"statics": source}) as server:
            results = [run_once(server.base_url, workdir) for _ in range(args.runs)]
    best = min(results, key=lambda item: item["seconds"])
    print(f"input: {source} ({os.path.getsize(source) / 1e6:.1f} MB gzip)" if os.path.exists(source) else "")
    print(f"feeds ok: {best['feeds_ok']}, statics rows: {best['statics_rows']}, published rows: {best['rows']}")
    print(f"full update wall: median {statistics.median(r['seconds'] for r in results):.2f} s, "
          f"best {best['seconds']:.2f} s (statics download+parse {best['statics_fetch_s']:.2f} s), "
          f"CPU {best['cpu']:.2f} s")
    print(f"peak RSS: {max(r['peak_mib'] for r in results):.0f} MiB")
    print("original, static part alone: 17.6 s, 418 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
