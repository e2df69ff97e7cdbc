"""Generates realistic daily log files for the web client's tests and benchmark.

Where it sits: test/bench input only. Writes LOG_DIR/YYYY-MM-DD.log in the exact line format of
core/events/event.py (format_line), so the real server serves it and the browser parses it.
Deterministic for a seed. Also makes a "hostile" day whose fields carry markup, script URLs and
spreadsheet formulas, to prove the client escapes everything it renders or exports.

    python -m tests.web.gen_day LOG_DIR 2026-11-25 --events 1000000 [--seed 1]
"""

from __future__ import annotations

import argparse
import calendar
import os
import random
import time

from core.events.dayfile import day_path
from core.events.event import safe_value

SENSORS = ["gw", "dmz", "core1", "branch2"]
MALWARE = ["necurs dga", "ramnit dga", "emotet", "bazarloader", "andromeda", "formbook", "pikabot", "locky",
           "clearfake", "virut", "patchbrowse", "rhadamanthys", "systembc c2", "qakbot"]
LOW_INFO = ["known attacker", "mass scanner", "spammer", "reputation (suspicious)", "compromised (malicious)", "crawler"]
TLDS = ["biz", "net", "org", "info", "top", "su", "cc", "online", "site", "xyz"]


def _line(t: float, sensor: str, src: str, sport: object, dst: str, dport: object, proto: str, typ: str,
          trail: str, info: str, ref: str) -> str:
    # Time text is written as wall clock (as format_time does for the server's zone); we build it
    # from UTC fields so generated files are the same whatever the machine's zone is.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(t))) + f".{int((t % 1) * 1e6):06d}"
    fields = [sensor, src, sport, dst, dport, proto, typ, trail, info, ref]
    return f'"{stamp}" ' + " ".join(safe_value(f) for f in fields)


def day_lines(day: str, events: int, seed: int = 1) -> list[str]:
    """Lines for one day, time-ordered, with a diurnal shape."""
    rnd = random.Random(seed)
    base = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    n_sources = max(20, events // 60)
    sources = [f"10.{rnd.randint(0, 60)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}" for _ in range(n_sources)]
    sources += [f"192.168.{rnd.randint(0, 40)}.{rnd.randint(1, 254)}" for _ in range(n_sources // 4)]
    n_trails = max(30, events // 20)
    domains = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rnd.randint(5, 14)))
               + "." + rnd.choice(TLDS) for _ in range(n_trails)]
    ips = [f"{rnd.choice([45, 89, 91, 103, 131, 135, 157, 185, 194, 203, 217])}.{rnd.randint(0, 255)}."
           f"{rnd.randint(0, 255)}.{rnd.randint(1, 254)}" for _ in range(n_trails)]
    scanners = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
                for _ in range(max(10, events // 500))]
    times = sorted(base + _diurnal(rnd) for _ in range(events))
    lines = []
    for t in times:
        sensor = rnd.choice(SENSORS)
        src = sources[int(rnd.paretovariate(1.2)) % len(sources)]
        r = rnd.random()
        k = int(rnd.paretovariate(1.1)) % n_trails
        if r < 0.55:
            lines.append(_line(t, sensor, src, rnd.randint(1024, 65535), rnd.choice(["8.8.8.8", "1.1.1.1", "10.1.0.53"]),
                               53, "UDP", "DNS", domains[k], MALWARE[k % len(MALWARE)] + " (malware)", "(static)"))
        elif r < 0.75:
            port = rnd.choice([80, 443, 22, 8080, 1604])
            lines.append(_line(t, sensor, src, rnd.randint(1024, 65535), ips[k], port, "TCP", "IP", ips[k],
                               MALWARE[k % len(MALWARE)] + " (malware)", "feodotracker.abuse.ch"))
        elif r < 0.85:
            path = f"/c2/beacon?v={rnd.randint(1, 9999)}"
            lines.append(_line(t, sensor, src, rnd.randint(1024, 65535), ips[k], 80, "TCP", "URL", f"{domains[k]}{path}",
                               "potential malware site", "urlhaus.abuse.ch"))
        elif r < 0.95:
            scanner = rnd.choice(scanners)
            lines.append(_line(t, sensor, scanner, rnd.randint(1024, 65535), src, rnd.choice([22, 23, 445, 3389]),
                               "TCP", "IP", scanner, rnd.choice(LOW_INFO), "(static)"))
        else:
            lines.append(_line(t, sensor, src, "-", src, "-", "TCP", "IP", src, "potential port scanning",
                               "(heuristic)"))
    return lines


def _diurnal(rnd: random.Random) -> float:
    while True:
        x = rnd.random() * 86400
        weight = 0.35 + 0.65 * max(0.0, 1 - abs(x - 13 * 3600) / (8 * 3600))
        if rnd.random() < weight:
            return x


HOSTILE = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=2">',
    "javascript:window.__pwned=3",
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3+cmd|' /C calc'!A0",
    "<svg/onload=window.__pwned=4>",
    "{{constructor.constructor('window.__pwned=5')()}}",
]


def hostile_lines(day: str) -> list[str]:
    base = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    out = []
    for i, value in enumerate(HOSTILE):
        t = base + 3600 + i * 60
        out.append(_line(t, value, "10.0.0." + str(i + 1), 1234, "203.0.113." + str(i + 1), 80, "TCP", "URL",
                         value, value + " (malware)", value))
        out.append(_line(t + 1, "gw", "10.0.0." + str(i + 1), value, value, value, value, value, f"evil{i}.example",
                         value, "(static)"))
    return out


def write_day(log_dir: str, day: str, lines: list[str]) -> str:
    os.makedirs(log_dir, exist_ok=True)
    path = day_path(log_dir, day)
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir")
    parser.add_argument("day")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hostile", action="store_true")
    args = parser.parse_args()
    lines = hostile_lines(args.day) if args.hostile else day_lines(args.day, args.events, args.seed)
    print(write_day(args.log_dir, args.day, lines))


if __name__ == "__main__":
    main()
