#!/usr/bin/env python3
"""/events streaming benchmark: one large day file served by a real server.py.

Writes a day file of --size-mb (default 1024) event lines, starts server.py, logs in and
downloads /events (whole day, then a Range from the middle) while sampling the server's resident
memory. Prints throughput and the server's RSS before and at peak (flat memory = the file is
streamed, never loaded).

    .venv/bin/python bench/bench_events_stream.py [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.events.dayfile import day_path  # noqa: E402


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mt-bench-events-")
    log_dir = os.path.join(tmp, "logs")
    os.makedirs(log_dir)
    day = datetime.date.today().isoformat()
    line = (f'"{day} 12:00:00.000000" bench 10.0.0.1 1234 198.51.100.7 443 TCP IP 198.51.100.7 '
            f'"known attacker" (static)\n').encode()
    block = line * (4 << 20 // len(line))
    target = args.size_mb << 20
    path = day_path(log_dir, day)
    with open(path, "wb") as handle:
        written = 0
        while written < target:
            handle.write(block)
            written += len(block)
    size = os.path.getsize(path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = os.path.join(tmp, "bench.conf")
    with open(config, "w") as handle:
        handle.write(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {port}\nLOG_DIR {log_dir}\nUSERS\n"
                     f"    admin:{hashlib.sha256(b'pw').hexdigest()}:0:\n")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "server.py"), "-c", config], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/login", "username=admin&password=pw",
                             {"Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                resp.read()
                cookie = resp.getheader("Set-Cookie", "").split(";")[0]
                break
            except OSError:
                time.sleep(0.1)
        before = rss_kb(proc.pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_kb(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        results = []
        for label, headers in (("whole day", {}), ("Range from the middle", {"Range": f"bytes={size // 2}-"})):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/events?date={day}", headers={"Cookie": cookie, **headers})
            resp = conn.getresponse()
            started = time.perf_counter()
            received = 0
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
            took = time.perf_counter() - started
            results.append((label, resp.status, received, took))
            conn.close()
        done.set()
        sampler.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"day file: {size / (1 << 20):.0f} MB")
    for label, status, received, took in results:
        print(f"{label:>22}: HTTP {status}, {received / (1 << 20):.0f} MB in {took:.2f} s "
              f"({received / (1 << 20) / took:.0f} MB/s)")
    print(f"server RSS: {before / 1024:.1f} MB before, {peak[0] / 1024:.1f} MB peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
