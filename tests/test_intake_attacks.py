"""Garbage and impossible dates against a real server.py: the intake keeps every good event and
nothing else, and creates no day files it should not (real UDP on 127.0.0.1)."""

from __future__ import annotations

import os
import random
import re
import time

from tests.test_server_support import Server, event_line

PACE = 2000            # datagrams per burst; bursts are spaced so the receive buffer never overflows


def _paced(srv: Server, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), PACE):
        srv.send_udp(payloads[start:start + PACE])
        time.sleep(0.03)


def _summary(stderr: str) -> dict[str, int]:
    lines = re.findall(r"intake: (received=.*)", stderr)
    assert lines, stderr
    return {k: int(v) for k, v in (item.split("=") for item in lines[-1].split())}


def _garbage(rng: random.Random, now: int, good: list[str]) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    kind = rng.randrange(3)
    if kind == 0:      # random bytes after a valid date prefix
        return f'{now} "{stamp}.000000" '.encode() + rng.randbytes(rng.randrange(0, 200))
    if kind == 1:      # a good line made invalid UTF-8
        line = rng.choice(good).encode()
        cut = rng.randrange(30, len(line))
        return b"%d %s\xff%s" % (now, line[:cut], line[cut:])
    line = rng.choice(good)                        # cut before the last field: never 11 fields
    return f"{now} {line[:rng.randrange(0, line.rindex(' '))]}".encode()


def test_garbage_leaves_no_line_and_interleaved_good_events_are_all_kept(tmp_path):
    rng = random.Random(21)
    now = int(time.time())
    good = [event_line(now, src=f"10.0.{n // 250}.{n % 250 + 1}", info=f"good event {n}") for n in range(1000)]
    garbage = [_garbage(rng, now, good) for _ in range(100_000)]
    payloads = list(garbage)
    for n, line in enumerate(good):       # one good event every 100 garbage datagrams
        payloads.insert(n * 101, f"{now} {line}".encode())
    srv = Server(str(tmp_path))
    with srv:
        _paced(srv, payloads)
    with open(srv.day_file(now)) as handle:
        assert handle.read().splitlines() == good
    counts = _summary(srv.stderr)
    assert counts["received"] == len(payloads) and counts["written"] == len(good)
    assert counts["dropped"] == len(garbage) and counts["dropped_not_utf8"] > 0
    assert "intake dropped a datagram from 127.0.0.1:" in srv.stderr


def test_impossible_and_far_dates_create_no_day_files(tmp_path):
    rng = random.Random(3)
    payloads = []
    for n in range(20_000):
        if n % 2:
            day = f"{rng.randrange(1000, 10000)}-{rng.randrange(13, 100)}-{rng.randrange(0, 100):02d}"
        else:       # real dates, but years away from the server's clock
            day = f"{rng.randrange(2000, 2100) if n % 4 else 1999}-02-{rng.randrange(1, 29):02d}"
            if day[:4] == time.strftime("%Y"):
                day = "1990" + day[4:]
        payloads.append(f'"{day} 12:00:00.000000" s1 10.0.0.1 1 1.2.3.4 2 TCP IP 1.2.3.4 x y'.encode())
    srv = Server(str(tmp_path))
    with srv:
        _paced(srv, payloads)
    assert os.listdir(srv.log_dir) == []
    counts = _summary(srv.stderr)
    assert counts["received"] == 20_000 and counts["written"] == 0
    assert counts.get("dropped_bad_time", 0) + counts.get("dropped_bad_date", 0) == 10_000
    assert counts["dropped_outside_window"] == 10_000
