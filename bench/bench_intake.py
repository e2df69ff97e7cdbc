#!/usr/bin/env python3
"""UDP intake benchmark: a real server.py receives paced event datagrams on loopback.

For each rate it starts a fresh server.py (UDP intake on 127.0.0.1), sends `<epoch> <line>`
datagrams at that rate for --seconds from a separate process, waits for the day file to stop
growing and counts the lines written. Prints sent/written/loss per rate and the highest rate
without loss. `--senders N` splits each rate over N sender processes (one Python process tops
out near 240k datagrams/s here); `--curve` measures every rate instead of stopping at the
first loss (the loss curve).

    .venv/bin/python bench/bench_intake.py                       # 100k/s for 10 s, then a search upwards
    .venv/bin/python bench/bench_intake.py --rates 100000 --seconds 10
    .venv/bin/python bench/bench_intake.py --rates 100000 200000 300000 400000 --senders 3 --curve
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.events.dayfile import day_of, day_path  # noqa: E402


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sender(port: int, rate: int, seconds: float, result: multiprocessing.Queue, distinct: int = 1000) -> None:
    """Paced datagrams from `distinct` different lines (bench_clickhouse.py asks for every line
    to differ: its store counts distinct events)."""
    now = int(time.time())
    payloads = []
    for n in range(distinct):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - n // 1000000))
        payloads.append((f'{now} "{stamp}.{n % 1000000:06d}" bench-sensor 10.{n % 250}.{n % 7}.1 '
                         f'{1024 + n % 60000} 198.51.100.{n % 250} 443 TCP IP 198.51.100.{n % 250} '
                         f'"known attacker" (static)').encode())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    total = int(rate * seconds)
    tick = 0.001
    sent = 0
    start = time.perf_counter()
    due = 0.0
    while sent < total:
        elapsed = time.perf_counter() - start
        due = min(total, int((elapsed + tick) * rate))
        while sent < due:
            try:
                send(payloads[sent % distinct])
            except BlockingIOError:
                continue
            sent += 1
        sleep = start + (sent / rate) - time.perf_counter()
        if sleep > 0:
            time.sleep(sleep)
    result.put((sent, time.perf_counter() - start))


def run_rate(rate: int, seconds: float, senders: int = 1) -> tuple[int, int, float]:
    tmp = tempfile.mkdtemp(prefix="mt-bench-intake-")
    log_dir = os.path.join(tmp, "logs")
    udp_port, http_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    config = os.path.join(tmp, "bench.conf")
    with open(config, "w") as handle:
        handle.write(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {http_port}\nUDP_ADDRESS 127.0.0.1\nUDP_PORT {udp_port}\n"
                     f"LOG_DIR {log_dir}\n")
    err = open(os.path.join(tmp, "server.err"), "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "server.py"), "-c", config], stdout=err,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 15
    while time.time() < deadline:
        with open(os.path.join(tmp, "server.err"), "rb") as handle:
            if b"UDP intake" in handle.read():
                break
        time.sleep(0.1)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    children = [multiprocessing.Process(target=sender, args=(udp_port, rate / senders, seconds, queue))
                for _ in range(senders)]
    for child in children:
        child.start()
    results = [queue.get() for _ in children]
    for child in children:
        child.join()
    sent, took = sum(n for n, _ in results), max(t for _, t in results)
    path = day_path(log_dir, day_of(time.time()))
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.2)
        size = os.path.getsize(path) if os.path.exists(path) else 0
        stable = stable + 1 if size == last else 0
        last = size
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    err.close()
    written = 0
    if os.path.exists(path):
        with open(path, "rb") as handle:
            written = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    subprocess.run(["rm", "-rf", tmp], check=False)
    return sent, written, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", type=int, nargs="*", default=[100000, 125000, 150000, 175000, 200000, 250000])
    parser.add_argument("--senders", type=int, default=1, help="sender processes sharing each rate")
    parser.add_argument("--curve", action="store_true", help="measure every rate (do not stop at the first loss)")
    args = parser.parse_args()
    best = 0
    print(f"{'rate/s':>9} {'sent':>10} {'written':>10} {'loss':>8} {'send time':>9}")
    for rate in args.rates:
        sent, written, took = run_rate(rate, args.seconds, max(1, args.senders))
        loss = 1 - written / sent if sent else 0
        achieved = sent / took if took else 0
        print(f"{rate:>9} {sent:>10} {written:>10} {loss:>7.2%} {took:>8.1f}s  (offered {achieved:,.0f}/s)",
              flush=True)
        if written == sent and achieved >= rate * 0.97:
            best = max(best, rate)
        elif written < sent and not args.curve:
            break
    print(f"highest lossless rate: {best:,}/s for {args.seconds:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
