#!/usr/bin/env python3
"""UDP intake benchmark: a real server.py receives paced event datagrams on loopback.

For each rate it starts a fresh server.py (UDP intake on 127.0.0.1), sends `<epoch> <line>`
datagrams at that rate for --seconds from separate sender processes while --downloads HTTP
clients follow that day's /events, waits for the day file to stop growing and counts the events
in it. Every datagram carries its own id (`"known attacker ID"`), so the count is exact: lost =
ids sent that are not in the day file (a duplicate would be counted too). Each download client
follows the day as the web client does: the whole day's /events, then every --poll seconds a
Range request for what was added (so each downloads the whole file as it grows; the bench says
so when a client did not end with all of it).

Per rate it prints: sent, written, lost, the rate the senders reached, the intake process's own
CPU per event (utime+stime from /proc of the server's intake child over the run divided by the
events it wrote: the figure that holds when the machine is shared), the same for the intake's own
child processes (the store writers: observables with USE_CONDENSED_STORAGE, ClickHouse), the
senders' CPU per event
(mostly the kernel's loopback delivery, which the sending process pays for), the downloads and
the load average. `--curve` measures every rate instead of stopping at the first loss.

The sender is bench/udp_blast.c (64 datagrams a call with UDP GSO, else sendmmsg; paced; each
row says which), compiled here with the system C compiler (CC, else cc); without one, or with
`--sender python`, Python sender processes are used (one tops out near 320k datagrams/s and
several take the CPU the intake needs on a 2-core machine). As root the intake gets its 64 MB
receive buffer whatever net.core.rmem_max is (SO_RCVBUFFORCE; the server's first line says the
size it got) and its raised priority (docs/operations-server.md, "Process priorities").

    .venv/bin/python bench/bench_intake.py                       # 100k/s for 10 s, then a search upwards
    .venv/bin/python bench/bench_intake.py --rates 100000 200000 300000 400000 --seconds 10 --curve
    .venv/bin/python bench/bench_intake.py --rates 300000 --seconds 60 --downloads 2
    .venv/bin/python bench/bench_intake.py --server-root ../other-tree ...   # another tree's server.py
    .venv/bin/python bench/bench_intake.py --set USE_CONDENSED_STORAGE false ...   # a server setting
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.events.dayfile import day_of, day_path  # noqa: E402
from tests.kit import procs  # noqa: E402
from tests.kit.ports import free_port  # noqa: E402

BLAST_SOURCE = os.path.join(ROOT, "bench", "udp_blast.c")
ID_RE = re.compile(rb'"known attacker (\d+)"')
SENDER_IDS = 10**9                    # ids of sender k start at k * SENDER_IDS


def build_blaster(folder: str) -> str | None:
    """bench/udp_blast.c compiled into `folder`; None (and why) when there is no compiler."""
    target = os.path.join(folder, "udp_blast")
    command = shlex.split(os.environ.get("CC") or "cc") + ["-O2", "-o", target, BLAST_SOURCE]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as ex:
        print(f"no C compiler ({ex}): using Python senders", file=sys.stderr)
        return None
    if result.returncode != 0:
        print(f"udp_blast.c did not build: using Python senders\n{result.stderr}", file=sys.stderr)
        return None
    return target


def heads(epoch: int) -> list[bytes]:
    """The datagram up to its id, per variant (bench/udp_blast.c writes the same ones; fixed-width
    fields, so that every datagram has the same length: its GSO needs that)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    return [(f'{epoch} "{stamp}.{v:06d}" bench-sensor 10.{100 + v % 150}.{v % 7}.1 {10000 + v} '
             f'198.51.100.{100 + v % 150} 443 TCP IP 198.51.100.{100 + v % 150} "known attacker ').encode()
            for v in range(1000)]


def paced_send(port: int, rate: float, seconds: float, first: int, epoch: int) -> tuple[int, float]:
    """Paced datagrams from Python, ids first, first+1, ...: (sent, seconds taken)."""
    prefix = heads(epoch)
    tail = b'" (static)'
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    total = int(rate * seconds)
    sent = 0
    start = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - start + 0.001) * rate))
        while sent < due:
            ident = first + sent
            try:
                send(prefix[ident % 1000] + b"%010d" % ident + tail)
            except BlockingIOError:
                continue
            sent += 1
        sleep = start + sent / rate - time.perf_counter()
        if sleep > 0:
            time.sleep(sleep)
    return sent, time.perf_counter() - start


def py_sender(port: int, rate: float, seconds: float, first: int, epoch: int,
              result: multiprocessing.Queue) -> None:
    sent, took = paced_send(port, rate, seconds, first, epoch)
    result.put((sent, took, time.process_time(), "python"))


