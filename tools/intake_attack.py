#!/usr/bin/env python3
"""Garbage-intake check: sends the hostile datagrams of docs/security.md ("Event intake") to a
running server's UDP intake, with good events interleaved, and prints what was kept and dropped.

Where it sits: an operator's tool beside the server (and the generator the intake attack tests
use, tests/test_intake_attacks.py). Every datagram of a run carries a sensor name unique to the
run, so with --log-dir (the server's LOG_DIR, on the same host) the tool counts exactly its own
lines: good events kept, garbage lines kept (should be 0) and day files created (should be 0).
Without --log-dir it prints what it sent; the server's counters line (`maltrail: intake: …`,
printed every METRICS_INTERVAL seconds and at shutdown) has the drop reasons.

    .venv/bin/python tools/intake_attack.py 127.0.0.1:8337 --log-dir /var/log/maltrail
    .venv/bin/python tools/intake_attack.py 127.0.0.1:8337 --key "$UDP_KEY" --garbage 10000

Send it only to a server you run: garbage is what it is meant to refuse.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.config import ConfigError, parse_endpoint  # noqa: E402
from core.events.dayfile import day_of, day_of_name, day_path  # noqa: E402
from core.events.signing import Signer  # noqa: E402

BURST = 2000            # datagrams per burst; a pause after each keeps the receive buffer from overflowing


def good_lines(sensor: str, now: int, count: int) -> list[str]:
    """Valid event lines, each one distinct (its info field numbers it)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return [f'"{stamp}.{n % 1000000:06d}" {sensor} 10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1} '
            f'{1024 + n % 60000} 198.51.100.7 443 TCP IP 198.51.100.7 "intake check {n}" (static)'
            for n in range(count)]


def garbage(rng: random.Random, sensor: str, now: int, good: list[str]) -> bytes:
    """One hostile datagram: random bytes after a valid date prefix, a good line made invalid
    UTF-8, or a good line cut before its last field (so it never has the 11 fields)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    kind = rng.randrange(3)
    if kind == 0:
        return f'{now} "{stamp}.000000" {sensor} '.encode() + rng.randbytes(rng.randrange(0, 200))
    line = rng.choice(good)
    if kind == 1:
        data = line.encode()
        cut = rng.randrange(30, len(data))
        return b"%d %s\xff%s" % (now, data[:cut], data[cut:])
    return f"{now} {line[:rng.randrange(0, line.rindex(' '))]}".encode()


def impossible_dates(rng: random.Random, sensor: str, count: int) -> list[bytes]:
    """Naive lines dated on days that do not exist (month 13-99, day 00 or above 31)."""
    return [(f'"{rng.randrange(1000, 10000)}-{rng.randrange(13, 100)}-{rng.choice([0, *range(32, 100)]):02d} '
             f'12:00:00.000000" {sensor} 10.0.0.1 1 198.51.100.7 2 TCP IP 198.51.100.7 x y').encode()
            for _ in range(count)]


def interleave(good: list[bytes], bad: list[bytes]) -> list[bytes]:
    """The good datagrams spread evenly through the bad ones."""
    out: list[bytes] = []
    step = max(1, len(bad) // max(1, len(good)))
    for n, data in enumerate(good):
        out.append(data)
        out.extend(bad[n * step:(n + 1) * step])
    out.extend(bad[len(good) * step:])
    return out


def send(address: tuple[str, int], payloads: list[bytes], pause: float) -> None:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for start in range(0, len(payloads), BURST):
            for data in payloads[start:start + BURST]:
                sock.sendto(data, address)
            time.sleep(pause)


def count_own_lines(log_dir: str, sensor: str, now: int) -> list[str]:
    try:
        with open(day_path(log_dir, day_of(now)), encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in handle if f" {sensor} " in line]
    except FileNotFoundError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="send hostile datagrams to a server's UDP intake; print kept/dropped")
    parser.add_argument("server", help="UDP_ADDRESS:UDP_PORT of the server, e.g. 127.0.0.1:8337")
    parser.add_argument("--log-dir", help="the server's LOG_DIR (same host): count what was kept")
    parser.add_argument("--key", help="UDP_KEY when the server requires signed datagrams")
    parser.add_argument("--good", type=int, default=1000, help="good events interleaved (default 1000)")
    parser.add_argument("--garbage", type=int, default=100_000, help="garbage datagrams (default 100000)")
    parser.add_argument("--dates", type=int, default=20_000, help="impossible-date datagrams (default 20000)")
    parser.add_argument("--pause", type=float, default=0.03, help=f"seconds after every {BURST} datagrams")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    try:
        address = parse_endpoint("server", args.server)
    except ConfigError as ex:
        parser.error(str(ex))
    rng = random.Random(args.seed)
    sensor = f"intake-check-{os.urandom(4).hex()}"
    now = int(time.time())
    good = good_lines(sensor, now, args.good)
    bad = [garbage(rng, sensor, now, good) for _ in range(args.garbage)] + impossible_dates(rng, sensor, args.dates)
    rng.shuffle(bad)
    payloads = interleave([f"{now} {line}".encode() for line in good], bad)
    if args.key:
        signer = Signer(args.key)
        payloads = [signer.sign(data) for data in payloads]
    days_before = set(os.listdir(args.log_dir)) if args.log_dir else set()
    started = time.monotonic()
    send(address, payloads, args.pause)
    took = time.monotonic() - started
    print(f"sent {len(payloads):,} datagrams in {took:.1f} s to {address[0]}:{address[1]} (sensor name {sensor}): "
          f"{len(good):,} good, {args.garbage:,} garbage, {args.dates:,} impossible dates")
    if not args.log_dir:
        print("kept/dropped: see the server's 'maltrail: intake:' counters line (or rerun with --log-dir)")
        return 0
    time.sleep(1.0)                     # the intake writes in batches
    own = count_own_lines(args.log_dir, sensor, now)
    wanted = set(good)
    kept_good = sum(1 for line in own if line in wanted)
    kept_garbage = len(own) - kept_good
    new_files = sorted(name for name in set(os.listdir(args.log_dir)) - days_before
                       if day_of_name(name) not in (None, day_of(now)))
    print(f"kept: {kept_good:,}/{len(good):,} good events, {kept_garbage:,} garbage lines, "
          f"{len(new_files):,} unexpected new day files")
    print(f"dropped: {args.garbage + args.dates - kept_garbage:,}/{args.garbage + args.dates:,} hostile datagrams")
    return 0 if kept_good == len(good) and kept_garbage == 0 and not new_files else 1


if __name__ == "__main__":
    sys.exit(main())
