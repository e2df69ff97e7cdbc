"""Benchmark of the web client as the user sees it: loads a generated N-event day (default
1,000,000) from the real server.py into a fresh headless Chromium per run and prints, as the median
of the runs (default 5):

- first rows: from the page's load request to the first painted grid rows;
- full aggregation: from the load request to the painted view of the whole day;
- the CPU seconds the load took in this browser's processes and in the server (figures that
  other jobs on a shared machine disturb less than wall-clock times);
- this browser's own memory: the resident size of its renderer process (the page and its data
  worker; found from the browser process Playwright launched, by the run's own profile folder),
  and the main-thread JS heap (CDP Performance.getMetrics);
- search latency: from the Enter (or Backspace) keydown, as the page receives it (the event's
  timeStamp), to the frame after the grid's rows changed for that search (a MutationObserver on
  the rows, then a requestAnimationFrame and a task, in the page's own clock); each search is
  computed afresh (never a repeat the worker answers from its cache of recent views), while
  clearing the box (select all, Backspace, after a search) finds the day's unfiltered view there.

    .venv/bin/python bench/bench_web.py [--events 1000000] [--runs 5] [--keep DIR]

Targets: 1M events fully aggregated within 3 s, 3M within 8 s; first rows within 0.3 s; Enter on a
search (field filters and bare words) and clearing the box painted within 100 ms at 1M.
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
from tests.kit import procs as procs_kit  # noqa: E402
from tests.web import gen_day  # noqa: E402
from tests.web.harness import PASSWORD, Server, launch_browser  # noqa: E402

QUERIES = ["type:dns", "src:10.0.0.0/8 port:>1024", "count:>=10", "trail:*.biz", "-type:dns sev:high",
           "(type:url OR type:ip) AND NOT info:scan*", "emotet", "10.1"]

# Installed before the page's own scripts: records when grid rows are painted (a task after the
# next animation frame following a change of #grid-rows or of the "no threats" note), and the
# timeStamp of Enter/Backspace keydowns in the search box.
PAGE_PROBE = """
(() => {
  const probe = window.__probe = { paints: [], keys: [] };
  const painted = () => requestAnimationFrame(() => setTimeout(() => {
    const app = window.maltrail;
    probe.paints.push({ t: performance.now(), q: app ? app.state.q : null, busy: document.body.dataset.busy,
      rows: document.getElementById('grid-rows').childElementCount });
  }, 0));
  document.addEventListener('keydown', (ev) => {
    if (ev.target && ev.target.id === 'q' && (ev.key === 'Enter' || ev.key === 'Backspace')) probe.keys.push(ev.timeStamp);
  }, true);
  document.addEventListener('DOMContentLoaded', () => {
    const mo = new MutationObserver(painted);
    mo.observe(document.getElementById('grid-rows'), { childList: true });
    mo.observe(document.getElementById('grid-empty'), { attributes: true });
  });
})();
"""


def process_tree(profile: str = "", root: int = 0) -> dict[int, tuple[bytes, float, float]]:
    """The processes of the browser using `profile` (or of the process `root`) and their
    descendants: pid -> (command line, resident MB, CPU seconds so far)."""
    procs: dict[int, tuple[int, bytes, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ")
            fields = procs_kit.stat(int(pid))
        except (OSError, IndexError):
            continue
        procs[int(pid)] = (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / tick)
    marker = f"--user-data-dir={profile}".encode()
    tree = {root} if root else {pid for pid, (_, cmd, _) in procs.items() if marker in cmd and b"--type=" not in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    out = {}
    for pid in tree & procs.keys():
        try:
            with open(f"/proc/{pid}/status") as handle:
                rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration):
            continue
        out[pid] = (procs[pid][1], rss, procs[pid][2])
    return out


def browser_rss_mb(profile: str) -> dict[str, float]:
    """Resident memory (MB) of the browser using `profile`: `page` is its largest renderer (the
    page and its data worker: a dedicated worker runs in its page's renderer), `all` every process
    of that browser."""
    tree = process_tree(profile)
    page = max((rss for cmd, rss, _ in tree.values() if b"--type=renderer" in cmd), default=0.0)
    return {"page": page, "all": sum(rss for _, rss, _ in tree.values())}


def cpu_seconds(tree: dict[int, tuple[bytes, float, float]]) -> float:
    return sum(cpu for _, _, cpu in tree.values())


def search_ms(page, keys: list[str], q: str) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    """Press `keys` in the search box (already holding its text) and time the last keydown to the
    painted rows of query `q`: (ms, rows in the view, ms the worker spent on the view)."""
    page.evaluate("() => { window.__probe.paints = []; window.__probe.keys = []; }")
    for key in keys:
        page.press("#q", key)
    page.wait_for_function(
        "(q) => window.__probe.paints.some((p) => p.q === q && p.busy === '0') && document.body.dataset.busy === '0'",
        arg=q, timeout=60000)
    probe = page.evaluate("window.__probe")
    start = probe["keys"][-1]
    end = next(p["t"] for p in probe["paints"] if p["q"] == q and p["busy"] == "0")
    return end - start, int(page.evaluate("window.maltrail.grid.count")), float(page.evaluate("window.maltrail.timing.workerMs"))


def one_run(p, server: Server, with_searches: bool) -> dict[str, object]:  # type: ignore[no-untyped-def]
    profile = tempfile.mkdtemp(prefix="mt-bench-profile-")
    try:
        ctx = launch_browser(p, profile)
        ctx.add_init_script(PAGE_PROBE)
        page = ctx.new_page()
        page.goto(server.url)
        page.fill("#login-user", "admin")
        page.fill("#login-pass", PASSWORD)
        assert server.proc is not None
        cpu_before = cpu_seconds(process_tree(profile)), cpu_seconds(process_tree(root=server.proc.pid))
        page.click("#login-submit")
        page.wait_for_function("() => document.body.dataset.ready === 'done' && document.body.dataset.busy === '0'"
                               " && window.__probe.paints.length > 0", timeout=600000)
        cpu_browser = cpu_seconds(process_tree(profile)) - cpu_before[0]
        cpu_server = cpu_seconds(process_tree(root=server.proc.pid)) - cpu_before[1]
        page.wait_for_timeout(300)     # the last view's paint
        timing = page.evaluate("window.maltrail.timing")
        paints = page.evaluate("window.__probe.paints")
        stats = page.evaluate("window.maltrail.stats")
        load_start = timing["loadStart"]
        first = next((x["t"] for x in paints if x["rows"] > 0), paints[0]["t"]) - load_start
        done_at = load_start + timing["done"]
        final = next((x["t"] for x in paints if x["t"] >= done_at), paints[-1]["t"]) - load_start
        cdp = ctx.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        rss = browser_rss_mb(profile)
        result: dict[str, object] = {"first": first / 1000, "done": final / 1000, "parsed": timing["done"] / 1000,
                                     "heap": metrics.get("JSHeapUsedSize", 0) / 1048576, "rss": rss, "stats": stats,
                                     "cpu_browser": cpu_browser, "cpu_server": cpu_server}
        if with_searches:
            latencies: dict[str, tuple[float, int, float]] = {}
            for q in QUERIES:
                samples = []
                worker = []
                n = 0
                for k in range(3):
                    # a trailing space makes each sample a new text, so none is answered from the
                    # worker's cache of recent views
                    typed = q + " " * k
                    page.fill("#q", typed)
                    ms, n, wms = search_ms(page, ["Enter"], typed)
                    samples.append(ms)
                    worker.append(wms)
                    page.fill("#q", "")
                    search_ms(page, ["Enter"], "")
                latencies[q] = (statistics.median(samples), n, statistics.median(worker))
            clear = []
            for _ in range(3):
                page.fill("#q", "emotet")
                search_ms(page, ["Enter"], "emotet")
                clear.append(search_ms(page, ["Control+a", "Backspace"], ""))
            latencies["(clear the box)"] = (statistics.median(c[0] for c in clear), clear[-1][1],
                                            statistics.median(c[2] for c in clear))
            result["latencies"] = latencies
        ctx.close()
        return result
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def load_average() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="fresh browsers (the figures are their medians)")
    parser.add_argument("--keep", help="log directory to reuse (generated once, kept)")
    parser.add_argument("--no-searches", action="store_true", help="loads only (no search latencies)")
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
    runs = []
    loads = [load_average()]
    try:
        with sync_playwright() as p:
            for i in range(args.runs):
                runs.append(one_run(p, server, with_searches=i == args.runs - 1 and not args.no_searches))
                loads.append(load_average())
                r = runs[-1]
                print(f"run {i + 1}: first rows {r['first']:.2f} s, parsed {r['parsed']:.2f} s, "
                      f"full view {r['done']:.2f} s, renderer {r['rss']['page']:.0f} MB, "
                      f"CPU browser {r['cpu_browser']:.2f} s server {r['cpu_server']:.2f} s", flush=True)  # type: ignore[union-attr]
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(log_dir, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)  # type: ignore[arg-type]

    stats = runs[-1]["stats"]
    renderer = statistics.median(r["rss"]["page"] for r in runs)  # type: ignore[union-attr]
    whole = statistics.median(r["rss"]["all"] for r in runs)  # type: ignore[union-attr]
    print(f"events: {stats['allEvents']:,}  threats: {stats['allThreats']:,}  malformed: {stats['bad']}"  # type: ignore[index]
          f"  ({os.path.getsize(path) / 1048576:.0f} MB)")
    print(f"load average during the runs: {' | '.join(loads)}")
    print(f"medians of {len(runs)} fresh-browser runs:")
    print(f"time to first rows:         {med('first'):6.2f} s   (target 0.3 s)")
    each = ", ".join(f"{float(r['done']):.2f}" for r in runs)  # type: ignore[arg-type]
    print(f"time to full aggregation:   {med('done'):6.2f} s   (worker done: {med('parsed'):.2f} s;"
          f" target 3 s at 1M, 8 s at 3M, 40 s at 10M)   runs: {each}")
    print(f"CPU used by the load: browser {med('cpu_browser'):.2f} s (all its processes), server {med('cpu_server'):.2f} s")
    print(f"renderer resident (page + data worker): {renderer:6.0f} MB   (target < 1.5 GB at 10M)")
    print(f"this browser's processes, all:          {whole:6.0f} MB")
    print(f"main-thread JS heap:        {med('heap'):6.0f} MB")
    if args.no_searches:
        return 0
    latencies = runs[-1]["latencies"]
    worst = 0.0
    for q, (ms, n, wms) in latencies.items():  # type: ignore[attr-defined]
        worst = max(worst, ms)
        print(f"search {q!r:45} {ms:7.1f} ms  (worker {wms:5.1f} ms)  -> {n:,} threats")
    print(f"worst median key-to-painted-rows latency: {worst:.1f} ms   (target 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