def sender(port: int, rate: float, seconds: float, result: multiprocessing.Queue, distinct: int = 0) -> None:
    """bench_clickhouse.py's sender: (sent, seconds taken) of `paced_send` from id 0, now. Every
    line differs (its id), which is what `distinct` asked for."""
    del distinct
    result.put(paced_send(port, rate, seconds, 0, int(time.time())))


def c_sender(blaster: str, port: int, rate: float, seconds: float, first: int, epoch: int,
             result: multiprocessing.Queue) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    out = subprocess.run([blaster, "127.0.0.1", str(port), str(rate), str(seconds), str(first), str(epoch), stamp],
                         capture_output=True, text=True, check=True).stdout.split()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.put((int(out[1]), float(out[2]), usage.ru_utime + usage.ru_stime, out[3]))


def downloader(port: int, day: str, every: float, stop: threading.Event, totals: list[int]) -> None:
    """A web client following the day: the whole of /events once, then every `every` seconds a
    Range request for what was added since (html/js/worker.js polls the same way), until `stop`
    and one last time after it. totals: [requests, bytes received, whole lines got up to]."""
    pos = 0
    while True:
        last = stop.is_set()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", f"/events?date={day}", headers={"Range": f"bytes={pos}-"} if pos else {})
            resp = conn.getresponse()
            body = resp.read() if resp.status in (200, 206) else b""
            resp.read()
            pos += body.rfind(b"\n") + 1
            totals[0] += 1
            totals[1] += len(body)
            totals[2] = pos
        except OSError:
            pass
        finally:
            conn.close()
        if last:
            return
        stop.wait(every)


def count_ids(path: str, total_ids: list[tuple[int, int]]) -> tuple[int, int, int]:
    """(lines, distinct ids sent that are in the file, duplicates) for the senders' id ranges."""
    seen = [bytearray(n) for _, n in total_ids]
    lines = distinct = dups = 0
    if not os.path.exists(path):
        return 0, 0, 0
    with open(path, "rb") as handle:
        rest = b""
        for chunk in iter(lambda: handle.read(8 << 20), b""):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            chunk, rest = chunk[:cut], chunk[cut:]
            lines += chunk.count(b"\n")
            for match in ID_RE.finditer(chunk):
                ident = int(match.group(1))
                k, n = divmod(ident, SENDER_IDS)
                if k < len(seen) and n < len(seen[k]):
                    if seen[k][n]:
                        dups += 1
                    else:
                        seen[k][n] = 1
                        distinct += 1
    return lines, distinct, dups


