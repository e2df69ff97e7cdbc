#!/usr/bin/env python3
"""ClickHouse event store benchmark (EVENT_STORE, docs/event-store.md), against a ClickHouse this
script starts itself on loopback (Debian's clickhouse-server, tests/kit/clickhouse.py).

1. Intake: a real server.py with `EVENT_STORE files,<ClickHouse>` and with `EVENT_STORE <ClickHouse>`
   alone (--stores) receives paced datagrams (bench_intake.py's sender) for --seconds at each of
   --rates, --runs times; prints sent, kept (day-file lines, or without files the rows in
   ClickHouse: lossless means every one), lost, rows in ClickHouse and how long after the last
   datagram ClickHouse had the last of them (the writer works through the journal at its own
   pace). Every run has its own server.py and database; the load average before it is printed.
2. Summary: a generated day of --events events (inserted by ClickHouse itself from numbers(),
   5,000 trails, 50,000 sources) read through a real server.py's /threats; prints the time of the
   first (cold) and the next (warm) request, and the bytes a browser downloads: the summary
   (plain and gzip) against the same day's /events from day files (plain, and gzip estimated
   from the first 200,000 lines).

    .venv/bin/python bench/bench_clickhouse.py                         # 100k/s for 10 s, a 10M-event day
    .venv/bin/python bench/bench_clickhouse.py --rates 100000 200000 --runs 3 --skip-summary
    .venv/bin/python bench/bench_clickhouse.py --skip-intake --events 2000000
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import http.client
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_intake import free_port, sender  # noqa: E402

from core.events.dayfile import day_of, day_path  # noqa: E402
from core.server.clickhouse import ClickHouse, parse_event_store  # noqa: E402
from tests.kit.clickhouse import BINARY, ClickHouseServer  # noqa: E402

STORES = ("files,clickhouse", "clickhouse")     # EVENT_STORE forms: "clickhouse" is the bench's ClickHouse


def start_server(tmp: str, store: str, udp: bool) -> tuple[subprocess.Popen[bytes], int, int]:
    import socket

    udp_port, http_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    config = os.path.join(tmp, "bench.conf")
    with open(config, "w") as handle:
        handle.write(f"HTTP_ADDRESS 127.0.0.1\nHTTP_PORT {http_port}\nLOG_DIR {os.path.join(tmp, 'logs')}\n"
                     f"EVENT_STORE {store}\nMETRICS_INTERVAL 86400\n")
        if udp:
            handle.write(f"UDP_ADDRESS 127.0.0.1\nUDP_PORT {udp_port}\n")
    err = open(os.path.join(tmp, "server.err"), "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "server.py"), "-c", config], stdout=err,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    err.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(os.path.join(tmp, "server.err"), "rb") as handle:
            if b"listening on" in handle.read():
                return proc, http_port, udp_port
        time.sleep(0.1)
    raise RuntimeError("server.py did not start")


def rows(ch: ClickHouseServer, database: str) -> int:
    try:
        return int(ch.query(f"SELECT uniqExact(eid) FROM {database}.events"))
    except OSError:
        return 0


def bench_intake(ch: ClickHouseServer, store: str, rate: int, seconds: float) -> None:
    """One run: a fresh server.py and database, `rate` events/s for `seconds`; prints what the
    intake kept (day file lines with files on, else the rows ClickHouse got) and what was lost."""
    tmp = tempfile.mkdtemp(prefix="mt-bench-ch-")
    database = f"bench_intake_{int(time.time() * 1000) % 10**9}"
    files = store.startswith("files")
    load = os.getloadavg()[0]
    proc, _, udp_port = start_server(tmp, store.replace("clickhouse", ch.url(database)), udp=True)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=sender, args=(udp_port, rate, seconds, queue, int(rate * seconds)))
    child.start()
    sent, took = queue.get()
    child.join()
    done_sending = time.monotonic()
    last, still, caught_up = -1, 0.0, 0.0
    while still < 20 and last < sent:      # until every event is there, or 20 s without progress
        time.sleep(0.5)
        count = rows(ch, database)
        still = still + 0.5 if count == last else 0.0
        if count != last:
            caught_up = time.monotonic() - done_sending
        last = count
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    with open(os.path.join(tmp, "server.err"), "rb") as handle:
        buffer = re.search(rb"receive buffer (\d+) kB", handle.read())
    stored = rows(ch, database)
    written = stored
    if files:
        with open(day_path(os.path.join(tmp, "logs"), day_of(time.time())), "rb") as handle:
            written = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    subprocess.run(["rm", "-rf", tmp], check=False)
    print(f"intake  {store:<18} {rate:>7,}/s {seconds:g} s (sent at {sent / took:,.0f}/s, load {load:.2f}, "
          f"receive buffer {int(buffer.group(1)) if buffer else 0:,} kB): sent {sent:,}, kept {written:,} "
          f"({'day file' if files else 'ClickHouse'}), lost {sent - written:,} ({1 - written / sent:.2%}); "
          f"ClickHouse {stored:,}, the last {caught_up:.1f} s after the last datagram (the writer "
          f"sustained {stored / (took + caught_up):,.0f}/s)", flush=True)


def pad2(expr: str) -> str:
    """Two digits of a small number (leftPad is not in ClickHouse 18.16)."""
    return f"substring(toString(100 + {expr}), 2, 2)"


def generate_sql(day: str, events: int) -> str:
    """One day of events made by ClickHouse from numbers(): one a second round the clock, 5,000 trails
    (destinations), 50,000 sources, 8 sensors; the same columns and line the intake would store."""
    time_text = (f"concat('{day} ', {pad2('intDiv(number % 86400, 3600)')}, ':', {pad2('intDiv(number % 3600, 60)')},"
                 f" ':', {pad2('number % 60')}, '.', toString(100000 + number % 900000))")
    return f"""
