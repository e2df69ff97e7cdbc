"""Benchmark of the web client on a big day: loads a generated N-event day (default 1,000,000)
from the real server.py into headless Chromium and prints time to first rows, time to full
aggregation, memory (main-thread JS heap and the renderer's resident size, which includes the
data worker) and filter latency for a set of searches.

    .venv/bin/python bench/bench_web.py [--events 1000000] [--keep DIR]

Targets: full aggregation within 10 s, a filter change within 200 ms.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from playwright.sync_api import sync_playwright  # noqa: E402

from core.events.dayfile import day_path  # noqa: E402
from tests.web import gen_day  # noqa: E402
from tests.web.harness import PASSWORD, Server, launch_browser  # noqa: E402

QUERIES = ["type:dns", "src:10.0.0.0/8 port:>1024", "count:>=10", "trail:*.biz", "-type:dns sev:high",
           "(type:url OR type:ip) AND NOT info:scan*", "emotet", ""]


def renderer_rss_mb() -> float:
    """Resident memory of chromium renderer processes (the page and its worker), in MB."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read()
            if b"--type=renderer" not in cmd:
                continue
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", help="log directory to reuse (generated once, kept)")
    args = parser.parse_args()
    day = datetime.date.today().isoformat()
    log_dir = args.keep or tempfile.mkdtemp(prefix="mt-bench-web-")
    path = day_path(log_dir, day)
    if not os.path.exists(path) or sum(1 for _ in open(path, "rb")) != args.events:
        t0 = time.monotonic()
        gen_day.write_day(log_dir, day, gen_day.day_lines(day, args.events, seed=7))
        print(f"generated {args.events:,} events ({os.path.getsize(path) / 1048576:.0f} MB) in {time.monotonic() - t0:.1f} s")
    server = Server(log_dir)
    server.start()
    profile = tempfile.mkdtemp(prefix="mt-bench-profile-")
    try:
        with sync_playwright() as p:
            ctx = launch_browser(p, profile)
            page = ctx.new_page()
            page.goto(server.url)
            page.fill("#login-user", "admin")
            page.fill("#login-pass", PASSWORD)
            page.click("#login-submit")
            page.wait_for_function("() => document.body.dataset.ready === 'done' && document.body.dataset.busy === '0'",
                                   timeout=300000)
            timing = page.evaluate("window.maltrail.timing")
            stats = page.evaluate("window.maltrail.stats")
            cdp = ctx.new_cdp_session(page)
            cdp.send("HeapProfiler.collectGarbage")
            cdp.send("Performance.enable")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            rss = renderer_rss_mb()
            latencies = {}
            for q in QUERIES:
                samples = []
                for _ in range(3):
                    seq = page.evaluate("+document.body.dataset.viewSeq || 0")
                    page.fill("#q", q + " ")
                    page.fill("#q", q)
                    page.press("#q", "Enter")
                    page.wait_for_function(
                        "([q, s]) => window.maltrail.state.q === q && +document.body.dataset.viewSeq > s"
                        " && document.body.dataset.busy === '0'", arg=[q, seq], timeout=60000)
                    samples.append(page.evaluate("window.maltrail.timing.lastFilterMs"))
                latencies[q or "(empty)"] = (statistics.median(samples), page.evaluate("window.maltrail.grid.count"))
            ctx.close()
    finally:
        server.stop()
        shutil.rmtree(profile, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)
    print(f"events: {stats['allEvents']:,}  threats: {stats['allThreats']:,}  malformed: {stats['bad']}")
    print(f"time to first rows:      {timing['firstRows'] / 1000:6.2f} s")
    print(f"time to full aggregation: {timing['done'] / 1000:6.2f} s   (target 10 s)")
    print(f"main-thread JS heap:     {metrics.get('JSHeapUsedSize', 0) / 1048576:6.0f} MB")
    print(f"renderer RSS (page + worker): {rss:6.0f} MB")
    worst = 0.0
    for q, (ms, n) in latencies.items():
        worst = max(worst, ms)
        print(f"filter {q!r:45} {ms:7.1f} ms  -> {n:,} threats")
    print(f"worst median filter latency: {worst:.1f} ms   (target 200 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