def run_rate(rate: int, seconds: float, senders: int, blaster: str | None, downloads: int, poll: float,
             server_root: str, extra: str) -> tuple[dict[str, float], str]:
    tmp = tempfile.mkdtemp(prefix="mt-bench-intake-")
    log_dir = os.path.join(tmp, "logs")
    udp_port, http_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    config = os.path.join(tmp, "bench.conf")
    with open(config, "w") as handle:
        handle.write(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {http_port}\nUDP_ADDRESS 127.0.0.1\nUDP_PORT {udp_port}\n"
                     f"LOG_DIR {log_dir}\nUSERS\n{extra}")
    err_path = os.path.join(tmp, "server.err")
    err = open(err_path, "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(server_root, "server.py"), "-c", config], stdout=err,
                            stderr=subprocess.STDOUT, cwd=server_root)
    deadline = time.time() + 15
    while time.time() < deadline:
        with open(err_path, "rb") as handle:
            if b"listening on" in handle.read():
                break
        time.sleep(0.1)
    forked = procs.children(proc.pid, wait=max(0.0, deadline - time.time()))   # the intake, its (only) child
    if not forked:
        raise RuntimeError("the server's intake process did not start")
    intake = forked[0]
    epoch = int(time.time())
    day = day_of(epoch)
    stop = threading.Event()
    totals = [[0, 0, 0] for _ in range(downloads)]
    clients = [threading.Thread(target=downloader, args=(http_port, day, poll, stop, t), daemon=True) for t in totals]
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per = rate / senders
    ids = [(k * SENDER_IDS, int(per * seconds)) for k in range(senders)]
    if blaster:
        children = [multiprocessing.Process(target=c_sender, args=(blaster, udp_port, per, seconds, k * SENDER_IDS,
                                                                   epoch, queue)) for k in range(senders)]
    else:
        children = [multiprocessing.Process(target=py_sender, args=(udp_port, per, seconds, k * SENDER_IDS,
                                                                    epoch, queue)) for k in range(senders)]
    time.sleep(0.5)
    writers = procs.children(intake)  # the intake's store writers (observables, ClickHouse), if any
    cpu_before = procs.cpu_seconds(intake)
    writers_before = sum(procs.cpu_seconds(pid) for pid in writers)
    for thread in clients:
        thread.start()
    for child in children:
        child.start()
    results = [queue.get() for _ in children]
    for child in children:
        child.join()
    sent, took = sum(r[0] for r in results), max(r[1] for r in results)
    sender_cpu = sum(r[2] for r in results)
    how = results[0][3]
    load = os.getloadavg()[0]
    path = day_path(log_dir, day)
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.2)
        size = os.path.getsize(path) if os.path.exists(path) else 0
        stable = stable + 1 if size == last else 0
        last = size
    cpu = procs.cpu_seconds(intake) - cpu_before
    writers_cpu = sum(procs.cpu_seconds(pid) for pid in writers) - writers_before
    stop.set()
    for thread in clients:
        thread.join(120)
    if downloads and any(t[2] != os.path.getsize(path) for t in totals):
        print(f"a download client has not got the whole day file ({[t[2] for t in totals]} bytes "
              f"of {os.path.getsize(path)})", file=sys.stderr)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    err.close()
    with open(err_path, "rb") as handle:
        stderr = handle.read()
    buffer = re.search(rb"receive buffer (\d+) kB", stderr)
    unobserved = re.findall(rb"observables_dropped=(\d+)", stderr)
    lines, distinct, dups = count_ids(path, ids)
    subprocess.run(["rm", "-rf", tmp], check=False)
    return {"sent": sent, "written": lines, "lost": sent - distinct, "dups": dups, "took": took, "load": load,
            "cpu_us": cpu / lines * 1e6 if lines else 0.0,
            "writers_us": writers_cpu / lines * 1e6 if lines else 0.0,
            "sender_us": sender_cpu / sent * 1e6 if sent else 0.0, "downloads": sum(t[0] for t in totals),
            "downloaded_mb": sum(t[1] for t in totals) / (1 << 20),
            "rcvbuf_kb": int(buffer.group(1)) if buffer else 0,
            "unobserved": int(unobserved[-1]) if unobserved else 0}, how


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", type=int, nargs="*", default=[100000, 150000, 200000, 250000, 300000, 400000])
    parser.add_argument("--senders", type=int, default=1, help="sender processes sharing each rate")
    parser.add_argument("--sender", choices=("c", "python"), default="c",
                        help="bench/udp_blast.c (GSO or sendmmsg; the default when a C compiler is there) or Python")
    parser.add_argument("--downloads", type=int, default=0, help="HTTP clients downloading the day's /events meanwhile")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between a client's Range requests")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a server setting, e.g. --set USE_CONDENSED_STORAGE false (repeatable)")
    parser.add_argument("--curve", action="store_true", help="measure every rate (do not stop at the first loss)")
    parser.add_argument("--server-root", default=ROOT, help="the tree whose server.py receives (default: this one)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="mt-bench-blast-")
    blaster = build_blaster(tmp) if args.sender == "c" else None
    kind = "C (bench/udp_blast.c)" if blaster else "Python"
    settings = " ".join(f"{key} {value}" for key, value in args.set)
    print(f"{max(1, args.senders)} {kind} sender(s), {args.downloads} /events download client(s) (Range every "
          f"{args.poll:g} s), {args.seconds:g} s per rate, server {os.path.abspath(args.server_root)} {settings}")
    print(f"{'rate/s':>8} {'sent':>10} {'written':>10} {'lost':>9} {'reached/s':>10} {'intake µs/ev':>12} "
          f"{'writers µs/ev':>13} {'sender µs/ev':>12} "
          f"{'downloads':>14} {'load':>5} {'rcvbuf':>8}")
    best = 0
    for rate in args.rates:
        r, how = run_rate(rate, args.seconds, max(1, args.senders), blaster, args.downloads, args.poll,
                     args.server_root, "".join(f"{key} {value}\n" for key, value in args.set))
        reached = r["sent"] / r["took"] if r["took"] else 0
        loss = r["lost"] / r["sent"] if r["sent"] else 0
        dups = f" ({r['dups']:.0f} duplicates!)" if r["dups"] else ""
        dups += f" (observables writer behind: {r['unobserved']:.0f} lines not observed)" if r["unobserved"] else ""
        print(f"{rate:>8} {r['sent']:>10.0f} {r['written']:>10.0f} {r['lost']:>9.0f} {reached:>10,.0f} "
              f"{r['cpu_us']:>12.2f} {r['writers_us']:>13.2f} {r['sender_us']:>12.2f} {r['downloads']:>5.0f} ({r['downloaded_mb']:>5.0f} MB) {r['load']:>5.1f} "
              f"{r['rcvbuf_kb'] >> 10:>5} MB  loss {loss:.3%}{dups} ({how})", flush=True)
        if r["lost"] == 0 and not r["dups"] and reached >= rate * 0.97:
            best = max(best, rate)
        elif r["lost"] and not args.curve:
            break
    subprocess.run(["rm", "-rf", tmp], check=False)
    print(f"highest lossless rate reached: {best:,}/s for {args.seconds:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