INSERT INTO bench_day.events (day, hour, time, sensor, src_ip, src_port, dst_ip, dst_port, proto, type, trail,
                              info, reference, custom, src_key, dst_key, line, eid)
SELECT day, hour, time, sensor, src, sport, dst, dport, 'TCP', type, trail, info, ref, 0,
       concat('0100000000000000000000ffff', lower(hex(IPv4StringToNum(src)))),
       concat('0100000000000000000000ffff', lower(hex(IPv4StringToNum(dst)))),
       concat('"', time, '" ', sensor, ' ', src, ' ', sport, ' ', dst, ' ', dport, ' TCP ', type, ' ', trail, ' ',
              info, ' ', ref), sipHash64(number)
FROM (
  SELECT number, toDate('{day}') AS day, toUInt8(intDiv(number % 86400, 3600)) AS hour, {time_text} AS time,
         concat('sensor', toString(number % 8)) AS sensor,
         concat('10.', toString(intDiv(number * 7919 % 50000, 250)), '.', toString(number * 7919 % 250), '.1') AS src,
         toString(1024 + number % 60000) AS sport,
         concat('198.51.', toString(intDiv(number * 104729 % 5000, 250)), '.', toString(number * 104729 % 250)) AS dst,
         '443' AS dport, 'IP' AS type, dst AS trail,
         if(number % 3 = 0, 'malware', 'known_attacker') AS info, '(static)' AS ref
  FROM numbers({events})
)"""


def bench_summary(ch: ClickHouseServer, events: int) -> None:
    day = datetime.date.today().isoformat()
    target = parse_event_store(ch.url("bench_day")).clickhouse
    assert target is not None
    client = ClickHouse(target, timeout=3600)
    client.ensure_schema()
    started = time.monotonic()
    client.execute(generate_sql(day, events), timeout=3600)
    print(f"summary generated {events:,} events of {day} in ClickHouse in {time.monotonic() - started:.1f} s",
          flush=True)
    tmp = tempfile.mkdtemp(prefix="mt-bench-ch-")
    proc, http_port, _ = start_server(tmp, ch.url("bench_day"), udp=False)
    try:
        timings = []
        sizes = {}
        for encoding in ("identity", "identity", "gzip"):
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=3600)
            begin = time.monotonic()
            conn.request("GET", f"/threats?date={day}", headers={"Accept-Encoding": encoding})
            response = conn.getresponse()
            body = response.read()
            timings.append(time.monotonic() - begin)
            assert response.status == 200, body[:300]
            sizes[encoding] = len(body)
            conn.close()
        plain = int(client.execute(f"SELECT sum(length(line) + 1) FROM bench_day.events WHERE day = '{day}'"))
        sample = client.execute(f"SELECT line FROM bench_day.events WHERE day = '{day}' LIMIT 200000 FORMAT TSVRaw")
        ratio = len(gzip.compress(sample, 6)) / max(1, len(sample))
        print(f"summary /threats for a {events:,}-event day: {timings[0]:.2f} s cold, {timings[1]:.2f} s warm; "
              f"{sizes['identity']:,} bytes ({sizes['gzip']:,} gzip)", flush=True)
        print(f"bytes   to the browser for that day: ClickHouse summary {sizes['gzip']:,} gzip; day files /events "
              f"{plain:,} plain, about {int(plain * ratio):,} gzip ({plain * ratio / max(1, sizes['gzip']):,.0f}x more)",
              flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        subprocess.run(["rm", "-rf", tmp], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[100000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES),
                        help="EVENT_STORE forms to measure the intake with")
    parser.add_argument("--runs", type=int, default=1, help="runs of each rate and store (alternating)")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-intake", action="store_true")
    parser.add_argument("--skip-summary", action="store_true")
    args = parser.parse_args()
    if not os.access(BINARY, os.X_OK):
        print(f"ClickHouse is not installed ({BINARY}): apt-get install clickhouse-server", file=sys.stderr)
        return 2
    ch = ClickHouseServer().start()
    try:
        version = ch.query("SELECT version()").decode().strip()
        print(f"ClickHouse {version} on 127.0.0.1:{ch.http_port}", flush=True)
        if not args.skip_intake:
            for rate in args.rates:
                for _ in range(args.runs):
                    for store in args.stores:
                        bench_intake(ch, store, rate, args.seconds)
        if not args.skip_summary:
            bench_summary(ch, args.events)
    finally:
        ch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
